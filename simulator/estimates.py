"""Per-workflow estimates from the node model, shared by the engine and the operator.

For each primitive on each node: the estimated duration (hardware only) and whether the request can
ever fit there; from those, each primitive's ``downstream_seconds`` (the longest chain of mean
estimated work after it: HEFT's upward rank minus itself, the priority of ready primitives) and the
workflow's critical-path lower bound on the fastest feasible nodes (the denominator of slowdown).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .node_model import estimated_durations_matrix
from .state import ClusterState
from .workflow import Workflow


@dataclass(frozen=True)
class WorkflowEstimates:
    raw: np.ndarray  # [P, N] estimated seconds per node from speed alone
    estimates: np.ndarray  # [P, N] the same, inf where the request can never fit the node
    feasible: np.ndarray  # [P, N] bool
    mean: list[float]  # per primitive, the estimate averaged over the nodes that can run it
    downstream: list[float]  # per primitive, in the workflow's order
    lower_bound_seconds: float
    parents: list[list[int]]  # per primitive, the indices of the primitives it depends on (each once)

    def downstream_seconds(self, workflow: Workflow) -> dict[str, float]:
        return {p.name: self.downstream[i] for i, p in enumerate(workflow.primitives)}


def workflow_estimates(workflow: Workflow, state: ClusterState) -> WorkflowEstimates:
    """Estimates for a validated workflow (primitives in topological order) on the cluster ``state``."""
    return workflows_estimates([workflow], state)[0]


# rows of [P, N] computed per batch: a few MB per array at N=1024, while small workflows still share the
# numpy calls (per-workflow calls on [6, 48] arrays cost more in call overhead than in arithmetic)
_BATCH_ELEMENTS = 1 << 18


def workflows_estimates(workflows: Sequence[Workflow], state: ClusterState) -> list[WorkflowEstimates]:
    """``workflow_estimates`` of many workflows, the node model run over their primitives in batches."""
    results: list[WorkflowEstimates] = []
    rows_per_batch = max(_BATCH_ELEMENTS // max(state.num_nodes, 1), 1)
    batch: list[Workflow] = []
    rows = 0
    for workflow in workflows:
        batch.append(workflow)
        rows += len(workflow.primitives)
        if rows >= rows_per_batch:
            results += _batch_estimates(batch, state)
            batch, rows = [], 0
    if batch:
        results += _batch_estimates(batch, state)
    return results


def _batch_estimates(workflows: list[Workflow], state: ClusterState) -> list[WorkflowEstimates]:
    primitives = [p for workflow in workflows for p in workflow.primitives]
    raw = estimated_durations_matrix(primitives, state.speed, state.prefill_tps, state.decode_tps)  # [P, N]
    # a handful of request shapes (one per kind unless set by hand): fit each shape once, then per primitive
    shape_index: dict[tuple[int, int, int], int] = {}
    shape_of = [
        shape_index.setdefault((p.cpu_millicores, p.memory_bytes, p.gpus), len(shape_index)) for p in primitives
    ]
    shapes = np.array(list(shape_index), dtype=float)
    fits = (
        (shapes[:, 0:1] <= state.alloc_cpu)
        & (shapes[:, 1:2] <= state.alloc_memory)
        & (shapes[:, 2:3] <= state.alloc_gpus)
    )[shape_of]
    estimates = np.where(fits, raw, math.inf)
    feasible = np.isfinite(estimates)
    feasible_counts = feasible.sum(axis=1)
    means = (np.where(feasible, estimates, 0.0).sum(axis=1) / np.maximum(feasible_counts, 1)).tolist()
    fastest_all = np.where(feasible_counts > 0, estimates.min(axis=1), 0.0).tolist()
    results = []
    first = 0
    for workflow in workflows:
        count = len(workflow.primitives)
        rows = slice(first, first + count)
        mean, fastest = means[rows], fastest_all[rows]
        index = {p.name: i for i, p in enumerate(workflow.primitives)}
        parents = [
            [index[name] for name in (p.depends_on if len(p.depends_on) < 2 else dict.fromkeys(p.depends_on))]
            for p in workflow.primitives
        ]
        # topological order: each primitive's parents come before it, so one pass each way (plain loops: this
        # runs for every workflow of every episode)
        downstream = [0.0] * count
        for i in reversed(range(count)):
            through = mean[i] + downstream[i]
            for parent in parents[i]:
                if through > downstream[parent]:
                    downstream[parent] = through
        finish = [0.0] * count
        for i in range(count):
            before = 0.0
            for parent in parents[i]:
                if finish[parent] > before:
                    before = finish[parent]
            finish[i] = fastest[i] + before
        results.append(
            WorkflowEstimates(
                raw[rows], estimates[rows], feasible[rows], mean, downstream, max(finish, default=0.0), parents
            )
        )
        first += count
    return results
