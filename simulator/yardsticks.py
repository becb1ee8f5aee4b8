"""Yardsticks every policy is judged by: lower bounds on an episode's mean response time, and its offline optimum.

Each sees the episode as the engine plays it for a seed (the same arrivals and the same true, sampled duration
of every primitive on every node), so ``bound <= policy result`` holds run by run, not only on average.
"""

from __future__ import annotations

import copy
import heapq
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .cluster import ClusterSpec
from .engine import Engine
from .extras import require
from .node_model import cold_start_seconds, transfer_seconds
from .primitives import MIB
from .state import ClusterState
from .workflow import Primitive, Workflow

if TYPE_CHECKING:
    from ortools.sat.python import cp_model

# CP-SAT's clock tick; every duration is floored to it, so the model stays a relaxation of the engine.
TIME_STEP_SECONDS = 0.01
MAX_WORKFLOWS = 10
MAX_PRIMITIVES = 8
MAX_NODES = 8


@dataclass(frozen=True)
class _Episode:
    workflows: list[Workflow]  # the engine's validated copies: primitives in topological order
    state: ClusterState
    durations: list[np.ndarray]  # [P, N] true seconds per workflow, inf where infeasible


def _episode(cluster: ClusterSpec, workflows: Sequence[Workflow], seed: int) -> _Episode:
    # copies: the engine validates (reorders primitives) in place, and the caller's workflows go on to run
    engine = Engine(cluster, copy.deepcopy(list(workflows)), seed)
    return _Episode(engine.workflows, engine.state, engine.true_durations())


# -- lower bounds -----------------------------------------------------------------------------------


def critical_path_bound(cluster: ClusterSpec, workflows: Sequence[Workflow], seed: int) -> float:
    """LB1: mean over workflows of the longest dependency chain, each primitive at its fastest true duration.

    A workflow cannot finish before its chain has run one primitive after another, each no faster than on
    its fastest feasible node; transfers, cold starts and waiting only add. The estimate-based critical path
    of ``workflow_estimates`` is no bound on a stochastic episode: a factor above one lengthens it."""
    episode = _episode(cluster, workflows, seed)
    return float(np.mean([_critical_path(w, d) for w, d in zip(episode.workflows, episode.durations, strict=True)]))


def _critical_path(workflow: Workflow, durations: np.ndarray) -> float:
    fastest = durations.min(axis=1)
    index = {p.name: i for i, p in enumerate(workflow.primitives)}
    finish = [0.0] * len(workflow.primitives)
    for i, p in enumerate(workflow.primitives):
        finish[i] = fastest[i] + max((finish[index[parent]] for parent in p.depends_on), default=0.0)
    return max(finish)


def srpt_total_response(arrivals: np.ndarray, work: np.ndarray, capacity: float) -> float:
    """Total response time of preemptive shortest-remaining-processing-time on one server of ``capacity``
    (job j needs ``work[j]`` capacity-seconds and arrives at ``arrivals[j]``)."""
    order = np.argsort(arrivals, kind="stable")
    remaining: list[tuple[float, int]] = []  # heap of (seconds left at full capacity, job)
    now, total, next_job = 0.0, 0.0, 0
    while next_job < len(order) or remaining:
        next_arrival = float(arrivals[order[next_job]]) if next_job < len(order) else math.inf
        if not remaining:
            now = max(now, next_arrival)
        elif now + remaining[0][0] <= next_arrival:
            left, job = heapq.heappop(remaining)
            now += left
            total += now - float(arrivals[job])
            continue
        else:
            left, job = remaining[0]
            heapq.heapreplace(remaining, (left - (next_arrival - now), job))
            now = next_arrival
        while next_job < len(order) and float(arrivals[order[next_job]]) <= now:
            job = int(order[next_job])
            heapq.heappush(remaining, (float(work[job]) / capacity, job))
            next_job += 1
    return total


