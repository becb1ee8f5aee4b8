"""The observation a scheduler gets for one decision, and the feature builder.

One implementation, used by the simulator's environment, the trainer and the operator. Nothing
here grows with the node count: times are in log-seconds, loads are fractions of a node's own
allocatable, and cross-node terms are relative to the mean over feasible nodes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar, cast

import numpy as np

from .node_model import cold_start_seconds, estimated_durations, transfer_seconds_over
from .placement import DEFAULT_RULE, PlacementRule, candidates, room_now
from .primitives import GIB, KIND_INDEX, KINDS
from .state import NODE_CLASSES, ClusterState, dominant_share
from .workflow import Primitive

if TYPE_CHECKING:  # the engine builds observations
    from .engine import Engine

_Value = TypeVar("_Value")


class _lazy(Generic[_Value]):
    """functools.cached_property without its lock (Python 3.11 takes an RLock on every first access, a
    quarter of a heuristic's decision at N=48): computed on first access and kept in the instance's
    ``__dict__``, which later reads find first; the engine primes values it already has the same way."""

    def __init__(self, compute: Callable[[Any], _Value]):
        self.compute, self.name = compute, compute.__name__
        self.__doc__ = compute.__doc__

    def __get__(self, observation: Any, owner: type | None = None) -> _Value:
        if observation is None:
            return self  # type: ignore[return-value]  # the descriptor itself, as on the class
        value = observation.__dict__[self.name] = self.compute(observation)
        return value


# The feature layout, in column order: the one interface every checkpoint freezes (policy/checkpoint.py records
# these names and refuses a checkpoint trained on another layout). Append or reorder here and in the builders
# below together; counts and column indices are derived from these tuples, never written by hand.
PRIMITIVE_FEATURE_NAMES: tuple[str, ...] = (
    *(f"kind_{kind.value}" for kind in KINDS),  # one-hot
    "log_input_tokens",
    "log_output_tokens",
    "log_cpu_cores",
    "log_memory_gib",
    "gpus",
    "log_mean_estimated_duration",  # over the feasible nodes
    "log_downstream_seconds",
)
NODE_FEATURE_NAMES: tuple[str, ...] = (
    "log_estimated_duration",
    "log_estimated_wait",
    "log_transfer",
    "log_cold_start",
    "log_estimated_finish",
    "finish_over_feasible_mean",
    "log_finish_behind_best",
    "fits_now",
    "cpu_used",
    "memory_used",
    "gpu_free",
    "cpu_used_minus_feasible_mean",
    "log_queue_length",
    "log_running",
    "parent_output_share",
    *(f"class_{node_class}" for node_class in NODE_CLASSES),  # one-hot
)
# log1p(transfer seconds) is scaled up so the column spans about as much as the others (transfers are short);
# policy/network.py undoes it to rebuild HEFT's estimate from the features
TRANSFER_FEATURE_SCALE = 4.0
PRIMITIVE_FEATURES = len(PRIMITIVE_FEATURE_NAMES)
NODE_FEATURES = len(NODE_FEATURE_NAMES)


class FeatureLayout(TypedDict):
    primitive: list[str]
    node: list[str]
    hash: str  # 12 hex digits of the SHA-256 of the names


def feature_layout() -> FeatureLayout:
    """The names of both feature vectors and a short hash of them, as checkpoints record them."""
    names = {"primitive": list(PRIMITIVE_FEATURE_NAMES), "node": list(NODE_FEATURE_NAMES)}
    digest = hashlib.sha256(json.dumps(names, sort_keys=True).encode()).hexdigest()[:12]
    return FeatureLayout(primitive=names["primitive"], node=names["node"], hash=digest)


@dataclass
class Observation:
    """Everything a scheduler may use to place ``primitive``: estimates only, never true durations."""

    now: float
    primitive: Primitive
    state: ClusterState
    # (node index, megabytes) of each parent's output the primitive must read
    parent_outputs: list[tuple[int, float]] = field(default_factory=list)
    # estimated seconds of the longest chain of work after this primitive (HEFT's upward rank minus self)
    downstream_seconds: float = 0.0
    workflow_elapsed: float = 0.0
    rule: PlacementRule = DEFAULT_RULE
    # [N] nodes the primitive's own placement constraints admit (a live cluster's nodeSelector, node affinity and
    # taints, read by the operator); None: every node, as in the simulator
    allowed: np.ndarray | None = None
    # in the simulator, Engine.fork at this decision (lookahead schedulers); None on a live cluster
    fork: Callable[..., Engine] | None = None

    @_lazy
    def mask(self) -> np.ndarray:
        """Nodes that can ever run the primitive (allocatable and hardware); others must never be picked."""
        p, s = self.primitive, self.state
        mask: np.ndarray = (
            (s.speed[:, KIND_INDEX[p.kind]] > 0)
            & (p.cpu_millicores <= s.alloc_cpu)
            & (p.memory_bytes <= s.alloc_memory)
            & (p.gpus <= s.alloc_gpus)
            & np.isfinite(self.estimated_duration)
        )
        return mask if self.allowed is None else np.logical_and(mask, self.allowed)

    @_lazy
    def candidates(self) -> np.ndarray:
        """Nodes the primitive may be given now under ``rule``: the only ones a scheduler may pick."""
        return candidates(self.primitive, self.state, self.mask, self.rule)

    @_lazy
    def room(self) -> np.ndarray:
        """Nodes whose free resources hold the primitive's requests now (``placement.room_now``)."""
        return room_now(self.primitive, self.state)

    @_lazy
    def fits_now(self) -> np.ndarray:
        """Nodes where it would start at once: room now and nobody planned ahead of it there."""
        fits: np.ndarray = self.room & (self.state.queue_length == 0)
        return fits

    @_lazy
    def estimated_duration(self) -> np.ndarray:
        s = self.state
        return estimated_durations(
            self.primitive, s.speed[:, KIND_INDEX[self.primitive.kind]], s.prefill_tps, s.decode_tps
        )

    @_lazy
    def node_load(self) -> np.ndarray:
        """Dominant-resource share in use per node, plus queued primitives (each counts as a full node)."""
        s = self.state
        load: np.ndarray = (
            dominant_share(
                s.free_cpu, s.alloc_cpu, s.free_memory, s.alloc_memory, s.free_gpus, s.gpu_divisor, s.gpu_weight
            )
            + s.queue_length
        )
        return load

    @_lazy
    def estimated_wait(self) -> np.ndarray:
        """Seconds before the primitive could start: 0 if it fits now, else the earliest release plus
        the queued work spread over the node's running slots (an estimate, as a real scheduler has)."""
        s = self.state
        backlog = np.maximum(np.where(np.isfinite(s.next_release), s.next_release - self.now, 0.0), 0.0)
        if np.count_nonzero(s.queued_seconds):  # else (always under late binding) the queued term adds zeros
            backlog = backlog + s.queued_seconds / np.maximum(s.running, 1)
        return np.where(self.fits_now, 0.0, backlog)

    @_lazy
    def transfer(self) -> np.ndarray:
        """Seconds to pull every parent's output to each node (0 for outputs already there)."""
        s = self.state
        total: np.ndarray | None = None
        for node, megabytes in self.parent_outputs:
            if megabytes <= 0:
                continue
            seconds = cast(np.ndarray, transfer_seconds_over(megabytes, s.links_from(node)))  # a row in, a row out
            seconds[node] = 0.0
            # parents' outputs are pulled in parallel; every term is >= 0, so the first is the running maximum
            total = seconds if total is None else np.maximum(total, seconds)
        return np.zeros(s.num_nodes) if total is None else total

    @_lazy
    def cold_start(self) -> np.ndarray:
        return np.where(self.state.is_warm(self.primitive.kind), 0.0, cold_start_seconds(self.primitive.kind))

    @_lazy
    def estimated_finish(self) -> np.ndarray:
        """Estimated seconds from now until the primitive would finish on each node (inf if masked)."""
        finish = self.estimated_wait + self.transfer + self.cold_start + self.estimated_duration
        return np.where(self.mask, finish, np.inf)

    @_lazy
    def primitive_features(self) -> np.ndarray:
        p = self.primitive
        kind = np.zeros(len(KINDS))
        kind[KIND_INDEX[p.kind]] = 1.0
        mean_duration = float(np.mean(self.estimated_duration[self.mask])) if self.mask.any() else 0.0
        extra = [  # PRIMITIVE_FEATURE_NAMES after the kinds, in that order
            np.log1p(p.input_tokens) / 8.0,
            np.log1p(p.output_tokens) / 8.0,
            np.log1p(p.cpu_millicores / 1000.0),
            np.log1p(p.memory_bytes / GIB) / 4.0,
            float(p.gpus),
            np.log1p(mean_duration) / 3.0,
            np.log1p(self.downstream_seconds) / 4.0,
        ]
        return np.concatenate([kind, np.asarray(extra)]).astype(np.float32)

    @_lazy
    def node_features(self) -> np.ndarray:
        """[N, NODE_FEATURES]; rows of masked nodes are finite but meaningless (the mask hides them)."""
        s, mask = self.state, self.mask
        finite = np.where(mask, self.estimated_finish, 0.0)
        duration = np.where(mask, self.estimated_duration, 0.0)
        feasible_mean = float(finite[mask].mean()) if mask.any() else 1.0
        best = float(finite[mask].min()) if mask.any() else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            gpu_free = np.where(s.alloc_gpus > 0, s.free_gpus / s.alloc_gpus, 0.0)
        cpu_used = 1.0 - s.free_cpu / s.alloc_cpu
        mem_used = 1.0 - s.free_memory / s.alloc_memory
        parent_local = np.zeros(s.num_nodes)
        total_mb = sum(mb for _, mb in self.parent_outputs)
        for node, megabytes in self.parent_outputs:
            parent_local[node] += megabytes / total_mb if total_mb > 0 else 0.0
        node_class = np.zeros((s.num_nodes, len(NODE_CLASSES)))
        node_class[np.arange(s.num_nodes), s.node_class] = 1.0
        columns = [  # NODE_FEATURE_NAMES before the classes, in that order
            np.log1p(duration),
            np.log1p(self.estimated_wait),
            np.log1p(self.transfer) * TRANSFER_FEATURE_SCALE,
            np.log1p(self.cold_start) / 2.0,
            np.log1p(finite),
            finite / max(feasible_mean, 1e-6),
            np.log1p(np.maximum(finite - best, 0.0)),
            self.fits_now.astype(np.float64),
            cpu_used,
            mem_used,
            gpu_free,
            cpu_used - float(cpu_used[mask].mean() if mask.any() else 0.0),
            np.log1p(s.queue_length),
            np.log1p(s.running) / 2.0,
            parent_local,
        ]
        features = np.concatenate([np.stack(columns, axis=1), node_class], axis=1)
        return np.where(mask[:, None], features, 0.0).astype(np.float32)
