"""Node and Pod objects shaped as the API server sends them, for the operator's unit tests.

Imported as a top-level module: pytest puts this folder on sys.path (tests/operator has no __init__.py,
which would make a package named ``operator`` and shadow the standard library's).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import BindOutcome
from scale_scheduler.operator.kube.labels import (
    DURATION_ANNOTATION,
    ESTIMATED_DURATION_ANNOTATION,
    PLANNED_NODE_ANNOTATION,
    PRIMITIVE_KIND_LABEL,
)
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.placement import DEFAULT_RULE, PlacementRule

SPEC = heterogeneous(8, seed=0)


def node_object(
    name: str,
    *,
    ready: str = "True",
    unschedulable: bool = False,
    taints: list[dict[str, str]] | None = None,
    heartbeat: str = "2025-01-01T00:00:00Z",
) -> dict[str, Any]:
    """A Node as the local cluster creates it from the simulator's spec (kwok keeps it Ready)."""
    node = next(n for n in SPEC.nodes if n.name == name)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "uid": f"uid-{name}", "labels": dict(node.labels)},
        "spec": {"unschedulable": unschedulable, **({"taints": taints} if taints else {})},
        "status": {
            "allocatable": node.allocatable(),
            "capacity": node.allocatable(),
            "conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}],
        },
    }


def pod_object(
    name: str,
    *,
    node: str = "",
    phase: str = "Pending",
    cpu: str = "1",
    memory: str = "1Gi",
    gpus: int = 0,
    kind: str | None = None,
    duration: str | None = None,
    estimate: str | None = None,
    start_time: str | None = None,
    uid: str | None = None,
    planned: str | None = None,
) -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": memory, **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    annotations = {
        **({DURATION_ANNOTATION: duration} if duration else {}),
        **({ESTIMATED_DURATION_ANNOTATION: estimate} if estimate else {}),
        **({PLANNED_NODE_ANNOTATION: planned} if planned else {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": "default",
            "uid": uid or f"uid-{name}",
            "labels": {PRIMITIVE_KIND_LABEL: kind} if kind else {},
            "annotations": annotations,
        },
        "spec": {
            "containers": [{"name": "main", "image": "busybox", "resources": {"requests": requests}}],
            **({"nodeName": node} if node else {}),
        },
        "status": {"phase": phase, **({"startTime": start_time} if start_time else {})},
    }


def live_view(rule: PlacementRule = DEFAULT_RULE) -> LiveCluster:
    """A LiveCluster (under ``rule``) that has seen every node of SPEC added."""
    cluster = LiveCluster(rule=rule)
    for node in SPEC.nodes:
        cluster.apply_node_event("ADDED", node_object(node.name))
    return cluster


class FakeApi:
    """The API calls of a reconcile, on dicts in memory: pods are created, annotated and bound as asked."""

    def __init__(self, workflows: list[dict[str, Any]]) -> None:
        self.workflows = {(w["metadata"]["namespace"], w["metadata"]["name"]): w for w in workflows}
        self.pods: dict[str, dict[str, Any]] = {}
        self.unschedulable: dict[str, str] = {}
        self.bound: list[str] = []  # pods given their node by a Binding (not created on it)
        self._uids = itertools.count()

    async def get_workflow(self, namespace: str, name: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.workflows.get((namespace, name)))

    async def list_workflow_pods(self, namespace: str, selector_value: str) -> list[dict[str, Any]]:
        return [
            copy.deepcopy(pod)
            for pod in self.pods.values()
            if pod["metadata"]["labels"][labels.WORKFLOW_LABEL] == selector_value
        ]

    async def create_pod(self, manifest: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        name = manifest["metadata"]["name"]
        if name in self.pods:
            return copy.deepcopy(self.pods[name]), False
        pod = copy.deepcopy(manifest)
        pod["metadata"]["uid"] = f"uid-{next(self._uids)}"
        pod["status"] = {"phase": "Pending"}
        self.pods[name] = pod
        return copy.deepcopy(pod), True

    async def patch_pod_annotations(self, namespace: str, name: str, annotations: dict[str, str]) -> dict[str, Any]:
        self.pods[name]["metadata"]["annotations"].update(annotations)
        return copy.deepcopy(self.pods[name])

    async def bind(self, namespace: str, name: str, node: str) -> str:
        assert not self.pods[name]["spec"].get("nodeName"), f"{name} bound twice"
        self.pods[name]["spec"]["nodeName"] = node
        self.bound.append(name)
        return BindOutcome.BOUND

    async def mark_unschedulable(self, namespace: str, name: str, message: str) -> None:
        self.unschedulable[name] = message

    def post_event(self, obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool) -> None:
        pass  # these tests read pods and status, not Events (tests/operator/test_events_cluster.py posts them)

    async def patch_workflow_status(self, namespace: str, name: str, status: dict[str, Any]) -> None:
        self.workflows[(namespace, name)].setdefault("status", {}).update(status)
