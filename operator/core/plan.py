"""What a WorkflowDAG means to the operator, worked out once per incarnation: the validated DAG and its estimates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.simulator.estimates import workflow_estimates
from scale_scheduler.simulator.manifests import workflow_from_manifest
from scale_scheduler.simulator.workflow import Primitive, Workflow, validate


@dataclass
class WorkflowPlan:
    """A WorkflowDAG's validated DAG and the engine's estimates for it, for one uid."""

    uid: str
    workflow: Workflow
    raw: dict[str, dict[str, Any]]  # spec entry per primitive name (image, command)
    downstream_seconds: dict[str, float]  # per primitive: the longest chain of mean estimated work after it
    lower_bound_seconds: float  # critical path on the fastest feasible nodes (slowdown's denominator)
    mean_seconds: dict[str, float]  # per primitive: the estimate averaged over the nodes that can run it

    @property
    def by_name(self) -> dict[str, Primitive]:
        return self.workflow.by_name()


def plan_workflow(body: dict[str, Any], live: LiveCluster) -> WorkflowPlan:
    """Parse and validate a WorkflowDAG against the live cluster; WorkflowValidationError if it cannot run.

    LookupError when the live view has no schedulable node yet (try again later, it is not the DAG's fault).
    """
    workflow = workflow_from_manifest(body)
    state = live.snapshot()
    validate(workflow, state.spec.nodes)  # Unschedulable when a primitive can ever run on no node
    raw = {entry["name"]: entry for entry in body["spec"]["primitives"]}
    estimates = workflow_estimates(workflow, state)  # the simulator engine's own per-workflow preparation
    return WorkflowPlan(body["metadata"]["uid"], workflow, raw, estimates.downstream_seconds(workflow),
                        estimates.lower_bound_seconds,
                        {p.name: estimates.mean[i] for i, p in enumerate(workflow.primitives)})
