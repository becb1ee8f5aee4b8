"""``--rule node-queues`` on the real local control plane (16 simulated nodes): the policy plans pods for busy
nodes, they wait in those nodes' queues and are bound there when room frees; no node ever holds more than its
allocatable, and every workflow succeeds."""

from __future__ import annotations

import threading
from typing import Any

from operator_harness import (
    apply,
    events_for,
    get_json,
    install_crd,
    new_namespace,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.objects import pod_requests
from scale_scheduler.simulator.cluster import GPU_RESOURCE, parse_quantity

NODES = 16  # 16 GPUs in all
WORKFLOWS = 5  # each fans out to 4 LLM calls at once: 20 > 16 GPUs, so some are planned for busy nodes
RESOURCES = ("cpu", "memory", GPU_RESOURCE)


def fan_out(name: str) -> dict[str, Any]:
    calls = [
        {"name": f"llm-{i}", "kind": "llm_generate", "inputTokens": 200, "outputTokens": 400, "dependsOn": ["plan"]}
        for i in range(4)
    ]
    return workflow(
        name,
        [
            {"name": "plan", "kind": "llm_generate", "inputTokens": 100, "outputTokens": 100},
            *calls,
            {"name": "merge", "kind": "tool_call", "workSeconds": 2.0, "dependsOn": [call["name"] for call in calls]},
        ],
    )


def overcommitted(info: kwok.ClusterInfo) -> list[str]:
    """Nodes whose bound, unfinished pods request more than the node's allocatable, right now (one listing)."""
    allocatable = {node["metadata"]["name"]: node["status"]["allocatable"] for node in get_json(info, "nodes")["items"]}
    used: dict[str, dict[str, float]] = {name: dict.fromkeys(RESOURCES, 0.0) for name in allocatable}
    for pod in get_json(info, "pods", "-A")["items"]:
        node = (pod.get("spec") or {}).get("nodeName")
        if node in used and (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
            for resource, value in pod_requests(pod).items():
                if resource in RESOURCES:
                    used[node][resource] += value
    return [
        f"{node}: {resource} {used[node][resource]} > {allocatable[node].get(resource, 0)}"
        for node in allocatable
        for resource in RESOURCES
        if used[node][resource] > parse_quantity(allocatable[node].get(resource, "0")) + 1e-9
    ]


def test_node_queues_plans_pods_for_busy_nodes_never_overcommits_and_every_workflow_succeeds(
    local_cluster: Any,
) -> None:
    info = local_cluster(nodes=NODES)
    install_crd(info)
    namespace = new_namespace(info, "node-queues")
    names = [f"fan-{i}" for i in range(WORKFLOWS)]
    violations: list[str] = []
    stop = threading.Event()

    def watch_nodes() -> None:  # the invariant checked all along the run, not only at the end
        while not stop.wait(0.5):
            violations.extend(overcommitted(info))

    with running_operator(
        info.kubeconfig, namespace, policy="heft", time_scale=5.0, extra=("--rule", "node-queues")
    ) as operator:
        assert "under the node-queues placement rule" in operator.log(200)
        watcher = threading.Thread(target=watch_nodes, daemon=True)
        watcher.start()
        try:
            for name in names:
                apply(info, namespace, fan_out(name))
            statuses = [
                wait_for_phase(info, namespace, name, {"Succeeded", "Failed"}, 300, operator)["status"]
                for name in names
            ]
        finally:
            stop.set()
            watcher.join(timeout=30)
    assert not violations, violations[:10]
    for status in statuses:
        assert status["phase"] == "Succeeded", status
        assert status["placementRule"] == "node-queues" and status["done"] == "6/6"
    pods = [pod for name in names for pod in workflow_pods(info, namespace, name)]
    assert len(pods) == 6 * WORKFLOWS, "one pod per primitive: nothing failed, nothing duplicated"
    planned = [
        pod
        for pod in pods
        if any(
            event["reason"] == "FailedScheduling" and "planned for node" in event["message"]
            for event in events_for(info, namespace, pod["metadata"]["name"])
        )
    ]
    assert planned, "no pod waited in a node's queue: the test did not exercise node-queues"
    for pod in planned:  # each waited for the node it was planned for and ran there
        assert pod["spec"]["nodeName"] == pod["metadata"]["annotations"][labels.PLANNED_NODE_ANNOTATION]
