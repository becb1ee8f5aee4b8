"""The statistics behind the evaluate table: t-based CIs and the paired comparison."""

from __future__ import annotations

import numpy as np
import pytest
from scale_scheduler.policy.evaluation import EpisodeResult, confidence_interval, paired_comparison, summarise


def episode(method: str, seed: int, response_time: float, nodes: int = 48) -> EpisodeResult:
    return EpisodeResult(method, nodes, "per-node", seed, response_time, 2 * response_time, 100.0, 1.5)


def test_confidence_interval_uses_the_t_distribution() -> None:
    values = np.array([10.0, 12.0, 11.0, 13.0, 9.0])
    low, high = confidence_interval(values)
    half = 2.776445105 * values.std(ddof=1) / np.sqrt(5)  # t(0.975, df=4)
    assert (low, high) == pytest.approx((11.0 - half, 11.0 + half))


def test_paired_comparison_reports_the_mean_difference_over_shared_seeds() -> None:
    ours = [9.0, 10.0, 8.5, 9.5]
    theirs = [10.0, 11.5, 9.0, 10.5]
    results = [episode("scale", s, v) for s, v in enumerate(ours)]
    results += [episode("crossattn", s, v) for s, v in enumerate(theirs)]
    results.append(episode("crossattn", 99, 50.0))  # no partner seed: must be ignored
    (row,) = paired_comparison(results, "scale", "crossattn")
    assert row["seeds"] == 4
    assert row["mean_difference"] == pytest.approx(-1.0)
    assert row["relative_change"] == pytest.approx(-1.0 / np.mean(theirs))
    assert row["difference_ci95"][1] < 0 and row["p_value"] < 0.05


def test_summary_has_one_row_per_method_size_and_regime() -> None:
    results = [episode("heft", s, 10.0 + s) for s in range(3)] + [episode("heft", s, 5.0, nodes=16) for s in range(3)]
    rows = {(r["method"], r["nodes"]): r for r in summarise(results)}
    assert rows[("heft", 48)]["avg_response_time"] == pytest.approx(11.0)
    assert rows[("heft", 16)]["avg_response_time_ci95"] == pytest.approx([5.0, 5.0])
