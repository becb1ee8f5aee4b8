"""A trained network behind the simulator's ``Scheduler`` interface: one forward pass per decision."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.placement import Waiting, pick
from scale_scheduler.simulator.schedulers import queue_order
from torch import nn

from .network import network_config


class LearnedScheduler:
    """Greedy (argmax) placement by a policy network; ready primitives wait in the network's queue order, the
    order the engine used while it trained, so the policy sees the decisions it learned on."""

    def __init__(self, name: str, model: nn.Module):
        self.name = name
        self.model = model.eval()
        # the order itself, not a wrapper: the engine and the operator see whether it is fixed (placement.is_fixed)
        self.priority: Callable[[Waiting], float] = queue_order(network_config(model).queue_order)

    def reset(self, seed: int | None = None) -> None:
        """Greedy inference keeps no per-episode state."""

    def scores(self, observation: Observation) -> np.ndarray:
        """[N] the network's logits (nodes that are no candidates at MASKED_LOGIT); the extender scores from it."""
        with torch.inference_mode():
            output = self.model(
                torch.from_numpy(observation.primitive_features)[None],
                torch.from_numpy(observation.node_features)[None],
                torch.from_numpy(np.ascontiguousarray(observation.candidates))[None],
            )
        logits: np.ndarray = output.logits[0].numpy()
        return logits

    def choose(self, observation: Observation) -> int:
        return pick(self.scores(observation), observation.candidates)
