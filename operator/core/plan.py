"""What a WorkflowDAG means to the operator, worked out once per incarnation: the validated DAG and its estimates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from scale_scheduler.operator.core.estimates import template_key
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.pod_template import effective_primitives
from scale_scheduler.operator.core.progress import RetryStrategy
from scale_scheduler.operator.core.workflow_pods import scheduling_fields
from scale_scheduler.operator.kube.node_filter import NodeConstraints
from scale_scheduler.simulator.estimates import workflow_estimates
from scale_scheduler.simulator.manifests import workflow_from_manifest
from scale_scheduler.simulator.node_model import feasible, with_work_scaled
from scale_scheduler.simulator.workflow import Primitive, Workflow, WorkflowValidationError, validate


@dataclass
class WorkflowPlan:
    """A WorkflowDAG's validated DAG and the engine's estimates for it, for one uid. ``workflow``'s primitives
    carry the work learned for their template (what the policy and every estimate see); ``declared`` has them as
    the manifest declares them (what the prior estimate and a simulated node's drawn run time come from)."""

    uid: str
    workflow: Workflow
    raw: dict[str, dict[str, Any]]  # spec entry per primitive name, podTemplate merged in (the pod's fields)
    constraints: dict[str, NodeConstraints]  # per primitive: the nodes its pods may go to (selector, affinity, taints)
    strategies: dict[str, RetryStrategy]  # per primitive: which failures are retried, when and where
    downstream_seconds: dict[str, float]  # per primitive: the longest chain of mean estimated work after it
    lower_bound_seconds: float  # critical path on the fastest feasible nodes (slowdown's denominator)
    mean_seconds: dict[str, float]  # per primitive: the estimate averaged over the nodes that can run it
    template: str  # what its primitives' run times are learned under (estimates.template_key)
    declared: dict[str, Primitive]  # per primitive: as declared, without learned work

    @property
    def by_name(self) -> dict[str, Primitive]:
        return self.workflow.by_name()


def plan_workflow(body: dict[str, Any], live: LiveCluster) -> WorkflowPlan:
    """Parse and validate a WorkflowDAG against the live cluster; WorkflowValidationError if it cannot run.

    LookupError when the live view has no schedulable node yet (try again later, it is not the DAG's fault).
    """
    entries = effective_primitives(body["spec"])
    workflow = workflow_from_manifest({**body, "spec": {**body["spec"], "primitives": entries}})
    state = live.snapshot()
    validate(workflow, state.spec.nodes)  # Unschedulable when a primitive can ever run on no node
    raw = {entry["name"]: entry for entry in entries}
    constraints = {name: NodeConstraints.of_pod({"spec": scheduling_fields(entry)}) for name, entry in raw.items()}
    for primitive in workflow.primitives:
        allowed = live.allowed(constraints[primitive.name])
        if not any(ok and feasible(primitive, node) for ok, node in zip(allowed, state.spec.nodes, strict=True)):
            raise WorkflowValidationError(
                "Unschedulable",
                primitive.name,
                f"workflow {workflow.name!r}: primitive {primitive.name!r} ({primitive.kind.value}) can run on no "
                "node its nodeSelector, node affinity and tolerations admit (a node tainted NoSchedule/NoExecute "
                "needs a toleration)",
            )
    declared = workflow.by_name()
    template = template_key(workflow)
    ratios = live.work_ratios(template)
    workflow.primitives = [with_work_scaled(p, ratios.get(p.name, 1.0)) for p in workflow.primitives]
    estimates = workflow_estimates(workflow, state)  # the simulator engine's own per-workflow preparation
    return WorkflowPlan(
        body["metadata"]["uid"],
        workflow,
        raw,
        constraints,
        {name: RetryStrategy.of(entry) for name, entry in raw.items()},
        estimates.downstream_seconds(workflow),
        estimates.lower_bound_seconds,
        {p.name: estimates.mean[i] for i, p in enumerate(workflow.primitives)},
        template,
        declared,
    )
