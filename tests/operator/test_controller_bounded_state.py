"""Every structure the controller keeps per workflow or per pod is dropped once that object is gone.

A thousand short workflows go through a controller on an in-memory API (``FakeApi``): created, run, finished
and deleted, as the watches would report them. Afterwards every collection is back to its size before the
first one, so an operator that runs for months holds memory for the workflows that exist, not for all it saw.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kube_objects import SPEC, FakeApi, live_view, node_object
from scale_scheduler.operator.core.controller import WorkflowController
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.schedulers import HeftScheduler

NAMESPACE = "ns"
WORKFLOWS = 1000


def _workflow(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{labels.GROUP}/{labels.VERSION}",
        "kind": labels.KIND,
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "uid": f"uid-{name}",
            "generation": 1,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": {
            "podTemplate": {"image": "busybox:1.36"},
            "primitives": [
                {"name": "plan", "kind": "tool_call", "workSeconds": 1.0},
                {"name": "act", "kind": "code_exec", "workSeconds": 1.0, "dependsOn": ["plan"]},
            ],
        },
    }


def _sizes(controller: WorkflowController) -> dict[str, int]:
    reconciles, live = controller.reconciles, controller.live
    return {
        "plans": len(controller._plans),
        "warned": len(controller._warned),
        "idle": len(controller._idle),
        "unfinished": len(controller._unfinished),
        "phases": len(controller.status.phases),
        "pending": len(reconciles.pending),
        "tasks": len(reconciles.tasks),
        "reconciled_at": len(reconciles.reconciled_at),
        "locks": len(reconciles._locks),
        "after": len(reconciles._after),
        "queue": len(controller.queue),
        "told_unschedulable": len(controller.binder.told_unschedulable),
        "live_pods": len(live._pods),
    }


async def _settle(controller: WorkflowController) -> None:
    while controller.reconciles.tasks:
        await asyncio.gather(*list(controller.reconciles.tasks))


async def _finish_running_pods(api: FakeApi, controller: WorkflowController, workflow: str) -> None:
    for pod in [pod for pod in api.pods.values() if pod["metadata"]["labels"][labels.WORKFLOW_LABEL] == workflow]:
        if pod["spec"].get("nodeName") and pod["status"]["phase"] != "Succeeded":
            pod["status"] = {"phase": "Succeeded", "startTime": "2026-01-01T00:00:01Z"}
            controller.on_pod_event("MODIFIED", pod)
    await _settle(controller)


@pytest.mark.parametrize("rule", list(PlacementRule))
def test_a_thousand_workflows_leave_nothing_behind(rule: PlacementRule) -> None:
    async def scenario() -> tuple[dict[str, int], dict[str, int], int]:
        api = FakeApi([])
        controller = WorkflowController(
            api,
            live_view(rule),
            HeftScheduler(),
            "heft",  # type: ignore[arg-type]
            time_scale=1.0,
            post_event=api.post_event,
            fallback_warning="checkpoint missing",
        )
        for node in SPEC.nodes:
            controller.on_node_event("ADDED", node_object(node.name))
        baseline = _sizes(controller)
        succeeded = 0
        for i in range(WORKFLOWS):
            name = f"wf-{i}"
            api.workflows[(NAMESPACE, name)] = _workflow(name)
            await controller.reconcile(NAMESPACE, name)  # kopf's create handler
            await _finish_running_pods(api, controller, name)  # plan finishes: act starts
            await _finish_running_pods(api, controller, name)  # act finishes: the workflow succeeds
            succeeded += api.workflows[(NAMESPACE, name)]["status"]["phase"] == "Succeeded"
            del api.workflows[(NAMESPACE, name)]  # kubectl delete; the garbage collector removes its pods
            controller.on_workflow_deleted(NAMESPACE, name)
            owned = [n for n, pod in api.pods.items() if pod["metadata"]["labels"][labels.WORKFLOW_LABEL] == name]
            for pod_name in owned:
                controller.on_pod_event("DELETED", api.pods.pop(pod_name))
            await _settle(controller)
        return baseline, _sizes(controller), succeeded

    baseline, after, succeeded = asyncio.run(scenario())
    assert succeeded == WORKFLOWS
    assert after == baseline
