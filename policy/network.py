"""The SCALE cross-attention pointer network, and the fixed-size MLP baseline it is compared with.

Both map one padded batch of observations (``primitive`` [B, P], ``nodes`` [B, N, F], ``mask``
[B, N]) to ``PolicyOutput``: one logit per node, a state value, and the features SRR
regularises. SCALE has no input or parameter that depends on N; the MLP is tied to 16 nodes.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from scale_scheduler.simulator.features import (
    NODE_FEATURE_NAMES,
    NODE_FEATURES,
    PRIMITIVE_FEATURES,
    TRANSFER_FEATURE_SCALE,
)
from torch import nn

from .config import NetworkConfig

# Masked logits get this instead of -inf so softmax, log-softmax and their gradients stay finite.
MASKED_LOGIT = -1e8
# The MLP's window holds the nodes of the earliest estimated finish.
ESTIMATED_FINISH_COLUMN = NODE_FEATURE_NAMES.index("log_estimated_finish")
DURATION_COLUMN = NODE_FEATURE_NAMES.index("log_estimated_duration")
WAIT_COLUMN = NODE_FEATURE_NAMES.index("log_estimated_wait")
TRANSFER_COLUMN = NODE_FEATURE_NAMES.index("log_transfer")


def heft_prior(nodes: torch.Tensor, temperature: float) -> torch.Tensor:
    """[B, N] -log(1 + HEFT's estimated finish) / τ, rebuilt from the features: wait + transfer + duration, the
    sum HEFT minimises (it does not charge the one-time cold start), so its argmax over candidates is HEFT's node."""
    log_seconds = torch.stack(
        [nodes[..., DURATION_COLUMN], nodes[..., WAIT_COLUMN], nodes[..., TRANSFER_COLUMN] / TRANSFER_FEATURE_SCALE]
    )
    # the builder's columns are >= 0 and far below 60 (1e26 s); the clamp keeps any other input finite
    finish = torch.expm1(log_seconds.clamp(0.0, 60.0)).sum(0)
    return -torch.log1p(finish) / temperature


def _with_prior(learned: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor, config: NetworkConfig) -> torch.Tensor:
    """The final logits: the learned term plus the HEFT prior when configured, masked."""
    if config.heft_prior_temperature > 0:
        learned = learned + heft_prior(nodes, config.heft_prior_temperature)
    return learned.masked_fill(~mask, MASKED_LOGIT)


def _zero(layer: nn.Linear) -> None:
    """Start a residual head at zero, so the prior alone decides until training says otherwise."""
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)


class PolicyOutput(NamedTuple):
    logits: torch.Tensor  # [B, N], infeasible and padded nodes at MASKED_LOGIT
    value: torch.Tensor  # [B]
    features: torch.Tensor  # [B, D], the representation SRR regularises


def _mlp(inputs: int, hidden: int, outputs: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, outputs))


def _safe_mask(mask: torch.Tensor) -> torch.Tensor:
    """Rows with no feasible node (never produced by the engine, possible in padding) attend to all
    slots, so attention and softmax never see an all-masked row (which would give NaN)."""
    return mask | ~mask.any(dim=-1, keepdim=True)


