"""The WorkflowDAG controller: validate, create a pod per ready primitive, place it with the policy, bind it.

Placement follows the live view's rule (``--rule``: late-binding or node-queues) exactly as the simulator's
engine does, with the waiting pods of all workflows in one queue in the engine's order (``operator/core/binding.py``).

Only the WorkflowDAG has state-changing kopf handlers (create, resume, a timer); Nodes and Pods are
followed with ``on.event``, which persists nothing, and feed the live cluster view the policy reads.
Every reconcile re-derives the workflow's progress from its pods and its recorded status, so an
operator killed at any moment and restarted ends in the same state without duplicate pods: pod names
are deterministic per (workflow, primitive, attempt) and a 409 on create or bind means "already done".

No finalizer: pods carry ownerReferences to their WorkflowDAG, and the garbage collector removes them
when it is deleted, so ``kubectl delete`` never waits for the operator.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from scale_scheduler.operator.core import metrics
from scale_scheduler.operator.core.binding import Arrival, BindingQueue, PodKey, WaitingPod, WorkflowKey
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.progress import (
    PHASES,
    WorkflowProgress,
    failed_status,
    parse_time,
    status_patch,
    workflow_progress,
    workflow_status,
)
from scale_scheduler.operator.core.workflow_pods import go_duration, label_value, pod_manifest, pod_name, run_seconds
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import BindOutcome, KubeApi, owned_by
from scale_scheduler.simulator.cluster import NodeSpec
from scale_scheduler.simulator.estimates import workflow_estimates
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.manifests import workflow_from_manifest
from scale_scheduler.simulator.node_model import feasible
from scale_scheduler.simulator.placement import PlacementRule, room_now
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.workflow import Primitive, Workflow, WorkflowValidationError, validate

log = logging.getLogger(__name__)

TERMINAL = ("Succeeded", "Failed")
# How often an unfinished workflow is re-examined without any event (a pod waiting for room, a lost event).
# Only one that has not been reconciled for that long is: a busy workflow's own pod events already bring it
# back, and at 2 s apiece the timers of a few dozen workflows were a third of all reconciles, each a GET and
# a LIST on an API server the DAG steps were waiting for.
RESYNC_SECONDS = 2.0
# Events are best effort and posted in the background, but they share the API calls' threads (asyncio's
# default executor, a handful on small machines): a burst of them (two per bound pod) made the next pod's
# create and bind queue behind them. Capped, they can never take more than these threads.
EVENT_POSTS_IN_FLIGHT = 2


@dataclass
class WorkflowPlan:
    """What a WorkflowDAG means, computed once per incarnation (uid): the validated DAG and its estimates."""

    uid: str
    workflow: Workflow
    raw: dict[str, dict[str, Any]]  # spec entry per primitive name (image, command)
    downstream_seconds: dict[str, float]  # per primitive: the longest chain of mean estimated work after it
    lower_bound_seconds: float  # critical path on the fastest feasible nodes (slowdown's denominator)
    mean_seconds: dict[str, float]  # per primitive: the estimate averaged over the nodes that can run it

    @property
    def by_name(self) -> dict[str, Primitive]:
        return self.workflow.by_name()


@dataclass(frozen=True)
class Decision:
    """A node for an attempt, with the simulated seconds the simulator would charge there if it started now."""

    index: int  # in the live view's node order
    node: NodeSpec
    setup: float  # transfer of the parents' outputs plus any cold start
    estimate: float  # setup plus the node model's expected run time


@dataclass(frozen=True)
class Step:
    """What one waiting pod gets from this reconcile, decided before any API call is made."""

    pod: dict[str, Any]  # the pod as it stands, or the manifest of the attempt's pod to create
    create: bool
    annotations: dict[str, str]  # placement annotations to add (already in ``pod`` when it is to be created)
    node: str | None  # bind it there now; None: it waits
    reason: str | None  # why it waits, told once as kube-scheduler tells it; None: nothing to tell (a short wait)


class NoRoom(LookupError):
    """Nodes can run the primitive, but none has its requests free right now."""


def _decision(observation: Observation, index: int) -> Decision:
    setup = float(observation.transfer[index] + observation.cold_start[index])
    return Decision(index, observation.state.spec.nodes[index], setup,
                    setup + float(observation.estimated_duration[index]))


def _annotated(pod: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """``pod`` with ``annotations`` added (a copy; the original is left as the API gave it)."""
    if not annotations:
        return pod
    meta = pod["metadata"]
    return {**pod, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), **annotations}}}


def plan_workflow(body: dict[str, Any], live: LiveCluster) -> WorkflowPlan:
    """Parse and validate a WorkflowDAG against the live cluster; WorkflowValidationError if it cannot run.

    LookupError when the live view has no schedulable node yet (try again later, it is not the DAG's fault).
    """
    workflow = workflow_from_manifest(body)
    state = live.snapshot()
    validate(workflow, state.spec.nodes)
    for primitive in workflow.primitives:
        if not any(feasible(primitive, node) for node in state.spec.nodes):
            raise WorkflowValidationError(
                "Unschedulable", primitive.name,
                f"workflow {workflow.name!r}: primitive {primitive.name!r} ({primitive.kind.value}) can run on no "
                f"node of the cluster (no node of a class that runs {primitive.kind.value} fits its requests)",
            )
    raw = {entry["name"]: entry for entry in body["spec"]["primitives"]}
    estimates = workflow_estimates(workflow, state)  # the simulator engine's own per-workflow preparation
    return WorkflowPlan(body["metadata"]["uid"], workflow, raw, estimates.downstream_seconds(workflow),
                        estimates.lower_bound_seconds,
                        {p.name: estimates.mean[i] for i, p in enumerate(workflow.primitives)})


class WorkflowController:
    """Reconciles WorkflowDAGs; one reconcile at a time per workflow, bursts of pod events coalesced."""

    def __init__(self, api: KubeApi, live: LiveCluster, scheduler: Scheduler, policy: str, time_scale: float,
                 namespace: str | None = None, fallback_warning: str | None = None) -> None:
        self.api, self.live, self.scheduler = api, live, scheduler
        self.namespace = namespace  # None: every namespace
        self.policy, self.time_scale = policy, time_scale
        self.fallback_warning = fallback_warning
        self._plans: dict[tuple[str, str], WorkflowPlan] = {}  # by (namespace, name); checked against the uid
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._pending: set[tuple[str, str]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._phases: dict[tuple[str, str], str] = {}
        self._warned: set[str] = set()  # uids told about the policy fallback
        self._unschedulable_told: set[str] = set()  # pod uids with a FailedScheduling already posted
        self._nodes: set[str] = set()  # every Node that exists (eligible or not)
        # every workflow's pods waiting for a node, in the engine's queue order (placement.queue_key)
        self.queue = BindingQueue(scheduler.priority)
        # workflow -> workflows that yielded to one of its pods: reconciled again once it has been
        self._deferred: dict[WorkflowKey, set[WorkflowKey]] = {}
        self._event_slots = asyncio.Semaphore(EVENT_POSTS_IN_FLIGHT)
        self._reconciled_at: dict[tuple[str, str], float] = {}  # monotonic time of the last complete reconcile

    # -- inputs ------------------------------------------------------------------------------------
    async def prime(self) -> None:
        """Fill the live view from a listing before any handler runs, so the first decisions see the cluster."""
        for node in await self.api.list_all("nodes"):
            self.on_node_event(None, node)
        # The pods the watch will keep up to date (kopf watches pods of the operator's namespaces) ...
        for pod in await self.api.list_all("pods", self.namespace):
            self.live.apply_pod_event(None, pod)
        # ... and, for a namespaced operator, the other namespaces' pods, which take room on the same nodes.
        if self.namespace is not None:
            await self._list_other_namespaces()
            self._spawn(self._follow_other_namespaces())

    async def _list_other_namespaces(self) -> None:
        assert self.namespace is not None
        self.live.replace_pods_outside(self.namespace, await self.api.list_unfinished_pods_outside(self.namespace))

    async def _follow_other_namespaces(self) -> None:
        """Relist the other namespaces' pods every resync period, for as long as the operator runs.

        kopf watches pods only in the namespaces it serves; a second, cluster-wide watch would double the
        operator's watch traffic for pods it only needs to count, so a namespaced operator polls instead and
        may miss, for up to one period, a pod another scheduler has just bound.
        """
        while True:
            await asyncio.sleep(RESYNC_SECONDS)
            try:
                await self._list_other_namespaces()
            except Exception as error:  # the loop must outlive an API outage; the next period retries
                log.warning("cannot list the pods of other namespaces: %s", error)

    def on_node_event(self, event_type: str | None, node: dict[str, Any]) -> None:
        self.live.apply_node_event(event_type, node)
        name = node["metadata"]["name"]
        if event_type == "DELETED":
            self._nodes.discard(name)
            for namespace, workflow in list(self._phases):  # pods on it must move: look at every active workflow
                if self._phases[(namespace, workflow)] not in TERMINAL:
                    self.trigger(namespace, workflow)
        else:
            self._nodes.add(name)

    def on_pod_event(self, event_type: str | None, pod: dict[str, Any]) -> None:
        self.live.apply_pod_event(event_type, pod)
        meta = pod["metadata"]
        if event_type == "DELETED":
            self.queue.discard((meta.get("namespace", ""), meta.get("name", "")))
            self._unschedulable_told.discard(meta.get("uid", ""))
        if event_type == "DELETED" or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            for key in self.queue.workflows():  # room may have been freed: look again now, not at the next resync
                self.trigger(*key)
        value = (meta.get("labels") or {}).get(labels.WORKFLOW_LABEL)
        owner = next((ref["name"] for ref in meta.get("ownerReferences") or [] if ref.get("kind") == labels.KIND),
                     None)
        # A live Pending pod's events are the echo of our own create and bind, which the reconcile that made
        # them has already accounted for: reconciling on them doubled the API calls per DAG step.
        echo = (event_type in ("ADDED", "MODIFIED") and not meta.get("deletionTimestamp")
                and (pod.get("status") or {}).get("phase", "Pending") == "Pending")
        if value and owner and meta.get("namespace") and not echo:
            self.trigger(meta["namespace"], owner)

    def resync(self, namespace: str, name: str) -> None:
        """The timer's call: reconcile a workflow unless an event brought it back within the last half period
        (half, so a quiet workflow is still looked at on every tick, not every other one)."""
        if time.monotonic() - self._reconciled_at.get((namespace, name), -math.inf) >= RESYNC_SECONDS / 2:
            self.trigger(namespace, name)

    # -- scheduling of reconciles ------------------------------------------------------------------
    def trigger(self, namespace: str, name: str) -> None:
        """Reconcile soon; a trigger while one is already queued is merged into it."""
        key = (namespace, name)
        if key in self._pending:
            return
        self._pending.add(key)
        self._spawn(self._run(key))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, holding a reference so the task is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: tuple[str, str]) -> None:
        try:
            await self.reconcile(*key)
        except Exception:  # logged, and the resync timer tries again
            log.exception("reconcile of WorkflowDAG %s/%s failed; retrying on the next event or resync", *key)

    async def reconcile(self, namespace: str, name: str) -> None:
        key = (namespace, name)
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                self._pending.discard(key)
                # The workflow and its pods in one round trip, not two: each serial API call is paid on every DAG
                # step (parent Succeeded -> child created), which at --time-scale 10 is ten times as long in
                # simulated seconds. Both reads are issued after this process's previous writes have completed
                # (the lock), so each sees them; the pods are filtered by owner once the uid is known.
                body, labelled = await asyncio.gather(self.api.get_workflow(namespace, name),
                                                      self.api.list_workflow_pods(namespace, label_value(name)))
                if body is None:
                    self._forget(key)
                    return
                await self._reconcile(body, owned_by(labelled, body["metadata"]["uid"]))
                self._reconciled_at[key] = time.monotonic()
        finally:
            for waiting in self._deferred.pop(key, ()):  # they yielded to this workflow's pods: their turn now
                self.trigger(*waiting)

    def _forget(self, key: tuple[str, str]) -> None:
        self._phases.pop(key, None)
        self.queue.forget(key)
        self._plans.pop(key, None)
        self._locks.pop(key, None)
        self._reconciled_at.pop(key, None)
        self._update_phase_gauge()

    # -- the reconcile -----------------------------------------------------------------------------
    async def _reconcile(self, body: dict[str, Any], pods: list[dict[str, Any]]) -> None:
        meta, status = body["metadata"], body.get("status") or {}
        key = (meta["namespace"], meta["name"])
        if status.get("phase") in TERMINAL:
            self.queue.forget(key)
            self._set_phase(key, status["phase"])
            return
        uid = meta["uid"]
        if self.fallback_warning and uid not in self._warned:
            self._warned.add(uid)
            await self.api.event(body, labels.KIND, "PolicyFallback", self.fallback_warning, event_type="Warning")
        plan = self._plans.get(key)
        if plan is None or plan.uid != uid:  # a WorkflowDAG deleted and created again under the same name
            try:
                plan = plan_workflow(body, self.live)
            except WorkflowValidationError as error:
                await self._reject(body, error)
                return
            except LookupError as error:
                log.info("WorkflowDAG %s/%s waits: %s", *key, error)
                return
            self._plans[key] = plan
        progress = workflow_progress(plan.workflow, pods, status.get("primitives"))
        if progress.exhausted is None:
            after = await self._advance(body, plan, progress, pods)
            if after is None:  # something only a fresh list can tell (an eviction, someone else's binding)
                after = owned_by(await self.api.list_workflow_pods(meta["namespace"], label_value(meta["name"])),
                                 uid)
            progress = workflow_progress(plan.workflow, after, status.get("primitives"))
        await self._write_status(body, plan, progress)

    async def _reject(self, body: dict[str, Any], error: WorkflowValidationError) -> None:
        meta = body["metadata"]
        log.warning("WorkflowDAG %s/%s rejected (%s): %s", meta["namespace"], meta["name"], error.reason, error)
        total = len((body.get("spec") or {}).get("primitives") or [])
        status = failed_status(error.reason, str(error), total=total, now=datetime.now(UTC), policy=self.policy,
                               placement_rule=self.live.rule.value, generation=meta.get("generation"),
                               previous=body.get("status") or {})
        await self.api.patch_workflow_status(meta["namespace"], meta["name"], status)
        await self.api.event(body, labels.KIND, error.reason, str(error), event_type="Warning")
        self._set_phase((meta["namespace"], meta["name"]), "Failed")

    async def _advance(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress,
                       pods: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """Move pods whose node vanished, create pods for ready primitives, bind waiting pods.

        Returns the workflow's pods as they stand afterwards, built from the API's own replies (a second
        list per reconcile was one more serial round trip on every DAG step), or None when only a fresh
        list can tell.
        """
        evicted = False
        for entry in progress.primitives.values():
            pod = entry.live_pod
            if pod is not None and entry.node and entry.node not in self._nodes:
                await self._evict(body, pod, entry.node)
                evicted = True
        if evicted:
            return None  # re-derive progress first: the evicted primitives are ready again
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        # Every pod of the workflow that waits for a node joins the cluster-wide queue (the engine's order,
        # placement.queue_key); SRPT-like priorities read the workflow's work not started yet.
        waiting = self._waiting_pods(body, plan, progress)
        remaining = sum(plan.mean_seconds[name] for name, entry in progress.primitives.items() if not entry.node)
        entries = self.queue.sync(key, [arrival for arrival, _ in waiting.values()], remaining)
        # Decide one after another without yielding (each decision sees the pods assumed and planned before it, and
        # the queue as it stands), then create and bind the pods concurrently: the API round trips are the slow part.
        steps = [step for entry in entries
                 if (step := self._step(body, plan, progress, entry, waiting[entry.pod][1])) is not None]
        results = list(await asyncio.gather(*(self._carry_out(body, step) for step in steps)))
        if any(pod is None for pod in results):
            return None
        fresh = {pod["metadata"]["name"]: pod for pod in results if pod is not None}
        return [fresh.pop(pod["metadata"]["name"], pod) for pod in pods] + list(fresh.values())

    def _waiting_pods(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress
                      ) -> dict[PodKey, tuple[Arrival, dict[str, Any] | None]]:
        """The workflow's pods that wait for a node, in topological order: (queue arrival, the unbound pod, or None
        for a ready primitive whose next attempt's pod does not exist yet)."""
        meta = body["metadata"]
        ready = set(progress.ready)
        waiting: dict[PodKey, tuple[Arrival, dict[str, Any] | None]] = {}
        for primitive in plan.workflow.primitives:
            entry = progress.primitives[primitive.name]
            pod = entry.live_pod
            if primitive.name in ready:
                name, pod, planned = pod_name(meta["name"], primitive.name, entry.attempts), None, ""
            elif pod is not None and not (pod.get("spec") or {}).get("nodeName"):
                name = pod["metadata"]["name"]
                planned = str((pod["metadata"].get("annotations") or {}).get(labels.PLANNED_NODE_ANNOTATION, ""))
            else:
                continue
            arrival = Arrival((meta["namespace"], name), primitive, plan.downstream_seconds[primitive.name],
                              plan.mean_seconds[primitive.name], planned)
            waiting[arrival.pod] = (arrival, pod)
        return waiting

    async def _evict(self, body: dict[str, Any], pod: dict[str, Any], node: str) -> None:
        meta = pod["metadata"]
        await self.api.delete_pod(meta["namespace"], meta["name"])
        self.live.apply_pod_event("DELETED", pod)
        primitive = meta["labels"].get(labels.PRIMITIVE_LABEL, "?")
        await self.api.event(body, labels.KIND, "NodeLost",
                             f"node {node} is gone: deleted pod {meta['name']} of primitive {primitive!r}; "
                             "it runs again elsewhere (this does not use up a retry)", event_type="Warning")

    # -- placement: the rule's pipeline (placement.candidates, Scheduler.choose), as the engine runs it --------
    def _observe(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress,
                 primitive: Primitive) -> Observation:
        """The policy's input for one primitive of this workflow, from the live view."""
        now = time.time()
        created = parse_time(body["metadata"]["creationTimestamp"]) or datetime.now(UTC)
        parents = [(progress.primitives[parent].node or "", plan.by_name[parent].output_megabytes)
                   for parent in primitive.depends_on]
        return self.live.observation(
            primitive, parents, now=now * self.time_scale, downstream_seconds=plan.downstream_seconds[primitive.name],
            workflow_elapsed=max(now - created.timestamp(), 0.0) * self.time_scale)

    def _decide(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress,
                primitive: Primitive) -> Decision:
        """The policy's node for one attempt among the rule's candidates (``Observation.candidates``: under
        late-binding the nodes that can run it and have its requests free now, kube-scheduler's filter; under
        node-queues every node that can run it). LookupError (NoRoom when nodes are merely full) if there is none."""
        started = time.perf_counter()
        observation = self._observe(body, plan, progress, primitive)
        if not observation.mask.any():
            raise LookupError(f"no schedulable node in the cluster can run primitive {primitive.name!r}")
        if not observation.candidates.any():
            raise NoRoom(f"0/{observation.state.num_nodes} nodes are available: none of the nodes that can run "
                         f"{primitive.kind.value} has cpu {primitive.cpu_millicores}m, memory {primitive.memory_bytes}"
                         f" and nvidia.com/gpu {primitive.gpus} free; waiting for running pods to finish")
        index = self.scheduler.choose(observation)  # the engine's call: the policy's best candidate
        metrics.record_decision(self.policy, "operator", time.perf_counter() - started)
        return _decision(observation, index)

    def _step(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress, entry: WaitingPod,
              pod: dict[str, Any] | None) -> Step | None:
        """Where one waiting pod goes now under the rule, or why it waits; placements are assumed (or, under
        node-queues, planned) in the live view at once, so the next decision sees them. None when no node of the
        cluster can run it at all (logged; looked at again on resync)."""
        meta = body["metadata"]
        primitive, attempt = entry.primitive, progress.primitives[entry.primitive.name].attempts
        if pod is None:
            pod = pod_manifest(workflow=body, primitive=primitive, raw_primitive=plan.raw[primitive.name],
                               attempt=attempt, policy=self.policy)
            create = True
        else:
            attempt, create = int(pod["metadata"]["labels"].get(labels.ATTEMPT_LABEL, "0")), False
        rule, state = self.live.rule, self.live.snapshot()
        planned = entry.planned_node if self.live.has_node(entry.planned_node) else ""  # a node gone: choose again
        if planned and rule is PlacementRule.LATE_BINDING and not room_now(primitive, state)[state.index_of(planned)]:
            planned = ""  # decided before but never bound (a failed bind, a restart), and full since: choose again
        if planned:
            decision = _decision(self._observe(body, plan, progress, primitive), state.index_of(planned))
        else:
            try:
                decision = self._decide(body, plan, progress, primitive)
            except NoRoom as error:
                return Step(pod, create, {}, None, str(error))
            except LookupError as error:
                log.info("WorkflowDAG %s/%s: %s; retrying on resync", meta["namespace"], meta["name"], error)
                return None
            if rule is PlacementRule.LATE_BINDING:
                ahead = self.queue.ahead_with_room(entry.pod, decision.index, state)
                if ahead is not None:  # the engine would place that pod first: its workflow's turn, then ours
                    self._deferred.setdefault(ahead.workflow, set()).add(entry.workflow)
                    self.trigger(*ahead.workflow)
                    return Step(pod, create, {}, None, None)
        if rule is PlacementRule.NODE_QUEUES:
            self.queue.plan(entry.pod, decision.node.name)
            admitted = {other.pod: other for other in self.queue.admitted(decision.index, state)}
            for other in admitted.values():  # pods ahead of it that start now too: their own workflows bind them
                if other.workflow != entry.workflow:
                    self.trigger(*other.workflow)
            if entry.pod not in admitted:
                return self._wait_in_node_queue(entry, pod, create, decision)
        annotations = self._placement_annotations(body, primitive, attempt, decision, pod)
        pod = _annotated(pod, annotations)
        self.live.assume(pod, decision.node.name)
        self.queue.started(entry.pod)
        return Step(pod, create, annotations, decision.node.name, None)

    def _wait_in_node_queue(self, entry: WaitingPod, pod: dict[str, Any], create: bool, decision: Decision) -> Step:
        """Node-queues: the pod waits in its node's queue, planned there (the annotation outlives a restart) and
        counted by the live view in that node's queue_length and queued_seconds (its estimated run time there;
        transfer and cold start are charged when it starts, as in the engine)."""
        primitive, node = entry.primitive, decision.node.name
        wanted = {labels.PLANNED_NODE_ANNOTATION: node,
                  labels.ESTIMATED_DURATION_ANNOTATION: go_duration((decision.estimate - decision.setup)
                                                                    / self.time_scale)}
        existing = pod["metadata"].get("annotations") or {}
        annotations = {key: value for key, value in wanted.items() if existing.get(key) != value}
        pod = _annotated(pod, annotations)
        self.live.apply_pod_event("MODIFIED", pod)
        reason = (f"planned for node {node} by policy {self.policy} (placement rule node-queues): waiting in its "
                  f"queue behind {self.queue.ahead_on_node(entry.pod)} pod(s) for cpu {primitive.cpu_millicores}m, "
                  f"memory {primitive.memory_bytes} and nvidia.com/gpu {primitive.gpus} to free up there")
        return Step(pod, create, annotations, None, reason)

    def _placement_annotations(self, body: dict[str, Any], primitive: Primitive, attempt: int, decision: Decision,
                               pod: dict[str, Any]) -> dict[str, str]:
        """Planned node, and the run time drawn for it (what KWOK waits) and estimated (what the view predicts),
        with the transfer and cold start of starting there now; none when the pod already has them for that node
        (decided before a restart or a failed bind: the drawn time stands)."""
        existing = pod["metadata"].get("annotations") or {}
        if (existing.get(labels.PLANNED_NODE_ANNOTATION) == decision.node.name
                and labels.DURATION_ANNOTATION in existing):
            return {}
        seconds = run_seconds(primitive, decision.node, body["metadata"]["uid"], attempt, decision.setup)
        return {
            labels.PLANNED_NODE_ANNOTATION: decision.node.name,
            labels.DURATION_ANNOTATION: go_duration(seconds / self.time_scale),
            labels.ESTIMATED_DURATION_ANNOTATION: go_duration(decision.estimate / self.time_scale),
        }

    async def _carry_out(self, body: dict[str, Any], step: Step) -> dict[str, Any] | None:
        """Create the step's pod if it is new, annotate it, then bind it or tell why it waits.

        The pod as it stands afterwards; None when only a fresh list can tell."""
        pod = step.pod
        if step.create:
            pod, created = await self.api.create_pod(step.pod)
            owners = {ref.get("uid") for ref in pod["metadata"].get("ownerReferences") or []}
            if body["metadata"]["uid"] not in owners:
                # a pod of that name left by a deleted WorkflowDAG of the same name: wait for the garbage collector
                self.live.apply_pod_event("DELETED", step.pod)
                self.live.apply_pod_event("MODIFIED", pod)
                return None
            if (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
                return pod
            if not created and step.annotations:  # a previous incarnation's pod of that name: make it this one
                pod = await self.api.patch_pod_annotations(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                                           step.annotations)
        elif step.annotations:
            pod = await self.api.patch_pod_annotations(pod["metadata"]["namespace"], pod["metadata"]["name"],
                                                       step.annotations)
        if step.node is not None:
            return await self._bind(body, pod, step.node)
        uid = pod["metadata"].get("uid", "")
        if step.reason and uid not in self._unschedulable_told:
            self._unschedulable_told.add(uid)
            await self.api.mark_unschedulable(pod["metadata"]["namespace"], pod["metadata"]["name"], step.reason)
            await self.api.event(pod, "Pod", "FailedScheduling", step.reason, event_type="Warning")
        return pod

    async def _bind(self, body: dict[str, Any], pod: dict[str, Any], node: str) -> dict[str, Any] | None:
        """Assume the pod on the node (with its real uid) and POST the binding.

        The pod as bound by us; None when it was not (bound before, to a node only a list can tell, or gone)."""
        namespace, name = pod["metadata"]["namespace"], pod["metadata"]["name"]
        self.live.assume(pod, node)
        outcome = await self.api.bind(namespace, name, node)
        if outcome in (BindOutcome.FAILED, BindOutcome.GONE):
            self.live.apply_pod_event("DELETED", pod)  # drop the assumption; the next watch event re-adds the pod
            if outcome == BindOutcome.FAILED:
                metrics.BIND_ERRORS.labels(reason="api").inc()
            return None
        self._unschedulable_told.discard(pod["metadata"].get("uid", ""))
        if outcome == BindOutcome.BOUND:
            annotations = pod["metadata"].get("annotations") or {}
            primitive = pod["metadata"]["labels"].get(labels.PRIMITIVE_LABEL, "?")
            self._post(self.api.event(pod, "Pod", "Scheduled", f"Successfully assigned {namespace}/{name} to {node}"))
            self._post(self.api.event(
                body, labels.KIND, "Placed",
                f"primitive {primitive!r} attempt {pod['metadata']['labels'].get(labels.ATTEMPT_LABEL, '0')} -> node "
                f"{node} by policy {self.policy} (run {annotations.get(labels.DURATION_ANNOTATION, '?')}, estimated "
                f"{annotations.get(labels.ESTIMATED_DURATION_ANNOTATION, '?')}, wall clock)"))
            return {**pod, "spec": {**(pod.get("spec") or {}), "nodeName": node}}
        return None  # 409: bound before (a previous incarnation), maybe elsewhere

    def _post(self, event: Coroutine[Any, Any, None]) -> None:
        """Post an Event in the background: Events are best effort and must not slow placement down."""
        self._spawn(self._post_throttled(event))

    async def _post_throttled(self, event: Coroutine[Any, Any, None]) -> None:
        async with self._event_slots:
            await event

    async def _write_status(self, body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress) -> None:
        meta, previous = body["metadata"], body.get("status") or {}
        created = parse_time(meta["creationTimestamp"]) or datetime.now(UTC)
        status = workflow_status(plan.workflow, progress, created=created, now=datetime.now(UTC),
                                 time_scale=self.time_scale, lower_bound_seconds=plan.lower_bound_seconds,
                                 policy=self.policy, placement_rule=self.live.rule.value,
                                 generation=meta.get("generation"), previous=previous)
        patch = status_patch(previous, status)
        if not patch:
            self._set_phase((meta["namespace"], meta["name"]), status["phase"])
            return
        await self.api.patch_workflow_status(meta["namespace"], meta["name"], patch)
        self._set_phase((meta["namespace"], meta["name"]), status["phase"])
        if status["phase"] == "Succeeded":
            metrics.WORKFLOW_RESPONSE_TIME.observe(status["responseTimeSeconds"])
            await self.api.event(body, labels.KIND, "Succeeded",
                                 f"all {len(plan.workflow.primitives)} primitives succeeded; response time "
                                 f"{status['responseTimeSeconds']:.2f}s, slowdown {status['slowdown']:.2f}")
            self._plans.pop((meta["namespace"], meta["name"]), None)
            self.queue.forget((meta["namespace"], meta["name"]))
        elif status["phase"] == "Failed":
            condition = next(c for c in status["conditions"] if c["type"] == "Complete")
            await self.api.event(body, labels.KIND, condition["reason"], condition["message"], event_type="Warning")
            self._plans.pop((meta["namespace"], meta["name"]), None)
            self.queue.forget((meta["namespace"], meta["name"]))

    def _set_phase(self, key: tuple[str, str], phase: str) -> None:
        if self._phases.get(key) != phase:
            self._phases[key] = phase
            self._update_phase_gauge()

    def _update_phase_gauge(self) -> None:
        for phase in PHASES:
            metrics.WORKFLOWS.labels(phase=phase).set(sum(p == phase for p in self._phases.values()))


def build_registry(controller: WorkflowController) -> kopf.OperatorRegistry:
    """kopf handlers bound to ``controller``: WorkflowDAG create/resume/timer, Node and Pod events."""
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A registry of our own gets no default login handlers: $KUBECONFIG (set by --kubeconfig), else in-cluster.
        return kopf.login_with_kubeconfig(**kwargs) or kopf.login_with_service_account(**kwargs)

    @kopf.on.startup(registry=registry)
    async def prime(**_: Any) -> None:
        await controller.prime()

    @kopf.on.create(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    @kopf.on.resume(labels.GROUP, labels.VERSION, labels.PLURAL, registry=registry)
    async def start(namespace: str, name: str, **_: Any) -> None:
        await controller.reconcile(namespace, name)

    @kopf.timer(labels.GROUP, labels.VERSION, labels.PLURAL, interval=RESYNC_SECONDS, registry=registry,
                when=lambda status, **_: status.get("phase") not in TERMINAL)
    async def resync(namespace: str, name: str, **_: Any) -> None:
        controller.resync(namespace, name)

    @kopf.on.event("", "v1", "nodes", registry=registry)
    async def node_event(event: dict[str, Any], **_: Any) -> None:  # async: runs in the loop, not a thread
        controller.on_node_event(event.get("type"), event["object"])

    @kopf.on.event("", "v1", "pods", registry=registry)
    async def pod_event(event: dict[str, Any], **_: Any) -> None:
        controller.on_pod_event(event.get("type"), event["object"])

    return registry
