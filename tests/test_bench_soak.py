"""bench/soak.py's options: every bad one is refused with one clear line and exit code 2, before any cluster starts."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"


@pytest.fixture(scope="module")
def soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", SOAK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--nodes", "0"], "argument --nodes: must be at least 1, not 0"),
        (["--workflows", "ten"], "argument --workflows: not an integer: 'ten'"),
        (["--load", "0"], "argument --load: must be in (0, 1]"),
        (["--load", "1.2"], "above 1 the queue grows without bound"),
        (["--time-scale", "0"], "argument --time-scale: must be at least 0.001"),
        (["--max-minutes", "-1"], "argument --max-minutes: must be above 0"),
        (["--max-minutes", "inf"], "argument --max-minutes: must be finite"),
        (["--sample-seconds", "0"], "argument --sample-seconds: must be above 0"),
        (["--sample-seconds", "120", "--max-minutes", "1"], "--sample-seconds 120 is longer than --max-minutes 1"),
        (["--seed", "-3"], "argument --seed: must be 0 or more"),
        (["--policies", "scale,fifo"], "unknown policy 'fifo'; choose from"),
        (["--policies", "heft,heft"], "a policy is named twice"),
        (["--policies", ","], "unknown policy (none given)"),
        (["--shapes", "react,spiral"], "unknown shape 'spiral'; choose from"),
        (["--rule", "fifo"], "argument --rule: invalid choice"),
        (
            ["--out", "/no/such/folder/soak.json"],
            "--out /no/such/folder/soak.json: folder /no/such/folder does not exist",
        ),
        (
            ["--nodes", "16", "--workflows", "50", "--time-scale", "0.01", "--max-minutes", "10"],
            "arrivals span",
        ),
    ],
)
def test_a_bad_option_exits_2_with_one_clear_line(
    soak: ModuleType, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        soak.parse_args(argv)
    assert exit_.value.code == 2
    last_line = capsys.readouterr().err.strip().splitlines()[-1]
    assert message in last_line


def test_the_default_soak_is_1000_workflows_of_at_least_10000_pods_within_its_time_bound(soak: ModuleType) -> None:
    args = soak.parse_args([])
    assert (args.nodes, args.workflows, args.policies) == (256, 1000, ("scale", "heft"))
    assert sum(len(workflow.primitives) for workflow in args.workload) >= 10_000
    assert args.workload[-1].arrival_time / args.time_scale < args.max_minutes * 60
