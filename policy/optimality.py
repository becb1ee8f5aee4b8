"""How far each policy is from the best possible on small instances: the lower bounds and the CP-SAT optimum.

On instances small enough for CP-SAT, every method runs the same episode (cluster, workflows, seed) and is
compared with max(LB1, LB2) and with the clairvoyant offline optimum of that very episode.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from scale_scheduler.simulator.cluster import ClusterSpec, heterogeneous
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.workflow import Workflow
from scale_scheduler.simulator.yardsticks import (
    MAX_NODES,
    MAX_PRIMITIVES,
    MAX_WORKFLOWS,
    LowerBound,
    OptimumResult,
    lower_bound,
    optimum,
)


@dataclass(frozen=True)
class Instance:
    name: str
    cluster: ClusterSpec
    workflows: list[Workflow]
    seed: int  # the engine's seed: arrivals are in the workflows, true durations come from it


def small_instance(seed: int, nodes: int = 6, workflows: int = 6, load: float = 0.8) -> Instance:
    """A heterogeneous cluster of ``nodes`` and the first ``workflows`` of a generated workload at ``load``
    that have at most MAX_PRIMITIVES primitives (a larger one is skipped, its arrival slot left empty)."""
    if nodes > MAX_NODES or workflows > MAX_WORKFLOWS:
        raise ValueError(
            f"small instances have at most {MAX_NODES} nodes and {MAX_WORKFLOWS} workflows; "
            f"asked for {nodes} nodes and {workflows} workflows"
        )
    cluster = heterogeneous(nodes, seed)
    # four candidates per slot: the largest shapes (react with 4 rounds: 9 primitives) are rare
    pool = generate_workload(cluster, 4 * workflows, load, seed)
    chosen = [w for w in pool if len(w.primitives) <= MAX_PRIMITIVES][:workflows]
    return Instance(f"n{nodes}-w{workflows}-s{seed}", cluster, chosen, seed)


def small_instances(seeds: Sequence[int], nodes: int = 6, workflows: int = 6, load: float = 0.8) -> list[Instance]:
    return [small_instance(seed, nodes, workflows, load) for seed in seeds]


@dataclass(frozen=True)
class OptimalityRow:
    instance: str
    lower_bound: LowerBound
    optimum: OptimumResult
    response_times: dict[str, float]  # method -> mean response time on the instance

    def ratio_to_bound(self, method: str) -> float:
        """The method's mean response time over max(LB1, LB2): at least 1."""
        return self.response_times[method] / self.lower_bound.value

    def gap_to_optimum(self, method: str) -> float:
        """method / CP-SAT objective - 1: at least 0 when CP-SAT proved its schedule optimal."""
        return self.response_times[method] / self.optimum.objective - 1.0


def optimality_report(
    methods: Sequence[str],
    make: Callable[[str], Scheduler],
    instances: Sequence[Instance],
    time_limit_s: float,
    simulate_kwargs: dict[str, Any] | None = None,
    work_limit: float | None = None,
) -> list[OptimalityRow]:
    """Every method (a fresh ``make(method)`` per instance) simulated on every instance, beside the bounds and
    CP-SAT's optimum of that instance's episode (``time_limit_s``, ``work_limit``: see ``yardsticks.optimum``)."""
    rows = []
    for instance in instances:
        times = {}
        for method in methods:
            result = simulate(
                instance.cluster,
                copy.deepcopy(instance.workflows),
                make(method),
                seed=instance.seed,
                **(simulate_kwargs or {}),
            )
            times[method] = result.avg_response_time
        rows.append(
            OptimalityRow(
                instance.name,
                lower_bound(instance.cluster, instance.workflows, instance.seed),
                optimum(
                    instance.cluster,
                    instance.workflows,
                    instance.seed,
                    time_limit_s=time_limit_s,
                    work_limit=work_limit,
                ),
                times,
            )
        )
    return rows


def _response_time(row: OptimalityRow, method: str) -> float:
    return row.response_times[method]


def optimality_table(rows: Sequence[OptimalityRow]) -> str:
    """Markdown: per instance LB1, LB2, CP-SAT (objective, bound, status, proven gap, wall time), then per
    method its mean response time, ratio to max(LB1, LB2) and gap to CP-SAT; a last row of means."""
    methods = list(rows[0].response_times) if rows else []
    header = ["instance", "LB1 s", "LB2 s", "CP-SAT s", "CP-SAT bound s", "status", "proven gap", "CP-SAT wall s"]
    for method in methods:
        header += [f"{method} s", f"{method} / LB", f"{method} vs CP-SAT"]
    # (value, format) per column; the status column is text and has no mean
    columns: list[tuple[Callable[[OptimalityRow], Any], str]] = [
        (lambda row: row.lower_bound.critical_path, "{:.2f}"),
        (lambda row: row.lower_bound.capacity, "{:.2f}"),
        (lambda row: row.optimum.objective, "{:.2f}"),
        (lambda row: row.optimum.best_bound, "{:.2f}"),
        (lambda row: row.optimum.status, "{}"),
        (lambda row: row.optimum.proven_gap, "{:.1%}"),
        (lambda row: row.optimum.wall_seconds, "{:.1f}"),
    ]
    for method in methods:
        columns += [
            (partial(_response_time, method=method), "{:.2f}"),
            (partial(OptimalityRow.ratio_to_bound, method=method), "{:.2f}"),
            (partial(OptimalityRow.gap_to_optimum, method=method), "{:+.1%}"),
        ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join([row.instance] + [form.format(value(row)) for value, form in columns]) + " |")
    if rows:
        means = [form.format(np.mean([value(row) for row in rows])) if form != "{}" else "" for value, form in columns]
        lines.append("| " + " | ".join(["mean", *means]) + " |")
    return "\n".join(lines)
