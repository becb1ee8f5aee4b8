"""Where each waiting pod goes under the placement rule: the engine's pipeline (``placement``), on the live view.

Decisions are made one after another without yielding, each seeing the pods assumed and planned before it;
nothing here calls the API: a ``Step`` says what to create, annotate and bind, and ``binder`` does it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from scale_scheduler.operator.core import metrics
from scale_scheduler.operator.core.binding import Arrival, BindingQueue, PodKey, WaitingPod
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.outputs import with_inputs
from scale_scheduler.operator.core.plan import WorkflowPlan
from scale_scheduler.operator.core.progress import WorkflowProgress
from scale_scheduler.operator.core.reconcile_queue import ReconcileQueue
from scale_scheduler.operator.core.workflow_pods import (
    avoiding_nodes,
    go_duration,
    pod_manifest,
    pod_name,
    run_seconds,
    scheduling_fields,
)
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.node_filter import NodeConstraints
from scale_scheduler.operator.kube.times import parse_time
from scale_scheduler.simulator.cluster import NodeSpec
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.node_model import estimated_duration, feasible
from scale_scheduler.simulator.placement import PlacementRule, room_now
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive

log = logging.getLogger(__name__)


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
    return Decision(
        index, observation.state.spec.nodes[index], setup, setup + float(observation.estimated_duration[index])
    )


def annotated(pod: dict[str, Any], annotations: dict[str, str]) -> dict[str, Any]:
    """``pod`` with ``annotations`` added (a copy; the original is left as the API gave it)."""
    if not annotations:
        return pod
    meta = pod["metadata"]
    return {**pod, "metadata": {**meta, "annotations": {**(meta.get("annotations") or {}), **annotations}}}


def waiting_pods(
    body: dict[str, Any], plan: WorkflowPlan, progress: WorkflowProgress
) -> dict[PodKey, tuple[Arrival, dict[str, Any] | None]]:
    """The workflow's pods that wait for a node, in topological order: (queue arrival, the unbound pod, or None
    for a ready primitive whose next attempt's pod does not exist yet). A primitive whose retryStrategy backoff
    has not run out yet is not among them (the resync looks again)."""
    meta = body["metadata"]
    now = datetime.now(UTC)
    ready = {
        name for name in progress.ready if (after := progress.primitives[name].next_attempt) is None or after <= now
    }
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
        # an existing pod's own constraints (a retry may avoid the nodes where it failed), else the primitive's
        constraints = plan.constraints[primitive.name] if pod is None else NodeConstraints.of_pod(pod)
        arrival = Arrival(
            (meta["namespace"], name),
            primitive,
            plan.downstream_seconds[primitive.name],
            plan.mean_seconds[primitive.name],
            planned,
            constraints,
        )
        waiting[arrival.pod] = (arrival, pod)
    return waiting


class Placer:
    """The rule's pipeline (``placement.candidates``, ``Scheduler.choose``) for the operator's waiting pods."""

    def __init__(
        self,
        live: LiveCluster,
        scheduler: Scheduler,
        queue: BindingQueue,
        reconciles: ReconcileQueue,
        policy: str,
        time_scale: float,
    ) -> None:
        self.live, self.scheduler, self.queue, self.reconciles = live, scheduler, queue, reconciles
        self.policy, self.time_scale = policy, time_scale

    def observe(
        self,
        body: dict[str, Any],
        plan: WorkflowPlan,
        progress: WorkflowProgress,
        primitive: Primitive,
        constraints: NodeConstraints | None = None,
    ) -> Observation:
        """The policy's input for one primitive of this workflow, from the live view (its pod's node constraints:
        ``constraints``, else the primitive's)."""
        now = time.time()
        created = parse_time(body["metadata"]["creationTimestamp"]) or datetime.now(UTC)
        parents = [
            (progress.primitives[parent].node or "", plan.by_name[parent].output_megabytes)
            for parent in primitive.depends_on
        ]
        return self.live.observation(
            primitive,
            parents,
            now=now * self.time_scale,
            downstream_seconds=plan.downstream_seconds[primitive.name],
            workflow_elapsed=max(now - created.timestamp(), 0.0) * self.time_scale,
            constraints=constraints or plan.constraints[primitive.name],
        )

    def decide(
        self,
        body: dict[str, Any],
        plan: WorkflowPlan,
        progress: WorkflowProgress,
        primitive: Primitive,
        constraints: NodeConstraints | None = None,
    ) -> Decision:
        """The policy's node for one attempt among the rule's candidates (``Observation.candidates``: under
        late-binding the nodes that can run it and have its requests free now, kube-scheduler's filter; under
        node-queues every node that can run it; either way only nodes its nodeSelector, node affinity and
        tolerations admit). LookupError (NoRoom when nodes are merely full) if there is none."""
        started = time.perf_counter()
        observation = self.observe(body, plan, progress, primitive, constraints)
        if not observation.mask.any():
            raise LookupError(
                f"no schedulable node in the cluster that its nodeSelector, node affinity and "
                f"tolerations admit can run primitive {primitive.name!r}"
            )
        if not observation.candidates.any():
            raise NoRoom(
                f"0/{observation.state.num_nodes} nodes are available: none of the nodes that can run "
                f"{primitive.kind.value} (and that admit it) has cpu {primitive.cpu_millicores}m, memory "
                f"{primitive.memory_bytes} and nvidia.com/gpu {primitive.gpus} free; waiting for running pods "
                "to finish"
            )
        index = self.scheduler.choose(observation)  # the engine's call: the policy's best candidate
        metrics.record_decision(self.policy, "operator", time.perf_counter() - started)
        return _decision(observation, index)

    def step(
        self,
        body: dict[str, Any],
        plan: WorkflowPlan,
        progress: WorkflowProgress,
        entry: WaitingPod,
        pod: dict[str, Any] | None,
    ) -> Step | None:
        """Where one waiting pod goes now under the rule, or why it waits; placements are assumed (or, under
        node-queues, planned) in the live view at once, so the next decision sees them. None when no node of the
        cluster can run it at all (logged; looked at again on resync)."""
        primitive, attempt = entry.primitive, progress.primitives[entry.primitive.name].attempts
        if pod is None:
            pod = pod_manifest(
                workflow=body,
                primitive=primitive,
                raw_primitive=with_inputs(
                    self._retry_elsewhere(plan, progress, primitive), body["metadata"]["name"], primitive, progress
                ),
                attempt=attempt,
                policy=self.policy,
            )
            create = True
        else:
            attempt, create = int(pod["metadata"]["labels"].get(labels.ATTEMPT_LABEL, "0")), False
        rule, state, constraints = self.live.rule, self.live.snapshot(), NodeConstraints.of_pod(pod)
        planned = entry.planned_node if self.live.has_node(entry.planned_node) else ""  # a node gone: choose again
        if planned and rule is PlacementRule.LATE_BINDING and not room_now(primitive, state)[state.index_of(planned)]:
            planned = ""  # decided before but never bound (a failed bind, a restart), and full since: choose again
        if planned:
            decision = _decision(self.observe(body, plan, progress, primitive, constraints), state.index_of(planned))
        else:
            try:
                decision = self.decide(body, plan, progress, primitive, constraints)
            except NoRoom as error:
                return Step(pod, create, {}, None, str(error))
            except LookupError as error:
                log.info(
                    "WorkflowDAG %s/%s: %s; retrying on resync",
                    body["metadata"]["namespace"],
                    body["metadata"]["name"],
                    error,
                )
                return None
            if rule is PlacementRule.LATE_BINDING:
                ahead = self.queue.ahead_with_room(
                    entry.pod,
                    decision.index,
                    state,
                    lambda constraints: bool(self.live.allowed(constraints)[decision.index]),
                    self._room_elsewhere(state, decision.index),
                )
                if ahead is not None:  # the engine would place that pod first: its workflow's turn, then ours
                    self.reconciles.trigger_after(ahead.workflow, entry.workflow)
                    return Step(pod, create, {}, None, None)
        if rule is PlacementRule.NODE_QUEUES:
            self.queue.plan(entry.pod, decision.node.name)
            admitted = {other.pod: other for other in self.queue.admitted(decision.index, state)}
            for other in admitted.values():  # pods ahead of it that start now too: their own workflows bind them
                if other.workflow != entry.workflow:
                    self.reconciles.trigger(other.workflow)
            if entry.pod not in admitted:
                return self._wait_in_node_queue(entry, pod, create, decision)
        annotations = self._placement_annotations(body, plan, primitive, attempt, decision, pod)
        pod = annotated(pod, annotations)
        self.live.assume(pod, decision.node.name)
        self.queue.started(entry.pod)
        return Step(pod, create, annotations, decision.node.name, None)

    def _room_elsewhere(self, state: ClusterState, node: int) -> Callable[[WaitingPod], bool]:
        """Whether a waiting pod has room now on some node other than ``node`` that can run it and that its
        constraints admit; worked out once per kind of pod (requests and constraints), not once per pod."""
        known: dict[tuple[object, ...], bool] = {}

        def elsewhere(entry: WaitingPod) -> bool:
            primitive = entry.primitive
            key = (primitive.kind, primitive.cpu_millicores, primitive.memory_bytes, primitive.gpus, entry.constraints)
            if key not in known:  # the rule's candidates for it, as the pipeline itself would work them out
                room = Observation(
                    0.0, primitive, state, rule=PlacementRule.LATE_BINDING, allowed=self.live.allowed(entry.constraints)
                ).candidates.copy()
                room[node] = False
                known[key] = bool(room.any())
            return known[key]

        return elsewhere

    def _retry_elsewhere(self, plan: WorkflowPlan, progress: WorkflowProgress, primitive: Primitive) -> dict[str, Any]:
        """The primitive's spec entry; for a retry under ``retryStrategy.differentNode``, with a required node
        affinity that keeps it off the nodes where it failed (Argo's nodeAntiAffinity), so that this placer and
        any kubelet agree. Left as it is when no other node its constraints admit could ever run it."""
        raw, failed = plan.raw[primitive.name], progress.primitives[primitive.name].failed_nodes
        if not (plan.strategies[primitive.name].different_node and failed):
            return raw
        elsewhere = {**raw, "affinity": avoiding_nodes(raw.get("affinity"), sorted(set(failed)))}
        constraints = NodeConstraints.of_pod({"spec": scheduling_fields(elsewhere)})
        state = self.live.snapshot()
        if any(
            ok and feasible(primitive, node)
            for ok, node in zip(self.live.allowed(constraints), state.spec.nodes, strict=True)
        ):
            return elsewhere
        return raw

    def _wait_in_node_queue(self, entry: WaitingPod, pod: dict[str, Any], create: bool, decision: Decision) -> Step:
        """Node-queues: the pod waits in its node's queue, planned there (the annotation outlives a restart) and
        counted by the live view in that node's queue_length and queued_seconds (its estimated run time there;
        transfer and cold start are charged when it starts, as in the engine)."""
        primitive, node = entry.primitive, decision.node.name
        wanted = {
            labels.PLANNED_NODE_ANNOTATION: node,
            labels.ESTIMATED_DURATION_ANNOTATION: go_duration((decision.estimate - decision.setup) / self.time_scale),
        }
        existing = pod["metadata"].get("annotations") or {}
        annotations = {key: value for key, value in wanted.items() if existing.get(key) != value}
        pod = annotated(pod, annotations)
        self.live.apply_pod_event("MODIFIED", pod)
        reason = (
            f"planned for node {node} by policy {self.policy} (placement rule node-queues): waiting in its "
            f"queue behind {self.queue.ahead_on_node(entry.pod)} pod(s) for cpu {primitive.cpu_millicores}m, "
            f"memory {primitive.memory_bytes} and nvidia.com/gpu {primitive.gpus} to free up there"
        )
        return Step(pod, create, annotations, None, reason)

    def _placement_annotations(
        self,
        body: dict[str, Any],
        plan: WorkflowPlan,
        primitive: Primitive,
        attempt: int,
        decision: Decision,
        pod: dict[str, Any],
    ) -> dict[str, str]:
        """Planned node, and the run time drawn for it (what KWOK waits), estimated (what the view predicts) and
        estimated by the static model (what learned run times are measured against), each with the transfer and
        cold start of starting there now, and the template the run time is learned under; none when the pod
        already has them for that node (decided before a restart or a failed bind: the drawn time stands). The
        drawn time and the prior come from the static model and the primitive as declared, the KWOK stand-in for
        the hardware: what the operator learns must not change what it observes."""
        existing = pod["metadata"].get("annotations") or {}
        if (
            existing.get(labels.PLANNED_NODE_ANNOTATION) == decision.node.name
            and labels.DURATION_ANNOTATION in existing
        ):
            return {}
        prior, declared = self.live.prior_spec(decision.node.name) or decision.node, plan.declared[primitive.name]
        seconds = run_seconds(declared, prior, body["metadata"]["uid"], attempt, decision.setup)
        prior_estimate = decision.setup + estimated_duration(declared, prior)
        return {
            labels.PLANNED_NODE_ANNOTATION: decision.node.name,
            labels.DURATION_ANNOTATION: go_duration(seconds / self.time_scale),
            labels.ESTIMATED_DURATION_ANNOTATION: go_duration(decision.estimate / self.time_scale),
            labels.PRIOR_ESTIMATED_DURATION_ANNOTATION: go_duration(prior_estimate / self.time_scale),
            labels.TEMPLATE_ANNOTATION: plan.template,
        }
