"""Scheduling decisions per second of the engine, side by side with a minimal heap-based reference loop.

A benchmark, not a test: ``python bench/simulator.py`` prints tables, ``--json`` one JSON object with
decisions/s of the engine (features and heuristic included) for {least-loaded, heft} x {late-binding,
node-queues} x N, the reference loop's decisions/s at each N and the ratio of the two (the figure that
counts on a shared machine: each engine run is paired with a reference run, medians of ``--repeats`` pairs), the cost of
``Engine.fork()`` against ``copy.deepcopy`` mid-episode, and rollout-heft's decisions/s (informative).
Workload generation is outside the timed part; building the engine (per-primitive estimates, duration
draws) is inside it, as the reference's own per-workflow set-up is inside its. Times are the process's CPU
time (``time.process_time``), not wall time: on a shared machine that is the time the work itself took.
"""

from __future__ import annotations

import argparse
import copy
import heapq
import json
import statistics
import time

import numpy as np
from rich.console import Console
from rich.table import Table
from scale_scheduler.simulator.cluster import ClusterSpec, heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.rollout import RolloutHeftScheduler
from scale_scheduler.simulator.schedulers import make_heuristic
from scale_scheduler.simulator.workflow import Workflow

SIZES = (16, 48, 256, 1024)
SCHEDULERS = ("least-loaded", "heft")
FORK_SIZES = (48, 1024)
LOAD = 0.7
LLM = PrimitiveKind.LLM_GENERATE


def reference_decisions_per_second(cluster: ClusterSpec, workload: list[Workflow], seed: int) -> float:
    """A minimal discrete-event simulator of the same kind, as one would write it from scratch: DAGs arrive,
    ready primitives wait in a FIFO queue, each goes to the least-loaded node (dominant cpu/memory share) with
    its cpu and memory free now, runs a lognormal duration around its work (LLM calls: tokens at the GPU node's
    rates), events on a heap. No features, no GPUs, no transfers or cold starts: the floor an engine with
    features is held to."""
    rng = np.random.default_rng(seed)
    alloc_cpu = np.array([n.cpu_millicores for n in cluster.nodes], dtype=float)
    alloc_memory = np.array([n.memory_bytes for n in cluster.nodes], dtype=float)
    gpu_node = max(cluster.nodes, key=lambda n: n.gpus)  # LLM calls run at its token rates
    prefill, decode = gpu_node.prefill_tokens_per_second, gpu_node.decode_tokens_per_second
    started = time.process_time()
    free_cpu, free_memory = alloc_cpu.copy(), alloc_memory.copy()
    events = [(w.arrival_time, k, k, -1) for k, w in enumerate(workload)]
    heapq.heapify(events)
    sequence, decisions = len(events), 0
    ready: list[tuple[int, int]] = []
    missing: list[list[int]] = [[] for _ in workload]
    children: list[list[list[int]]] = [[] for _ in workload]
    requests: list[list[tuple[float, float, float]]] = [[] for _ in workload]
    placed_on: dict[tuple[int, int], int] = {}
    while events:
        now, _, w, i = heapq.heappop(events)
        if i < 0:  # arrival: index the DAG
            primitives = workload[w].primitives
            index = {p.name: k for k, p in enumerate(primitives)}
            missing[w] = [len(p.depends_on) for p in primitives]
            children[w] = [[] for _ in primitives]
            for k, p in enumerate(primitives):
                for parent in p.depends_on:
                    children[w][index[parent]].append(k)
            requests[w] = [
                (
                    p.cpu_millicores,
                    p.memory_bytes,
                    p.input_tokens / prefill + p.output_tokens / decode if p.kind is LLM else p.work_seconds,
                )
                for p in primitives
            ]
            ready += [(w, k) for k, count in enumerate(missing[w]) if count == 0]
        else:  # finish: free the node, release the children
            node = placed_on.pop((w, i))
            cpu, memory, _ = requests[w][i]
            free_cpu[node] += cpu
            free_memory[node] += memory
            for child in children[w][i]:
                missing[w][child] -= 1
                if missing[w][child] == 0:
                    ready.append((w, child))
        waiting = []
        for task in ready:
            cpu, memory, seconds = requests[task[0]][task[1]]
            fits = (cpu <= free_cpu) & (memory <= free_memory)
            if not fits.any():
                waiting.append(task)
                continue
            load = np.maximum(1.0 - free_cpu / alloc_cpu, 1.0 - free_memory / alloc_memory)
            node = int(np.argmin(np.where(fits, load, np.inf)))
            free_cpu[node] -= cpu
            free_memory[node] -= memory
            placed_on[task] = node
            sequence += 1
            heapq.heappush(events, (now + seconds * rng.lognormal(-0.045, 0.3), sequence, *task))
            decisions += 1
        ready = waiting
    return decisions / (time.process_time() - started)


def engine_decisions_per_second(
    cluster: ClusterSpec, workload: list[Workflow], method: str, rule: PlacementRule, seed: int
) -> float:
    scheduler = make_heuristic(method)
    scheduler.reset(seed)
    workload = copy.deepcopy(workload)  # the engine validates in place: every run starts from the same input
    started = time.process_time()
    engine = Engine(cluster, workload, seed, priority=scheduler.priority, rule=rule)
    decisions = 0
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        decisions += 1
    return decisions / (time.process_time() - started)


