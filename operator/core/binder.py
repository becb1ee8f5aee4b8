"""Carrying out a placement ``Step`` on the API server: create the pod (on its node when it is placed at once),
annotate it, bind it or tell why it waits.

kube-scheduler's conventions: a bound pod gets a ``Scheduled`` Event, a waiting one ``PodScheduled=False``
(``Unschedulable``) and one ``FailedScheduling`` Event per pod (not one per reconcile). A create or bind the API
refuses (Pod Security admission, a ResourceQuota, a webhook) is told as the ReplicaSet controller tells it: a
``FailedCreate`` (or ``FailedBinding``) Warning Event on the WorkflowDAG, once per distinct message, and the
primitive's status reason; it is tried again after a doubling delay, not on every resync.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.core import metrics
from scale_scheduler.operator.core.binding import PodKey, WorkflowKey
from scale_scheduler.operator.core.events import MESSAGE_LIMIT, PostEvent
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.placer import Step
from scale_scheduler.operator.core.progress import Trouble
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import BindOutcome, KubeApi, api_message

# A refused create or bind is tried again after this delay, doubled each time up to the cap (the ReplicaSet
# controller's rate-limited requeue, shorter: a quota freed by a finished pod should not wait minutes).
REFUSAL_FIRST_DELAY = 2.0
REFUSAL_MAX_DELAY = 60.0


@dataclass
class Refusal:
    """The API's last refusal of one pod: which primitive, what it said, and when to try again."""

    workflow: WorkflowKey
    primitive: str
    trouble: Trouble
    delay: float
    retry_at: float


