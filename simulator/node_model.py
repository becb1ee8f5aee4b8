"""How long a primitive takes on a node: the one node model shared by simulator, trainer and operator.

The operator writes ``sample_duration``'s result into the pod's KWOK delay annotation, so the
real test cluster runs on the simulator's clock; the policy only ever sees ``estimated_duration``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from .cluster import NodeSpec
from .primitives import COLD_START_SECONDS, KIND_INDEX, PrimitiveKind
from .workflow import Primitive

# Spread of the true duration around the estimate (lognormal, mean-preserving).
DURATION_SIGMA = 0.3
# Embedding throughput of a speed-1.0 node, tokens per second.
EMBED_TOKENS_PER_SECOND = 4000.0
# Fixed per-request overhead of an LLM call (scheduling in the serving engine, tokenisation).
LLM_OVERHEAD_SECONDS = 0.05
NETWORK_LATENCY_SECONDS = 0.002


def feasible(primitive: Primitive, node: NodeSpec) -> bool:
    """Could the node ever run the primitive: its requests fit the allocatable, and the kind runs there."""
    return (
        node.speed.get(primitive.kind, 0.0) > 0.0
        and primitive.cpu_millicores <= node.cpu_millicores
        and primitive.memory_bytes <= node.memory_bytes
        and primitive.gpus <= node.gpus
    )


def estimated_duration(primitive: Primitive, node: NodeSpec) -> float:
    """Expected run time in seconds (no queueing, cold start or transfer); inf where infeasible."""
    return float(
        estimated_durations(
            primitive,
            np.array([node.speed.get(primitive.kind, 0.0)]),
            np.array([node.prefill_tokens_per_second]),
            np.array([node.decode_tokens_per_second]),
        )[0]
    )


def estimated_durations(
    primitive: Primitive, speed: np.ndarray, prefill_tps: np.ndarray, decode_tps: np.ndarray
) -> np.ndarray:
    """``estimated_duration`` for many nodes at once, from per-node arrays (speed for this kind)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if primitive.kind is PrimitiveKind.LLM_GENERATE:
            duration = (
                LLM_OVERHEAD_SECONDS + primitive.input_tokens / prefill_tps + primitive.output_tokens / decode_tps
            )
            runs = (speed > 0) & (prefill_tps > 0) & (decode_tps > 0)
        else:
            work = (
                primitive.input_tokens / EMBED_TOKENS_PER_SECOND
                if primitive.kind is PrimitiveKind.LLM_EMBED and primitive.input_tokens > 0
                else primitive.work_seconds
            )
            duration = work / speed
            runs = speed > 0
    return np.where(runs, duration, math.inf)


# numpy's Generator.lognormal(mean, sigma) is exp(mean + sigma * z) of one standard normal draw z, in the same
# order from the same stream: the engine draws the normals of every primitive on every node up front (what fixes
# the true durations) and exponentiates only the one of the node a primitive runs on (exp is most of the cost
# of a lognormal draw); tests/simulator check the two agree bit for bit.
DURATION_LOG_MEAN = -0.5 * DURATION_SIGMA**2


def duration_factor(standard_normal: float) -> float:
    """True duration / estimate for one standard normal draw: mean-one lognormal, exactly what
    ``Generator.lognormal(DURATION_LOG_MEAN, DURATION_SIGMA)`` gives for that draw."""
    return math.exp(DURATION_LOG_MEAN + DURATION_SIGMA * standard_normal)


def with_work_scaled(primitive: Primitive, ratio: float) -> Primitive:
    """A copy of ``primitive`` whose work, as ``estimated_durations`` charges it, is ``ratio`` times its own: its
    tokens where the run time comes from tokens (llm_generate; llm_embed given input tokens; at least one token
    stays one), else its work_seconds. How a run-time ratio learned for one primitive of a workflow template
    corrects its declared work (operator/core/estimates.py), as ``cluster.corrected`` corrects a node's speed."""
    if ratio == 1.0:
        return primitive

    def tokens(count: int) -> int:
        return max(round(count * ratio), 1) if count > 0 else 0

    if primitive.kind is PrimitiveKind.LLM_GENERATE or (
        primitive.kind is PrimitiveKind.LLM_EMBED and primitive.input_tokens > 0
    ):
        return replace(
            primitive, input_tokens=tokens(primitive.input_tokens), output_tokens=tokens(primitive.output_tokens)
        )
    return replace(primitive, work_seconds=primitive.work_seconds * ratio)


