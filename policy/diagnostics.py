"""Does the attention representation drift with N? Record the features SRR regularises on the
states a policy actually visits, per cluster size, and summarise their statistics."""

from __future__ import annotations

import copy
from typing import Any

import torch
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.generators import generate_workload
from torch import nn

from .learned import LearnedScheduler
from .srr import feature_statistics


class FeatureRecorder(LearnedScheduler):
    """Schedules greedily like ``LearnedScheduler`` and keeps every decision's feature vector."""

    def __init__(self, name: str, model: nn.Module):
        super().__init__(name, model)
        self.features: list[torch.Tensor] = []

    def choose(self, observation: Observation) -> int:
        with torch.inference_mode():
            output = self.model(
                torch.from_numpy(observation.primitive_features)[None],
                torch.from_numpy(observation.node_features)[None],
                torch.from_numpy(observation.candidates.copy())[None],
            )
        self.features.append(output.features[0])
        return int(torch.argmax(output.logits[0]))


def feature_drift(
    models: dict[str, nn.Module], nodes: list[int], seeds: int, workflows: int, load: float = 0.7
) -> list[dict[str, Any]]:
    """Per (model, N): statistics of the features over all decisions of ``seeds`` per-node-load episodes."""
    rows = []
    for name, model in models.items():
        for size in nodes:
            recorder = FeatureRecorder(name, model)
            for seed in range(seeds):
                cluster = heterogeneous(size, seed=seed)
                workload = generate_workload(cluster, workflows, load, seed=seed)
                simulate(cluster, copy.deepcopy(workload), recorder, seed=seed)
            features = torch.stack(recorder.features)
            rows.append({"model": name, "nodes": size, "decisions": len(features), **feature_statistics(features)})
    return rows


def markdown_drift(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| model | N | decisions | feature mean | mean abs(dim mean) | feature variance | mean abs off-diag corr |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['model']} | {row['nodes']} | {row['decisions']} | {row['feature_mean']:+.3f} | "
            f"{row['feature_abs_mean']:.3f} | {row['feature_variance']:.3f} | "
            f"{row['mean_abs_offdiag_correlation']:.3f} |"
        )
    return "\n".join(lines) + "\n"
