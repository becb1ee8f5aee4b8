"""Discrete-event engine: workflows arrive, ready primitives get a node, nodes run them by the fit rule.

Ready primitives wait in one cluster-wide queue in the scheduler's priority order; the scheduler is
asked for a node whenever the first of them that some node may take (``placement.candidates`` under the
placement rule) can be given one: under ``late-binding`` a node with its requests free now, under
``node-queues`` any node that can run it, where it waits for room behind those planned before it. A
started primitive pays transfer, cold start and its true (sampled) duration. ``reward_since_last`` is
minus the integral of the number of unfinished arrived workflows over time, so an episode's return is
minus the total response time.
"""

from __future__ import annotations

import copy
import heapq
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from .cluster import ClusterSpec
from .estimates import WorkflowEstimates, workflows_estimates
from .features import Observation
from .node_model import DURATION_LOG_MEAN, DURATION_SIGMA, cold_start_seconds, duration_factor, transfer_seconds
from .placement import (
    DEFAULT_RULE,
    PlacementRule,
    Waiting,
    candidates,
    is_fixed,
    parse_rule,
    queue_key,
    request_fits,
    room_now,
    upward_rank,
)
from .primitives import KIND_INDEX
from .schedulers import Scheduler
from .state import ClusterState, dominant_share
from .workflow import Primitive, Workflow, validate

_ARRIVAL, _FINISH = 0, 1
_NORMAL = NormalDist()


@dataclass
class Placement:
    workflow: str
    primitive: str
    node: str
    ready: float
    start: float
    finish: float


@dataclass
class SimulationResult:
    avg_response_time: float
    p50_response_time: float
    p95_response_time: float
    p99_response_time: float
    avg_primitive_response_time: float
    completed_primitives: int
    completed_workflows: int
    throughput: float
    utilisation: float
    node_utilisation: list[float]
    avg_slowdown: float
    placements: list[Placement] = field(default_factory=list, repr=False)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data.pop("placements")
        return data


# where a task stands in the engine's queues
_UNREADY, _QUEUED, _BLOCKED, _PLANNED, _STARTED = range(5)


@dataclass(slots=True)
class _Task:
    """One primitive of one workflow, with the engine's bookkeeping."""

    workflow: int
    index: int
    primitive: Primitive
    parents: list[int]
    children: list[int]
    estimated_seconds: np.ndarray  # [N] estimated duration per node (inf where it cannot run)
    raw_estimate: np.ndarray  # [N] the node model's estimate, as Observation.estimated_duration computes it
    mask: np.ndarray  # [N] nodes that can ever run it (same rule as Observation.mask)
    # [N] standard normal draws fixing the true duration on each node (node_model.duration_factor); None: the
    # engine is not stochastic (true = estimated)
    duration_normal: np.ndarray | None
    downstream_seconds: float = 0.0
    mean_seconds: float = 0.0  # the estimate averaged over the nodes that can run it (SRPT's work)
    missing_parents: int = 0
    status: int = _UNREADY
    sequence: int = 0  # when it joined the cluster-wide queue
    key: tuple[float, float, int] = (0.0, 0.0, 0)  # its place in the queue (placement.queue_key), kept current
    node: int = -1
    ready: float = 0.0
    start: float = 0.0
    setup: float = 0.0  # transfer + cold start paid before it runs
    estimated_finish: float = 0.0
    finished: bool = False

    def copy(self) -> _Task:
        return _Task(
            self.workflow,
            self.index,
            self.primitive,
            self.parents,
            self.children,
            self.estimated_seconds,
            self.raw_estimate,
            self.mask,
            self.duration_normal,
            self.downstream_seconds,
            self.mean_seconds,
            self.missing_parents,
            self.status,
            self.sequence,
            self.key,
            self.node,
            self.ready,
            self.start,
            self.setup,
            self.estimated_finish,
            self.finished,
        )


