"""The kopf handlers of ``operator run``: WorkflowDAG create/resume/timer/deletion, Node and Pod events, to the
controller."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import kopf
from scale_scheduler.operator.core.controller import RESYNC_SECONDS, TERMINAL, WorkflowController
from scale_scheduler.operator.kube import labels


class WorkflowDiffBase(kopf.AnnotationsDiffBaseStorage):
    """kopf's diff base (the last-handled-configuration annotation) for WorkflowDAGs only.

    kopf builds one, a deep copy of the body, for every watch event of every resource it serves, but only change
    handlers (create, resume, update) read it, and pods and nodes have event handlers only: with several events
    per pod, those copies were a tenth of the operator's loop while it bound pods."""

    def build(self, *, body: kopf.Body, extra_fields: Iterable[kopf.FieldSpec] | None = None) -> kopf.BodyEssence:
        if body.get("kind") != labels.KIND:
            return kopf.BodyEssence()
        return super().build(body=body, extra_fields=extra_fields)

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return super().fetch(body=body) if body.get("kind") == labels.KIND else None


def build_registry(
    controller: WorkflowController, on_startup: Callable[[], Awaitable[None]] | None = None
) -> kopf.OperatorRegistry:
    """kopf handlers bound to ``controller``; ``on_startup`` runs once the live view is primed."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own gets no default login handlers: $KUBECONFIG (set by --kubeconfig), else in-cluster.
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    @kopf.on.startup(registry=registry)
    async def prime(**_: Any) -> None:
        await controller.prime()
        if on_startup is not None:
            await on_startup()

    @kopf.on.create(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    @kopf.on.resume(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    async def start(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None  # WorkflowDAGs are namespaced
        await controller.reconcile(namespace, name)

    # spec.suspend and spec.shutdown are the only fields that may change: act on them at once, not at the resync
    @kopf.on.update(labels.GROUP, labels.VERSION, labels.PLURAL, field="spec", registry=registry)
    async def spec_changed(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None
        await controller.reconcile(namespace, name)

    # An unfinished workflow is re-examined by the controller's own resync loop (WorkflowController.prime).
    # A finished workflow is looked at again only when it has a TTL to honour (and pods its podGC collects then).
    @kopf.timer(
        labels.GROUP,
        labels.VERSION,
        labels.PLURAL,
        interval=RESYNC_SECONDS,
        registry=registry,
        when=lambda spec, status, **_: (
            status.get("phase") in TERMINAL and spec.get("ttlSecondsAfterFinished") is not None
        ),
    )
    async def expire(namespace: str | None, name: str, **_: Any) -> None:
        assert namespace is not None
        controller.resync(namespace, name)

    @kopf.on.event(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    async def workflow_event(event: kopf.RawEvent, **_: Any) -> None:
        if event.get("type") == "DELETED":
            meta = event["object"]["metadata"]
            controller.on_workflow_deleted(meta["namespace"], meta["name"])

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: kopf.RawEvent, **_: Any) -> None:  # async: runs in the loop, not a thread
        controller.on_node_event(event.get("type"), dict(event["object"]))

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_event(event: kopf.RawEvent, **_: Any) -> None:
        controller.on_pod_event(event.get("type"), dict(event["object"]))

    return registry
