"""The WorkflowDAG controller: orchestration only. Watch events in, reconciles out, one workflow at a time.

A reconcile reads the workflow and its pods, moves pods whose node vanished, ends pods past their deadline or
pending timeout, places every waiting pod (``placer``: the engine's rule and queue order,
``operator/core/binding.py``) unless the workflow is suspended, carries the placements out (``binder``), writes
the status (``status_writer``) and collects pods by ``spec.podGC`` (``cleanup``). ``spec.shutdown`` and
``spec.activeDeadlineSeconds`` end the workflow instead; a finished one is deleted after its TTL. Each reconcile
re-derives the workflow's progress from its pods and its recorded status, so an operator killed at any moment and
restarted ends in the same state without duplicate pods: pod names are deterministic per (workflow, primitive,
attempt) and a 409 on create or bind means "already done".

No finalizer: pods carry ownerReferences to their WorkflowDAG, and the garbage collector removes them
when it is deleted, so ``kubectl delete`` never waits for the operator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from scale_scheduler.operator.core.binder import Binder
from scale_scheduler.operator.core.binding import BindingQueue
from scale_scheduler.operator.core.events import EventPoster, PostEvent
from scale_scheduler.operator.core.lifecycle import Lifecycle
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.outputs import OutputPublisher, handed_on
from scale_scheduler.operator.core.placer import Placer, waiting_pods
from scale_scheduler.operator.core.plan import WorkflowPlan, plan_workflow
from scale_scheduler.operator.core.progress import WorkflowProgress, pod_trouble, workflow_progress
from scale_scheduler.operator.core.reconcile_queue import Key, ReconcileQueue
from scale_scheduler.operator.core.status_writer import StatusWriter
from scale_scheduler.operator.core.workflow_pods import label_value
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi, owned_by
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.workflow import WorkflowValidationError

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
# How often an unfinished workflow is re-examined without any event (a pod waiting for room, a lost event).
# Only one that has not been reconciled for that long is: a busy workflow's own pod events already bring it
# back, and at 2 s apiece the timers of a few dozen workflows were a third of all reconciles, each a GET and
# a LIST on an API server the DAG steps were waiting for.
RESYNC_SECONDS = 2.0
# How often a workflow that waits on nothing the clock decides (no pod waiting out an API refusal, no deadline,
# no retry backoff: only pod and node events move it, a pod waiting for room included) is re-examined anyway,
# for an event a watch gap lost. At the resync period, 500 workflows in flight would ask for up to 250
# reconciles a second (a GET and a LIST each, and a decision per waiting pod): in bench/soak.py that was more
# requests than the API server answered in all, and with ~700 pods waiting the event loop spent 3/4 of its time
# re-deciding them.
IDLE_RESYNC_SECONDS = 30.0
# How often the live view is checked against a fresh listing of nodes and unfinished pods, for deletions a
# watch gap hid (LiveCluster.forget_absent): a bound on how long such a pod can hold room it no longer takes.
SWEEP_SECONDS = 30.0


class WorkflowController:
    """Reconciles WorkflowDAGs; one reconcile at a time per workflow, bursts of pod events coalesced."""

    def __init__(
        self,
        api: KubeApi,
        live: LiveCluster,
        scheduler: Scheduler,
        policy: str,
        time_scale: float,
        namespaces: tuple[str, ...] = (),
        fallback_warning: str | None = None,
        post_event: PostEvent | None = None,
    ) -> None:
        self.api, self.live, self.namespaces = api, live, namespaces  # no namespaces: every namespace
        post_event = post_event or EventPoster(api).post
        self.fallback_warning, self.post_event = fallback_warning, post_event
        self.reconciles = ReconcileQueue(self._reconcile_key)
        # every workflow's pods waiting for a node, in the engine's queue order (placement.queue_key)
        self.queue = BindingQueue(scheduler.priority)
        self.placer = Placer(live, scheduler, self.queue, self.reconciles, policy, time_scale)
        self.binder = Binder(api, live, policy, post_event)
        self.status = StatusWriter(api, post_event, policy, live.rule.value, time_scale)
        self.lifecycle = Lifecycle(api, live, self.queue)
        self.outputs = OutputPublisher(api)
        self._plans: dict[Key, WorkflowPlan] = {}  # by (namespace, name); checked against the uid
        self._warned: set[Key] = set()  # workflows told about the policy fallback
        self._idle: set[Key] = set()  # workflows that wait on nothing the clock decides (IDLE_RESYNC_SECONDS)
        self._unfinished: set[Key] = set()  # workflows seen and not finished: what the resync loop looks at

    # -- inputs ------------------------------------------------------------------------------------
    async def prime(self) -> None:
        """Fill the live view from a listing before any handler runs, so the first decisions see the cluster."""
        for node in await self.api.list_all("nodes"):
            self.on_node_event(None, node)
        # The pods the watch will keep up to date (kopf watches pods of the operator's namespaces) ...
        for namespace in self.namespaces or (None,):
            for pod in await self.api.list_all("pods", namespace):
                self.live.apply_pod_event(None, pod)
        # ... and, for a namespaced operator, the other namespaces' pods, which take room on the same nodes.
        if self.namespaces:
            await self._list_other_namespaces()
            # kopf watches pods only in the namespaces it serves; a second, cluster-wide watch would double the
            # operator's watch traffic for pods it only needs to count, so a namespaced operator relists them every
            # resync period and may miss, for up to one period, a pod another scheduler has just bound.
            relist = self._every(RESYNC_SECONDS, self._list_other_namespaces, "list the pods of other namespaces")
            self.reconciles.spawn(relist)
        self.reconciles.spawn(self._every(SWEEP_SECONDS, self.sweep, "list nodes and pods to check the live view"))
        self.reconciles.spawn(self._every(RESYNC_SECONDS, self._resync_unfinished, "resync the workflows"))

    async def _resync_unfinished(self) -> None:
        # One loop for every workflow, not a kopf timer each: with ~1000 in flight, kopf's per-object timer
        # machinery (a task and its handler's kwargs per object every period) was a third of the event loop.
        for key in list(self._unfinished):
            self.resync(*key)

    async def _list_other_namespaces(self) -> None:
        outside = await self.api.list_unfinished_pods_outside(self.namespaces)
        self.live.replace_pods_outside(self.namespaces, outside)

    async def sweep(self) -> None:
        """Forget the nodes and pods deleted while a watch was down (LiveCluster.forget_absent)."""
        known = self.live.known()
        nodes, pods = await asyncio.gather(self.api.list_all("nodes"), self.api.list_unfinished_pods_outside(()))
        gone_pods, gone_nodes = self.live.forget_absent(known, pods, nodes)
        if gone_pods or gone_nodes:
            log.warning(
                "the live view held %d pod(s) and %d node(s) deleted unseen (a watch gap); forgotten",
                gone_pods,
                gone_nodes,
            )

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Awaitable[None]], what: str) -> None:
        """``action`` every ``seconds`` for as long as the operator runs."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await action()
            except Exception as error:  # the loop must outlive an API outage; the next period retries
                log.warning("cannot %s: %s", what, error)

    def on_node_event(self, event_type: str | None, node: dict[str, Any]) -> None:
        changed = self.live.apply_node_event(event_type, node)
        if event_type == "DELETED":  # pods on it must move: look at every active workflow
            for key, phase in list(self.status.phases.items()):
                if phase not in TERMINAL:
                    self.reconciles.trigger(key)
        elif changed:  # added, uncordoned, relabelled, resized: it may have room for waiting pods now
            self._offer_room((node.get("metadata") or {}).get("name", ""))

    def on_pod_event(self, event_type: str | None, pod: dict[str, Any]) -> None:
        self.live.apply_pod_event(event_type, pod)
        meta = pod["metadata"]
        if event_type == "DELETED":
            self.queue.discard((meta.get("namespace", ""), meta.get("name", "")))
            self.binder.forget_pod(meta.get("uid", ""))
        if event_type == "DELETED" or (pod.get("status") or {}).get("phase") in TERMINAL:
            # room is freed where it ran; a planned pod deleted before it started moves that node's queue up
            annotations = meta.get("annotations") or {}
            self._offer_room(
                (pod.get("spec") or {}).get("nodeName") or annotations.get(labels.PLANNED_NODE_ANNOTATION, "")
            )
        value = (meta.get("labels") or {}).get(labels.WORKFLOW_LABEL)
        owner = next((ref["name"] for ref in meta.get("ownerReferences") or [] if ref.get("kind") == labels.KIND), None)
        if not (value and owner and meta.get("namespace")):
            return
        key = (meta["namespace"], owner)
        # A live Pending pod's events are the echo of our own create and bind, which the reconcile that made
        # them has already accounted for: reconciling on them doubled the API calls per DAG step. One whose
        # container is stuck (ImagePullBackOff ...) is news for the status.
        echo = (
            event_type in ("ADDED", "MODIFIED")
            and not meta.get("deletionTimestamp")
            and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
            and pod_trouble(pod) is None
        )
        # A deleted pod matters to a workflow that runs; one of a finished or deleted workflow (its podGC, the
        # garbage collector after it) would only cost a reconcile per pod to find that out.
        unconcerned = event_type == "DELETED" and self.status.phases.get(key) in (None, *TERMINAL)
        if not (echo or unconcerned):
            self.reconciles.trigger(key)

    def on_workflow_deleted(self, namespace: str, name: str) -> None:
        """A WorkflowDAG is gone: drop what is kept for it now, not at the next reconcile that finds it missing
        (its pods' deletions no longer bring one). A reconcile of it under way may still record something: one
        more after it finds the workflow missing and drops that too."""
        key = (namespace, name)
        self._forget(key)
        if self.reconciles.busy(key):
            self.reconciles.trigger(key)

    def _offer_room(self, node: str) -> None:
        """Room on ``node`` freed or appeared (a pod finished or went, the node changed): reconcile the workflows
        whose waiting pods it can take, head of the queue first (the engine's dispatch when a primitive
        finishes). Waking every workflow with a waiting pod instead cost each finished pod a reconcile (a GET and
        a LIST) of every one of them, hundreds once hundreds of workflows are in flight."""
        if not self.live.has_node(node):
            return
        state = self.live.snapshot()
        index = state.index_of(node)
        if self.live.rule is PlacementRule.NODE_QUEUES:
            woken = self.queue.admitted(index, state)
        else:
            woken = self.queue.fitting(index, state, lambda constraints: bool(self.live.allowed(constraints)[index]))
        for entry in woken:
            self.reconciles.trigger(entry.workflow)

    def resync(self, namespace: str, name: str) -> None:
        """The resync's call (every RESYNC_SECONDS for an unfinished workflow, the TTL timer's for a finished
        one): reconcile a workflow unless an event brought it back within the last half period
        (half, so a quiet workflow is still looked at on every tick, not every other one); one that waits on
        nothing the clock decides, only once per IDLE_RESYNC_SECONDS."""
        key = (namespace, name)
        if self.reconciles.quiet_for(key, IDLE_RESYNC_SECONDS if key in self._idle else RESYNC_SECONDS / 2):
            self.reconciles.trigger(key)

    async def reconcile(self, namespace: str, name: str) -> None:
        """Reconcile now (kopf's create and resume handlers), after any reconcile of it in progress."""
        await self.reconciles.run((namespace, name))

    # -- the reconcile -----------------------------------------------------------------------------
    async def _reconcile_key(self, key: Key) -> bool:
        self._unfinished.add(key)  # until it is found finished or gone: a reconcile that fails is looked at again
        # The workflow and its pods in one round trip, not two: each serial API call is paid on every DAG step
        # (parent Succeeded -> child created), which at --time-scale 10 is ten times as long in simulated seconds.
        # Both reads are issued after this process's previous writes have completed (one reconcile per key at a
        # time), so each sees them; the pods are filtered by owner once the uid is known.
        body, labelled = await asyncio.gather(
            self.api.get_workflow(*key), self.api.list_workflow_pods(key[0], label_value(key[1]))
        )
        if body is None:
            self._forget(key)
            return False
        await self._reconcile(key, body, owned_by(labelled, body["metadata"]["uid"]))
        return True

    def _forget(self, key: Key) -> None:
        self.status.forget(key)
        self.binder.forget_workflow(key)
        self.queue.forget(key)
        self._plans.pop(key, None)
        self._warned.discard(key)
        self._idle.discard(key)
        self._unfinished.discard(key)
        self.reconciles.forget(key)
        self.outputs.forget(key)

    async def _reconcile(self, key: Key, body: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        self._idle.discard(key)  # until this reconcile has seen it through: one that fails is retried at RESYNC
        status = body.get("status") or {}
        if status.get("phase") in TERMINAL:
            self._unfinished.discard(key)
            self.queue.forget(key)
            self.status.set_phase(key, status["phase"])
            await self.lifecycle.clean_up(key, body, status["phase"], pods)
            return
        if self.fallback_warning and key not in self._warned:
            self._warned.add(key)
            self.post_event(body, labels.KIND, "PolicyFallback", self.fallback_warning, True)
        plan = self._plans.get(key)
        if plan is None or plan.uid != body["metadata"]["uid"]:  # deleted and created again under the same name
            try:
                plan = plan_workflow(body, self.live)
            except WorkflowValidationError as error:
                await self.status.reject(body, error)
                return
            except LookupError as error:
                log.info("WorkflowDAG %s/%s waits: %s", *key, error)
                return
            self._plans[key] = plan
        spec = body.get("spec") or {}
        progress = workflow_progress(plan.workflow, pods, status.get("primitives"), plan.strategies)
        ending = self.lifecycle.ending(body)  # past spec.activeDeadlineSeconds, or spec.shutdown
        ended_by = await self.lifecycle.shut_down(key, progress, *ending) if ending else None
        if ending is None and spec.get("suspend"):
            self.queue.forget(key)  # it starts nothing: no other workflow's pod should yield to one of its pods
        elif ending is None and progress.exhausted is None:
            after = await self._advance(key, body, plan, progress, pods)
            if after is None:  # something only a fresh list can tell (an eviction, someone else's binding)
                after = owned_by(await self.api.list_workflow_pods(key[0], label_value(key[1])), plan.uid)
            pods = after
            progress = workflow_progress(plan.workflow, pods, status.get("primitives"), plan.strategies)
        phase = await self.status.write(
            body,
            plan,
            progress,
            problems=self.binder.problems(key),
            ended_by=ended_by,
            suspended=bool(spec.get("suspend")),
        )
        if phase in TERMINAL:
            self._plans.pop(key, None)
            self.queue.forget(key)
            self.binder.forget_workflow(key)
            self._unfinished.discard(key)
        elif not self._waits_on_clock(key, body, plan, progress):
            self._idle.add(key)
        # after the status write: what the collected pods said is recorded there by now
        await self.lifecycle.clean_up(key, body, phase, pods, expire=False)

    def _waits_on_clock(self, key: Key, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress) -> bool:
        """Whether something only time moves may be due before IDLE_RESYNC_SECONDS: a pod waiting out an API
        refusal, a deadline or pending timeout, a retry backoff. A pod waiting for room is not: room freed or
        added on a node wakes the workflows whose pods it can take (``_offer_room``)."""
        if self.binder.problems(key) or (body.get("spec") or {}).get("activeDeadlineSeconds"):
            return True
        return any(
            entry.next_attempt is not None
            or plan.raw[name].get("activeDeadlineSeconds")
            or plan.raw[name].get("pendingTimeoutSeconds")
            for name, entry in progress.primitives.items()
        )

    async def _advance(
        self, key: Key, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress, pods: list[dict[str, Any]]
    ) -> list[dict[str, Any]] | None:
        """Move pods whose node vanished, create pods for ready primitives, bind waiting pods.

        Returns the workflow's pods as they stand afterwards, built from the API's own replies (a second
        list per reconcile was one more serial round trip on every DAG step), or None when only a fresh
        list can tell.
        """
        lost = [
            (entry.live_pod, entry.node)
            for entry in progress.primitives.values()
            if entry.live_pod is not None and entry.node and not self.live.node_exists(entry.node)
        ]
        for pod, node in lost:
            await self.binder.evict(body, pod, node)
        if lost:
            return None  # re-derive progress first: the evicted primitives are ready again
        if await self.lifecycle.end_overdue(plan, progress):
            return None  # re-derive progress: the ended pods count as failed attempts
        # parents' outputs in their ConfigMap before any child's pod exists (its volume mounts them)
        await self.outputs.publish(key, body, handed_on(progress, plan.workflow.primitives))
        # Every pod of the workflow that waits for a node joins the cluster-wide queue (the engine's order,
        # placement.queue_key); SRPT-like priorities read the workflow's work not started yet.
        # a pod whose create or bind the API refused waits out its delay outside the queue (nobody yields to it)
        waiting = {
            pod: entry for pod, entry in waiting_pods(body, plan, progress).items() if not self.binder.holding_off(pod)
        }
        remaining = sum(plan.mean_seconds[name] for name, entry in progress.primitives.items() if not entry.node)
        entries = self.queue.sync(key, [arrival for arrival, _ in waiting.values()], remaining)
        # Decide one after another without yielding (each decision sees the pods assumed and planned before it, and
        # the queue as it stands), then create and bind the pods concurrently: the API round trips are the slow part.
        steps = [
            step
            for entry in entries
            if (step := self.placer.step(body, plan, progress, entry, waiting[entry.pod][1])) is not None
        ]
        placed: list[str] = []
        try:
            results = list(await asyncio.gather(*(self.binder.carry_out(body, step, placed) for step in steps)))
        finally:  # what was bound is told even when another pod's create failed
            self.binder.post_placed(body, placed)
        if any(pod is None for pod in results):
            return None
        fresh = {pod["metadata"]["name"]: pod for pod in results if pod is not None}
        return [fresh.pop(pod["metadata"]["name"], pod) for pod in pods] + list(fresh.values())
