"""Workflow DAGs of primitives, and their validation.

The same validator guards the simulator's generators, ``--workload`` files and the operator's
WorkflowDAG resources, so a bad DAG gets one clear error naming the offending primitive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .primitives import DEFAULT_REQUESTS, DEFAULT_WORK_SECONDS, PrimitiveKind

if TYPE_CHECKING:
    from .cluster import NodeSpec


class WorkflowValidationError(ValueError):
    """A workflow DAG that cannot run; ``primitive`` names the offender, ``reason`` is machine-readable."""

    def __init__(self, reason: str, primitive: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.primitive = primitive


@dataclass
class Primitive:
    """One step of a workflow, run as one pod."""

    name: str
    kind: PrimitiveKind
    depends_on: list[str] = field(default_factory=list)
    cpu_millicores: int = -1
    memory_bytes: int = -1
    gpus: int = -1
    input_tokens: int = 0
    output_tokens: int = 0
    work_seconds: float = -1.0  # reference-node seconds for non-token kinds
    output_megabytes: float = 0.1  # data each child pulls from this primitive
    retries: int = 0

    def __post_init__(self) -> None:
        self.kind = PrimitiveKind(self.kind)
        cpu, memory, gpus = DEFAULT_REQUESTS[self.kind]
        if self.cpu_millicores < 0:
            self.cpu_millicores = cpu
        if self.memory_bytes < 0:
            self.memory_bytes = memory
        if self.gpus < 0:
            self.gpus = gpus
        if self.work_seconds < 0:
            self.work_seconds = DEFAULT_WORK_SECONDS.get(self.kind, 0.0)


@dataclass
class Workflow:
    """A DAG of primitives; ``primitives`` is kept in a topological order after ``validate``."""

    name: str
    primitives: list[Primitive]
    arrival_time: float = 0.0
    shape: str = "custom"

    def children(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {p.name: [] for p in self.primitives}
        for p in self.primitives:
            for parent in p.depends_on:
                result[parent].append(p.name)
        return result

    def by_name(self) -> dict[str, Primitive]:
        return {p.name: p for p in self.primitives}


def validate(workflow: Workflow, cluster_nodes: Sequence[NodeSpec] | None = None) -> Workflow:
    """Check names, dependencies, acyclicity and (given nodes) that every primitive can ever run on some node
    (``node_model.feasible``: its kind runs there and its requests fit the allocatable).

    Returns the workflow with its primitives sorted topologically (stable w.r.t. the input order).
    """
    if not workflow.primitives:
        raise WorkflowValidationError("Empty", "", f"workflow {workflow.name!r} has no primitives")
    names: set[str] = set()
    for p in workflow.primitives:
        if p.name in names:
            raise WorkflowValidationError(
                "DuplicateName", p.name, f"workflow {workflow.name!r}: duplicate primitive name {p.name!r}"
            )
        names.add(p.name)
    for p in workflow.primitives:
        for parent in p.depends_on:
            if parent not in names:
                raise WorkflowValidationError(
                    "UnknownDependency", p.name,
                    f"workflow {workflow.name!r}: primitive {p.name!r} depends on unknown primitive {parent!r}",
                )
            if parent == p.name:
                raise WorkflowValidationError(
                    "Cycle", p.name, f"workflow {workflow.name!r}: primitive {p.name!r} depends on itself"
                )
    ordered = _topological_order(workflow)
    if cluster_nodes is not None:
        from .node_model import feasible  # here, not at the top: node_model imports this module

        for p in workflow.primitives:
            if not any(feasible(p, node) for node in cluster_nodes):
                raise WorkflowValidationError(
                    "Unschedulable", p.name,
                    f"workflow {workflow.name!r}: primitive {p.name!r} ({p.kind.value}) requests "
                    f"cpu={p.cpu_millicores}m memory={p.memory_bytes} gpu={p.gpus}, and no node of the cluster can "
                    f"ever run it (none of a class that runs {p.kind.value} has that much allocatable)",
                )
    workflow.primitives = ordered
    return workflow


def _topological_order(workflow: Workflow) -> list[Primitive]:
    by_name = workflow.by_name()
    indegree = {p.name: len(set(p.depends_on)) for p in workflow.primitives}
    children = workflow.children()
    ready = [p.name for p in workflow.primitives if indegree[p.name] == 0]
    order: list[Primitive] = []
    while ready:
        name = ready.pop(0)
        order.append(by_name[name])
        for child in dict.fromkeys(children[name]):
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    if len(order) < len(workflow.primitives):
        # Walk up through unfinished parents until a name repeats: that one lies on a cycle
        # (a primitive merely downstream of a cycle is not the one to blame).
        stuck = next(p.name for p in workflow.primitives if indegree[p.name] > 0)
        seen: set[str] = set()
        while stuck not in seen:
            seen.add(stuck)
            stuck = next(parent for parent in by_name[stuck].depends_on if indegree[parent] > 0)
        raise WorkflowValidationError(
            "Cycle", stuck, f"workflow {workflow.name!r}: primitive {stuck!r} is part of a dependency cycle"
        )
    return order
