"""A policy's architecture and weights as plain data: what a worker (a Ray task, a label generator) builds its own
copy of the model from, so models travel as tensors and names, never as live objects."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import NetworkConfig
from .network import build_network


@dataclass
class PolicySnapshot:
    network: NetworkConfig
    weights: dict[str, torch.Tensor]

    @classmethod
    def of(cls, model: nn.Module, network: NetworkConfig) -> PolicySnapshot:
        return cls(network, {name: value.detach().clone() for name, value in model.state_dict().items()})

    def build(self) -> nn.Module:
        # the initial weights drawn here are overwritten at once: leave the caller's global RNG as it was
        with torch.random.fork_rng(devices=[]):
            model = build_network(self.network)
        model.load_state_dict(self.weights)
        return model.eval()