def capacity_bound(cluster: ClusterSpec, workflows: Sequence[Workflow], seed: int) -> float:
    """LB2: max over resources (cpu, memory, gpus) of the mean response time of SRPT on the pooled resource.

    Why it is a bound: in any schedule the engine can play, primitive i holds its request q_i of resource r
    on a node for at least its fastest true duration m_i (transfer and cold start are held too, and only
    add), and the requests running at any instant sum to at most C_r, the cluster's total of r. Give
    workflow j, at each instant, the rate sum over its running primitives of q_i * m_i / (their actual run
    time): that is a schedule of one server of capacity C_r in which j needs W_j = sum_i q_i * m_i, starts no
    earlier than its arrival and is done when j really finishes. Dropping precedence, the per-node split of
    C_r and the cap a job's own width puts on its rate only enlarges the set of schedules, and preemptive
    SRPT minimises total response time over all single-server schedules with release times, processor
    sharing included (Schrage 1968: it has the fewest unfinished jobs at every instant). So SRPT's total is
    at most any engine run's; each resource gives one such bound and the largest is kept."""
    episode = _episode(cluster, workflows, seed)
    state = episode.state
    arrivals = np.array([w.arrival_time for w in episode.workflows])
    capacities = (state.alloc_cpu.sum(), state.alloc_memory.sum(), state.alloc_gpus.sum())
    best = 0.0
    for r, capacity in enumerate(capacities):
        if capacity <= 0:
            continue
        work = np.array(
            [
                sum(_requests(p)[r] * fastest for p, fastest in zip(w.primitives, d.min(axis=1), strict=True))
                for w, d in zip(episode.workflows, episode.durations, strict=True)
            ]
        )
        best = max(best, srpt_total_response(arrivals, work, float(capacity)) / len(episode.workflows))
    return best


def _requests(primitive: Primitive) -> tuple[int, int, int]:
    return primitive.cpu_millicores, primitive.memory_bytes, primitive.gpus


@dataclass(frozen=True)
class LowerBound:
    critical_path: float  # LB1, seconds of mean response time
    capacity: float  # LB2

    @property
    def value(self) -> float:
        return max(self.critical_path, self.capacity)


def lower_bound(cluster: ClusterSpec, workflows: Sequence[Workflow], seed: int) -> LowerBound:
    """max(LB1, LB2) on the episode the engine plays for ``seed``; both parts kept."""
    return LowerBound(critical_path_bound(cluster, workflows, seed), capacity_bound(cluster, workflows, seed))


# -- offline optimum --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedRun:
    """One primitive in CP-SAT's schedule; times on the model's floored clock."""

    workflow: str
    primitive: str
    node: str
    start: float
    finish: float
    cold_start: bool  # the one run of its kind on the node that pays the cold start


@dataclass(frozen=True)
class OptimumResult:
    status: str  # OPTIMAL, FEASIBLE, or UNKNOWN (no schedule found in the time limit)
    objective: float  # mean response time of CP-SAT's best schedule (inf when none)
    best_bound: float  # CP-SAT's proven lower bound on it: no engine run can do better
    proven_gap: float  # (objective - best_bound) / objective
    wall_seconds: float
    schedule: tuple[PlannedRun, ...] = ()  # the best schedule, empty when none


