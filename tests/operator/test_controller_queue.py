"""The controller serves waiting pods of all workflows in the engine's queue order, under either placement rule.

An in-memory stand-in for the API server (``FakeApi``) answers the calls a reconcile makes; the live view is fed
by hand, as the watches would feed it. HEFT orders the queue by upward rank: a primitive with work after it (``a1``
of workflow ``a``) goes before one without (``b1`` of workflow ``b``), whichever workflow is reconciled first.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kube_objects import SPEC, FakeApi, live_view, node_object, pod_object
from scale_scheduler.operator.core.controller import WorkflowController
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.schedulers import HeftScheduler

NAMESPACE = "ns"
GPU_NODE = "gpu-large-000"  # 4 GPUs
ROOM_NODE = "cpu-large-003"


def _workflow(name: str, primitives: list[dict[str, Any]]) -> dict[str, Any]:
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
        "spec": {"podTemplate": {"image": "busybox:1.36"}, "primitives": primitives},
    }


def _two_workflows(kind: str) -> list[dict[str, Any]]:
    """``a``: a1 then a2 (a1 has work after it); ``b``: b1 alone. One ``kind`` primitive each goes first."""
    first = {"kind": kind, **({"outputTokens": 100} if kind == "llm_generate" else {"workSeconds": 2.0})}
    return [
        _workflow("a", [{"name": "a1", **first}, {"name": "a2", "kind": "tool_call", "dependsOn": ["a1"]}]),
        _workflow("b", [{"name": "b1", **first}]),
    ]


def _controller(api: FakeApi, live: LiveCluster) -> WorkflowController:
    controller = WorkflowController(
        api,
        live,
        HeftScheduler(),
        "heft",
        time_scale=1.0,  # type: ignore[arg-type]
        post_event=api.post_event,
    )
    for node in SPEC.nodes:
        controller.on_node_event("ADDED", node_object(node.name))
    return controller


async def _settle(controller: WorkflowController) -> None:
    """Run every reconcile the controller triggered (and the ones those trigger) to the end."""
    while controller.reconciles.tasks:
        await asyncio.gather(*list(controller.reconciles.tasks))


def _hog(node: str, cpu: str, gpus: int = 0, name: str | None = None) -> dict[str, Any]:
    return pod_object(name or f"hog-{node}", node=node, phase="Running", cpu=cpu, memory="1Gi", gpus=gpus)


def test_late_binding_a_pod_yields_to_another_workflows_pod_ahead_of_it_with_room_on_its_node() -> None:
    async def scenario() -> FakeApi:
        api = FakeApi(_two_workflows("tool_call"))
        live = live_view(PlacementRule.LATE_BINDING)
        controller = _controller(api, live)
        for node in SPEC.nodes:  # every node full
            controller.on_pod_event(None, _hog(node.name, f"{node.cpu_millicores}m"))
        await controller.reconcile(NAMESPACE, "a")
        await controller.reconcile(NAMESPACE, "b")
        await _settle(controller)
        assert set(api.unschedulable) == {"a-a1-0", "b-b1-0"}, "no room anywhere: both wait, unplanned"
        assert len(controller.queue) == 2
        # room for one tool call frees on one node; b is reconciled first, yet a1 is ahead in the queue
        controller.on_pod_event("MODIFIED", _hog(ROOM_NODE, f"{64000 - 300}m"))
        await controller.reconcile(NAMESPACE, "b")
        await _settle(controller)
        return api

    api = asyncio.run(scenario())
    assert api.pods["a-a1-0"]["spec"].get("nodeName") == ROOM_NODE
    assert not api.pods["b-b1-0"]["spec"].get("nodeName"), "b1 took the room a1 was ahead for"


def test_node_queues_pods_wait_on_their_planned_node_head_first_and_bind_there_when_room_frees() -> None:
    async def scenario() -> None:
        api = FakeApi(_two_workflows("llm_generate"))
        live = live_view(PlacementRule.NODE_QUEUES)
        controller = _controller(api, live)
        for node in ("gpu-small-001", "gpu-small-002"):  # one GPU node in the view: every LLM call plans on it
            controller.on_node_event("MODIFIED", node_object(node, unschedulable=True))
        controller.on_pod_event(None, _hog(GPU_NODE, "1", gpus=1, name="hog-1"))
        controller.on_pod_event(None, _hog(GPU_NODE, "1", gpus=3, name="hog-3"))
        await controller.reconcile(NAMESPACE, "b")
        await controller.reconcile(NAMESPACE, "a")
        await _settle(controller)
        for pod in ("a-a1-0", "b-b1-0"):
            annotations = api.pods[pod]["metadata"]["annotations"]
            assert annotations[labels.PLANNED_NODE_ANNOTATION] == GPU_NODE and not api.pods[pod]["spec"].get("nodeName")
            assert labels.DURATION_ANNOTATION not in annotations, "the run time is drawn when it starts"
            assert "planned for node gpu-large-000" in api.unschedulable[pod]
        state = live.snapshot()
        assert state.queue_length[state.index_of(GPU_NODE)] == 2, "the view counts them in the node's queue"

        # another GPU node appears with room: planned pods keep their reservation (the engine does not move them)
        controller.on_node_event("MODIFIED", node_object("gpu-small-001"))
        await controller.reconcile(NAMESPACE, "b")
        assert not api.pods["b-b1-0"]["spec"].get("nodeName")

        # one GPU frees on the planned node: the head (a1, upward rank) starts there, b1 behind it waits
        controller.on_pod_event("DELETED", _hog(GPU_NODE, "1", gpus=1, name="hog-1"))
        await _settle(controller)
        assert api.pods["a-a1-0"]["spec"].get("nodeName") == GPU_NODE
        assert labels.DURATION_ANNOTATION in api.pods["a-a1-0"]["metadata"]["annotations"]
        assert not api.pods["b-b1-0"]["spec"].get("nodeName")
        live.apply_pod_event("MODIFIED", {**api.pods["a-a1-0"], "status": {"phase": "Running"}})

        # the rest frees: b1 starts on its planned node
        controller.on_pod_event("DELETED", _hog(GPU_NODE, "1", gpus=3, name="hog-3"))
        await _settle(controller)
        assert api.pods["b-b1-0"]["spec"].get("nodeName") == GPU_NODE
        assert len(controller.queue) == 0

    asyncio.run(scenario())


def test_room_freed_on_a_node_wakes_only_the_workflows_whose_waiting_pods_it_can_take_head_first() -> None:
    """A finished pod's room goes to the queue's head: waking every workflow with a waiting pod on every finished
    pod made binding collapse once hundreds of workflows were in flight."""

    async def scenario() -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
        names = ["a", "b", "c"]
        api = FakeApi([_workflow(name, [{"name": f"{name}1", "kind": "tool_call"}]) for name in names])
        live = live_view(PlacementRule.LATE_BINDING)
        controller = _controller(api, live)
        for node in SPEC.nodes:
            controller.on_pod_event(None, _hog(node.name, f"{node.cpu_millicores}m"))
        controller.on_pod_event(None, _hog(ROOM_NODE, "63700m"))  # the node's room is one small pod's ...
        small = _hog(ROOM_NODE, "300m", name="small")
        controller.on_pod_event(None, small)
        for name in names:
            await controller.reconcile(NAMESPACE, name)
        await _settle(controller)
        assert len(controller.queue) == 3, "no room anywhere: all three wait"
        controller.on_pod_event("MODIFIED", {**small, "status": {"phase": "Succeeded"}})  # ... and it finishes
        one = set(controller.reconciles.pending)
        await _settle(controller)
        controller.on_pod_event("DELETED", {**small, "status": {"phase": "Succeeded"}})  # room already taken
        return one, set(controller.reconciles.pending)

    one, none = asyncio.run(scenario())
    assert one == {(NAMESPACE, "a")}, "300m fit one tool call: the head of the queue's (first come)"
    assert none == set()


@pytest.mark.parametrize(
    ("primitive", "idle"),
    [
        ({}, True),  # bound and running: only its pod's events move it
        ({"pendingTimeoutSeconds": 60}, False),  # a timeout only the clock brings
        ({"activeDeadlineSeconds": 60}, False),
        ({"resources": {"cpu": "63"}}, True),  # no room for it anywhere: it waits in the queue, woken when room frees
    ],
)
def test_a_workflow_waiting_on_nothing_the_clock_decides_is_resynced_at_the_idle_period(
    primitive: dict[str, Any], idle: bool
) -> None:
    async def scenario() -> bool:
        api = FakeApi([_workflow("a", [{"name": "a1", "kind": "tool_call", **primitive}])])
        live = live_view(PlacementRule.LATE_BINDING)
        controller = _controller(api, live)
        for node in SPEC.nodes:  # 2 cpu free on each node
            controller.on_pod_event(None, _hog(node.name, f"{node.cpu_millicores - 2000}m"))
        await controller.reconcile(NAMESPACE, "a")
        await _settle(controller)
        return ("ns", "a") in controller._idle

    assert asyncio.run(scenario()) is idle


def test_a_pod_placed_at_once_is_created_on_its_node_and_one_that_waited_is_bound() -> None:
    async def scenario() -> FakeApi:
        api = FakeApi(_two_workflows("tool_call"))
        live = live_view(PlacementRule.LATE_BINDING)
        controller = _controller(api, live)
        await controller.reconcile(NAMESPACE, "b")  # room everywhere: b1 is placed at once
        for node in SPEC.nodes:  # then every node is full
            controller.on_pod_event(None, _hog(node.name, f"{node.cpu_millicores}m"))
        await controller.reconcile(NAMESPACE, "a")
        assert not api.pods["a-a1-0"]["spec"].get("nodeName"), "no room: a1 waits, created unbound"
        controller.on_pod_event("DELETED", _hog(ROOM_NODE, "64000m"))
        await _settle(controller)
        return api

    api = asyncio.run(scenario())
    assert api.pods["b-b1-0"]["spec"]["nodeName"] and api.pods["a-a1-0"]["spec"]["nodeName"] == ROOM_NODE
    assert api.bound == ["a-a1-0"], "b1 was created on its node: no Binding"


def test_a_node_made_schedulable_wakes_the_workflows_whose_waiting_pods_it_can_take() -> None:
    async def scenario() -> set[tuple[str, str]]:
        api = FakeApi(_two_workflows("tool_call"))
        controller = _controller(api, live_view(PlacementRule.LATE_BINDING))
        for node in SPEC.nodes:  # every node full but one, which is cordoned
            if node.name != ROOM_NODE:
                controller.on_pod_event(None, _hog(node.name, f"{node.cpu_millicores}m"))
        controller.on_node_event("MODIFIED", node_object(ROOM_NODE, unschedulable=True))
        await controller.reconcile(NAMESPACE, "b")
        await _settle(controller)
        assert not api.pods["b-b1-0"]["spec"].get("nodeName")
        controller.on_node_event("MODIFIED", node_object(ROOM_NODE, unschedulable=True))  # no change: no wake
        assert not controller.reconciles.pending
        controller.on_node_event("MODIFIED", node_object(ROOM_NODE))  # uncordoned
        return set(controller.reconciles.pending)

    assert asyncio.run(scenario()) == {(NAMESPACE, "b")}
