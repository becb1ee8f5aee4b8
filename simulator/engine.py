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
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from statistics import NormalDist

import numpy as np

from .cluster import ClusterSpec
from .estimates import workflow_estimates
from .features import Observation
from .node_model import DURATION_SIGMA, cold_start_seconds, transfer_seconds
from .placement import DEFAULT_RULE, PlacementRule, Waiting, candidates, parse_rule, queue_key
from .primitives import KIND_INDEX
from .schedulers import Scheduler
from .state import ClusterState
from .workflow import Workflow, validate

_ARRIVAL, _FINISH = 0, 1
_LOG_MEAN = -0.5 * DURATION_SIGMA**2  # of the duration factor's logarithm: the factor's mean is one
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


@dataclass
class _Task:
    """One primitive of one workflow, with the engine's bookkeeping."""

    workflow: int
    index: int
    parents: list[int]
    children: list[int]
    estimated_seconds: np.ndarray  # [N] estimated duration per node (inf where it cannot run)
    raw_estimate: np.ndarray  # [N] the node model's estimate, as Observation.estimated_duration computes it
    mask: np.ndarray  # [N] nodes that can ever run it (same rule as Observation.mask)
    duration_factor: np.ndarray  # [N] true duration / estimate if placed on each node
    downstream_seconds: float = 0.0
    mean_seconds: float = 0.0  # the estimate averaged over the nodes that can run it (SRPT's work)
    missing_parents: int = 0
    sequence: int = 0  # when it joined the cluster-wide queue
    node: int = -1
    ready: float = 0.0
    start: float = 0.0
    setup: float = 0.0  # transfer + cold start paid before it runs
    estimated_finish: float = 0.0
    started: bool = False
    finished: bool = False


