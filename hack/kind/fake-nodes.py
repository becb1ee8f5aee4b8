"""Prints N KWOK fake Node objects of the simulator's node classes (same mix as `scale-sched cluster up`).

Usage: fake-nodes.py N [SEED] | kubectl apply -f -
"""

from __future__ import annotations

import sys

import yaml
from scale_scheduler.simulator.cluster import heterogeneous


def node_objects(n: int, seed: int) -> list[dict]:
    nodes = []
    for spec in heterogeneous(n, seed=seed).nodes:
        nodes.append({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": spec.name,
                "labels": {**spec.labels, "type": "kwok"},
                # kwok manages only nodes carrying this annotation; the taint keeps real pods off them.
                "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            },
            "spec": {"taints": [{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]},
            "status": {"capacity": spec.allocatable(), "allocatable": spec.allocatable()},
        })
    return nodes


if __name__ == "__main__":
    count = int(sys.argv[1])
    seed = int(sys.argv[2]) if len(sys.argv) > 2 else 0
    print(yaml.safe_dump_all(node_objects(count, seed), sort_keys=False), end="")
