"""Per-workflow estimates from the node model, shared by the engine and the operator.

For each primitive on each node: the estimated duration (hardware only) and whether the request can
ever fit there; from those, each primitive's ``downstream_seconds`` (the longest chain of mean
estimated work after it: HEFT's upward rank minus itself, the priority of ready primitives) and the
workflow's critical-path lower bound on the fastest feasible nodes (the denominator of slowdown).
"""

from __future__ import annotations

import math
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

    def downstream_seconds(self, workflow: Workflow) -> dict[str, float]:
        return {p.name: self.downstream[i] for i, p in enumerate(workflow.primitives)}


def workflow_estimates(workflow: Workflow, state: ClusterState) -> WorkflowEstimates:
    """Estimates for a validated workflow (primitives in topological order) on the cluster ``state``."""
    primitives = workflow.primitives
    # [P, N] at once: one numpy op per workflow instead of several per primitive
    raw = estimated_durations_matrix(primitives, state.speed, state.prefill_tps, state.decode_tps)
    requests = np.array([(p.cpu_millicores, p.memory_bytes, p.gpus) for p in primitives], dtype=float)
    fits = ((requests[:, 0:1] <= state.alloc_cpu) & (requests[:, 1:2] <= state.alloc_memory)
            & (requests[:, 2:3] <= state.alloc_gpus))
    estimates = np.where(fits, raw, math.inf)
    feasible = np.isfinite(estimates)
    counts = np.maximum(feasible.sum(axis=1), 1)
    mean = (np.where(feasible, estimates, 0.0).sum(axis=1) / counts).tolist()
    fastest = np.where(feasible.any(axis=1), estimates.min(axis=1), 0.0).tolist()
    index = {p.name: i for i, p in enumerate(primitives)}
    children = workflow.children()
    downstream = [0.0] * len(primitives)
    for i in reversed(range(len(primitives))):
        downstream[i] = max((mean[index[c]] + downstream[index[c]] for c in children[primitives[i].name]),
                            default=0.0)
    finish = [0.0] * len(primitives)
    for i, p in enumerate(primitives):
        finish[i] = fastest[i] + max((finish[index[parent]] for parent in p.depends_on), default=0.0)
    return WorkflowEstimates(raw=raw, estimates=estimates, feasible=feasible, mean=mean, downstream=downstream,
                             lower_bound_seconds=max(finish, default=0.0))
