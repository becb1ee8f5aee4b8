"""--workers / --ray-address: the same numbers in-process and on Ray, no Ray in the default path, and bad input
refused in one line with exit code 2 before anything is written.

The Ray tests share one local Ray of 2 CPUs (``parallel.connected(Workers(2))``, what `--workers 2` starts); the
commands join it with --ray-address, so the machine runs one Ray at a time.
"""

from __future__ import annotations

import json
import operator
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED
from scale_scheduler.policy.episodes import sample_episode
from scale_scheduler.policy.labels import generate_labels
from scale_scheduler.policy.network import NetworkConfig
from scale_scheduler.policy.parallel import RAY_MISSING, Workers, WorkersUnavailable, connected, run_units
from scale_scheduler.policy.ppo import PPOConfig, Trainer

EVALUATE = (
    "evaluate",
    "--methods",
    "heft,random,scale,rollout-heft",
    "--nodes",
    "4,16",
    "--seeds",
    "2",
    "--workflows",
    "3",
    "--json",
)
SUITE = (
    "evaluate",
    "--suite",
    "all-gpu,lattice",
    "--size",
    "tiny",
    "--seeds",
    "2",
    "--methods",
    "heft,least-loaded,crossattn",
    "--json",
)


def _command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SCALE_SCHED, *args], capture_output=True, text=True, timeout=600, check=False, env=env)


def _message(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join(done.stderr.replace("│", " ").split())  # unwrapped from rich's error box


def _document(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    import ray

    with connected(Workers(2)):
        yield ray.get_runtime_context().gcs_address


def test_in_process_runs_setup_once_and_reports_every_result_in_unit_order() -> None:
    setups: list[int] = []

    def setup() -> int:
        setups.append(1)
        return 10

    seen: list[int] = []
    assert run_units(setup, operator.sub, [5, 3, 1], on_result=seen.append) == [5, 7, 9]
    assert seen == [5, 7, 9] and setups == [1]


def test_workers_below_one_are_refused() -> None:
    for count in (0, -2):
        with pytest.raises(WorkersUnavailable, match="at least 1"):
            Workers(count)
    assert not Workers(1).distributed and Workers(2).distributed and Workers(address="auto").distributed


def test_the_default_path_never_imports_ray(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import typer\n"
        "from scale_scheduler.policy import cli, ppo, suite\n"
        "app = typer.Typer(); cli.register(app)\n"
        f"done = CliRunner().invoke(app, ['evaluate', '--methods', 'heft', '--nodes', '4', '--seeds', '1', "
        f"'--workflows', '2', '--out', {str(tmp_path)!r}])\n"
        "assert done.exit_code == 0, done.output\n"
        "print('ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"


def test_ray_workers_give_results_in_unit_order(ray_address: str) -> None:
    seen: list[int] = []
    assert run_units(partial(int, 10), operator.sub, [5, 3, 1, 0], Workers(2), on_result=seen.append) == [5, 7, 9, 10]
    assert sorted(seen) == [5, 7, 9, 10]


def test_evaluate_and_suite_give_identical_json_on_one_and_two_workers(ray_address: str, tmp_path: Path) -> None:
    for args in (EVALUATE, SUITE):
        alone = _document(_command(*args, "--workers", "1", "--out", str(tmp_path / "one")))
        spread = _document(
            _command(*args, "--workers", "2", "--ray-address", ray_address, "--out", str(tmp_path / "two"))
        )
        assert alone == spread
    assert (tmp_path / "one" / "episodes.csv").read_text() == (tmp_path / "two" / "episodes.csv").read_text()


def test_ppo_rollouts_on_two_workers_train_the_same_model(ray_address: str, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = PPOConfig.for_algo(
        "scale",
        seed=3,
        nodes=4,
        total_steps=400,
        groups=3,
        rollouts_per_group=2,
        workflows_per_episode=3,
        minibatch_size=64,
        update_epochs=1,
        eval_interval=100,
        eval_episodes=1,
        eval_workflows=3,
        eval_nodes=(4,),
        network=NetworkConfig(hidden=32, heads=2),
    )
    alone, spread = Trainer(config, tmp_path / "one"), Trainer(config, tmp_path / "two", workers=Workers(2))
    for _ in range(2):
        assert alone.rollout_and_update() == spread.rollout_and_update()
    for (name, ours), theirs in zip(alone.model.state_dict().items(), spread.model.state_dict().values(), strict=True):
        assert torch.equal(ours, theirs), name


def test_rollout_heft_labels_are_its_choices_and_the_same_on_two_workers(ray_address: str) -> None:
    rng = np.random.default_rng(5)
    episodes = [sample_episode(rng, 4, 2, 0.7) for _ in range(3)]
    alone, spread = generate_labels(episodes), generate_labels(episodes, workers=Workers(2))
    for ours, theirs in zip(alone, spread, strict=True):
        assert ours.action == theirs.action and len(ours.action) > 0
        assert all(mask[action] for mask, action in zip(ours.mask, ours.action, strict=True))
        assert all(np.array_equal(a, b) for a, b in zip(ours.nodes, theirs.nodes, strict=True))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        ("evaluate", "--methods", "heft", "--nodes", "4", "--seeds", "1", "--workflows", "2"),
        ("evaluate", "--suite", "all-gpu", "--size", "tiny", "--seeds", "1", "--methods", "heft"),
        ("train", "--algo", "crossattn", "--nodes", "4", "--workflows", "2", "--steps", "20"),
    ],
    ids=["evaluate", "suite", "train"],
)
def test_bad_workers_are_refused_in_one_line_before_anything_is_written(
    command: tuple[str, ...], tmp_path: Path
) -> None:
    fake = tmp_path / "no-ray"  # a `ray` that fails to import, as where it is not installed
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    without_ray = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake), os.environ.get("PYTHONPATH")]))}
    for flags, expected, env in [
        (("--workers", "0"), "Invalid value for '--workers'", None),  # typer's own words vary by version
        (("--workers", "-3"), "Invalid value for '--workers'", None),
        (("--ray-address", f"127.0.0.1:{_free_port()}"), "no Ray cluster answers at 127.0.0.1:", None),
        (("--workers", "2"), RAY_MISSING, without_ray),
    ]:
        out = tmp_path / "out"
        done = _command(*command, *flags, "--out", str(out), env=env)
        assert done.returncode == 2 and expected in _message(done), done.stderr[-3000:]
        assert "Traceback" not in done.stderr
        assert not out.exists(), f"{flags} wrote {out}"
