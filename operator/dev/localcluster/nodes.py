"""Node objects for KWOK from the simulator's ClusterSpec, the single source of truth for both."""

from __future__ import annotations

from typing import Any

from scale_scheduler.operator.kube.labels import KWOK_NODE_KEY, KWOK_TAINT
from scale_scheduler.simulator.cluster import ClusterSpec


def node_objects(spec: ClusterSpec, *, taint: bool = False) -> list[dict[str, Any]]:
    """One Node per spec node: same name, labels and allocatable; ``taint`` for clusters with real nodes."""
    nodes = []
    for node in spec.nodes:
        obj: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": node.name,
                "labels": {**node.labels, "kubernetes.io/hostname": node.name, "type": "kwok"},
                "annotations": {KWOK_NODE_KEY: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": [dict(KWOK_TAINT)]} if taint else {},
            "status": {"capacity": node.allocatable(), "allocatable": node.allocatable()},
        }
        nodes.append(obj)
    return nodes


def node_list(spec: ClusterSpec, *, taint: bool = False) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "List", "items": node_objects(spec, taint=taint)}