class Binder:
    """Creates, annotates and binds the operator's pods, keeping the live view's assumptions in step."""

    def __init__(self, api: KubeApi, live: LiveCluster, policy: str, post_event: PostEvent) -> None:
        self.api, self.live, self.policy, self.post_event = api, live, policy, post_event
        self.told_unschedulable: set[str] = set()  # pod uids with a FailedScheduling posted; dropped with the pod
        self.refusals: dict[PodKey, Refusal] = {}  # pods whose create or bind the API refused, until one succeeds

    def forget_pod(self, uid: str) -> None:
        self.told_unschedulable.discard(uid)

    def forget_workflow(self, workflow: WorkflowKey) -> None:
        for pod in [pod for pod, refusal in self.refusals.items() if refusal.workflow == workflow]:
            del self.refusals[pod]

    def holding_off(self, pod: PodKey) -> bool:
        """Whether ``pod``'s create or bind was refused too recently to try again."""
        refusal = self.refusals.get(pod)
        return refusal is not None and time.monotonic() < refusal.retry_at

    def problems(self, workflow: WorkflowKey) -> dict[str, Trouble]:
        """Per primitive of ``workflow``: the API's standing refusal of its pod."""
        return {r.primitive: r.trouble for r in self.refusals.values() if r.workflow == workflow}

    def _refused(self, body: dict[str, Any], pod: dict[str, Any], reason: str, error: ApiException) -> None:
        """Remember and tell a refusal (the Event only when the API says something new about that pod)."""
        meta = pod["metadata"]
        key, primitive = (meta["namespace"], meta["name"]), meta["labels"].get(labels.PRIMITIVE_LABEL, "?")
        verb = "creating" if reason == "FailedCreate" else "binding"
        message = f"Error {verb}: {api_message(error)}"
        previous = self.refusals.get(key)
        delay = REFUSAL_FIRST_DELAY if previous is None else min(previous.delay * 2, REFUSAL_MAX_DELAY)
        workflow = (body["metadata"]["namespace"], body["metadata"]["name"])
        self.refusals[key] = Refusal(workflow, primitive, Trouble(reason, message), delay, time.monotonic() + delay)
        metrics.BIND_ERRORS.labels(reason="create" if reason == "FailedCreate" else "api").inc()
        if previous is None or previous.trouble.message != message:
            self.post_event(body, labels.KIND, reason, f"primitive {primitive!r}: {message}", True)

    async def carry_out(self, body: dict[str, Any], step: Step, placed: list[str]) -> dict[str, Any] | None:
        """Create the step's pod if it is new, annotate it, then bind it or tell why it waits; a binding is added
        to ``placed`` (the reconcile's ``Placed`` Event, ``post_placed``).

        The pod as it stands afterwards; None when only a fresh list can tell."""
        pod = step.pod
        if step.create:
            # A pod placed at once is created on its node (spec.nodeName, the field a Binding sets): one write
            # and one watch event per pod fewer than a create and a bind; one that waits is bound later.
            manifest = pod if step.node is None else {**pod, "spec": {**pod["spec"], "nodeName": step.node}}
            try:
                pod, created = await self.api.create_pod(manifest)
            except ApiException as error:
                self.live.apply_pod_event("DELETED", step.pod)  # drop the placer's assumption: no such pod
                self._refused(body, step.pod, "FailedCreate", error)
                return None
            self.refusals.pop((pod["metadata"]["namespace"], pod["metadata"]["name"]), None)
            owners = {ref.get("uid") for ref in pod["metadata"].get("ownerReferences") or []}
            if body["metadata"]["uid"] not in owners:
                # a pod of that name left by a deleted WorkflowDAG of the same name: wait for the garbage collector
                self.live.apply_pod_event("DELETED", step.pod)
                self.live.apply_pod_event("MODIFIED", pod)
                return None
            if created and step.node is not None:
                self.live.assume(pod, step.node)  # with its real uid now
                return self._bound(pod, step.node, placed)
            if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                return pod
            if not created and step.annotations:  # a previous incarnation's pod of that name: make it this one
                pod = await self.api.patch_pod_annotations(
                    pod["metadata"]["namespace"], pod["metadata"]["name"], step.annotations
                )
        elif step.annotations:
            pod = await self.api.patch_pod_annotations(
                pod["metadata"]["namespace"], pod["metadata"]["name"], step.annotations
            )
        if step.node is not None:
            return await self.bind(body, pod, step.node, placed)
        uid = pod["metadata"].get("uid", "")
        if step.reason and uid not in self.told_unschedulable:
            self.told_unschedulable.add(uid)
            await self.api.mark_unschedulable(pod["metadata"]["namespace"], pod["metadata"]["name"], step.reason)
            self.post_event(pod, "Pod", "FailedScheduling", step.reason, True)
        return pod

    async def bind(
        self, body: dict[str, Any], pod: dict[str, Any], node: str, placed: list[str]
    ) -> dict[str, Any] | None:
        """Assume the pod on the node (with its real uid) and POST the binding; once bound, its pod gets
        kube-scheduler's ``Scheduled`` Event and ``placed`` a line for the workflow's ``Placed`` Event.

        The pod as bound by us; None when it was not (bound before, to a node only a list can tell, or gone)."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.live.assume(pod, node)
        try:
            outcome = await self.api.bind(namespace, name, node)
        except ApiException as error:
            self.live.apply_pod_event("DELETED", pod)  # drop the assumption; the next watch event re-adds the pod
            self._refused(body, pod, "FailedBinding", error)
            return None
        if outcome == BindOutcome.GONE:
            self.live.apply_pod_event("DELETED", pod)
            return None
        self.refusals.pop((namespace, name), None)
        self.told_unschedulable.discard(pod["metadata"].get("uid", ""))
        if outcome == BindOutcome.BOUND:
            return self._bound({**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}, node, placed)
        return None  # 409: bound before (a previous incarnation), maybe elsewhere

    def _bound(self, pod: dict[str, Any], node: str, placed: list[str]) -> dict[str, Any]:
        """Tell that we gave ``pod`` its node: kube-scheduler's ``Scheduled`` Event and a line in ``placed``."""
        meta = pod["metadata"]
        annotations, pod_labels = meta.get("annotations") or {}, meta["labels"]
        self.post_event(
            pod, "Pod", "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}", False
        )
        placed.append(
            f"{pod_labels.get(labels.PRIMITIVE_LABEL, '?')!r} attempt {pod_labels.get(labels.ATTEMPT_LABEL, '0')}"
            f" -> {node} (run {annotations.get(labels.DURATION_ANNOTATION, '?')}, "
            f"estimated {annotations.get(labels.ESTIMATED_DURATION_ANNOTATION, '?')})"
        )
        return pod

    def post_placed(self, body: dict[str, Any], placed: list[str]) -> None:
        """One ``Placed`` Event on the workflow for the pods one reconcile bound, not one per pod: a fan-out of 30
        primitives is one API write instead of 30 (each pod still gets its ``Scheduled``). Lines that would pass
        the Event's message limit are counted instead; every pod's node is in the workflow's status too."""
        if not placed:
            return
        head = f"{len(placed)} placed by policy {self.policy} (run and estimated seconds, wall clock): "
        shown: list[str] = []
        length = len(head) + len("; and 99999 more")
        for line in placed:
            length += len(line) + len("; ")
            if length > MESSAGE_LIMIT:
                break
            shown.append(line)
        rest = len(placed) - len(shown)
        message = head + "; ".join(shown) + (f"; and {rest} more" if rest else "")
        self.post_event(body, labels.KIND, "Placed", message, False)

    async def evict(self, body: dict[str, Any], pod: dict[str, Any], node: str) -> None:
        """Delete a pod whose node is gone, so that its primitive runs again elsewhere."""
        meta = pod["metadata"]
        await self.api.delete_pod(meta["namespace"], meta["name"])
        self.live.apply_pod_event("DELETED", pod)
        primitive = meta["labels"].get(labels.PRIMITIVE_LABEL, "?")
        self.post_event(
            body,
            labels.KIND,
            "NodeLost",
            f"node {node} is gone: deleted pod {meta['name']} of primitive {primitive!r}; "
            "it runs again elsewhere (this does not use up a retry)",
            True,
        )
