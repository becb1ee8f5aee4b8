"""Pad observations of clusters of different sizes into one batch for one forward pass.

Padded node slots get zero features and ``mask = False``, so they are exactly as invisible as an
infeasible node: the same batch gives the same logits for the real nodes whatever the padding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scale_scheduler.simulator.features import NODE_FEATURES, PRIMITIVE_FEATURES, Observation


@dataclass
class ObservationBatch:
    primitive: np.ndarray  # [B, P] float32
    nodes: np.ndarray  # [B, N_max, F] float32
    mask: np.ndarray  # [B, N_max] bool

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return torch.from_numpy(self.primitive), torch.from_numpy(self.nodes), torch.from_numpy(self.mask)


def pad_arrays(
    primitives: Sequence[np.ndarray], nodes: Sequence[np.ndarray], masks: Sequence[np.ndarray], width: int | None = None
) -> ObservationBatch:
    """Stack per-decision arrays, padding the node axis to ``width`` (default: the largest N)."""
    width = width or max(len(m) for m in masks)
    batch = len(masks)
    padded_nodes = np.zeros((batch, width, NODE_FEATURES), dtype=np.float32)
    padded_mask = np.zeros((batch, width), dtype=bool)
    for i, (node_rows, mask) in enumerate(zip(nodes, masks, strict=True)):
        padded_nodes[i, : len(mask)] = node_rows
        padded_mask[i, : len(mask)] = mask
    primitive = np.stack(primitives).astype(np.float32, copy=False).reshape(batch, PRIMITIVE_FEATURES)
    return ObservationBatch(primitive, padded_nodes, padded_mask)


def batch_observations(observations: Sequence[Observation]) -> ObservationBatch:
    return pad_arrays(
        [o.primitive_features for o in observations],
        [o.node_features for o in observations],
        [o.candidates for o in observations],
    )
