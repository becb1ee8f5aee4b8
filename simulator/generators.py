"""Agentic workflow shapes and Poisson (or bursty) arrivals at a given offered load.

LLM calls draw their context/generated token counts from the Azure 2023 trace fit (tokens.py): the
code-completion service for code-writing steps, the conversation service for every other call.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .cluster import ClusterSpec
from .node_model import estimated_durations
from .primitives import DEFAULT_WORK_SECONDS, KIND_INDEX, PrimitiveKind
from .state import ClusterState
from .tokens import sample_tokens
from .workflow import Primitive, Workflow, validate


def _llm(rng: np.random.Generator, name: str, depends_on: list[str] | None = None, service: str = "conv") -> Primitive:
    prompt, output = sample_tokens(rng, service)
    return Primitive(
        name, PrimitiveKind.LLM_GENERATE, depends_on=depends_on or [], input_tokens=prompt, output_tokens=output
    )


def _step(kind: PrimitiveKind, rng: np.random.Generator, name: str, depends_on: list[str]) -> Primitive:
    work = DEFAULT_WORK_SECONDS[kind]
    return Primitive(
        name,
        kind,
        depends_on=depends_on,
        work_seconds=float(work * rng.lognormal(0, 0.4)),
        output_megabytes=float(rng.choice([0.05, 1.0, 20.0], p=[0.6, 0.3, 0.1])),
    )


def plan_execute(rng: np.random.Generator, name: str, width: int | None = None) -> Workflow:
    width = width or int(rng.integers(2, 6))
    kinds = [PrimitiveKind.TOOL_CALL, PrimitiveKind.RETRIEVE, PrimitiveKind.CODE_EXEC]
    steps = [_llm(rng, "plan")]
    steps += [_step(kinds[int(rng.integers(3))], rng, f"task-{i}", ["plan"]) for i in range(width)]
    steps.append(_llm(rng, "join", [f"task-{i}" for i in range(width)]))
    return Workflow(name, steps, shape="plan-execute")


def react(rng: np.random.Generator, name: str, rounds: int | None = None) -> Workflow:
    rounds = rounds or int(rng.integers(2, 5))
    steps: list[Primitive] = []
    previous: list[str] = []
    for i in range(rounds):
        steps.append(_llm(rng, f"think-{i}", previous))
        steps.append(_step(PrimitiveKind.TOOL_CALL, rng, f"act-{i}", [f"think-{i}"]))
        previous = [f"act-{i}"]
    steps.append(_llm(rng, "answer", previous))
    return Workflow(name, steps, shape="react")


def map_reduce_rag(rng: np.random.Generator, name: str, chunks: int | None = None) -> Workflow:
    chunks = chunks or int(rng.integers(2, 6))
    steps = [
        _step(PrimitiveKind.LLM_EMBED, rng, "embed-query", []),
        _step(PrimitiveKind.RETRIEVE, rng, "retrieve", ["embed-query"]),
    ]
    steps += [_llm(rng, f"map-{i}", ["retrieve"]) for i in range(chunks)]
    steps.append(_llm(rng, "reduce", [f"map-{i}" for i in range(chunks)]))
    return Workflow(name, steps, shape="map-reduce-rag")


def debate(rng: np.random.Generator, name: str, agents: int | None = None, rounds: int = 2) -> Workflow:
    agents = agents or int(rng.integers(2, 4))
    steps: list[Primitive] = []
    previous: list[str] = []
    for r in range(rounds):
        steps += [_llm(rng, f"agent-{a}-round-{r}", previous) for a in range(agents)]
        previous = [f"agent-{a}-round-{r}" for a in range(agents)]
    steps.append(_llm(rng, "judge", previous))
    return Workflow(name, steps, shape="debate")


def code_repair(rng: np.random.Generator, name: str, attempts: int | None = None) -> Workflow:
    attempts = attempts or int(rng.integers(1, 4))
    steps: list[Primitive] = []
    previous: list[str] = []
    for i in range(attempts):
        steps.append(_llm(rng, f"write-{i}", previous, service="code"))
        steps.append(_step(PrimitiveKind.CODE_EXEC, rng, f"test-{i}", [f"write-{i}"]))
        previous = [f"test-{i}"]
    return Workflow(name, steps, shape="code-repair")


SHAPES: dict[str, Callable[..., Workflow]] = {
    "plan-execute": plan_execute,
    "react": react,
    "map-reduce-rag": map_reduce_rag,
    "debate": debate,
    "code-repair": code_repair,
}


ShapeLibrary = Mapping[str, Callable[..., Workflow]]


def _sample(rng: np.random.Generator, name: str, shapes: Sequence[str], library: ShapeLibrary) -> Workflow:
    return library[shapes[int(rng.integers(len(shapes)))]](rng, name)


def arrival_rate_for_load(
    cluster: ClusterSpec, load: float, shapes: Sequence[str] | None = None, library: ShapeLibrary = SHAPES
) -> float:
    """Workflows per second that offer ``load`` x the capacity of the bottleneck resource (GPUs or CPU),
    estimated from 200 sample workflows with each primitive's mean estimated duration over feasible nodes.
    ``shapes`` name generators of ``library`` (scenarios.py passes its own shapes)."""
    shapes = list(shapes or library)
    rng = np.random.default_rng(12345)
    state = ClusterState(cluster)
    gpu_seconds = cpu_seconds = 0.0
    samples = 200
    for i in range(samples):
        for p in _sample(rng, f"w{i}", shapes, library).primitives:
            estimate = estimated_durations(p, state.speed[:, KIND_INDEX[p.kind]], state.prefill_tps, state.decode_tps)
            fits = (p.gpus <= state.alloc_gpus) & (p.cpu_millicores <= state.alloc_cpu)
            seconds = float(estimate[np.isfinite(estimate) & fits].mean())
            gpu_seconds += seconds * p.gpus
            cpu_seconds += seconds * p.cpu_millicores
    capacities = []
    if gpu_seconds > 0:
        capacities.append(state.alloc_gpus.sum() / (gpu_seconds / samples))
    capacities.append(state.alloc_cpu.sum() / (cpu_seconds / samples))
    return float(load * min(capacities))


def generate_workload(
    cluster: ClusterSpec,
    num_workflows: int,
    load: float,
    seed: int,
    shapes: Sequence[str] | None = None,
    bursty: bool = False,
    arrival_rate: float | None = None,
    library: ShapeLibrary = SHAPES,
) -> list[Workflow]:
    """``num_workflows`` workflows with Poisson arrivals (bursty: on/off-modulated) at the given load;
    ``shapes`` name generators of ``library``."""
    shapes = list(shapes or library)
    unknown = set(shapes) - set(library)
    if unknown:
        raise ValueError(f"unknown workflow shapes {sorted(unknown)}; choose from {', '.join(library)}")
    rate = arrival_rate or arrival_rate_for_load(cluster, load, shapes, library)
    rng = np.random.default_rng(seed)
    time, workflows = 0.0, []
    for i in range(num_workflows):
        gap = rng.exponential(1.0 / rate)
        if bursty:  # bursts at 4x the rate half of the time, lulls at 0.25x: same mean rate over time
            gap *= 0.25 if rng.random() < 0.5 else 1.75
        time += gap
        workflow = _sample(rng, f"wf-{seed}-{i:05d}", shapes, library)
        workflow.arrival_time = time
        workflows.append(validate(workflow, cluster.nodes))
    return workflows
