"""A trained network behind the simulator's ``Scheduler`` interface: one forward pass per decision."""

from __future__ import annotations

import numpy as np
import torch
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.placement import Waiting, pick
from torch import nn


class LearnedScheduler:
    """Greedy (argmax) placement by a policy network; ready primitives ordered like HEFT (upward rank),
    the same order the engine uses while training, so the policy sees the decisions it learned on."""

    def __init__(self, name: str, model: nn.Module):
        self.name = name
        self.model = model.eval()

    def reset(self, seed: int | None = None) -> None:
        """Greedy inference keeps no per-episode state."""

    def priority(self, waiting: Waiting) -> float:
        return waiting.downstream_seconds

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