def _key_of(task: _Task) -> tuple[float, float, int]:
    return task.key


class Engine:
    def __init__(
        self,
        cluster: ClusterSpec,
        workflows: list[Workflow],
        seed: int,
        horizon: float | None = None,
        stochastic: bool = True,
        priority: Callable[[Waiting], float] | None = None,
        rule: PlacementRule = DEFAULT_RULE,
    ):
        self.cluster, self.seed, self.horizon, self.stochastic = cluster, seed, horizon, stochastic
        self.rule = parse_rule(rule)
        self.state = ClusterState(cluster)
        # validation asks whether some node fits each request: one node of each shape answers that
        shapes = list({(n.cpu_millicores, n.memory_bytes, n.gpus): n for n in cluster.nodes}.values())
        self.workflows = [validate(w, shapes) for w in workflows]
        # order of the cluster-wide queue: the scheduler's, else upward rank (HEFT)
        self.priority = priority or upward_rank
        self._rekeyed = not is_fixed(self.priority)  # a fixed priority's keys never change while they wait
        self.now = 0.0
        self._events: list[tuple[float, int, int, int, int]] = []
        self._sequence = 0
        # the cluster-wide queue: a heap of (key, task); an entry whose task has left the queue or got a new key
        # since is stale and skipped when it comes up
        self._queue: list[tuple[tuple[float, float, int], _Task]] = []
        # queued tasks that no node can take now: they rejoin the heap when room frees on a node they fit
        # (room grows only when a primitive finishes), so a full cluster is not rescanned at every decision
        self._blocked: list[_Task] = []
        self._pending: _Task | None = None  # the primitive the current decision is for: the head of the heap
        self._pending_candidates = np.zeros(0, dtype=bool)
        self._pending_room = np.zeros(0, dtype=bool)  # placement.room_now of the pending primitive
        # per request shape (cpu, memory, gpus) seen, [N] placement.room_now of it, kept current node by node as
        # primitives start and finish (a handful of shapes: one per kind unless requests are set by hand). An
        # array is replaced, never written, when a node's bit flips: observations and forks may hold it.
        self._room: dict[tuple[int, int, int], np.ndarray] = {}
        # [N] Observation.node_load, kept current node by node the same way (state.dominant_share per node); once
        # an observation or a fork holds it, the next change writes a copy
        s = self.state
        self._load = (
            dominant_share(
                s.free_cpu, s.alloc_cpu, s.free_memory, s.alloc_memory, s.free_gpus, s.gpu_divisor, s.gpu_weight
            )
            + s.queue_length
        )
        self._load_shared = False
        # per node, dominant_share's fixed operands as Python floats (shared by forks)
        self._allocatable = list(
            zip(
                s.alloc_cpu.tolist(),
                s.alloc_memory.tolist(),
                s.gpu_divisor.tolist(),
                s.gpu_weight.tolist(),
                strict=True,
            )
        )
        # per node, only where there are any (a fork copies these, so it costs what is busy, not N):
        self._queues: dict[int, list[_Task]] = {}  # node-queues rule: the primitives planned there
        self._running_finish: dict[int, list[float]] = {}  # estimated finishes of those running there
        # resource-seconds used per node, columns cpu, memory, gpu: utilisation is the dominant resource's share
        self._used = [0.0] * (3 * len(cluster.nodes))  # flat: node i at 3i..3i+2 (Python floats: cheap to add to)
        self._tasks: list[list[_Task]] = []
        self._remaining: list[int] = []
        self._unstarted_seconds: list[float] = []  # per workflow: mean estimated work not started yet
        self._response: dict[int, float] = {}
        self._in_flight: set[int] = set()  # arrived, not finished: the workflows whose tasks change
        self._borrowed: set[int] = set()  # not arrived yet; their tasks are shared with a fork: copy on arrival
        self._lower_bound: list[float] = []
        # (workflow, primitive, node, ready, start, finish) per finished primitive; Placement objects in result()
        self._placements: list[tuple[int, int, int, float, float, float]] = []
        self._unfinished = 0
        self._cost = 0.0
        self._completed_primitives = 0
        for w, (workflow, estimates) in enumerate(
            zip(self.workflows, workflows_estimates(self.workflows, self.state), strict=True)
        ):
            self._prepare(w, workflow, estimates)
            self._push(workflow.arrival_time, _ARRIVAL, w, -1)

    # -- setup ---------------------------------------------------------------------------------
    def _prepare(self, w: int, workflow: Workflow, est: WorkflowEstimates) -> None:
        normals = self._duration_normals(w, len(workflow.primitives))
        # rows by iterating the [P, N] arrays (views made in C, cheaper than indexing each)
        tasks = [
            _Task(w, i, p, parents, [], estimated, raw, feasible, normal, downstream, mean, len(parents))
            for i, (p, parents, estimated, raw, feasible, normal, downstream, mean) in enumerate(
                zip(
                    workflow.primitives,
                    est.parents,
                    est.estimates,
                    est.raw,
                    est.feasible,
                    [None] * len(workflow.primitives) if normals is None else normals,
                    est.downstream,
                    est.mean,
                    strict=True,
                )
            )
        ]
        for task in tasks:
            for parent in task.parents:
                tasks[parent].children.append(task.index)
        self._tasks.append(tasks)
        self._remaining.append(len(tasks))
        self._unstarted_seconds.append(float(sum(est.mean)))
        self._lower_bound.append(est.lower_bound_seconds)

    def _push(self, time: float, kind: int, workflow: int, task: int) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (time, self._sequence, kind, workflow, task))

    def true_durations(self) -> list[np.ndarray]:
        """Per workflow, [P, N] the seconds each primitive would really run on each node (inf where it
        cannot): what a clairvoyant scheduler would know (transfers and cold starts come on top)."""
        return [np.array([t.estimated_seconds * self._factors(t) for t in tasks]) for tasks in self._tasks]

    @staticmethod
    def _factors(task: _Task) -> np.ndarray:
        """[N] true duration / estimate on each node (exactly the factors _start applies)."""
        if task.duration_normal is None:
            return np.ones(len(task.estimated_seconds))
        return np.array([duration_factor(z) for z in task.duration_normal.tolist()])

    # -- the loop ------------------------------------------------------------------------------
    def _advance(self, time: float) -> None:
        self._cost += self._unfinished * (time - self.now)
        self.now = time

    def next_decision(self) -> Observation | None:
        """Run events until a waiting primitive can be given a node under the rule; None when every
        workflow is done (or at the horizon)."""
        while True:
            if (task := self._next_placeable()) is not None:
                self._pending = task
                return self._observation(task)
            if not self._events or (self.horizon is not None and self._events[0][0] > self.horizon):
                if self.horizon is not None and self.now < self.horizon and self._unfinished:
                    self._advance(self.horizon)
                return None
            time = self._events[0][0]
            self._advance(time)
            while self._events and self._events[0][0] == time:
                _, _, kind, w, i = heapq.heappop(self._events)
                if kind == _ARRIVAL:
                    if w in self._borrowed:
                        self._borrowed.discard(w)
                        self._tasks[w] = [t.copy() for t in self._tasks[w]]
                    self._unfinished += 1
                    self._in_flight.add(w)
                    for task in self._tasks[w]:
                        if not task.parents:
                            self._enqueue(task)
                else:
                    for task in self._finish(self._tasks[w][i]):
                        self._enqueue(task)

    def _enqueue(self, task: _Task) -> None:
        task.ready = self.now
        self._sequence += 1
        task.sequence = self._sequence
        task.status = _QUEUED
        task.key = self._queue_key(task)
        heapq.heappush(self._queue, (task.key, task))

    def _queue_key(self, task: _Task) -> tuple[float, float, int]:
        return queue_key(
            self.priority,
            Waiting(task.primitive, task.downstream_seconds, self._unstarted_seconds[task.workflow], task.sequence),
        )

    def _rekey(self, w: int) -> None:
        """New queue keys for the waiting primitives of workflow ``w``: its work not started yet just changed,
        and SRPT-like priorities depend on it. Entries under the old key go stale."""
        for task in self._tasks[w]:
            if task.status in (_QUEUED, _BLOCKED, _PLANNED) and (key := self._queue_key(task)) != task.key:
                task.key = key
                if task.status == _QUEUED:
                    heapq.heappush(self._queue, (key, task))

    def _next_placeable(self) -> _Task | None:
        """The first primitive of the queue, in priority order, that some node may take now (left at the head of
        the heap); those before it that no node may take are set aside as blocked."""
        queue = self._queue
        while queue:
            key, task = queue[0]
            if task.status != _QUEUED or task.key is not key:
                heapq.heappop(queue)
                continue
            room = self._room_for(task.primitive)
            allowed = candidates(task.primitive, self.state, task.mask, self.rule, room=room)
            if np.count_nonzero(allowed):
                self._pending_candidates, self._pending_room = allowed, room
                return task
            heapq.heappop(queue)
            task.status = _BLOCKED
            self._blocked.append(task)
        return None

    def _unblock(self, node: int) -> None:
        """Room just grew on ``node``: blocked primitives that fit there now rejoin the queue."""
        still = []
        for task in self._blocked:
            if task.mask.item(node) and self._fits(task, node):
                task.status = _QUEUED
                heapq.heappush(self._queue, (task.key, task))
            else:
                still.append(task)
        self._blocked = still

    def _observation(self, task: _Task) -> Observation:
        tasks = self._tasks[task.workflow]
        parent_outputs = [(tasks[p].node, tasks[p].primitive.output_megabytes) for p in task.parents]
        observation = Observation(
            now=self.now,
            primitive=task.primitive,
            state=self.state,
            parent_outputs=parent_outputs,
            downstream_seconds=task.downstream_seconds,
            workflow_elapsed=self.now - self.workflows[task.workflow].arrival_time,
            rule=self.rule,
            fork=self.fork,
        )
        # prime the lazy fields the engine already computed once per primitive (hot loop)
        observation.__dict__["estimated_duration"] = task.raw_estimate
        observation.__dict__["mask"] = task.mask
        observation.__dict__["candidates"] = self._pending_candidates
        observation.__dict__["room"] = self._pending_room
        observation.__dict__["node_load"] = self._load
        self._load_shared = True
        if self.rule is PlacementRule.LATE_BINDING:  # no node queues: where it has room is where it starts now
            observation.__dict__["fits_now"] = self._pending_room
        return observation

    def apply(self, node: int) -> None:
        """Give the pending primitive ``node``: it starts now if it fits there and nobody is planned ahead
        of it; otherwise (node-queues rule only) it waits in that node's queue."""
        task = self._pending
        if task is None:
            raise RuntimeError("apply() without a pending decision: call next_decision() first")
        if not (0 <= node < self.state.num_nodes) or not self._pending_candidates[node]:
            raise ValueError(
                f"node {node} is not a candidate for primitive {task.primitive.name!r} under "
                f"the {self.rule.value} rule (use observation.candidates)"
            )
        self._pending = None
        heapq.heappop(self._queue)  # the pending task, still at the head
        task.node = node
        # late binding: a candidate has room now (and there are no node queues)
        if node not in self._queues and (self.rule is PlacementRule.LATE_BINDING or self._fits(task, node)):
            self._start(task)
        else:
            task.status = _PLANNED
            self._queues.setdefault(node, []).append(task)
            s = self.state
            s.queue_length[node] = s.queue_length.item(node) + 1
            s.queued_seconds[node] = s.queued_seconds.item(node) + task.estimated_seconds.item(node)
            self._node_changed(node)

    # Scalar reads and writes of the state's arrays below go through .item(): Python floats, not numpy scalars,
    # whose arithmetic costs several times as much (the same IEEE operations either way).
    def _fits(self, task: _Task, node: int) -> bool:
        return bool(self._room_for(task.primitive).item(node))

    def _room_for(self, primitive: Primitive) -> np.ndarray:
        shape = (primitive.cpu_millicores, primitive.memory_bytes, primitive.gpus)
        room = self._room.get(shape)
        if room is None:
            room = self._room[shape] = room_now(primitive, self.state)
        return room

    def _node_changed(self, node: int, free: tuple[float, float, float] | None = None) -> None:
        """The free resources or the queue of ``node`` just changed: its load and (given its new ``free`` cpu,
        memory and GPUs, which the caller has just written) its bit in every cached room array follow."""
        s = self.state
        room_changed = free is not None
        if free is None:
            free = (s.free_cpu.item(node), s.free_memory.item(node), s.free_gpus.item(node))
        if self._load_shared:
            self._load, self._load_shared = self._load.copy(), False
        cpu, memory, gpu_divisor, gpu_weight = self._allocatable[node]
        self._load[node] = dominant_share(
            free[0], cpu, free[1], memory, free[2], gpu_divisor, gpu_weight, larger=max
        ) + s.queue_length.item(node)
        if not room_changed:
            return
        for shape, room in self._room.items():
            if (fits := request_fits(shape, free)) != room.item(node):
                room = self._room[shape] = room.copy()
                room[node] = fits

    def _start(self, task: _Task) -> None:
        p, s, node, w = task.primitive, self.state, task.node, task.workflow
        task.status = _STARTED
        self._unstarted_seconds[w] -= task.mean_seconds
        if self._rekeyed:
            self._rekey(w)
        free = (
            s.free_cpu.item(node) - p.cpu_millicores,
            s.free_memory.item(node) - p.memory_bytes,
            s.free_gpus.item(node) - p.gpus,
        )
        s.free_cpu[node], s.free_memory[node], s.free_gpus[node] = free
        s.running[node] = s.running.item(node) + 1
        self._node_changed(node, free)
        transfer = 0.0
        tasks = self._tasks[w]
        for parent in task.parents:
            source = tasks[parent].node
            megabytes = tasks[parent].primitive.output_megabytes
            if source != node and megabytes > 0:
                transfer = max(
                    transfer,
                    float(transfer_seconds(megabytes, s.bandwidth_gbps.item(source), s.bandwidth_gbps.item(node))),
                )
        kind = KIND_INDEX[p.kind]
        cold = 0.0
        if not s.warm.item(node, kind):
            cold = cold_start_seconds(p.kind)
            s.warm[node, kind] = True
        estimate = task.estimated_seconds.item(node)
        normal = task.duration_normal
        duration = estimate if normal is None else estimate * duration_factor(normal.item(node))
        now = self.now
        task.start, task.setup = now, transfer + cold
        finish = now + transfer + cold + duration
        task.estimated_finish = now + transfer + cold + estimate
        finishes = self._running_finish.setdefault(node, [])
        finishes.append(task.estimated_finish)
        s.next_release[node] = min(finishes)
        used, seconds, column = self._used, finish - now, 3 * node
        used[column] += seconds * p.cpu_millicores
        used[column + 1] += seconds * p.memory_bytes
        used[column + 2] += seconds * p.gpus
        self._push(finish, _FINISH, w, task.index)

    def _duration_normals(self, w: int, count: int) -> np.ndarray | None:
        """[primitives, N] the standard normals of mean-one lognormal factors drawn from (seed, workflow) only:
        the same true durations for the same placement whatever order decisions come in, so policies compare
        fairly."""
        if not self.stochastic:
            return None
        return np.random.default_rng([self.seed, w]).standard_normal(size=(count, self.state.num_nodes))

    def _finish(self, task: _Task) -> list[_Task]:
        p, s, node, w = task.primitive, self.state, task.node, task.workflow
        free = (
            s.free_cpu.item(node) + p.cpu_millicores,
            s.free_memory.item(node) + p.memory_bytes,
            s.free_gpus.item(node) + p.gpus,
        )
        s.free_cpu[node], s.free_memory[node], s.free_gpus[node] = free
        s.running[node] = s.running.item(node) - 1
        self._node_changed(node, free)
        finishes = self._running_finish[node]
        finishes.remove(task.estimated_finish)
        if finishes:
            s.next_release[node] = min(finishes)
        else:
            del self._running_finish[node]
            s.next_release[node] = math.inf
        self._completed_primitives += 1
        task.finished = True
        self._placements.append((w, task.index, node, task.ready, task.start, self.now))
        self._start_planned(node)
        if self._blocked:
            self._unblock(node)
        self._remaining[w] -= 1
        if self._remaining[w] == 0:
            self._unfinished -= 1
            self._in_flight.discard(w)
            self._response[w] = self.now - self.workflows[w].arrival_time
        ready = []
        tasks = self._tasks[w]
        for child in task.children:
            child_task = tasks[child]
            child_task.missing_parents -= 1
            if child_task.missing_parents == 0:
                ready.append(child_task)
        return ready

    def _start_planned(self, node: int) -> None:
        """Start the primitives planned for ``node`` in queue order while the head fits (the head keeps its
        reservation: nothing behind it jumps ahead)."""
        queue = self._queues.get(node)
        if queue is None:
            return
        queue.sort(key=_key_of)
        s = self.state
        while queue and self._fits(queue[0], node):
            head = queue.pop(0)
            s.queue_length[node] = s.queue_length.item(node) - 1
            s.queued_seconds[node] = max(s.queued_seconds.item(node) - head.estimated_seconds.item(node), 0.0)
            self._node_changed(node)
            self._start(head)
        if not queue:
            del self._queues[node]

    def reward_since_last(self) -> float:
        reward, self._cost = -self._cost, 0.0
        return reward

    # -- what-if copies (rollouts) -----------------------------------------------------------------
    def fork(self, future_seed: int | None = None, arrivals: int = 0) -> Engine:
        """An independent copy at this very point, a pending decision included, far cheaper than a deepcopy.

        Only what changes is copied: the live state's dynamic arrays, the event heap and queues, and the
        unfinished tasks of the workflows in flight. Finished tasks are shared; workflows still to arrive are
        shared until they arrive and copied then, by whichever engine gets there first.

        ``future_seed`` None: the copy has this engine's future (true durations, arrivals), so it replays to
        exactly this engine's results. A number: the copy keeps only what a scheduler can know now (see
        ``_forget_future``), with the unknowns drawn by that number, ``arrivals`` workflows to come among them:
        the same number gives the same draws whatever is decided next (common random numbers between the
        candidates of one decision).
        """
        if not self._unfinished and not self._events:
            raise RuntimeError("cannot fork a finished engine: every workflow is done (fork before the end)")
        if arrivals and future_seed is None:
            raise ValueError("sampled arrivals need a future_seed: the true future has its own arrivals")
        clone = copy.copy(self)  # shares the fixed parts: cluster, workflows, priority, rule, bounds
        clone.state = self.state.copy()
        clone._events = list(self._events)
        clone._used = list(self._used)
        clone._room = dict(self._room)  # the arrays are replaced, never written
        self._load_shared = clone._load_shared = True
        clone._running_finish = {node: list(finishes) for node, finishes in self._running_finish.items()}
        clone._remaining = list(self._remaining)
        clone._unstarted_seconds = list(self._unstarted_seconds)
        clone._response = dict(self._response)
        clone._placements = list(self._placements)
        clone._in_flight = set(self._in_flight)
        clone._tasks = tasks = list(self._tasks)
        for w in self._in_flight:  # finished tasks never change again: shared
            tasks[w] = [task if task.finished else task.copy() for task in self._tasks[w]]
        # the live entries only (stale ones may name tasks of finished workflows): the pending task stays the head;
        # a task's copy is found by its (workflow, index)
        clone._queue = [
            (key, tasks[task.workflow][task.index])
            for key, task in self._queue
            if task.status == _QUEUED and task.key is key
        ]
        heapq.heapify(clone._queue)
        clone._blocked = [tasks[task.workflow][task.index] for task in self._blocked]
        clone._queues = {
            node: [tasks[task.workflow][task.index] for task in queue] for node, queue in self._queues.items()
        }
        pending = self._pending
        clone._pending = tasks[pending.workflow][pending.index] if pending is not None else None
        self._borrowed = {w for _, _, kind, w, _ in self._events if kind == _ARRIVAL}
        clone._borrowed = set(self._borrowed)
        if future_seed is not None:
            clone._forget_future(np.random.default_rng([self.seed, future_seed]), arrivals)
        return clone

    def _forget_future(self, rng: np.random.Generator, arrivals: int) -> None:
        """Replace what no scheduler knows by draws from the engine's own noise model: one fresh duration factor
        per primitive in flight (running ones from the tail beyond what they have run, ending no earlier than
        now), and instead of the true arrivals to come, ``arrivals`` sampled ones (``_sample_arrivals``)."""
        finishes = []
        for _, sequence, kind, w, i in self._events:
            if kind == _ARRIVAL:
                continue
            task = self._tasks[w][i]
            estimate = float(task.estimated_seconds[task.node])
            ran = self.now - task.start - task.setup  # seconds of its true duration already behind it
            factor = _factor_beyond(ran / estimate, rng) if self.stochastic else 1.0
            finishes.append((max(task.start + task.setup + estimate * factor, self.now), sequence, kind, w, i))
        heapq.heapify(finishes)
        self._events, self._borrowed = finishes, set()
        n = self.state.num_nodes
        for w in sorted(self._in_flight) if self.stochastic else ():  # sorted: draws independent of set order
            tasks = self._tasks[w]
            # one draw per primitive, whatever its node: each node's duration keeps the model's distribution, and
            # two rollouts that place it differently still share its luck (what makes their costs comparable)
            normals = rng.standard_normal(size=len(tasks))
            # each row the task's one draw at every node, all rows made by one call (np.full per task cost 4 %)
            for task, row in zip(tasks, np.repeat(normals[:, None], n, axis=1), strict=True):
                if task.status != _STARTED:
                    task.duration_normal = row
        if arrivals:
            self._sample_arrivals(rng, arrivals)

    def _sample_arrivals(self, rng: np.random.Generator, count: int) -> None:
        """``count`` arrivals as the past suggests: a Poisson process at the rate seen so far, each a copy of a
        workflow that has arrived, drawn uniformly (its shape, tokens and estimates; fresh true durations)."""
        arrived = sorted(self._in_flight | set(self._response))
        if len(arrived) < 2:
            return  # no rate to go by yet
        times = [self.workflows[w].arrival_time for w in arrived]
        rate = (len(arrived) - 1) / max(max(times) - min(times), 1e-9)
        self.workflows, self._lower_bound = list(self.workflows), list(self._lower_bound)
        self._tasks, self._remaining = list(self._tasks), list(self._remaining)
        self._unstarted_seconds = list(self._unstarted_seconds)
        n, when = self.state.num_nodes, self.now
        for template in rng.choice(arrived, size=count):
            when += float(rng.exponential(1.0 / rate))
            source = self.workflows[template]
            w = len(self.workflows)
            self.workflows.append(Workflow(f"{source.name}~{w}", source.primitives, arrival_time=when))
            normals = rng.standard_normal(size=len(source.primitives))
            rows = np.repeat(normals[:, None], n, axis=1)  # as in _forget_future
            tasks = [
                _Task(
                    w,
                    t.index,
                    t.primitive,
                    t.parents,
                    t.children,
                    t.estimated_seconds,
                    t.raw_estimate,
                    t.mask,
                    row if self.stochastic else None,
                    t.downstream_seconds,
                    t.mean_seconds,
                    len(t.parents),
                )
                for t, row in zip(self._tasks[template], rows, strict=True)
            ]
            self._tasks.append(tasks)
            self._remaining.append(len(tasks))
            self._unstarted_seconds.append(float(sum(t.mean_seconds for t in tasks)))
            self._lower_bound.append(self._lower_bound[template])
            self._push(when, _ARRIVAL, w, -1)

    def estimated_remaining_response(self) -> float:
        """Summed over the workflows in flight, the estimated seconds until each could finish if nothing waited
        again: its longest chain of unfinished primitives, running ones by their estimated finish and the
        others by their mean estimate. A rollout's value of the state it stops in."""
        total = 0.0
        for w in self._in_flight:
            longest = 0.0
            for task in self._tasks[w]:
                if task.finished:
                    continue
                own = max(task.estimated_finish - self.now, 0.0) if task.status == _STARTED else task.mean_seconds
                longest = max(longest, own + task.downstream_seconds)
            total += longest
        return total

    def result(self) -> SimulationResult:
        times = np.array(list(self._response.values())) if self._response else np.zeros(1)
        slowdown = [self._response[w] / max(self._lower_bound[w], 1e-9) for w in self._response]
        placements = [
            Placement(
                self.workflows[w].name,
                self.workflows[w].primitives[i].name,
                self.cluster.nodes[node].name,
                ready,
                start,
                finish,
            )
            for w, i, node, ready, start, finish in self._placements
        ]
        primitive_times = [pl.finish - pl.ready for pl in placements]
        elapsed = max(self.now, 1e-9)
        s = self.state
        capacity = np.stack([s.alloc_cpu, s.alloc_memory, s.alloc_gpus], axis=1).astype(float) * elapsed
        used = np.array(self._used).reshape(-1, 3)
        shares = np.divide(used, capacity, out=np.zeros_like(used), where=capacity > 0)
        node_utilisation = shares.max(axis=1).tolist()
        return SimulationResult(
            avg_response_time=float(times.mean()),
            p50_response_time=float(np.percentile(times, 50)),
            p95_response_time=float(np.percentile(times, 95)),
            p99_response_time=float(np.percentile(times, 99)),
            avg_primitive_response_time=float(np.mean(primitive_times)) if primitive_times else 0.0,
            completed_primitives=self._completed_primitives,
            completed_workflows=len(self._response),
            throughput=len(self._response) / elapsed,
            utilisation=float(np.mean(node_utilisation)),
            node_utilisation=node_utilisation,
            avg_slowdown=float(np.mean(slowdown)) if slowdown else 0.0,
            placements=placements,
        )


def _factor_beyond(low: float, rng: np.random.Generator) -> float:
    """A duration factor drawn from the engine's lognormal given that it exceeds ``low`` (a running primitive's
    share of its estimate already run): by inverse transform from the upper tail."""
    floor = _NORMAL.cdf((math.log(low) - DURATION_LOG_MEAN) / DURATION_SIGMA) if low > 0 else 0.0
    tail = floor + (1.0 - floor) * float(rng.random())
    return math.exp(DURATION_LOG_MEAN + DURATION_SIGMA * _NORMAL.inv_cdf(min(max(tail, 1e-12), 1.0 - 1e-12)))


def simulate(
    cluster: ClusterSpec,
    workflows: list[Workflow],
    scheduler: Scheduler,
    seed: int,
    horizon: float | None = None,
    rule: PlacementRule = DEFAULT_RULE,
) -> SimulationResult:
    engine = Engine(cluster, workflows, seed, horizon, priority=scheduler.priority, rule=rule)
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
    return engine.result()
