"""The scale-generalisation experiment: every method on identical workloads per (N, regime, seed),
then means, t-distribution 95% confidence intervals and paired comparisons.

Regimes at N larger than the base size: "per-node" keeps the offered load fraction (the arrival
rate grows with N), "total-rate" keeps the base cluster's arrival rate (the cluster gets emptier).
At the base size the two are the same experiment, run once and reported under both names.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from typing import Any

import numpy as np
from scale_scheduler.simulator.cluster import ClusterSpec, heterogeneous
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.extras import require
from scale_scheduler.simulator.generators import arrival_rate_for_load, generate_workload
from scale_scheduler.simulator.guard import guarded_fraction, tally
from scale_scheduler.simulator.placement import DEFAULT_RULE, PlacementRule
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.workflow import Workflow
from scale_scheduler.simulator.yardsticks import lower_bound

from .parallel import IN_PROCESS, Workers, run_units

REGIMES: tuple[str, ...] = ("per-node", "total-rate")
METRICS: tuple[str, ...] = ("avg_response_time", "p95_response_time", "completed_primitives", "avg_slowdown")


@dataclass
class EpisodeResult:
    method: str
    nodes: int
    regime: str
    seed: int
    avg_response_time: float
    p95_response_time: float
    completed_primitives: float
    avg_slowdown: float
    lower_bound: float = math.nan  # max(LB1, LB2) of the episode: no method can have a lower avg response time
    guarded_fraction: float = 0.0  # share of its decisions the guard replaced (evaluate --guard)


@dataclass
class EvaluationPlan:
    methods: list[str]
    nodes: list[int]
    seeds: int
    workflows: int
    load: float = 0.7
    base_nodes: int = 16
    rule: PlacementRule = DEFAULT_RULE
    # `evaluate --cluster`: every cell runs on this cluster (its size the only N, its own base) instead of the
    # generator's; the seeds still draw the workload and the true durations
    cluster: ClusterSpec | None = None

    @classmethod
    def on_cluster(
        cls, methods: list[str], cluster: ClusterSpec, seeds: int, workflows: int, load: float, rule: PlacementRule
    ) -> EvaluationPlan:
        """A plan whose every episode runs on ``cluster``: one size, so one regime (the base size's)."""
        size = len(cluster.nodes)
        return cls(methods, [size], seeds, workflows, load, base_nodes=size, rule=rule, cluster=cluster)

    def cells(self) -> Iterator[tuple[int, str, int]]:
        """(N, regime, seed) of every distinct experiment; the base size is run once."""
        for nodes in self.nodes:
            for regime in REGIMES if nodes != self.base_nodes else REGIMES[:1]:
                for seed in range(self.seeds):
                    yield nodes, regime, seed

    def episodes(self) -> int:
        return len(list(self.cells())) * len(self.methods)


def workload_for(plan: EvaluationPlan, nodes: int, regime: str, seed: int) -> tuple[ClusterSpec, list[Workflow]]:
    cluster = plan.cluster if plan.cluster is not None else heterogeneous(nodes, seed=seed)
    if regime == "total-rate":
        rate = arrival_rate_for_load(heterogeneous(plan.base_nodes, seed=seed), plan.load)
        return cluster, generate_workload(cluster, plan.workflows, plan.load, seed=seed, arrival_rate=rate)
    return cluster, generate_workload(cluster, plan.workflows, plan.load, seed=seed)


def evaluate_cell(
    plan: EvaluationPlan, schedulers: Mapping[str, Scheduler], cell: tuple[int, str, int]
) -> list[EpisodeResult]:
    """Every method on one (N, regime, seed) workload, in ``plan.methods`` order: the unit ``--workers`` fans out."""
    nodes, regime, seed = cell
    cluster, workflows = workload_for(plan, nodes, regime, seed)
    bound = lower_bound(cluster, workflows, seed).value
    results = []
    for method in plan.methods:
        scheduler = schedulers[method]
        scheduler.reset(seed)
        before = tally(scheduler)
        outcome = simulate(cluster, copy.deepcopy(workflows), scheduler, seed=seed, rule=plan.rule)
        metrics = {m: float(getattr(outcome, m)) for m in METRICS}
        results.append(
            EpisodeResult(
                method,
                nodes,
                regime,
                seed,
                **metrics,
                lower_bound=bound,
                guarded_fraction=guarded_fraction(scheduler, before),
            )
        )
    return results


def make_schedulers(make: Callable[[str], Scheduler], methods: Sequence[str]) -> dict[str, Scheduler]:
    return {method: make(method) for method in methods}


def run_evaluation(
    plan: EvaluationPlan,
    make: Callable[[str], Scheduler],
    on_episode: Callable[[EpisodeResult], None] | None = None,
    workers: Workers = IN_PROCESS,
) -> list[EpisodeResult]:
    """Every cell of ``plan``; with ``workers``, cells run on Ray and ``make`` builds the schedulers in each worker
    (so it must pickle: names and checkpoint paths, not models)."""

    def report(cell: list[EpisodeResult]) -> None:
        assert on_episode is not None  # passed on only when given
        for result in cell:
            on_episode(result)

    cells = run_units(
        partial(make_schedulers, make, plan.methods),
        partial(evaluate_cell, plan),
        list(plan.cells()),
        workers,
        report if on_episode else None,
    )
    results = []
    for result in (result for cell in cells for result in cell):
        results.append(result)
        # the base size is one experiment reported under both regimes; a given cluster has no regimes to compare
        if result.nodes == plan.base_nodes and plan.cluster is None:
            results.append(replace(result, regime=REGIMES[1]))
    return results


def confidence_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean
    stats = require("scipy.stats", "train")
    half = float(stats.t.ppf(0.5 + level / 2, len(values) - 1) * stats.sem(values))
    return mean - half, mean + half


def summarise(results: list[EpisodeResult]) -> list[dict[str, Any]]:
    """One row per (method, N, regime): metric means and the CI of the average response time."""
    groups: dict[tuple[str, int, str], list[EpisodeResult]] = {}
    for result in results:
        groups.setdefault((result.method, result.nodes, result.regime), []).append(result)
    rows = []
    for (method, nodes, regime), episodes in groups.items():
        row: dict[str, Any] = {"method": method, "nodes": nodes, "regime": regime, "seeds": len(episodes)}
        for metric in METRICS:
            row[metric] = float(np.mean([getattr(e, metric) for e in episodes]))
        low, high = confidence_interval(np.array([e.avg_response_time for e in episodes]))
        row["avg_response_time_ci95"] = [low, high]
        row["lower_bound"] = float(np.mean([e.lower_bound for e in episodes]))
        row["ratio_to_lower_bound"] = float(np.mean([e.avg_response_time / e.lower_bound for e in episodes]))
        rows.append(row)
    return rows


def paired_comparison(results: list[EpisodeResult], method: str, reference: str) -> list[dict[str, Any]]:
    """Per (N, regime): mean of (method - reference) avg response time over the shared seeds, its CI,
    the paired t-test p-value and the relative change (negative = ``method`` is faster)."""
    by_key = {(r.method, r.nodes, r.regime, r.seed): r.avg_response_time for r in results}
    cells = sorted({(r.nodes, r.regime) for r in results}, key=lambda c: (c[0], REGIMES.index(c[1])))
    rows = []
    for nodes, regime in cells:
        seeds = sorted(
            s
            for (m, n, g, s) in by_key
            if m == method and n == nodes and g == regime and (reference, n, g, s) in by_key
        )
        if not seeds:
            continue
        ours = np.array([by_key[(method, nodes, regime, s)] for s in seeds])
        theirs = np.array([by_key[(reference, nodes, regime, s)] for s in seeds])
        rows.append(
            {
                "method": method,
                "reference": reference,
                "nodes": nodes,
                "regime": regime,
                **paired_difference(ours, theirs),
            }
        )
    return rows


def paired_difference(ours: np.ndarray, theirs: np.ndarray) -> dict[str, Any]:
    """Two measurements per seed (same order): the number of seeds, the mean of ``ours - theirs``, its 95% CI,
    the paired t-test p-value and the mean difference relative to ``theirs`` (negative: ``ours`` is lower)."""
    difference = ours - theirs
    low, high = confidence_interval(difference)
    p_value = (
        float(require("scipy.stats", "train").ttest_rel(ours, theirs).pvalue)
        if len(difference) > 1 and difference.std() > 0
        else 1.0
    )
    return {
        "seeds": len(difference),
        "mean_difference": float(difference.mean()),
        "difference_ci95": [low, high],
        "p_value": p_value,
        "relative_change": float(difference.mean() / theirs.mean()),
    }


def best_heuristic_comparison(results: list[EpisodeResult], method: str, heuristics: list[str]) -> list[dict[str, Any]]:
    """``method`` against the heuristic with the lowest mean response time in each (N, regime) cell."""
    rows: list[dict[str, Any]] = []
    summary = summarise(results)
    for nodes, regime in sorted({(r["nodes"], r["regime"]) for r in summary}):
        candidates = [r for r in summary if r["nodes"] == nodes and r["regime"] == regime and r["method"] in heuristics]
        if not candidates:
            continue
        best = min(candidates, key=lambda r: r["avg_response_time"])["method"]
        rows.extend(c for c in paired_comparison(results, method, best) if (c["nodes"], c["regime"]) == (nodes, regime))
    return rows


def results_as_dicts(results: list[EpisodeResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]


def _markdown(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _with_ci(value: float, interval: Sequence[float], sign: str = "") -> str:
    return f"{value:{sign}.2f} [{interval[0]:{sign}.2f}, {interval[1]:{sign}.2f}]"


def markdown_table(summary: list[dict[str, Any]]) -> str:
    header = [
        "N",
        "regime",
        "method",
        "avg response time (s) [95% CI]",
        "p95 (s)",
        "completed primitives",
        "slowdown",
        "max(LB1, LB2) (s)",
        "/ LB",
    ]
    ordered = sorted(summary, key=lambda r: (r["nodes"], REGIMES.index(r["regime"]), r["avg_response_time"]))
    return _markdown(
        header,
        (
            [
                str(row["nodes"]),
                row["regime"],
                row["method"],
                _with_ci(row["avg_response_time"], row["avg_response_time_ci95"]),
                f"{row['p95_response_time']:.2f}",
                f"{row['completed_primitives']:.1f}",
                f"{row['avg_slowdown']:.2f}",
                f"{row['lower_bound']:.2f}",
                f"{row['ratio_to_lower_bound']:.2f}",
            ]
            for row in ordered
        ),
    )


def markdown_paired(rows: list[dict[str, Any]]) -> str:
    header = ["N", "regime", "method - reference", "mean diff (s) [95% CI]", "relative", "paired t p"]
    return _markdown(
        header,
        (
            [
                str(row["nodes"]),
                row["regime"],
                f"{row['method']} - {row['reference']}",
                _with_ci(row["mean_difference"], row["difference_ci95"], "+"),
                f"{100 * row['relative_change']:+.1f}%",
                f"{row['p_value']:.3g}",
            ]
            for row in rows
        ),
    )