def fork_microseconds(nodes: int, workflows: int, seed: int) -> dict[str, float]:
    """Mean cost of ``Engine.fork()`` and of ``copy.deepcopy`` of the same engine, halfway through an episode."""
    cluster = heterogeneous(nodes, seed=seed)
    workload = generate_workload(cluster, workflows, load=LOAD, seed=seed)
    scheduler = make_heuristic("heft")
    engine = Engine(cluster, workload, seed, priority=scheduler.priority)
    for _ in range(3 * workflows):  # about half of the ~6 decisions per workflow
        engine.apply(scheduler.choose(engine.next_decision()))
    engine.next_decision()
    timings = {}
    for name, copier, count in (("fork", engine.fork, 2000), ("deepcopy", lambda: copy.deepcopy(engine), 5)):
        started = time.process_time()
        for _ in range(count):
            copier()
        timings[name] = (time.process_time() - started) / count * 1e6
    return {
        "fork_us": timings["fork"],
        "deepcopy_us": timings["deepcopy"],
        "deepcopy_over_fork": timings["deepcopy"] / timings["fork"],
    }


def rollout_heft_rates(nodes: int, workflows: int, seed: int) -> dict[str, float]:
    """rollout-heft (its defaults: top 4, 4 sampled futures, 32 decisions ahead): decisions/s of the episode it
    plays, and rollouts/s (each a fork played forward by HEFT)."""
    cluster = heterogeneous(nodes, seed=seed)
    workload = generate_workload(cluster, workflows, load=LOAD, seed=seed)
    scheduler = RolloutHeftScheduler()
    started = time.process_time()
    engine = Engine(cluster, workload, seed, priority=scheduler.priority)
    decisions = 0
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        decisions += 1
    elapsed = time.process_time() - started
    return {
        "nodes": nodes,
        "workflows": workflows,
        "decisions_per_second": decisions / elapsed,
        "rollouts_per_second": scheduler.rollouts / elapsed,
    }


def measure(sizes: tuple[int, ...], workflows: int, repeats: int, seed: int) -> dict[str, object]:
    """Each engine run is paired with a reference run just before it, and the ratio taken per pair: a busy
    spell on a shared machine slows both of a pair alike. Figures are medians over ``repeats`` pairs."""
    engine_rates: dict[str, dict[str, dict[str, float]]] = {m: {r.value: {} for r in PlacementRule} for m in SCHEDULERS}
    ratio: dict[str, dict[str, dict[str, float]]] = {m: {r.value: {} for r in PlacementRule} for m in SCHEDULERS}
    reference: dict[str, float] = {}
    for n in sizes:
        cluster = heterogeneous(n, seed=seed)
        workload = generate_workload(cluster, workflows, load=LOAD, seed=seed)
        reference_rates = []
        for method in SCHEDULERS:
            for rule in PlacementRule:
                pairs = []
                for _ in range(repeats):
                    reference_rates.append(reference_decisions_per_second(cluster, workload, seed))
                    pairs.append(
                        (engine_decisions_per_second(cluster, workload, method, rule, seed), reference_rates[-1])
                    )
                engine_rates[method][rule.value][str(n)] = statistics.median(rate for rate, _ in pairs)
                ratio[method][rule.value][str(n)] = statistics.median(rate / base for rate, base in pairs)
        reference[str(n)] = statistics.median(reference_rates)
    return {
        "workflows": workflows,
        "load": LOAD,
        "repeats": repeats,
        "decisions_per_second": engine_rates,
        "reference_decisions_per_second": reference,
        "ratio_to_reference": ratio,
        "fork": {str(n): fork_microseconds(n, workflows, seed) for n in FORK_SIZES},
        "rollout_heft": rollout_heft_rates(48, max(workflows // 20, 5), seed),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=400, help="workflows per run (~6 decisions each)")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="node counts, comma-separated")
    parser.add_argument("--repeats", type=int, default=5, help="engine/reference pairs per figure (medians)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    sizes = tuple(int(n) for n in args.sizes.split(","))
    report = measure(sizes, args.workflows, args.repeats, args.seed)
    if args.json:
        print(json.dumps(report))
        return
    console = Console(width=max(Console().width, 100))  # the table is ~95 columns: no wrapped cells
    table = Table(
        title=f"decisions/s, {args.workflows} workflows, load {LOAD}, medians of {args.repeats} "
        "(ratio to the reference loop in brackets)"
    )
    table.add_column("nodes", justify="right")
    table.add_column("reference", justify="right")
    for method in SCHEDULERS:
        for rule in PlacementRule:
            table.add_column(f"{method}\n{rule.value}", justify="right")
    for n in map(str, sizes):
        row = [n, f"{report['reference_decisions_per_second'][n]:,.0f}"]
        for method in SCHEDULERS:
            for rule in PlacementRule:
                rate, ratio = (
                    report["decisions_per_second"][method][rule.value][n],
                    report["ratio_to_reference"][method][rule.value][n],
                )
                row.append(f"{rate:,.0f} ({ratio:.2f})")
        table.add_row(*row)
    console.print(table)
    forks = Table(title="Engine.fork() against copy.deepcopy, halfway through an episode (heft)")
    for column in ("nodes", "fork us", "deepcopy us", "deepcopy / fork"):
        forks.add_column(column, justify="right")
    for n, cost in report["fork"].items():
        forks.add_row(n, f"{cost['fork_us']:.1f}", f"{cost['deepcopy_us']:.0f}", f"{cost['deepcopy_over_fork']:.0f}x")
    console.print(forks)
    rollout = report["rollout_heft"]
    console.print(
        f"rollout-heft at N={rollout['nodes']}, {rollout['workflows']} workflows: "
        f"{rollout['decisions_per_second']:,.1f} decisions/s, "
        f"{rollout['rollouts_per_second']:,.0f} rollouts/s"
    )


if __name__ == "__main__":
    main()
