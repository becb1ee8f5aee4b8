"""The observation a scheduler gets for one decision, and the feature builder.

One implementation, used by the simulator's environment, the trainer and the operator. Nothing
here grows with the node count: times are in log-seconds, loads are fractions of a node's own
allocatable, and cross-node terms are relative to the mean over feasible nodes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .node_model import cold_start_seconds, estimated_durations, transfer_seconds
from .placement import DEFAULT_RULE, PlacementRule, candidates, room_now
from .primitives import GIB, KIND_INDEX, KINDS
from .state import NODE_CLASSES, ClusterState
from .workflow import Primitive

if TYPE_CHECKING:  # the engine builds observations
    from .engine import Engine

PRIMITIVE_FEATURES = len(KINDS) + 7
NODE_FEATURES = 15 + len(NODE_CLASSES)


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

    @cached_property
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

    @cached_property
    def candidates(self) -> np.ndarray:
        """Nodes the primitive may be given now under ``rule``: the only ones a scheduler may pick."""
        return candidates(self.primitive, self.state, self.mask, self.rule)

    @cached_property
    def fits_now(self) -> np.ndarray:
        """Nodes where it would start at once: room now and nobody planned ahead of it there."""
        return room_now(self.primitive, self.state) & (self.state.queue_length == 0)

    @cached_property
    def estimated_duration(self) -> np.ndarray:
        s = self.state
        return estimated_durations(
            self.primitive, s.speed[:, KIND_INDEX[self.primitive.kind]], s.prefill_tps, s.decode_tps
        )

    @cached_property
    def estimated_wait(self) -> np.ndarray:
        """Seconds before the primitive could start: 0 if it fits now, else the earliest release plus
        the queued work spread over the node's running slots (an estimate, as a real scheduler has)."""
        s = self.state
        backlog = np.maximum(np.where(np.isfinite(s.next_release), s.next_release - self.now, 0.0), 0.0)
        if np.count_nonzero(s.queued_seconds):  # else (always under late binding) the queued term adds zeros
            backlog = backlog + s.queued_seconds / np.maximum(s.running, 1)
        return np.where(self.fits_now, 0.0, backlog)

    @cached_property
    def transfer(self) -> np.ndarray:
        """Seconds to pull every parent's output to each node (0 for outputs already there)."""
        s = self.state
        total = None
        for node, megabytes in self.parent_outputs:
            if megabytes <= 0:
                continue
            seconds = np.asarray(transfer_seconds(megabytes, s.bandwidth_gbps.item(node), s.bandwidth_gbps))
            seconds[node] = 0.0
            # parents' outputs are pulled in parallel; every term is >= 0, so the first is the running maximum
            total = seconds if total is None else np.maximum(total, seconds)
        return np.zeros(s.num_nodes) if total is None else total

    @cached_property
    def cold_start(self) -> np.ndarray:
        return np.where(self.state.is_warm(self.primitive.kind), 0.0, cold_start_seconds(self.primitive.kind))

    @cached_property
    def estimated_finish(self) -> np.ndarray:
        """Estimated seconds from now until the primitive would finish on each node (inf if masked)."""
        finish = self.estimated_wait + self.transfer + self.cold_start + self.estimated_duration
        return np.where(self.mask, finish, np.inf)

    @cached_property
    def primitive_features(self) -> np.ndarray:
        p = self.primitive
        kind = np.zeros(len(KINDS))
        kind[KIND_INDEX[p.kind]] = 1.0
        mean_duration = float(np.mean(self.estimated_duration[self.mask])) if self.mask.any() else 0.0
        extra = [
            np.log1p(p.input_tokens) / 8.0,
            np.log1p(p.output_tokens) / 8.0,
            np.log1p(p.cpu_millicores / 1000.0),
            np.log1p(p.memory_bytes / GIB) / 4.0,
            float(p.gpus),
            np.log1p(mean_duration) / 3.0,
            np.log1p(self.downstream_seconds) / 4.0,
        ]
        return np.concatenate([kind, np.asarray(extra)]).astype(np.float32)

    @cached_property
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
        columns = [
            np.log1p(duration),
            np.log1p(self.estimated_wait),
            np.log1p(self.transfer) * 4.0,
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
