"""WorkflowDAG manifests (the YAML users ``kubectl apply``) to and from simulator workflows.

The operator reads its custom resources with these same functions, so a manifest means the
same thing in ``scale-sched simulate --workload`` and on a real cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from .cluster import GPU_RESOURCE, parse_quantity
from .primitives import KINDS, PrimitiveKind
from .workflow import Primitive, Workflow, WorkflowValidationError

API_VERSION = "agentic.scale.dev/v1alpha1"
KIND = "WorkflowDAG"


def primitive_from_spec(workflow_name: str, raw: dict[str, Any]) -> Primitive:
    name = raw.get("name", "")
    kind = raw.get("kind")
    if kind not in {k.value for k in KINDS}:
        raise WorkflowValidationError(
            "UnknownKind",
            name,
            f"workflow {workflow_name!r}: primitive {name!r} has kind {kind!r}; "
            f"expected one of {', '.join(k.value for k in KINDS)}",
        )
    requests = raw.get("resources") or {}
    try:
        cpu = int(round(parse_quantity(requests["cpu"]) * 1000)) if "cpu" in requests else -1
        memory = int(parse_quantity(requests["memory"])) if "memory" in requests else -1
        gpus = int(parse_quantity(requests[GPU_RESOURCE])) if GPU_RESOURCE in requests else -1
    except ValueError as error:
        raise WorkflowValidationError(
            "BadQuantity", name, f"workflow {workflow_name!r}: primitive {name!r}: {error}"
        ) from None
    return Primitive(
        name=name,
        kind=PrimitiveKind(kind),
        depends_on=list(raw.get("dependsOn") or []),
        cpu_millicores=cpu,
        memory_bytes=memory,
        gpus=gpus,
        input_tokens=int(raw.get("inputTokens", 0)),
        output_tokens=int(raw.get("outputTokens", 0)),
        work_seconds=float(raw.get("workSeconds", -1.0)),
        output_megabytes=float(raw.get("outputMegabytes", 0.1)),
        retries=int(raw.get("retries", 0)),
    )


def workflow_from_manifest(doc: dict[str, Any]) -> Workflow:
    """A WorkflowDAG object (dict) to a Workflow; raises WorkflowValidationError on bad content."""
    if doc.get("kind") != KIND:
        raise ValueError(f"expected kind {KIND}, got {doc.get('kind')!r}")
    name = (doc.get("metadata") or {}).get("name", "")
    spec = doc.get("spec") or {}
    primitives = [primitive_from_spec(name, raw) for raw in spec.get("primitives") or []]
    return Workflow(
        name=name,
        primitives=primitives,
        arrival_time=float(spec.get("arrivalTime", 0.0)),
        shape=str(spec.get("shape", "custom")),
        template=str(spec.get("template", "")),
    )


def _quantity_cpu(millicores: int) -> str:
    return f"{millicores // 1000}" if millicores % 1000 == 0 else f"{millicores}m"


def _quantity_memory(size: int) -> str:
    for suffix, unit in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def workflow_to_manifest(
    workflow: Workflow, namespace: str | None = None, include_arrival: bool = False
) -> dict[str, Any]:
    primitives = []
    for p in workflow.primitives:
        entry: dict[str, Any] = {"name": p.name, "kind": p.kind.value}
        if p.depends_on:
            entry["dependsOn"] = list(p.depends_on)
        resources: dict[str, Any] = {"cpu": _quantity_cpu(p.cpu_millicores), "memory": _quantity_memory(p.memory_bytes)}
        if p.gpus:
            resources[GPU_RESOURCE] = p.gpus
        entry["resources"] = resources
        if p.input_tokens:
            entry["inputTokens"] = p.input_tokens
        if p.output_tokens:
            entry["outputTokens"] = p.output_tokens
        if p.kind is not PrimitiveKind.LLM_GENERATE:
            entry["workSeconds"] = round(p.work_seconds, 3)
        entry["outputMegabytes"] = round(p.output_megabytes, 3)
        if p.retries:
            entry["retries"] = p.retries
        primitives.append(entry)
    metadata: dict[str, Any] = {"name": workflow.name}
    if namespace:
        metadata["namespace"] = namespace
    spec: dict[str, Any] = {"shape": workflow.shape, "primitives": primitives}
    if workflow.template:
        spec["template"] = workflow.template
    if include_arrival:
        spec["arrivalTime"] = round(workflow.arrival_time, 3)
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def load_workflow_manifests(path: str | Path) -> list[Workflow]:
    """Every WorkflowDAG document in a YAML file (other kinds are skipped), ordered by arrival."""
    docs: Iterable[Any] = yaml.safe_load_all(Path(path).read_text())
    workflows = [workflow_from_manifest(doc) for doc in docs if isinstance(doc, dict) and doc.get("kind") == KIND]
    if not workflows:
        raise ValueError(f"{path}: no {KIND} documents found")
    return sorted(workflows, key=lambda w: w.arrival_time)
