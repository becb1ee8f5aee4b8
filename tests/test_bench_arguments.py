"""bench/operator.py's --wrong-prior --seeds: refused arguments exit 2 before any cluster starts, and the summary
of several seeds is their means and the paired online - static difference (the measurement itself is the
benchmark's, never a test's)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "operator.py"


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_operator", BENCH)  # not "operator": the stdlib's
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--wrong-prior", "gpu-large", "--seeds", "0"], "argument --seeds: must be at least 1, not 0"),
        (["--seeds", "3"], "--seeds repeats the --wrong-prior experiment: give --wrong-prior CLASS"),
        (["--wrong-prior", "tpu", "--nodes", "8"], "no tpu node among 8 nodes; choose from cpu-large"),
    ],
)
def test_wrong_prior_arguments_are_refused_before_a_cluster_starts(args: list[str], message: str) -> None:
    done = subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "starting cluster" not in done.stderr


def _seed(seed: int, static: tuple[float, float], online: tuple[float, float]) -> dict:
    def run(figures: tuple[float, float]) -> dict[str, float]:
        return {"avg_response_seconds": figures[0], "estimate_error_mean_ratio": figures[1]}

    return {"seed": seed, "static": run(static), "online": run(online)}


def test_the_summary_of_seeds_is_their_means_and_the_paired_difference() -> None:
    summary = _bench_module().wrong_prior_summary
    one = summary([_seed(3, (24.6, 1.78), (26.2, 1.18))])
    assert one["runs"] == {
        "static": {"avg_response_seconds": 24.6, "estimate_error_mean_ratio": 1.78},
        "online": {"avg_response_seconds": 26.2, "estimate_error_mean_ratio": 1.18},
    }
    assert "paired" not in one  # one seed: nothing to pair
    three = summary(
        [_seed(3, (24.0, 1.8), (23.0, 1.2)), _seed(4, (30.0, 1.7), (28.0, 1.1)), _seed(5, (20.0, 1.9), (20.0, 1.25))]
    )
    assert three["runs"]["static"]["avg_response_seconds"] == pytest.approx(74 / 3)
    assert three["runs"]["online"]["estimate_error_mean_ratio"] == pytest.approx(3.55 / 3)
    response = three["paired"]["avg_response_seconds"]
    assert response["seeds"] == 3 and response["mean_difference"] == pytest.approx(-1.0)
    low, high = response["difference_ci95"]
    assert low < -1.0 < high and 0 < response["p_value"] < 1
    assert three["paired"]["estimate_error_mean_ratio"]["mean_difference"] == pytest.approx(-1.85 / 3)
    assert [seed["seed"] for seed in three["per_seed"]] == [3, 4, 5]
