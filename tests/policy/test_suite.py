"""The OOD suite runner: episodes per (scenario, seed, method), ratios to the best heuristic, worst scenarios."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scale_scheduler.policy.evaluation import confidence_interval
from scale_scheduler.policy.suite import (
    SuiteEpisode,
    markdown_suite_table,
    plot_suite_ratios,
    run_suite,
    summarise_suite,
)
from scale_scheduler.simulator.schedulers import Scheduler, make_heuristic

# Hand-checked: in "a" heft is the best heuristic (mean 11), in "b" least-loaded (15).
# scale: a 22/11 = 2.0, b 18/15 = 1.2 -> worst a; heft: b 30/15 = 2.0 -> worst b; least-loaded: a 21/11 -> a.
TIMES = {
    ("a", "heft"): [10.0, 12.0],
    ("a", "least-loaded"): [20.0, 22.0],
    ("a", "scale"): [22.0, 22.0],
    ("b", "heft"): [29.0, 31.0],
    ("b", "least-loaded"): [15.0, 15.0],
    ("b", "scale"): [18.0, 18.0],
}


def hand_episodes() -> list[SuiteEpisode]:
    return [
        SuiteEpisode(scenario, method, seed, time, 2 * time, 5, 5, lower_bound=8.0)
        for (scenario, method), times in TIMES.items()
        for seed, time in enumerate(times)
    ]


def test_summary_ratio_of_the_best_heuristic_is_exactly_one_and_others_are_relative_to_it() -> None:
    rows = {(r["scenario"], r["method"]): r for r in summarise_suite(hand_episodes())["rows"]}
    assert rows[("a", "heft")]["ratio_to_best_heuristic"] == 1.0
    assert rows[("b", "least-loaded")]["ratio_to_best_heuristic"] == 1.0
    assert rows[("a", "scale")]["ratio_to_best_heuristic"] == pytest.approx(2.0)
    assert rows[("b", "heft")]["ratio_to_best_heuristic"] == pytest.approx(2.0)
    assert rows[("a", "scale")]["best_heuristic"] == "heft"
    assert rows[("a", "heft")]["avg_response_time_ci95"] == list(confidence_interval(np.array([10.0, 12.0])))
    assert rows[("a", "heft")]["completed_fraction"] == 1.0
    assert rows[("a", "heft")]["lower_bound"] == 8.0
    assert rows[("a", "heft")]["ratio_to_lower_bound"] == pytest.approx((10 / 8 + 12 / 8) / 2)


def test_worst_scenario_per_method_is_its_highest_ratio() -> None:
    worst = {w["method"]: (w["scenario"], w["ratio"]) for w in summarise_suite(hand_episodes())["worst"]}
    assert worst == {
        "heft": ("b", pytest.approx(2.0)),
        "least-loaded": ("a", pytest.approx(21 / 11)),
        "scale": ("a", pytest.approx(2.0)),
    }


def test_markdown_has_a_row_per_scenario_a_column_per_method_and_the_worst_lines() -> None:
    table = markdown_suite_table(summarise_suite(hand_episodes()))
    lines = table.splitlines()
    assert lines[0] == "| scenario | heft | least-loaded | scale | best heuristic | max(LB1, LB2) |"
    assert lines[2].startswith("| a | 11.00 [") and "(×1.00)" in lines[2] and "(×2.00)" in lines[2]
    assert lines[2].endswith("| heft | 8.00 |") and lines[3].endswith("| least-loaded | 8.00 |")
    assert "- scale: worst scenario a (×2.00 the best heuristic)" in lines
    assert "- heft: worst scenario b (×2.00 the best heuristic)" in lines


def test_heuristics_argument_picks_the_reference_and_none_among_the_methods_is_an_error() -> None:
    rows = summarise_suite(hand_episodes(), heuristics=["scale"])["rows"]
    assert all(r["best_heuristic"] == "scale" for r in rows)
    only_learned = [e for e in hand_episodes() if e.method == "scale"]
    with pytest.raises(ValueError, match="no heuristic among the methods of a, b"):
        summarise_suite(only_learned)


class Recording:
    """A heuristic that remembers the seeds it was reset with."""

    def __init__(self, inner: Scheduler):
        self.inner, self.name, self.resets = inner, inner.name, []

    def reset(self, seed: int | None = None) -> None:
        self.resets.append(seed)
        self.inner.reset(seed)

    def __getattr__(self, attribute: str):  # noqa: ANN204 (delegation)
        return getattr(self.inner, attribute)


def test_tiny_suite_runs_every_cell_resets_per_seed_and_completes() -> None:
    made: dict[str, Recording] = {}

    def make(method: str) -> Recording:
        made[method] = Recording(make_heuristic(method))
        return made[method]

    seen: list[SuiteEpisode] = []
    episodes = run_suite(
        ["all-gpu", "lattice"], ["least-loaded", "heft"], [0, 1], make, size="tiny", on_episode=seen.append
    )
    assert seen == episodes
    assert [(e.scenario, e.seed, e.method) for e in episodes] == [
        (s, seed, m) for s in ("all-gpu", "lattice") for seed in (0, 1) for m in ("least-loaded", "heft")
    ]
    assert all(e.completed_workflows == e.workflows for e in episodes)
    assert made["heft"].resets == [0, 1, 0, 1]
    summary = summarise_suite(episodes)
    for scenario in ("all-gpu", "lattice"):
        ratios = [r["ratio_to_best_heuristic"] for r in summary["rows"] if r["scenario"] == scenario]
        assert min(ratios) == 1.0


def test_simulate_kwargs_reach_simulate() -> None:
    # a horizon before anything can finish: no workflow completes, so the keyword arrived
    episodes = run_suite(["all-gpu"], ["heft"], [0], make_heuristic, size="tiny", simulate_kwargs={"horizon": 0.5})
    assert episodes[0].completed_workflows == 0


def test_unknown_scenario_fails_before_any_scheduler_is_made() -> None:
    def make(method: str) -> Scheduler:
        raise AssertionError("no scheduler should be made")

    with pytest.raises(ValueError, match="unknown scenario"):
        run_suite(["all-gpu", "nope"], ["heft"], [0], make)


def test_plot_writes_a_png(tmp_path: Path) -> None:
    path = plot_suite_ratios(summarise_suite(hand_episodes()), tmp_path / "suite.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