class CrossAttentionLayer(nn.Module):
    """The task (one query) attends over the node set; pre-norm residual block with a feed-forward."""

    def __init__(self, hidden: int, heads: int):
        super().__init__()
        if hidden % heads:
            raise ValueError(f"hidden size {hidden} must be divisible by the number of heads {heads}")
        self.heads = heads
        self.query_norm = nn.LayerNorm(hidden)
        self.query = nn.Linear(hidden, hidden)
        self.key_value = nn.Linear(hidden, 2 * hidden)
        self.out = nn.Linear(hidden, hidden)
        self.feed_forward_norm = nn.LayerNorm(hidden)
        self.feed_forward = _mlp(hidden, 2 * hidden, hidden)

    def forward(self, task: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, num_nodes, hidden = nodes.shape
        head_dim = hidden // self.heads
        # [B, H, 1, d] query from the task; [B, H, N, d] keys and values from the nodes
        query = self.query(self.query_norm(task)).view(batch, 1, self.heads, head_dim).transpose(1, 2)
        key, value = self.key_value(nodes).view(batch, num_nodes, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask[:, None, None, :])  # [B,H,1,d]
        task = task + self.out(attended.transpose(1, 2).reshape(batch, hidden))  # [B, D]
        out: torch.Tensor = task + self.feed_forward(self.feed_forward_norm(task))
        return out


class ScaleNetwork(nn.Module):
    """Task encoder, node encoder, cross-attention stack, C·tanh pointer head and critic head.

    ``features`` is the task representation after the last cross-attention layer (``h`` [B, D]):
    the attention output whose statistics would otherwise drift with N, and what SRR regularises.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        hidden = config.hidden
        self.task_encoder = _mlp(PRIMITIVE_FEATURES, hidden, hidden)
        self.node_encoder = _mlp(NODE_FEATURES, hidden, hidden)
        self.layers = nn.ModuleList(CrossAttentionLayer(hidden, config.heads) for _ in range(config.layers))
        self.pointer_query = nn.Linear(hidden, hidden)
        self.pointer_key = nn.Linear(hidden, hidden)
        self.critic = _mlp(hidden, hidden, 1)
        if config.heft_prior_temperature > 0:
            _zero(self.pointer_query)  # keys still get gradients through the query's, and the query through the keys

    def forward(self, primitive: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> PolicyOutput:
        attend_mask = _safe_mask(mask)
        task = self.task_encoder(primitive)  # [B, D]
        node_embeddings = self.node_encoder(nodes)  # [B, N, D]
        for layer in self.layers:
            task = layer(task, node_embeddings, attend_mask)  # [B, D]
        query = self.pointer_query(task)  # [B, D]
        keys = self.pointer_key(node_embeddings)  # [B, N, D]
        compatibility = torch.einsum("bd,bnd->bn", query, keys) / math.sqrt(self.config.hidden)  # [B, N]
        logits = _with_prior(self.config.logit_clip * torch.tanh(compatibility), nodes, mask, self.config)
        return PolicyOutput(logits, self.critic(task).squeeze(-1), task)


class WindowMLPNetwork(nn.Module):
    """PPO-MLP: a flat MLP over a fixed window of ``window`` node slots (the paper's size-tied baseline).

    The window holds the feasible nodes with the lowest estimated finish time, in that order. At
    N = 16 it is a re-ordering of the whole cluster; at N > 16 it is a truncation: the other nodes
    are never considered (a kube-scheduler-like pre-filter), which is how a fixed-input network can
    run on a larger cluster at all.
    """

    def __init__(self, config: NetworkConfig):
        super().__init__()
        self.config = config
        window, hidden = config.window, config.hidden
        self.body = nn.Sequential(
            nn.Linear(PRIMITIVE_FEATURES + window * (NODE_FEATURES + 1), 2 * hidden),
            nn.ReLU(),
            nn.Linear(2 * hidden, hidden),
            nn.ReLU(),
        )
        self.actor = nn.Linear(hidden, window)
        self.critic = nn.Linear(hidden, 1)
        if config.heft_prior_temperature > 0:
            _zero(self.actor)

    def window_indices(self, nodes: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, W] node indices of the window and [B, W] whether each slot holds a feasible node."""
        window = self.config.window
        rank_key = torch.where(mask, nodes[..., ESTIMATED_FINISH_COLUMN], torch.inf)  # [B, N]
        if rank_key.shape[1] < window:  # fewer nodes than slots: pad with empty slots
            rank_key = F.pad(rank_key, (0, window - rank_key.shape[1]), value=torch.inf)
        order = torch.sort(rank_key, dim=1, stable=True).indices[:, :window]  # [B, W]
        in_window = torch.isfinite(torch.gather(rank_key, 1, order))
        return order.clamp(max=nodes.shape[1] - 1), in_window

    def slots(
        self, primitive: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Hidden [B, D], raw per-slot outputs [B, W], slot -> node index [B, W], slot in use [B, W]."""
        node_features = nodes.shape[-1]
        order, in_window = self.window_indices(nodes, mask)
        window_nodes = torch.gather(nodes, 1, order[..., None].expand(-1, -1, node_features))  # [B, W, F]
        window_nodes = window_nodes * in_window[..., None]
        hidden = self.body(torch.cat([primitive, window_nodes.flatten(1), in_window.float()], dim=1))  # [B, D]
        return hidden, self.actor(hidden), order, in_window

    @staticmethod
    def scatter_to_nodes(
        slot_values: torch.Tensor, order: torch.Tensor, in_window: torch.Tensor, num_nodes: int, fill: float
    ) -> torch.Tensor:
        """[B, W] slot values -> [B, N]; nodes outside the window (and empty slots) get ``fill``."""
        slot_values = slot_values.masked_fill(~in_window, fill)
        out = torch.full((slot_values.shape[0], num_nodes), fill, dtype=slot_values.dtype, device=slot_values.device)
        # amax because empty slots may point at the same (clamped) index as a real one
        return out.scatter_reduce(1, order, slot_values, reduce="amax")

    def forward(self, primitive: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> PolicyOutput:
        hidden, slot_outputs, order, in_window = self.slots(primitive, nodes, mask)
        slot_logits = self.config.logit_clip * torch.tanh(slot_outputs / self.config.logit_clip)  # [B, W]
        logits = self.scatter_to_nodes(slot_logits, order, in_window, nodes.shape[1], MASKED_LOGIT)  # [B, N]
        # nodes outside the window stay out: MASKED_LOGIT plus a finite prior is still far below any slot's logit
        logits = _with_prior(logits, nodes, mask, self.config)
        return PolicyOutput(logits, self.critic(hidden).squeeze(-1), hidden)


def network_config(model: nn.Module) -> NetworkConfig:
    """The config a network was built from (every network here keeps it as ``config``)."""
    config = getattr(model, "config", None)
    if not isinstance(config, NetworkConfig):
        raise TypeError(f"{type(model).__name__} is not a policy network built by build_network")
    return config


def build_network(config: NetworkConfig) -> nn.Module:
    if config.architecture == "scale":
        return ScaleNetwork(config)
    if config.architecture == "mlp":
        return WindowMLPNetwork(config)
    raise ValueError(f"unknown architecture {config.architecture!r}; choose 'scale' or 'mlp'")


def masked_distribution_terms(logits: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities [B, N] and entropy normalised by log(#feasible) [B] (0 with one choice),
    so the entropy bonus means the same thing at any cluster size."""
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp() * mask
    entropy = -(probs * torch.where(mask, log_probs, 0.0)).sum(-1)
    feasible = mask.sum(-1).clamp(min=1).float()
    normaliser = torch.where(feasible > 1, torch.log(feasible), torch.ones_like(feasible))
    return log_probs, torch.where(feasible > 1, entropy / normaliser, torch.zeros_like(entropy))
