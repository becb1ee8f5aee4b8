"""The out-of-distribution suite: every method on every scenario of simulator/scenarios.py over a few seeds,
then per scenario the mean response time, its t 95% CI and the ratio to that scenario's best heuristic.

The ratio makes scenarios of very different response times comparable, and each method's worst scenario
(its highest ratio) says where it generalises least.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.extras import require
from scale_scheduler.simulator.guard import guarded_fraction, tally
from scale_scheduler.simulator.scenarios import get_scenario
from scale_scheduler.simulator.schedulers import HEURISTICS, Scheduler
from scale_scheduler.simulator.yardsticks import lower_bound

from .evaluation import confidence_interval, make_schedulers
from .parallel import IN_PROCESS, Workers, run_units
from .plots import pyplot


@dataclass
class SuiteEpisode:
    scenario: str
    method: str
    seed: int
    avg_response_time: float
    p95_response_time: float
    completed_workflows: int
    workflows: int
    lower_bound: float  # max(LB1, LB2) of the (scenario, seed) episode
    guarded_fraction: float = 0.0  # share of its decisions the guard replaced (evaluate --guard)


def suite_cell(
    methods: Sequence[str],
    size: str | float,
    simulate_kwargs: Mapping[str, Any],
    schedulers: Mapping[str, Scheduler],
    cell: tuple[str, int],
) -> list[SuiteEpisode]:
    """Every method on one (scenario, seed)'s cluster and workload: the unit ``--workers`` fans out."""
    scenario, seed = get_scenario(cell[0]), cell[1]
    cluster, workflows = scenario.build(seed, size)
    bound = lower_bound(cluster, workflows, seed).value
    episodes = []
    for method in methods:
        scheduler = schedulers[method]
        scheduler.reset(seed)
        before = tally(scheduler)
        outcome = simulate(cluster, copy.deepcopy(workflows), scheduler, seed=seed, **simulate_kwargs)
        episodes.append(
            SuiteEpisode(
                scenario.name,
                method,
                seed,
                float(outcome.avg_response_time),
                float(outcome.p95_response_time),
                outcome.completed_workflows,
                len(workflows),
                bound,
                guarded_fraction(scheduler, before),
            )
        )
    return episodes


def run_suite(
    names: Sequence[str],
    methods: Sequence[str],
    seeds: Sequence[int],
    make: Callable[[str], Scheduler],
    size: str | float = "default",
    simulate_kwargs: Mapping[str, Any] | None = None,
    on_episode: Callable[[SuiteEpisode], None] | None = None,
    workers: Workers = IN_PROCESS,
) -> list[SuiteEpisode]:
    """Each method on the identical cluster and workload per (scenario, seed); ``simulate_kwargs`` go to
    ``simulate`` unchanged (e.g. the placement rule). With ``workers``, (scenario, seed) cells run on Ray and
    ``make`` builds the schedulers in each worker (so it must pickle: names and checkpoint paths, not models)."""
    scenarios = [get_scenario(name) for name in names]  # an unknown name fails before any simulation

    def report(cell: list[SuiteEpisode]) -> None:
        assert on_episode is not None  # passed on only when given
        for episode in cell:
            on_episode(episode)

    cells = run_units(
        partial(make_schedulers, make, methods),
        partial(suite_cell, list(methods), size, dict(simulate_kwargs or {})),
        [(scenario.name, seed) for scenario in scenarios for seed in seeds],
        workers,
        report if on_episode else None,
    )
    return [episode for cell in cells for episode in cell]


def summarise_suite(episodes: Iterable[SuiteEpisode], heuristics: Iterable[str] | None = None) -> dict[str, Any]:
    """``rows``: one per (scenario, method) with the mean avg response time over seeds, its CI, and the ratio to
    the scenario's best heuristic (lowest mean among ``heuristics``, default the simulator's); ``worst``: per
    method, the scenario of its highest ratio (the first run on a tie). Scenarios and methods keep the order
    they were run in."""
    heuristic_names = set(HEURISTICS if heuristics is None else heuristics)
    groups: dict[tuple[str, str], list[SuiteEpisode]] = {}
    for episode in episodes:
        groups.setdefault((episode.scenario, episode.method), []).append(episode)
    means = {key: float(np.mean([e.avg_response_time for e in group])) for key, group in groups.items()}
    best: dict[str, str] = {}
    for (scenario, method), mean in means.items():
        if method in heuristic_names and (scenario not in best or mean < means[(scenario, best[scenario])]):
            best[scenario] = method
    missing = sorted({scenario for scenario, _ in groups} - set(best))
    if missing:
        raise ValueError(
            f"no heuristic among the methods of {', '.join(missing)}: the ratio needs one "
            f"(heuristics: {', '.join(sorted(heuristic_names))})"
        )
    rows = []
    for (scenario, method), group in groups.items():
        low, high = confidence_interval(np.array([e.avg_response_time for e in group]))
        rows.append(
            {
                "scenario": scenario,
                "method": method,
                "seeds": len(group),
                "avg_response_time": means[(scenario, method)],
                "avg_response_time_ci95": [low, high],
                "best_heuristic": best[scenario],
                "ratio_to_best_heuristic": means[(scenario, method)] / means[(scenario, best[scenario])],
                "completed_fraction": sum(e.completed_workflows for e in group) / sum(e.workflows for e in group),
                "lower_bound": float(np.mean([e.lower_bound for e in group])),
                "ratio_to_lower_bound": float(np.mean([e.avg_response_time / e.lower_bound for e in group])),
                "guarded_fraction": float(np.mean([e.guarded_fraction for e in group])),
            }
        )
    worst: dict[str, dict[str, Any]] = {}
    for row in rows:
        method = str(row["method"])
        if method not in worst or row["ratio_to_best_heuristic"] > worst[method]["ratio"]:
            worst[method] = {"method": method, "scenario": row["scenario"], "ratio": row["ratio_to_best_heuristic"]}
    return {"rows": rows, "worst": list(worst.values())}