def optimum(
    cluster: ClusterSpec,
    workflows: Sequence[Workflow],
    seed: int,
    time_limit_s: float = 10.0,
    workers: int = 1,
    work_limit: float | None = None,
) -> OptimumResult:
    """The clairvoyant offline optimum of the mean response time by OR-Tools CP-SAT.

    The model knows every arrival and every true duration and plays by the engine's rules: each primitive
    runs on exactly one feasible node (one optional interval per node), starts no earlier than its
    workflow's arrival and once all its parents have ended; per node and resource (cpu millicores, memory
    MiB, gpus) the running requests fit the allocatable; an interval holds its requests for transfer + cold
    start + duration, as the engine does, where the transfer is the largest over parents on other nodes (per
    pair of placements) and the cold start of a kind is paid on a node by the one primitive of that kind that
    starts there first. The objective is the sum of (workflow finish - arrival). Nothing of the engine is
    left out; what the model allows beyond it is waiting on purpose (the engine starts whatever fits).

    The clock ticks every ``TIME_STEP_SECONDS``; durations, transfers, cold starts, arrivals and memory
    requests are floored to it (to MiB), so the model is a relaxation of the engine (every engine schedule,
    its times floored, is a model schedule no worse): ``best_bound`` is at most any engine run's mean
    response time, and so is ``objective`` when OPTIMAL. When the time limit stops the search, ``objective``
    is only the best schedule found and can be worse than a heuristic's. Deterministic for a seed with one
    worker unless the wall-clock limit cuts the search; ``work_limit`` (CP-SAT's deterministic time, the same
    on a busy machine as on an idle one) cuts it reproducibly."""
    cp_model = require("ortools.sat.python.cp_model", "train")  # lazy: the simulator stays light

    _check_size(cluster, workflows)
    started = time.perf_counter()
    episode = _episode(cluster, workflows, seed)
    tasks = _ticked_tasks(episode)
    model = cp_model.CpModel()
    plan = _build(model, tasks, episode)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = time_limit_s
    if work_limit is not None:
        solver.parameters.max_deterministic_time = work_limit
    solver.parameters.num_workers = workers
    solver.parameters.random_seed = seed
    status = solver.solve(model)
    offset = sum(w.arrival_time for w in episode.workflows)

    def mean_response(total_ticks: float) -> float:
        return (total_ticks * TIME_STEP_SECONDS - offset) / len(episode.workflows)

    best_bound = mean_response(solver.best_objective_bound)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return OptimumResult(
            status=solver.status_name(status),
            objective=math.inf,
            best_bound=best_bound,
            proven_gap=math.inf,
            wall_seconds=time.perf_counter() - started,
        )
    objective = mean_response(solver.objective_value)
    schedule = tuple(
        PlannedRun(
            episode.workflows[tasks[t].workflow].name,
            tasks[t].primitive.name,
            cluster.nodes[n].name,
            solver.value(plan.start[t]) * TIME_STEP_SECONDS,
            solver.value(plan.end[t]) * TIME_STEP_SECONDS,
            solver.boolean_value(plan.cold[t, n]),
        )
        for (t, n), placed in plan.presence.items()
        if solver.boolean_value(placed)
    )
    return OptimumResult(
        status=solver.status_name(status),
        objective=objective,
        best_bound=best_bound,
        proven_gap=(objective - best_bound) / objective if objective > 0 else 0.0,
        wall_seconds=time.perf_counter() - started,
        schedule=schedule,
    )


def _ticks(seconds: float) -> int:
    return math.floor(seconds / TIME_STEP_SECONDS)


@dataclass(frozen=True)
class _TickedTask:
    """One primitive of the episode on the model's clock."""

    workflow: int
    primitive: Primitive
    duration: list[int | None]  # [N] true duration in ticks, None where infeasible
    parents: list[int]  # indices into the episode's task list
    transfer_in: np.ndarray  # [parents, N source, N destination] ticks to pull each parent's output


def _ticked_tasks(episode: _Episode) -> list[_TickedTask]:
    bandwidth = episode.state.bandwidth_gbps
    same_node = np.eye(len(bandwidth), dtype=bool)
    tasks: list[_TickedTask] = []
    for j, (workflow, durations) in enumerate(zip(episode.workflows, episode.durations, strict=True)):
        offset = len(tasks)
        index = {p.name: offset + i for i, p in enumerate(workflow.primitives)}
        for i, p in enumerate(workflow.primitives):
            parents = [index[name] for name in dict.fromkeys(p.depends_on)]
            transfer_in = np.zeros((len(parents), len(bandwidth), len(bandwidth)), dtype=np.int64)
            for k, parent in enumerate(parents):
                megabytes = tasks[parent].primitive.output_megabytes
                if megabytes > 0:  # the engine charges nothing for an empty output, nor on the same node
                    seconds = transfer_seconds(megabytes, bandwidth[:, None], bandwidth[None, :])
                    transfer_in[k] = np.where(same_node, 0, np.floor(seconds / TIME_STEP_SECONDS))
            tasks.append(
                _TickedTask(j, p, [_ticks(d) if math.isfinite(d) else None for d in durations[i]], parents, transfer_in)
            )
    return tasks


@dataclass(frozen=True)
class _Plan:
    start: list[cp_model.IntVar]  # per task
    end: list[cp_model.IntVar]
    presence: dict[tuple[int, int], cp_model.IntVar]  # (task, node) -> BoolVar: the task runs there
    cold: dict[tuple[int, int], cp_model.IntVar]  # (task, node) -> BoolVar: and pays the cold start of its kind there


