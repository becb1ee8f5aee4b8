"""Helpers for the operator's cluster tests: CRD, namespaces, kubectl, waits (the operator itself runs through
``scale_scheduler.operator.dev.operator_process``)."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import yaml
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import OperatorProcess
from scale_scheduler.operator.dev.samples import POD_TEMPLATE
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.objects import pod_requests
from scale_scheduler.simulator.cluster import parse_quantity

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD = REPO_ROOT / "charts" / "scale-scheduler" / "crds" / "workflowdags.agentic.scale.dev.yaml"
SAMPLES = sorted((REPO_ROOT / "manifests" / "samples").glob("*.yaml"))
WFD = f"{labels.PLURAL}.{labels.GROUP}"


def install_crd(info: kwok.ClusterInfo) -> None:
    kwok.kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
    kwok.wait_established(info, WFD)


def new_namespace(info: kwok.ClusterInfo, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    kwok.create_namespace(info, name)
    return name


def get_json(info: kwok.ClusterInfo, *args: str) -> dict[str, Any]:
    return json.loads(kwok.kubectl(info, "get", *args, "-o", "json"))


def apply(info: kwok.ClusterInfo, namespace: str, manifest: dict[str, Any] | Path) -> None:
    text = manifest.read_text() if isinstance(manifest, Path) else yaml.safe_dump(manifest)
    kwok.kubectl(info, "-n", namespace, "apply", "-f", "-", stdin=text)


def workflow_pods(info: kwok.ClusterInfo, namespace: str, workflow: str | None = None) -> list[dict[str, Any]]:
    selector = f"{labels.WORKFLOW_LABEL}={workflow}" if workflow else labels.WORKFLOW_LABEL
    return get_json(info, "pods", "-n", namespace, "-l", selector)["items"]


def wait_for(what: str, check: Any, timeout: float, interval: float = 0.5, describe: Any = None) -> Any:
    """Poll ``check()`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            detail = f"\n{describe()}" if describe else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{detail}")
        time.sleep(interval)


def workflow_phase(info: kwok.ClusterInfo, namespace: str, name: str) -> str | None:
    return (get_json(info, WFD, "-n", namespace, name).get("status") or {}).get("phase")


def wait_for_phase(
    info: kwok.ClusterInfo,
    namespace: str,
    name: str,
    phases: set[str],
    timeout: float,
    operator: OperatorProcess | None = None,
) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        workflow = get_json(info, WFD, "-n", namespace, name)
        return workflow if (workflow.get("status") or {}).get("phase") in phases else None

    def describe() -> str:
        status = get_json(info, WFD, "-n", namespace, name).get("status")
        return f"status: {json.dumps(status)[:1500]}" + (f"\noperator log:\n{operator.log()}" if operator else "")

    return wait_for(f"{namespace}/{name} to reach {sorted(phases)}", check, timeout, describe=describe)


def events_for(info: kwok.ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    return get_json(info, "events", "-n", namespace, "--field-selector", f"involvedObject.name={name}")["items"]


def workflow(name: str, primitives: list[dict[str, Any]]) -> dict[str, Any]:
    """A WorkflowDAG manifest whose primitives run the samples' container unless they name their own."""
    return {
        "apiVersion": f"{labels.GROUP}/{labels.VERSION}",
        "kind": labels.KIND,
        "metadata": {"name": name},
        "spec": {"podTemplate": dict(POD_TEMPLATE), "primitives": primitives},
    }


def step(name: str, work_seconds: float = 2.0, depends_on: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """A small tool_call primitive."""
    entry = {"name": name, "kind": "tool_call", "workSeconds": work_seconds, **extra}
    if depends_on:
        entry["dependsOn"] = depends_on
    return entry


def chain(name: str, length: int, work_seconds: float) -> dict[str, Any]:
    """A WorkflowDAG of ``length`` steps one after another."""
    return workflow(name, [step(f"s{i}", work_seconds, [f"s{i - 1}"] if i else None) for i in range(length)])


def overcommitted(info: kwok.ClusterInfo) -> list[str]:
    """Nodes whose bound, unfinished pods (every namespace, being deleted or not) request more of a resource than
    the node has allocatable, each as 'node resource: requested > allocatable'; empty when none is."""
    allocatable = {
        node["metadata"]["name"]: {name: parse_quantity(q) for name, q in node["status"]["allocatable"].items()}
        for node in get_json(info, "nodes")["items"]
    }
    requested: dict[str, dict[str, float]] = {}
    for pod in get_json(info, "pods", "-A")["items"]:
        node = pod["spec"].get("nodeName")
        if not node or pod["status"].get("phase") in ("Succeeded", "Failed"):
            continue
        for name, value in pod_requests(pod).items():
            requested.setdefault(node, {})[name] = requested.get(node, {}).get(name, 0.0) + value
    return [
        f"{node} {name}: {value:g} > {allocatable.get(node, {}).get(name, 0.0):g}"
        for node, amounts in sorted(requested.items())
        for name, value in sorted(amounts.items())
        if node in allocatable and value > allocatable[node].get(name, 0.0) + 1e-9
    ]


def pods_per_attempt(info: kwok.ClusterInfo, namespace: str, name: str) -> Counter[tuple[str, str]]:
    """How many pods exist per (primitive, attempt) of a workflow: 1 each when nothing was duplicated."""
    return Counter(
        (p["metadata"]["labels"][labels.PRIMITIVE_LABEL], p["metadata"]["labels"][labels.ATTEMPT_LABEL])
        for p in workflow_pods(info, namespace, name)
    )
