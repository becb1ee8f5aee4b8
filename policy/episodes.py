"""What the trainers learn and are judged on: sampled episodes, fixed validation sets, return scaling.

Shared by every algorithm (ppo.py, sac.py) and by the benchmarks, so neither trainer imports the other.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scale_scheduler.simulator.cluster import ClusterSpec, heterogeneous
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import DEFAULT_RULE, PlacementRule
from scale_scheduler.simulator.scenarios import draw_world
from scale_scheduler.simulator.schedulers import Scheduler, make_heuristic
from scale_scheduler.simulator.workflow import Workflow

if TYPE_CHECKING:
    from .config import TrainingConfig

# Validation seeds are offset so they never coincide with `scale-sched evaluate`'s seeds (0, 1, ...).
VALIDATION_SEED_OFFSET = 10_000


@dataclass
class EpisodeSpec:
    """One arrival sequence: the cluster, its workflows and the seed of the true durations."""

    cluster: ClusterSpec
    workflows: list[Workflow]
    duration_seed: int
    load: float


def sample_episode(
    rng: np.random.Generator, nodes: int, workflows: int, load: float, cluster: ClusterSpec | None = None
) -> EpisodeSpec:
    """Workflows and durations on ``cluster``, else on a generated cluster of ``nodes``; the cluster's seed is drawn
    either way, so a given cluster leaves the workload and duration seeds those of the generated one."""
    cluster_seed = int(rng.integers(2**31))
    cluster = cluster if cluster is not None else heterogeneous(nodes, seed=cluster_seed)
    return EpisodeSpec(
        cluster=cluster,
        workflows=generate_workload(cluster, workflows, load, seed=int(rng.integers(2**31))),
        duration_seed=int(rng.integers(2**31)),
        load=load,
    )


def training_episode(rng: np.random.Generator, config: TrainingConfig) -> EpisodeSpec:
    """One training episode: from the generator at ``config.nodes``, or from the world mix with ``config.world``."""
    if config.world:
        cluster, workflows, load = draw_world(rng, config.workflows_per_episode, (config.load_low, config.load_high))
        return EpisodeSpec(cluster, workflows, duration_seed=int(rng.integers(2**31)), load=load)
    load = float(rng.uniform(config.load_low, config.load_high))
    return sample_episode(rng, config.nodes, config.workflows_per_episode, load, config.cluster_spec)


def validation_episodes(
    seed: int, nodes: int, count: int, workflows: int, load: float, cluster: ClusterSpec | None = None
) -> list[EpisodeSpec]:
    """Fixed held-out episodes for the training curve; seeds disjoint from `scale-sched evaluate`'s."""
    rng = np.random.default_rng(VALIDATION_SEED_OFFSET + seed)
    return [sample_episode(rng, nodes, workflows, load, cluster) for _ in range(count)]


def average_response_time(
    episodes: list[EpisodeSpec], scheduler_factory: Callable[[], Any], rule: PlacementRule = DEFAULT_RULE
) -> float:
    times = []
    for episode in episodes:
        scheduler = scheduler_factory()
        scheduler.reset(episode.duration_seed)
        result = simulate(
            episode.cluster, copy.deepcopy(episode.workflows), scheduler, seed=episode.duration_seed, rule=rule
        )
        times.append(result.avg_response_time)
    return float(np.mean(times))


class ValidationSet:
    """Held-out episodes per validation size and HEFT's response time on them: the training curve's yardstick."""

    def __init__(
        self,
        seed: int,
        sizes: tuple[int, ...],
        count: int,
        workflows: int,
        load: float,
        rule: PlacementRule,
        cluster: ClusterSpec | None = None,
    ) -> None:
        self.rule = rule
        self.episodes = {n: validation_episodes(seed, n, count, workflows, load, cluster) for n in sizes}
        self.heft = {
            n: average_response_time(episodes, lambda: make_heuristic("heft"), rule)
            for n, episodes in self.episodes.items()
        }

    @classmethod
    def of(cls, config: TrainingConfig, rule: PlacementRule) -> ValidationSet:
        """The validation set a trainer with ``config`` keeps (on its ``--cluster``, if given)."""
        return cls(
            config.seed,
            config.eval_nodes,
            config.eval_episodes,
            config.eval_workflows,
            config.eval_load,
            rule,
            config.cluster_spec,
        )

    def evaluate(self, scheduler: Scheduler) -> dict[str, float]:
        """``eval/*`` scalars: the scheduler's response time per size, HEFT's, and their ratio."""
        stats = {}
        for nodes, episodes in self.episodes.items():
            response_time = average_response_time(episodes, lambda: scheduler, self.rule)
            stats[f"eval/avg_response_time_n{nodes}"] = response_time
            stats[f"eval/heft_avg_response_time_n{nodes}"] = self.heft[nodes]
            # >1 means better than HEFT: the paper's "normalised reward" curve
            stats[f"eval/normalised_vs_heft_n{nodes}"] = self.heft[nodes] / max(response_time, 1e-9)
        return stats


class RunningReturnScale:
    """Divides rewards by the running std of the discounted return (CleanRL's NormalizeReward,
    deterministic and saved with the checkpoint): keeps value targets O(1) at any load."""

    def __init__(self) -> None:
        self.count, self.mean, self.m2 = 0, 0.0, 0.0

    def update(self, returns: np.ndarray) -> None:
        for value in returns.astype(np.float64):
            self.count += 1
            delta = value - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (value - self.mean)

    @property
    def std(self) -> float:
        return float(np.sqrt(self.m2 / self.count)) if self.count > 1 else 1.0
