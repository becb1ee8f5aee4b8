"""Which watch events and timer ticks bring a WorkflowDAG back for a reconcile.

No API server is needed: a triggered reconcile is cancelled before it runs, so its KubeApi is never called.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from kubernetes import client
from scale_scheduler.operator.core.controller import IDLE_RESYNC_SECONDS, RESYNC_SECONDS, WorkflowController
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi
from scale_scheduler.policy.registry import make_scheduler

KEY = ("ns", "wf")


def _controller() -> WorkflowController:
    return WorkflowController(
        KubeApi(client.ApiClient()), LiveCluster(), make_scheduler("least-loaded"), "least-loaded", time_scale=1.0
    )


def _pod(phase: str, node: str = "", deleting: bool = False, waiting: str = "") -> dict[str, Any]:
    meta: dict[str, Any] = {
        "name": "wf-a-0",
        "namespace": "ns",
        "uid": "pod-uid",
        "labels": {labels.WORKFLOW_LABEL: "wf", labels.PRIMITIVE_LABEL: "a"},
        "ownerReferences": [{"kind": labels.KIND, "name": "wf", "uid": "wf-uid"}],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    status: dict[str, Any] = {"phase": phase}
    if waiting:
        status["containerStatuses"] = [{"name": "main", "state": {"waiting": {"reason": waiting}}}]
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def _triggered(action: Any, phase: str | None = "Running") -> bool:
    """Whether ``action`` brings KEY back, its phase as this controller last wrote it being ``phase``."""

    async def run() -> bool:
        controller = _controller()
        if phase is not None:
            controller.status.phases[KEY] = phase
        action(controller)
        triggered = KEY in controller.reconciles.pending
        for task in list(controller.reconciles.tasks):
            task.cancel()
        return triggered

    return asyncio.run(run())


@pytest.mark.parametrize(
    ("event_type", "pod", "expected"),
    [
        ("ADDED", _pod("Pending"), False),  # the echo of our own create
        ("MODIFIED", _pod("Pending", node="n1"), False),  # the echo of our own bind
        ("MODIFIED", _pod("Pending", node="n1", waiting="ContainerCreating"), False),  # on its way
        ("MODIFIED", _pod("Pending", node="n1", waiting="ImagePullBackOff"), True),  # stuck: news for the status
        ("MODIFIED", _pod("Running", node="n1"), True),
        ("MODIFIED", _pod("Succeeded", node="n1"), True),
        ("MODIFIED", _pod("Failed", node="n1"), True),
        ("MODIFIED", _pod("Pending", node="n1", deleting=True), True),
        ("DELETED", _pod("Pending"), True),
        (None, _pod("Pending"), True),  # kopf's initial listing
    ],
)
def test_pod_events_trigger_a_reconcile_unless_they_echo_our_own_create_or_bind(
    event_type: str | None, pod: dict[str, Any], expected: bool
) -> None:
    assert _triggered(lambda controller: controller.on_pod_event(event_type, pod)) is expected


@pytest.mark.parametrize(
    ("phase", "expected"), [("Running", True), ("Succeeded", False), ("Failed", False), (None, False)]
)
def test_a_deleted_pod_brings_back_only_a_running_workflow(phase: str | None, expected: bool) -> None:
    """A finished workflow's podGC or a deleted one's garbage collection deletes its pods: no reconcile each."""
    assert _triggered(lambda controller: controller.on_pod_event("DELETED", _pod("Succeeded", node="n1")), phase) is (
        expected
    )


def test_a_deleted_workflow_is_forgotten_at_its_deletion_event() -> None:
    def delete(controller: WorkflowController) -> None:
        controller.reconciles.reconciled_at[KEY] = time.monotonic()
        controller.on_workflow_deleted(*KEY)
        assert KEY not in controller.status.phases and KEY not in controller.reconciles.reconciled_at

    assert not _triggered(delete), "nothing of it under way: no reconcile to find it missing"


def test_resync_skips_a_workflow_just_reconciled_and_looks_at_a_quiet_one() -> None:
    def just_reconciled(controller: WorkflowController) -> None:
        controller.reconciles.reconciled_at[KEY] = time.monotonic()
        controller.resync(*KEY)

    def quiet(controller: WorkflowController) -> None:
        controller.reconciles.reconciled_at[KEY] = time.monotonic() - RESYNC_SECONDS
        controller.resync(*KEY)

    assert not _triggered(just_reconciled)
    assert _triggered(quiet)
    assert _triggered(lambda controller: controller.resync(*KEY))  # never reconciled by this process


def test_resync_looks_at_a_workflow_waiting_on_nothing_the_clock_decides_only_every_idle_period() -> None:
    def idle_for(seconds: float) -> Any:
        def action(controller: WorkflowController) -> None:
            controller._idle.add(KEY)
            controller.reconciles.reconciled_at[KEY] = time.monotonic() - seconds
            controller.resync(*KEY)

        return action

    assert not _triggered(idle_for(RESYNC_SECONDS))
    assert _triggered(idle_for(IDLE_RESYNC_SECONDS))


def test_the_resync_loop_looks_at_the_unfinished_workflows_it_has_seen() -> None:
    async def run() -> tuple[bool, bool]:
        controller = _controller()
        await controller._resync_unfinished()
        before = KEY in controller.reconciles.pending
        controller._unfinished.add(KEY)
        await controller._resync_unfinished()
        after = KEY in controller.reconciles.pending
        for task in list(controller.reconciles.tasks):
            task.cancel()
        return before, after

    assert asyncio.run(run()) == (False, True)
