"""The operator's queue of pods waiting for a node, across all workflows, in the engine's order.

A reconcile sees one workflow; this queue lets it see every other workflow's waiting pods, so that pods are
served in the order the simulator's engine serves its ready primitives (``placement.queue_key``):

- late-binding: a pod that found room yields when pods of other workflows ahead of it in the queue need that
  node's room (the engine would have placed those first; ``ahead_with_room``); the first one's workflow is then
  reconciled. Room freed on a node wakes the workflows whose waiting pods it can take (``fitting``).
- node-queues: the pods planned for a node wait in that node's queue in the same order; ``admitted`` says which
  of them fit now, head first: the head keeps its reservation and nothing behind it jumps ahead.

Entries live only while their pod waits: they go when the pod is placed or deleted, or their workflow is
reconciled without them or forgotten. Nothing here talks to the API server.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from scale_scheduler.operator.kube.node_filter import NodeConstraints
from scale_scheduler.simulator.node_model import feasible
from scale_scheduler.simulator.placement import Waiting, is_fixed, queue_key, request_fits
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive

WorkflowKey = tuple[str, str]  # (namespace, WorkflowDAG name)
PodKey = tuple[str, str]  # (namespace, pod name): names are deterministic, so a pod not created yet has one too


@dataclass(frozen=True)
class WaitingPod:
    """One pod (or a ready primitive's pod about to be created) in the queue."""

    workflow: WorkflowKey
    pod: PodKey
    primitive: Primitive
    downstream_seconds: float  # the plan's longest chain of mean estimated work after it
    mean_seconds: float  # its mean estimated work, which leaves the workflow's remaining work when it starts
    sequence: int  # order of arrival in the queue (first come, first served among equals)
    planned_node: str = ""  # node-queues: the node whose queue it waits in; "" while no node is chosen
    constraints: NodeConstraints = NodeConstraints()  # the nodes its nodeSelector, affinity and tolerations admit


@dataclass(frozen=True)
class Arrival:
    """What a reconcile reports of one of its waiting pods (``BindingQueue.sync``)."""

    pod: PodKey
    primitive: Primitive
    downstream_seconds: float
    mean_seconds: float
    planned_node: str
    constraints: NodeConstraints = NodeConstraints()


class BindingQueue:
    """Waiting pods of every workflow, ordered by ``placement.queue_key`` under the scheduler's ``priority``."""

    def __init__(self, priority: Callable[[Waiting], float]) -> None:
        self._priority = priority
        self._rekeyed = not is_fixed(priority)  # as in the engine: a fixed priority's keys never change
        self._entries: dict[PodKey, WaitingPod] = {}
        # the same entries by workflow: a reconcile touches only its own, and a scan of every waiting pod per
        # reconcile made the operator quadratic in the workflows in flight
        self._by_workflow: dict[WorkflowKey, dict[PodKey, WaitingPod]] = {}
        self._keys: dict[PodKey, tuple[float, float, int]] = {}
        # per workflow: mean estimated work not started yet (what SRPT-like priorities read), as the engine keeps it
        self._remaining: dict[WorkflowKey, float] = {}
        self._sequence = 0

    # -- what the reconciles report ---------------------------------------------------------------
    def sync(self, workflow: WorkflowKey, waiting: list[Arrival], remaining_seconds: float) -> list[WaitingPod]:
        """Make ``workflow``'s entries exactly ``waiting`` (those already queued keep their place); its entries
        in queue order."""
        listed = {arrival.pod for arrival in waiting}
        for pod in [pod for pod in self._by_workflow.get(workflow, {}) if pod not in listed]:
            self._drop(pod)
        for arrival in waiting:
            entry = self._entries.get(arrival.pod)
            if entry is None:
                self._sequence += 1
                entry = WaitingPod(
                    workflow,
                    arrival.pod,
                    arrival.primitive,
                    arrival.downstream_seconds,
                    arrival.mean_seconds,
                    self._sequence,
                    constraints=arrival.constraints,
                )
            self._put(replace(entry, planned_node=arrival.planned_node))
        self._set_remaining(workflow, remaining_seconds)
        return sorted(self._by_workflow.get(workflow, {}).values(), key=self.key)

    def plan(self, pod: PodKey, node: str) -> None:
        """Node-queues: ``pod`` now waits in ``node``'s queue ("" takes it out of every node's queue)."""
        self._put(replace(self._entries[pod], planned_node=node))

    def started(self, pod: PodKey) -> None:
        """``pod`` was given its node: it leaves the queue and its work leaves its workflow's remaining work."""
        entry = self._entries.get(pod)
        if entry is not None:
            remaining = self._remaining[entry.workflow] - entry.mean_seconds
            self._drop(pod)
            self._set_remaining(entry.workflow, remaining)

    def discard(self, pod: PodKey) -> None:
        """``pod`` is gone (deleted)."""
        if pod in self._entries:
            self._drop(pod)

    def forget(self, workflow: WorkflowKey) -> None:
        """``workflow`` is finished or gone: none of its pods waits any more."""
        for pod in list(self._by_workflow.get(workflow, {})):
            self._drop(pod)

    # -- what the reconciles ask ------------------------------------------------------------------
    def key(self, entry: WaitingPod) -> tuple[float, float, int]:
        return self._keys[entry.pod]

    def __len__(self) -> int:
        return len(self._entries)

    def ahead_with_room(
        self,
        pod: PodKey,
        node: int,
        state: ClusterState,
        admits: Callable[[NodeConstraints], bool] = lambda _: True,
        room_elsewhere: Callable[[WaitingPod], bool] = lambda _: False,
    ) -> WaitingPod | None:
        """Late-binding: the pod of another workflow, ahead of ``pod`` in the queue, whose room on ``node``
        ``pod`` would take (the engine places the pods ahead first); None when ``pod`` may take it.

        The pods ahead that could run on ``node`` (``admits``: their own node constraints allow it there) and have
        room there but on no other node (``room_elsewhere``) take their share of the node's room in queue order;
        ``pod`` yields to the first of them when too little is left for it. Pods ahead with room elsewhere too
        are not counted: they are not short of room, and when they were, on a cluster with room for everyone each
        placement waited for the queue head's workflow to be reconciled first, one pod at a time."""
        own, spec, free = self._keys[pod], state.spec.nodes[node], _free(state, node)
        workflow = self._entries[pod].workflow
        needy = sorted(
            (
                e
                for e in self._entries.values()
                if _fits(e.primitive, free)
                and self._keys[e.pod] < own
                and e.workflow != workflow
                and feasible(e.primitive, spec)
                and admits(e.constraints)
                and not room_elsewhere(e)
            ),
            key=self.key,
        )
        taken, left = _taken(needy, node, state, lambda _: True, head_blocks=False)
        return taken[0] if taken and not _fits(self._entries[pod].primitive, left) else None

    def fitting(
        self, node: int, state: ClusterState, admits: Callable[[NodeConstraints], bool] = lambda _: True
    ) -> list[WaitingPod]:
        """Late-binding: the waiting pods, head first, that the room free on ``node`` now would take if each in
        turn were placed there (``admits``: its own node constraints allow it there), the others passed over:
        the pods whose workflows room freed there concerns."""
        spec, free = state.spec.nodes[node], _free(state, node)
        queue = sorted(
            (e for e in self._entries.values() if _fits(e.primitive, free) and feasible(e.primitive, spec)),
            key=self.key,
        )
        return _taken(queue, node, state, admits, head_blocks=False)[0]

    def ahead_on_node(self, pod: PodKey) -> int:
        """Node-queues: how many pods wait ahead of ``pod`` in its planned node's queue."""
        own = self._entries[pod]
        return sum(
            e.planned_node == own.planned_node and self._keys[e.pod] < self._keys[pod] for e in self._entries.values()
        )

    def admitted(self, node: int, state: ClusterState) -> list[WaitingPod]:
        """Node-queues: the pods planned for ``node`` that start now, head first: each fits in the room left by
        those before it; the first that does not fit keeps its place and stops the rest (the engine's rule)."""
        name = state.spec.nodes[node].name
        queue = sorted((e for e in self._entries.values() if e.planned_node == name), key=self.key)
        return _taken(queue, node, state, lambda _: True, head_blocks=True)[0]

    # -- internals --------------------------------------------------------------------------------
    def _put(self, entry: WaitingPod) -> None:
        self._entries[entry.pod] = entry
        self._by_workflow.setdefault(entry.workflow, {})[entry.pod] = entry

    def _drop(self, pod: PodKey) -> None:
        workflow = self._entries.pop(pod).workflow
        del self._keys[pod]
        own = self._by_workflow[workflow]
        del own[pod]
        if not own:
            del self._by_workflow[workflow]
            self._remaining.pop(workflow, None)  # known again from the workflow's next sync

    def _set_remaining(self, workflow: WorkflowKey, seconds: float) -> None:
        # SRPT-like priorities change as a workflow's primitives start: re-key its entries, as the engine re-sorts
        entries = list(self._by_workflow.get(workflow, {}).values())
        if not entries:
            self._remaining.pop(workflow, None)
            return
        self._remaining[workflow] = seconds
        for entry in entries:
            if self._rekeyed or entry.pod not in self._keys:  # a fixed priority's key, once made, stays
                self._keys[entry.pod] = queue_key(
                    self._priority, Waiting(entry.primitive, entry.downstream_seconds, seconds, entry.sequence)
                )


def _taken(
    queue: list[WaitingPod],
    node: int,
    state: ClusterState,
    admits: Callable[[NodeConstraints], bool],
    *,
    head_blocks: bool,
) -> tuple[list[WaitingPod], tuple[float, float, float]]:
    """The pods of ``queue`` (in its order) that ``node``'s free room takes one after another, each in the room
    the ones before it left (with ``head_blocks`` the first that does not fit stops the rest), and the room
    they leave."""
    free = _free(state, node)
    taken = []
    for entry in queue:
        request = (entry.primitive.cpu_millicores, entry.primitive.memory_bytes, entry.primitive.gpus)
        if request_fits(request, free) and admits(entry.constraints):
            free = (free[0] - request[0], free[1] - request[1], free[2] - request[2])
            taken.append(entry)
        elif head_blocks:
            break
    return taken, free


def _free(state: ClusterState, node: int) -> tuple[float, float, float]:
    """``node``'s free (cpu, memory, gpus), as plain floats: read once per scan of the queue, not once per pod."""
    return float(state.free_cpu[node]), float(state.free_memory[node]), float(state.free_gpus[node])


def _fits(primitive: Primitive, free: tuple[float, float, float]) -> bool:
    """``room_now`` for one node whose free resources are ``free``."""
    return request_fits((primitive.cpu_millicores, primitive.memory_bytes, primitive.gpus), free)