def _ordered(summary: dict[str, Any], key: str) -> list[str]:
    return list(dict.fromkeys(row[key] for row in summary["rows"]))


def markdown_suite_table(summary: dict[str, Any]) -> str:
    """One row per scenario, one column per method: ``mean [lo, hi] (×ratio)``; then each method's worst."""
    methods = _ordered(summary, "method")
    cells = {(r["scenario"], r["method"]): r for r in summary["rows"]}
    lines = [
        "| scenario | " + " | ".join(methods) + " | best heuristic | max(LB1, LB2) |",
        "|---|" + "---|" * (len(methods) + 2),
    ]
    for scenario in _ordered(summary, "scenario"):
        row = [scenario]
        for method in methods:
            cell = cells.get((scenario, method))
            if cell is None:
                row.append("")
                continue
            low, high = cell["avg_response_time_ci95"]
            ratio = cell["ratio_to_best_heuristic"]
            row.append(f"{cell['avg_response_time']:.2f} [{low:.2f}, {high:.2f}] (×{ratio:.2f})")
        first = next(r for r in summary["rows"] if r["scenario"] == scenario)
        row += [first["best_heuristic"], f"{first['lower_bound']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines += [
        f"- {w['method']}: worst scenario {w['scenario']} (×{w['ratio']:.2f} the best heuristic)"
        for w in summary["worst"]
    ]
    guarded = {method: [r["guarded_fraction"] for r in summary["rows"] if r["method"] == method] for method in methods}
    if any(any(fractions) for fractions in guarded.values()):  # evaluate --guard: how often it stepped in
        lines += ["", "Decisions the guard replaced (mean over scenarios; most in one scenario):"]
        lines += [
            f"- {method}: {100 * float(np.mean(fractions)):.2f} % (max {100 * max(fractions):.2f} %)"
            for method, fractions in guarded.items()
        ]
    return "\n".join(lines) + "\n"


def plot_suite_ratios(summary: dict[str, Any], path: Path) -> Path:
    """Heatmap of the ratio to the best heuristic, scenarios x methods, coloured on a log scale around 1."""
    scenarios, methods = _ordered(summary, "scenario"), _ordered(summary, "method")
    ratios = np.full((len(scenarios), len(methods)), np.nan)
    for row in summary["rows"]:
        ratios[scenarios.index(row["scenario"]), methods.index(row["method"])] = row["ratio_to_best_heuristic"]
    # log2 so x2 and x0.5 sit equally far from 1 in colour; the limit is at least x1.1 so that an all-equal
    # suite is not painted at full saturation
    log_ratio = np.log2(ratios)
    limit = max(float(np.nanmax(np.abs(log_ratio))), np.log2(1.1))
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(1.3 * len(methods) + 3, 0.45 * len(scenarios) + 1.5))
    image = axis.imshow(log_ratio, cmap="RdYlGn_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), ratio in np.ndenumerate(ratios):
        if np.isfinite(ratio):
            axis.text(j, i, f"{ratio:.2f}", ha="center", va="center", fontsize=8)
    axis.set_xticks(range(len(methods)), methods, rotation=30, ha="right")
    axis.set_yticks(range(len(scenarios)), scenarios)
    axis.set_title("avg response time / best heuristic's (lower is better)")
    ratio_label = require("matplotlib.ticker", "plots").FuncFormatter(lambda value, _: f"×{2**value:.2f}")
    colourbar = figure.colorbar(image, ax=axis, format=ratio_label)
    colourbar.set_label("ratio to the best heuristic (log scale)")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
