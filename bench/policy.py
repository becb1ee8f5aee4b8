"""Inference speed of the SCALE policy on CPU.

single decision: what the operator pays per pod, i.e. ``LearnedScheduler.choose`` on a fresh
Observation (feature building + one forward pass + argmax), one thread, p50/p99 over many calls.
batched: forward passes over a batch of pre-built observations (what the trainer does per step).

    python bench/policy.py [--json] [--nodes 16,48,256,1024] [--checkpoint DIR]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from scale_scheduler.policy.batching import batch_observations
from scale_scheduler.policy.checkpoint import load_model, shipped_checkpoint
from scale_scheduler.policy.learned import LearnedScheduler
from scale_scheduler.policy.network import NetworkConfig, build_network
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive

PRIMITIVES = [
    Primitive("generate", PrimitiveKind.LLM_GENERATE, input_tokens=1200, output_tokens=300),
    Primitive("search", PrimitiveKind.RETRIEVE),
    Primitive("tool", PrimitiveKind.TOOL_CALL),
    Primitive("run-tests", PrimitiveKind.CODE_EXEC),
]


def busy_state(nodes: int, seed: int) -> ClusterState:
    """A cluster part-way through an episode: some resources in use, some queues, some warm kinds."""
    rng = np.random.default_rng(seed)
    state = ClusterState(heterogeneous(nodes, seed=seed))
    used = rng.uniform(0.0, 0.9, nodes)
    state.free_cpu = state.alloc_cpu * (1 - used)
    state.free_memory = state.alloc_memory * (1 - used)
    state.free_gpus = np.floor(state.alloc_gpus * rng.uniform(0, 1, nodes))
    state.running = rng.integers(0, 4, nodes)
    state.queue_length = rng.integers(0, 2, nodes)
    state.queued_seconds = state.queue_length * rng.uniform(0.5, 5.0, nodes)
    state.next_release = np.where(state.running > 0, rng.uniform(0.1, 10.0, nodes), np.inf)
    state.warm = rng.random(state.warm.shape) < 0.5
    return state


def observation(state: ClusterState, i: int) -> Observation:
    return Observation(
        now=0.0,
        primitive=PRIMITIVES[i % len(PRIMITIVES)],
        state=state,
        parent_outputs=[(i % state.num_nodes, 5.0)],
        downstream_seconds=3.0,
    )


def single_decision_ms(scheduler: LearnedScheduler, nodes: int, calls: int) -> tuple[float, float]:
    state = busy_state(nodes, seed=nodes)
    for i in range(20):  # warm-up: allocator, kernels
        scheduler.choose(observation(state, i))
    timings = []
    for i in range(calls):
        fresh = observation(state, i)  # features are cached per Observation: a fresh one pays for them
        started = time.perf_counter()
        scheduler.choose(fresh)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 99))


def batched_decisions_per_second(model: torch.nn.Module, nodes: int, batch: int, repeats: int) -> float:
    state = busy_state(nodes, seed=nodes)
    tensors = batch_observations([observation(state, i) for i in range(batch)]).tensors()
    with torch.inference_mode():
        model(*tensors)
        started = time.perf_counter()
        for _ in range(repeats):
            model(*tensors)
    return batch * repeats / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", default="16,48,256,1024")
    parser.add_argument("--checkpoint", default=None, help="checkpoint dir (default: the shipped SCALE one)")
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        model, _ = load_model(args.checkpoint or shipped_checkpoint("scale"))
        weights = "checkpoint"
    except FileNotFoundError:  # latency does not depend on the weights' values
        torch.manual_seed(0)
        model, weights = build_network(NetworkConfig()).eval(), "random init (no checkpoint found)"
    scheduler = LearnedScheduler("scale", model)
    p50, p99, throughput = {}, {}, {}
    for nodes in (int(n) for n in args.nodes.split(",")):
        p50[str(nodes)], p99[str(nodes)] = single_decision_ms(scheduler, nodes, args.calls)
        repeats = max(5, 20_000 // (nodes * args.batch) + 5)
        throughput[str(nodes)] = batched_decisions_per_second(model, nodes, args.batch, repeats)
    report = {
        "single_decision_p50_ms": p50,
        "single_decision_p99_ms": p99,
        "batched_decisions_per_second": throughput,
        "batch_size": args.batch,
        "threads": args.threads,
        "weights": weights,
    }
    if args.json:
        print(json.dumps(report))
        return
    print(f"SCALE policy on CPU, {args.threads} thread(s), weights: {weights}")
    print(f"{'N':>6} {'single p50 ms':>14} {'single p99 ms':>14} {'batched decisions/s':>20} (batch {args.batch})")
    for nodes in p50:
        print(f"{nodes:>6} {p50[nodes]:>14.3f} {p99[nodes]:>14.3f} {throughput[nodes]:>20.0f}")


if __name__ == "__main__":
    main()