def sample_duration(primitive: Primitive, node: NodeSpec, rng: np.random.Generator) -> float:
    """The true, stochastic run time: the estimate times a mean-one lognormal factor."""
    factor = rng.lognormal(mean=DURATION_LOG_MEAN, sigma=DURATION_SIGMA)
    return estimated_duration(primitive, node) * float(factor)


def cold_start_seconds(kind: PrimitiveKind) -> float:
    """Paid once, the first time a kind runs on a node (image pull, model or index load)."""
    return COLD_START_SECONDS[kind]


def transfer_seconds(
    megabytes: float, source_gbps: float | np.ndarray, destination_gbps: float | np.ndarray
) -> float | np.ndarray:
    """Time to move a parent's output to a child on another node; callers charge 0 on the same node."""
    link: float | np.ndarray
    if type(source_gbps) is float and type(destination_gbps) is float:
        link = min(source_gbps, destination_gbps) * 1000.0  # Python floats: numpy's scalar path costs 1 us a call
    else:
        link = link_megabits_per_second(source_gbps, destination_gbps)
    return transfer_seconds_over(megabytes, link)


def link_megabits_per_second(source_gbps: float | np.ndarray, destination_gbps: float | np.ndarray) -> np.ndarray:
    """The rate of the link between two nodes: the slower end's bandwidth."""
    return np.minimum(source_gbps, destination_gbps) * 1000.0


def transfer_seconds_over(megabytes: float, link_mbps: float | np.ndarray) -> float | np.ndarray:
    """``transfer_seconds`` given the link rate (``link_megabits_per_second``), which depends on the nodes
    only: the feature builder keeps one row per source node (``ClusterState.links_from``)."""
    if megabytes <= 0:
        return 0.0 * link_mbps
    return NETWORK_LATENCY_SECONDS + megabytes * 8.0 / link_mbps


def estimated_durations_matrix(
    primitives: list[Primitive], speed: np.ndarray, prefill_tps: np.ndarray, decode_tps: np.ndarray
) -> np.ndarray:
    """[P, N] ``estimated_durations`` of many primitives at once (speed is [N, K] over KINDS), in a few
    numpy operations instead of several per primitive: the engine prepares every workflow this way. Each row
    gets only its own kind's formula (LLM calls: tokens at the node's rates; others: work over speed)."""
    is_llm = np.array([p.kind is PrimitiveKind.LLM_GENERATE for p in primitives], dtype=bool)
    durations = np.empty((len(primitives), len(prefill_tps)))
    with np.errstate(divide="ignore", invalid="ignore"):
        if is_llm.any():
            rows = np.flatnonzero(is_llm)
            inputs = np.array([primitives[i].input_tokens for i in rows], dtype=np.float64)
            outputs = np.array([primitives[i].output_tokens for i in rows], dtype=np.float64)
            runs = (speed[:, KIND_INDEX[PrimitiveKind.LLM_GENERATE]] > 0) & (prefill_tps > 0) & (decode_tps > 0)
            llm = LLM_OVERHEAD_SECONDS + inputs[:, None] / prefill_tps + outputs[:, None] / decode_tps
            durations[rows] = np.where(runs, llm, math.inf)
        if not is_llm.all():
            rows = np.flatnonzero(~is_llm)
            others = [primitives[i] for i in rows]
            work = np.array(
                [
                    p.input_tokens / EMBED_TOKENS_PER_SECOND
                    if p.kind is PrimitiveKind.LLM_EMBED and p.input_tokens > 0
                    else p.work_seconds
                    for p in others
                ],
                dtype=np.float64,
            )
            node_speed = np.ascontiguousarray(speed.T)[[KIND_INDEX[p.kind] for p in others]]  # [rows, N]
            durations[rows] = np.where(node_speed > 0, work[:, None] / node_speed, math.inf)
    return durations
