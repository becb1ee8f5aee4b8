"""Workflow DAGs of primitives, and their validation.

The same validator guards the simulator's generators, ``--workload`` files and the operator's
WorkflowDAG resources, so a bad DAG gets one clear error naming the offending primitive.
"""

from __future__ import annotations

import graphlib
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
    # what the operator keys learned run times of its primitives by (spec.template; operator/core/estimates.py)
    template: str = ""

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
                    "UnknownDependency",
                    p.name,
                    f"workflow {workflow.name!r}: primitive {p.name!r} depends on unknown primitive {parent!r}",
                )
            if parent == p.name:
                raise WorkflowValidationError(
                    "Cycle", p.name, f"workflow {workflow.name!r}: primitive {p.name!r} depends on itself"
                )
    ordered = _topological_order(workflow)
    if cluster_nodes is not None:
        from .node_model import feasible  # here, not at the top: node_model imports this module

        # per (kind, request): a workflow repeats a few (one per kind)
        fits: dict[tuple[PrimitiveKind, int, int, int], bool] = {}
        for p in workflow.primitives:
            request = (p.kind, p.cpu_millicores, p.memory_bytes, p.gpus)
            if (fit := fits.get(request)) is None:
                fit = fits[request] = any(feasible(p, node) for node in cluster_nodes)
            if not fit:
                raise WorkflowValidationError(
                    "Unschedulable",
                    p.name,
                    f"workflow {workflow.name!r}: primitive {p.name!r} ({p.kind.value}) requests "
                    f"cpu={p.cpu_millicores}m memory={p.memory_bytes} gpu={p.gpus}, and no node of the cluster can "
                    f"ever run it (none of a class that runs {p.kind.value} has that much allocatable)",
                )
    workflow.primitives = ordered
    return workflow


def _topological_order(workflow: Workflow) -> list[Primitive]:
    """Kahn's order (graphlib), ties broken by the input order: nodes are added first so that roots come out
    in the order they are listed."""
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for p in workflow.primitives:
        sorter.add(p.name)
    for p in workflow.primitives:
        sorter.add(p.name, *dict.fromkeys(p.depends_on))
    try:
        names = list(sorter.static_order())
    except graphlib.CycleError as error:
        raise _cycle_error(workflow, error.args[1]) from None
    by_name = workflow.by_name()
    return [by_name[name] for name in names]


def _cycle_error(workflow: Workflow, cycle: list[str]) -> WorkflowValidationError:
    """The whole cycle, written in the direction of ``dependsOn`` from its first primitive in the workflow:
    "a → c → b → a" (a depends on c, which depends on b, which depends on a)."""
    members = list(reversed(cycle[:-1]))  # graphlib walks from parent to child
    position = {p.name: i for i, p in enumerate(workflow.primitives)}
    first = min(range(len(members)), key=lambda i: position[members[i]])
    ring = members[first:] + members[:first]
    path = " → ".join([*ring, ring[0]])
    return WorkflowValidationError(
        "Cycle", ring[0], f"workflow {workflow.name!r}: primitive {ring[0]!r} is part of a dependency cycle: {path}"
    )
