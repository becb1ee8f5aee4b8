"""The benchmarks the README names still run and print the JSON they document (figures are not asserted:
speed is measured by the benchmarks themselves, never by tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _bench(script: str, *args: str) -> dict:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json"], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_simulator_bench_reports_rates_ratios_and_fork_costs_at_each_size() -> None:
    report = _bench("simulator.py", "--workflows", "10", "--repeats", "1")
    sizes = {"16", "48", "256", "1024"}
    assert set(report["reference_decisions_per_second"]) == sizes
    assert all(rate > 0 for rate in report["reference_decisions_per_second"].values())
    for key in ("decisions_per_second", "ratio_to_reference"):
        assert set(report[key]) == {"least-loaded", "heft"}
        for by_rule in report[key].values():
            assert set(by_rule) == {"late-binding", "node-queues"}
            assert all(set(by_size) == sizes and all(v > 0 for v in by_size.values()) for by_size in by_rule.values())
    assert set(report["fork"]) == {"48", "1024"}
    for cost in report["fork"].values():
        assert cost["fork_us"] > 0 and cost["deepcopy_us"] > 0 and cost["deepcopy_over_fork"] > 0
    assert report["rollout_heft"]["decisions_per_second"] > 0


def test_policy_bench_reports_latencies_and_batched_rate() -> None:
    report = _bench("policy.py", "--nodes", "16,48", "--calls", "10", "--batch", "4")
    for key in ("single_decision_p50_ms", "single_decision_p99_ms", "batched_decisions_per_second"):
        assert set(report[key]) == {"16", "48"} and all(v > 0 for v in report[key].values())


def test_training_bench_reports_rollout_and_label_rates_and_the_speedup_of_two_workers() -> None:
    report = _bench(
        "training.py",
        "--workers",
        "1,2",
        "--nodes",
        "4",
        "--groups",
        "2",
        "--rollouts",
        "2",
        "--workflows",
        "2",
        "--label-episodes",
        "2",
        "--label-workflows",
        "1",
    )
    for key in ("rollout_decisions_per_second", "label_decisions_per_second"):
        assert set(report[key]) == {"1", "2"} and all(rate > 0 for rate in report[key].values())
    assert set(report["speedup"]) == {"rollout", "label"}
    assert report["speedup"]["rollout"]["1"] == 1.0 and report["speedup"]["label"]["2"] > 0
    assert set(report["ray_start_seconds"]) == {"2"}
