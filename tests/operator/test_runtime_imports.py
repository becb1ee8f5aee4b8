"""The operator's runtime path needs none of the train/plots extras: the operator image leaves them out."""

from __future__ import annotations

import subprocess
import sys
import textwrap

# every module of the train and plots extras (pyproject.toml), as the operator image lacks them
BLOCKED = ("tensorboard", "matplotlib", "gymnasium", "scipy", "ortools")

SCRIPT = textwrap.dedent("""
    import sys

    BLOCKED = {blocked!r}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"blocked for this test: {{name}}", name=name)
            return None

    sys.meta_path.insert(0, Refuse())

    from scale_scheduler.operator.cli import _register
    from scale_scheduler.operator.core import controller, livestate  # noqa: F401
    from scale_scheduler.operator.serve import extender  # noqa: F401
    from scale_scheduler.operator.serve.run import load_policy
    from scale_scheduler.policy.registry import LEARNED_METHODS
    from scale_scheduler.simulator.cluster import heterogeneous
    from scale_scheduler.simulator.engine import simulate
    from scale_scheduler.simulator.generators import generate_workload

    _register()  # every command registers (their heavy imports are inside the commands)
    cluster = heterogeneous(8, seed=0)
    for name in LEARNED_METHODS:
        scheduler, warning = load_policy(name, None)  # the shipped checkpoint, no fallback
        assert warning is None, warning
        scheduler.reset(0)
        result = simulate(cluster, generate_workload(cluster, 3, 0.7, seed=0), scheduler, seed=0)
        assert result.avg_response_time > 0, name
    loaded = sorted(m for m in sys.modules if m.partition(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("ok")
""")


def test_operator_runs_and_loads_shipped_checkpoints_without_training_or_plotting_libraries() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=BLOCKED)], capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().endswith("ok")


def test_a_missing_extra_names_the_extra_to_install() -> None:
    script = SCRIPT.split("sys.meta_path.insert(0, Refuse())")[0].format(blocked=BLOCKED) + textwrap.dedent("""
        sys.meta_path.insert(0, Refuse())
        from scale_scheduler.policy.evaluation import confidence_interval
        import numpy as np
        try:
            confidence_interval(np.array([1.0, 2.0, 3.0]))
        except ImportError as error:
            print(error)
    """)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "pip install 'scale-scheduler[train]'" in run.stdout