def _build(model: cp_model.CpModel, tasks: list[_TickedTask], episode: _Episode) -> _Plan:
    state = episode.state
    nodes = range(state.num_nodes)
    arrival = [_ticks(w.arrival_time) for w in episode.workflows]
    cold_ticks = [_ticks(cold_start_seconds(task.primitive.kind)) for task in tasks]
    longest = [
        max(d for d in task.duration if d is not None) + cold_ticks[t] + int(task.transfer_in.max(initial=0))
        for t, task in enumerate(tasks)
    ]
    # An optimal schedule never idles the whole cluster after the last arrival (shifting everything after
    # such a gap earlier keeps it feasible and no worse), so it ends within this horizon.
    horizon = max(arrival) + sum(longest)
    start = [model.new_int_var(arrival[task.workflow], horizon, f"start{t}") for t, task in enumerate(tasks)]
    end = [model.new_int_var(arrival[task.workflow], horizon, f"end{t}") for t, task in enumerate(tasks)]
    presence, cold, intervals = {}, {}, {}
    for t, task in enumerate(tasks):
        for n in nodes:
            duration = task.duration[n]
            if duration is None:
                continue
            presence[t, n] = model.new_bool_var(f"on{t},{n}")
            cold[t, n] = model.new_bool_var(f"cold{t},{n}")
            model.add_implication(cold[t, n], presence[t, n])
            wait = int(task.transfer_in[:, :, n].max(initial=0))
            transfer = model.new_int_var(0, wait, f"transfer{t},{n}")
            for k, parent in enumerate(task.parents):  # parents come first: their placements exist already
                for m in nodes:
                    if (parent, m) in presence and task.transfer_in[k, m, n]:
                        model.add(transfer >= int(task.transfer_in[k, m, n])).only_enforce_if(
                            [presence[t, n], presence[parent, m]]
                        )
            size = model.new_int_var(duration, duration + cold_ticks[t] + wait, f"size{t},{n}")
            model.add(size == duration + cold_ticks[t] * cold[t, n] + transfer)
            intervals[t, n] = model.new_optional_interval_var(start[t], size, end[t], presence[t, n], f"run{t},{n}")
        model.add_exactly_one(presence[t, n] for n in nodes if (t, n) in presence)
        for parent in task.parents:
            model.add(start[t] >= end[parent])

    for n in nodes:
        # cold starts: on each (node, kind) in use exactly one primitive pays, and it starts no later than the rest
        by_kind: dict[str, list[int]] = {}
        for t, task in enumerate(tasks):
            if (t, n) in presence:
                by_kind.setdefault(task.primitive.kind, []).append(t)
        for same in by_kind.values():
            model.add(sum(cold[t, n] for t in same) <= 1)
            for t in same:
                model.add(sum(cold[u, n] for u in same) >= presence[t, n])
                for u in same:
                    if u != t:
                        model.add(start[t] <= start[u]).only_enforce_if([cold[t, n], presence[u, n]])
        capacity = (int(state.alloc_cpu[n]), math.ceil(state.alloc_memory[n] / MIB), int(state.alloc_gpus[n]))
        for r in range(3):
            placed = [
                (intervals[t, n], _requests(task.primitive)[r] // (MIB if r == 1 else 1))
                for t, task in enumerate(tasks)
                if (t, n) in intervals
            ]
            placed = [(interval, demand) for interval, demand in placed if demand > 0]
            if sum(demand for _, demand in placed) > capacity[r]:  # else nothing can ever overfill it
                model.add_cumulative([i for i, _ in placed], [d for _, d in placed], capacity[r])

    finish = [model.new_int_var(a, horizon, f"finish{j}") for j, a in enumerate(arrival)]
    for t, task in enumerate(tasks):
        model.add(finish[task.workflow] >= end[t])
    model.minimize(sum(finish))
    return _Plan(start, end, presence, cold)


def _check_size(cluster: ClusterSpec, workflows: Sequence[Workflow]) -> None:
    widest = max((len(w.primitives) for w in workflows), default=0)
    if len(workflows) > MAX_WORKFLOWS or widest > MAX_PRIMITIVES or len(cluster.nodes) > MAX_NODES:
        raise ValueError(
            f"CP-SAT optimum is limited to {MAX_WORKFLOWS} workflows, {MAX_PRIMITIVES} primitives per workflow "
            f"and {MAX_NODES} nodes; this instance has {len(workflows)} workflows, up to {widest} primitives "
            f"in a workflow and {len(cluster.nodes)} nodes"
        )
