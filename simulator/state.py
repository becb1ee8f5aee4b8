"""Live state of a cluster as a scheduler sees it, in flat per-node arrays.

The discrete-event engine keeps one up to date incrementally; the operator fills one from Node
and Pod objects. Features and heuristics read only this, so both see the same cluster.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cluster import ClusterSpec, NodeSpec
from .node_classes import TIERS, feature_tier
from .node_model import link_megabits_per_second
from .primitives import KIND_INDEX, KINDS, PrimitiveKind

# The node-class feature's one-hot columns: the generator's five classes, which every other class is shown as.
NODE_CLASSES: tuple[str, ...] = TIERS
_DYNAMIC = ("free_cpu", "free_memory", "free_gpus", "running", "queue_length", "queued_seconds", "next_release", "warm")


def _class_index(node: NodeSpec) -> int:
    """The node's one-hot column: its class's, or for a class outside the five that of its ``feature_tier``."""
    tier = feature_tier(
        node.node_class, node.gpus, node.decode_tokens_per_second, node.cpu_millicores, node.memory_bytes
    )
    return NODE_CLASSES.index(tier)


def dominant_share(
    free_cpu: Any,
    alloc_cpu: Any,
    free_memory: Any,
    alloc_memory: Any,
    free_gpus: Any,
    gpu_divisor: Any,
    gpu_weight: Any,
    larger: Callable[[Any, Any], Any] = np.maximum,
) -> Any:
    """Share in use of a node's most used resource (GPUs only on GPU nodes): for every node at once from the
    state's arrays, or for one node from its Python floats with ``larger=max`` (how the engine keeps it current
    as primitives start and finish); the same operations either way, so the same bits."""
    return larger(
        larger(1.0 - free_cpu / alloc_cpu, 1.0 - free_memory / alloc_memory),
        (1.0 - free_gpus / gpu_divisor) * gpu_weight,
    )


@dataclass
class ClusterState:
    spec: ClusterSpec
    # static, from the spec
    alloc_cpu: np.ndarray = field(init=False)  # millicores
    alloc_memory: np.ndarray = field(init=False)  # bytes
    alloc_gpus: np.ndarray = field(init=False)
    speed: np.ndarray = field(init=False)  # [N, K] relative speed per primitive kind
    prefill_tps: np.ndarray = field(init=False)
    decode_tps: np.ndarray = field(init=False)
    bandwidth_gbps: np.ndarray = field(init=False)
    node_class: np.ndarray = field(init=False)  # [N] one-hot column in NODE_CLASSES (``_class_index``)
    # [N] the GPU share's divisor and weight: alloc_gpus and 1.0 on GPU nodes, 1.0 and 0.0 elsewhere, so that
    # (1 - free_gpus / gpu_divisor) * gpu_weight is the share in use without a division by zero to mask
    gpu_divisor: np.ndarray = field(init=False)
    gpu_weight: np.ndarray = field(init=False)
    # dynamic
    free_cpu: np.ndarray = field(init=False)
    free_memory: np.ndarray = field(init=False)
    free_gpus: np.ndarray = field(init=False)
    running: np.ndarray = field(init=False)  # primitives running per node
    queue_length: np.ndarray = field(init=False)  # primitives bound but waiting for room
    queued_seconds: np.ndarray = field(init=False)  # estimated run time of the queued ones
    next_release: np.ndarray = field(init=False)  # absolute est. time the earliest running one ends
    warm: np.ndarray = field(init=False)  # [N, K] bool: the kind has run here (no cold start)

    # per source node, link_megabits_per_second to every node, filled as sources come up; static, so shared by
    # copies (copy.copy shares the dict)
    _links: dict[int, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        nodes = self.spec.nodes
        self.alloc_cpu = np.array([n.cpu_millicores for n in nodes], dtype=np.float64)
        self.alloc_memory = np.array([n.memory_bytes for n in nodes], dtype=np.float64)
        self.alloc_gpus = np.array([n.gpus for n in nodes], dtype=np.float64)
        self.speed = np.array([[n.speed.get(k, 0.0) for k in KINDS] for n in nodes], dtype=np.float64)
        self.prefill_tps = np.array([n.prefill_tokens_per_second for n in nodes], dtype=np.float64)
        self.decode_tps = np.array([n.decode_tokens_per_second for n in nodes], dtype=np.float64)
        self.bandwidth_gbps = np.array([n.bandwidth_gbps for n in nodes], dtype=np.float64)
        self.node_class = np.array([_class_index(n) for n in nodes], dtype=np.int64)
        has_gpus = self.alloc_gpus > 0
        self.gpu_divisor = np.where(has_gpus, self.alloc_gpus, 1.0)
        self.gpu_weight = has_gpus.astype(np.float64)
        self._links = {}
        self.reset()

    def reset(self) -> None:
        n = len(self.spec.nodes)
        self.free_cpu = self.alloc_cpu.copy()
        self.free_memory = self.alloc_memory.copy()
        self.free_gpus = self.alloc_gpus.copy()
        self.running = np.zeros(n, dtype=np.int64)
        self.queue_length = np.zeros(n, dtype=np.int64)
        self.queued_seconds = np.zeros(n, dtype=np.float64)
        self.next_release = np.full(n, np.inf)
        self.warm = np.zeros((n, len(KINDS)), dtype=bool)

    def copy(self) -> ClusterState:
        """A copy with dynamic arrays of its own; the static ones, fixed by the spec, are shared."""
        clone = copy.copy(self)
        for name in _DYNAMIC:
            setattr(clone, name, getattr(self, name).copy())
        return clone

    @property
    def num_nodes(self) -> int:
        return len(self.spec.nodes)

    def index_of(self, node_name: str) -> int:
        for i, node in enumerate(self.spec.nodes):
            if node.name == node_name:
                return i
        raise KeyError(node_name)

    def links_from(self, source: int) -> np.ndarray:
        """[N] megabits per second from node ``source`` to each node (``node_model.link_megabits_per_second``)."""
        links = self._links.get(source)
        if links is None:
            links = self._links[source] = link_megabits_per_second(
                self.bandwidth_gbps.item(source), self.bandwidth_gbps
            )
        return links

    def is_warm(self, kind: PrimitiveKind) -> np.ndarray:
        return self.warm[:, KIND_INDEX[kind]]