class Engine:
    def __init__(self, cluster: ClusterSpec, workflows: list[Workflow], seed: int, horizon: float | None = None,
                 stochastic: bool = True, priority: Callable[[Waiting], float] | None = None,
                 rule: PlacementRule = DEFAULT_RULE):
        self.cluster, self.seed, self.horizon, self.stochastic = cluster, seed, horizon, stochastic
        self.rule = parse_rule(rule)
        self.state = ClusterState(cluster)
        self.workflows = [validate(w, cluster.nodes) for w in workflows]
        # order of the cluster-wide queue: the scheduler's, else upward rank (HEFT)
        self.priority = priority or (lambda waiting: waiting.downstream_seconds)
        self.now = 0.0
        self._events: list[tuple[float, int, int, int, int]] = []
        self._sequence = 0
        self._ready: list[_Task] = []  # the cluster-wide queue, unordered (ordered when dispatching)
        self._pending: _Task | None = None  # the primitive the current decision is for
        self._pending_candidates = np.zeros(0, dtype=bool)
        self._dispatchable = False  # room or queue changed since the queue was last found stuck
        self._queues: list[list[_Task]] = [[] for _ in cluster.nodes]  # node-queues rule: planned per node
        self._running_finish: list[list[float]] = [[] for _ in cluster.nodes]
        # resource-seconds used per node, columns cpu, memory, gpu: utilisation is the dominant resource's share
        self._used = np.zeros((len(cluster.nodes), 3))
        self._tasks: list[list[_Task]] = []
        self._remaining: list[int] = []
        self._unstarted_seconds: list[float] = []  # per workflow: mean estimated work not started yet
        self._response: dict[int, float] = {}
        self._in_flight: set[int] = set()  # arrived, not finished: the workflows whose tasks change
        self._borrowed: set[int] = set()  # not arrived yet; their tasks are shared with a fork: copy on arrival
        self._lower_bound: list[float] = []
        self._placements: list[Placement] = []
        self._unfinished = 0
        self._cost = 0.0
        self._completed_primitives = 0
        for w, workflow in enumerate(self.workflows):
            self._prepare(w, workflow)
            self._push(workflow.arrival_time, _ARRIVAL, w, -1)

    # -- setup ---------------------------------------------------------------------------------
    def _prepare(self, w: int, workflow: Workflow) -> None:
        index = {p.name: i for i, p in enumerate(workflow.primitives)}
        factors = self._duration_factors(w, len(workflow.primitives))
        est = workflow_estimates(workflow, self.state)
        tasks = []
        for i, p in enumerate(workflow.primitives):
            parents = [index[name] for name in dict.fromkeys(p.depends_on)]
            tasks.append(_Task(w, i, parents, [], est.estimates[i], est.raw[i], est.feasible[i], factors[i],
                               downstream_seconds=est.downstream[i], mean_seconds=est.mean[i],
                               missing_parents=len(parents)))
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
        return [np.array([t.estimated_seconds * t.duration_factor for t in tasks]) for tasks in self._tasks]

    # -- the loop ------------------------------------------------------------------------------
    def _advance(self, time: float) -> None:
        self._cost += self._unfinished * (time - self.now)
        self.now = time

    def next_decision(self) -> Observation | None:
        """Run events until a waiting primitive can be given a node under the rule; None when every
        workflow is done (or at the horizon)."""
        while True:
            if self._dispatchable and (task := self._next_placeable()) is not None:
                self._pending = task
                return self._observation(task)
            self._dispatchable = False
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
                        self._tasks[w] = [copy.copy(t) for t in self._tasks[w]]
                    self._unfinished += 1
                    self._in_flight.add(w)
                    self._enqueue(t for t in self._tasks[w] if not t.parents)
                else:
                    self._enqueue(self._finish(self._tasks[w][i]))
            self._dispatchable = True

    def _enqueue(self, tasks: Iterable[_Task]) -> None:
        for task in tasks:
            task.ready = self.now
            self._sequence += 1
            task.sequence = self._sequence
            self._ready.append(task)

    def _queue_key(self, task: _Task) -> tuple[float, float, int]:
        # re-derived at every sort: SRPT-like priorities change as the workflow's other primitives start
        return queue_key(self.priority, Waiting(self._primitive(task), task.downstream_seconds,
                                                self._unstarted_seconds[task.workflow], task.sequence))

    def _next_placeable(self) -> _Task | None:
        """The first primitive of the queue, in priority order, that some node may take now."""
        self._ready.sort(key=self._queue_key)
        for task in self._ready:
            allowed = candidates(self._primitive(task), self.state, task.mask, self.rule)
            if allowed.any():
                self._pending_candidates = allowed
                return task
        return None

    def _primitive(self, task: _Task):  # noqa: ANN202
        return self.workflows[task.workflow].primitives[task.index]

    def _observation(self, task: _Task) -> Observation:
        workflow = self.workflows[task.workflow]
        parent_outputs = [
            (self._tasks[task.workflow][p].node, workflow.primitives[p].output_megabytes) for p in task.parents
        ]
        observation = Observation(
            now=self.now, primitive=self._primitive(task), state=self.state, parent_outputs=parent_outputs,
            downstream_seconds=task.downstream_seconds, workflow_elapsed=self.now - workflow.arrival_time,
            rule=self.rule, fork=self.fork,
        )
        # prime the lazy fields the engine already computed once per primitive (hot loop)
        observation.__dict__["estimated_duration"] = task.raw_estimate
        observation.__dict__["mask"] = task.mask
        observation.__dict__["candidates"] = self._pending_candidates
        return observation

    def apply(self, node: int) -> None:
        """Give the pending primitive ``node``: it starts now if it fits there and nobody is planned ahead
        of it; otherwise (node-queues rule only) it waits in that node's queue."""
        task = self._pending
        if task is None:
            raise RuntimeError("apply() without a pending decision: call next_decision() first")
        if not (0 <= node < self.state.num_nodes) or not self._pending_candidates[node]:
            raise ValueError(f"node {node} is not a candidate for primitive {self._primitive(task).name!r} under "
                             f"the {self.rule.value} rule (use observation.candidates)")
        self._pending = None
        self._ready.remove(task)
        task.node = node
        if not self._queues[node] and self._fits(task, node):
            self._start(task)
        else:
            self._queues[node].append(task)
            self.state.queue_length[node] += 1
            self.state.queued_seconds[node] += task.estimated_seconds[node]

    def _fits(self, task: _Task, node: int) -> bool:
        p, s = self._primitive(task), self.state
        return bool(p.cpu_millicores <= s.free_cpu[node] and p.memory_bytes <= s.free_memory[node]
                    and p.gpus <= s.free_gpus[node])

    def _start(self, task: _Task) -> None:
        p, s, node = self._primitive(task), self.state, task.node
        self._unstarted_seconds[task.workflow] -= task.mean_seconds
        s.free_cpu[node] -= p.cpu_millicores
        s.free_memory[node] -= p.memory_bytes
        s.free_gpus[node] -= p.gpus
        s.running[node] += 1
        transfer = 0.0
        for parent in task.parents:
            source = self._tasks[task.workflow][parent].node
            megabytes = self.workflows[task.workflow].primitives[parent].output_megabytes
            if source != node and megabytes > 0:
                transfer = max(transfer, float(transfer_seconds(megabytes, s.bandwidth_gbps[source],
                                                                s.bandwidth_gbps[node])))
        kind = KIND_INDEX[p.kind]
        cold = 0.0 if s.warm[node, kind] else cold_start_seconds(p.kind)
        s.warm[node, kind] = True
        duration = float(task.estimated_seconds[node] * task.duration_factor[node])
        task.start, task.setup, task.started = self.now, transfer + cold, True
        finish = self.now + transfer + cold + duration
        task.estimated_finish = self.now + transfer + cold + float(task.estimated_seconds[node])
        self._running_finish[node].append(task.estimated_finish)
        s.next_release[node] = min(self._running_finish[node])
        self._used[node] += (finish - self.now) * np.array([p.cpu_millicores, p.memory_bytes, p.gpus])
        self._push(finish, _FINISH, task.workflow, task.index)

    def _duration_factors(self, w: int, count: int) -> np.ndarray:
        """[primitives, N] mean-one lognormal factors drawn from (seed, workflow) only: the same true
        durations for the same placement whatever order decisions come in, so policies compare fairly."""
        n = self.state.num_nodes
        if not self.stochastic:
            return np.ones((count, n))
        rng = np.random.default_rng([self.seed, w])
        return rng.lognormal(mean=_LOG_MEAN, sigma=DURATION_SIGMA, size=(count, n))

    def _finish(self, task: _Task) -> list[_Task]:
        p, s, node = self._primitive(task), self.state, task.node
        s.free_cpu[node] += p.cpu_millicores
        s.free_memory[node] += p.memory_bytes
        s.free_gpus[node] += p.gpus
        s.running[node] -= 1
        self._running_finish[node].remove(task.estimated_finish)
        s.next_release[node] = min(self._running_finish[node], default=math.inf)
        self._completed_primitives += 1
        task.finished = True
        workflow = self.workflows[task.workflow]
        self._placements.append(Placement(workflow.name, p.name, self.cluster.nodes[node].name, task.ready,
                                          task.start, self.now))
        self._start_planned(node)
        self._remaining[task.workflow] -= 1
        if self._remaining[task.workflow] == 0:
            self._unfinished -= 1
            self._in_flight.discard(task.workflow)
            self._response[task.workflow] = self.now - workflow.arrival_time
        ready = []
        for child in task.children:
            child_task = self._tasks[task.workflow][child]
            child_task.missing_parents -= 1
            if child_task.missing_parents == 0:
                ready.append(child_task)
        return ready

    def _start_planned(self, node: int) -> None:
        """Start the primitives planned for ``node`` in queue order while the head fits (the head keeps its
        reservation: nothing behind it jumps ahead)."""
        queue = self._queues[node]
        if not queue:
            return
        queue.sort(key=self._queue_key)
        s = self.state
        while queue and self._fits(queue[0], node):
            head = queue.pop(0)
            s.queue_length[node] -= 1
            s.queued_seconds[node] = max(s.queued_seconds[node] - head.estimated_seconds[node], 0.0)
            self._start(head)

    def reward_since_last(self) -> float:
        reward, self._cost = -self._cost, 0.0
        return reward

    # -- what-if copies (rollouts) -----------------------------------------------------------------
    def fork(self, future_seed: int | None = None, arrivals: int = 0) -> Engine:
        """An independent copy at this very point, a pending decision included, far cheaper than a deepcopy.

        Only what changes is copied: the live state's dynamic arrays, the event heap and the tasks of the
        workflows in flight. Finished workflows are shared; those still to arrive are shared until they arrive
        and copied then, by whichever engine gets there first.

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
        clone._used = self._used.copy()
        clone._running_finish = [list(finishes) for finishes in self._running_finish]
        clone._remaining = list(self._remaining)
        clone._unstarted_seconds = list(self._unstarted_seconds)
        clone._response = dict(self._response)
        clone._placements = list(self._placements)
        clone._in_flight = set(self._in_flight)
        clone._tasks = list(self._tasks)
        copies: dict[int, _Task] = {}
        for w in self._in_flight:
            clone._tasks[w] = [copy.copy(task) for task in self._tasks[w]]
            copies.update(zip(map(id, self._tasks[w]), clone._tasks[w], strict=True))
        clone._ready = [copies[id(task)] for task in self._ready]
        clone._queues = [[copies[id(task)] for task in queue] for queue in self._queues]
        clone._pending = copies[id(self._pending)] if self._pending is not None else None
        self._borrowed = {w for _, _, kind, w, _ in self._events if kind == _ARRIVAL}
        clone._borrowed = set(self._borrowed)
        if future_seed is not None:
            clone._forget_future(np.random.default_rng([self.seed, future_seed]), arrivals)
        return clone

    def _forget_future(self, rng: np.random.Generator, arrivals: int) -> None:
        """Replace what no scheduler knows by draws: a fresh mean-one lognormal draw (the engine's own noise
        model) for the true duration of every primitive in flight, running ones included (those end no earlier
        than now), and instead of the true arrivals to come, ``arrivals`` sampled ones (``_sample_arrivals``)."""
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
        for w in sorted(self._in_flight):  # sorted: the draws must not depend on set order
            tasks = self._tasks[w]
            if not self.stochastic:
                continue
            # one factor per primitive, whatever its node: each node's duration keeps the model's distribution,
            # and two rollouts that place it differently still share its luck (what makes their costs comparable)
            factors = rng.lognormal(_LOG_MEAN, DURATION_SIGMA, size=len(tasks))
            for task, drawn in zip(tasks, factors, strict=True):
                if not task.started:
                    task.duration_factor = np.full(n, drawn)
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
        self._tasks, self._remaining, self._unstarted_seconds = list(self._tasks), list(self._remaining), \
            list(self._unstarted_seconds)
        when = self.now
        for template in rng.choice(arrived, size=count):
            when += float(rng.exponential(1.0 / rate))
            source = self.workflows[template]
            w = len(self.workflows)
            self.workflows.append(Workflow(f"{source.name}~{w}", source.primitives, arrival_time=when))
            factors = rng.lognormal(_LOG_MEAN, DURATION_SIGMA, size=len(source.primitives))
            tasks = [_Task(w, t.index, t.parents, t.children, t.estimated_seconds, t.raw_estimate, t.mask,
                           np.full(self.state.num_nodes, factor if self.stochastic else 1.0), t.downstream_seconds,
                           t.mean_seconds, missing_parents=len(t.parents))
                     for t, factor in zip(self._tasks[template], factors, strict=True)]
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
                own = max(task.estimated_finish - self.now, 0.0) if task.started else task.mean_seconds
                longest = max(longest, own + task.downstream_seconds)
            total += longest
        return total

    def result(self) -> SimulationResult:
        times = np.array(list(self._response.values())) if self._response else np.zeros(1)
        slowdown = [self._response[w] / max(self._lower_bound[w], 1e-9) for w in self._response]
        primitive_times = [pl.finish - pl.ready for pl in self._placements]
        elapsed = max(self.now, 1e-9)
        s = self.state
        capacity = np.stack([s.alloc_cpu, s.alloc_memory, s.alloc_gpus], axis=1).astype(float) * elapsed
        shares = np.divide(self._used, capacity, out=np.zeros_like(self._used), where=capacity > 0)
        node_utilisation = shares.max(axis=1).tolist()
        return SimulationResult(
            avg_response_time=float(times.mean()), p50_response_time=float(np.percentile(times, 50)),
            p95_response_time=float(np.percentile(times, 95)), p99_response_time=float(np.percentile(times, 99)),
            avg_primitive_response_time=float(np.mean(primitive_times)) if primitive_times else 0.0,
            completed_primitives=self._completed_primitives, completed_workflows=len(self._response),
            throughput=len(self._response) / elapsed, utilisation=float(np.mean(node_utilisation)),
            node_utilisation=node_utilisation, avg_slowdown=float(np.mean(slowdown)) if slowdown else 0.0,
            placements=self._placements,
        )


def _factor_beyond(low: float, rng: np.random.Generator) -> float:
    """A duration factor drawn from the engine's lognormal given that it exceeds ``low`` (a running primitive's
    share of its estimate already run): by inverse transform from the upper tail."""
    floor = _NORMAL.cdf((math.log(low) - _LOG_MEAN) / DURATION_SIGMA) if low > 0 else 0.0
    tail = floor + (1.0 - floor) * float(rng.random())
    return math.exp(_LOG_MEAN + DURATION_SIGMA * _NORMAL.inv_cdf(min(max(tail, 1e-12), 1.0 - 1e-12)))


def simulate(cluster: ClusterSpec, workflows: list[Workflow], scheduler: Scheduler, seed: int,
             horizon: float | None = None, rule: PlacementRule = DEFAULT_RULE) -> SimulationResult:
    engine = Engine(cluster, workflows, seed, horizon, priority=scheduler.priority, rule=rule)
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
    return engine.result()
