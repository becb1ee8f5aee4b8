"""PPO for SCALE and its baselines, CleanRL-style: one config, then rollout, GAE and update in order.

Each group's rollouts_per_group simulator engines are stepped in lock-step with one batched forward
per step, sampling from the group's own seed, so groups can run anywhere (``--workers``) with the same
result. Rollouts of a group replay the same arrival sequence with the same duration seed, so the
advantage of a decision is measured against other rollouts of the same input (an input-driven
baseline) on top of the critic. SRR is added to the loss in the same backward pass.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.placement import DEFAULT_RULE, PlacementRule, parse_rule
from scale_scheduler.simulator.schedulers import queue_order
from torch import nn

from .batching import batch_observations, pad_arrays
from .config import PPOConfig
from .episodes import EpisodeSpec, RunningReturnScale, ValidationSet, training_episode
from .learned import LearnedScheduler
from .network import build_network, masked_distribution_terms, network_config
from .parallel import IN_PROCESS, Workers, run_units
from .run import RunDirectory, check_resumable, learner_state, restore_learner
from .snapshot import PolicySnapshot
from .srr import srr_loss


@dataclass
class Trajectory:
    primitive: list[np.ndarray] = field(default_factory=list)
    nodes: list[np.ndarray] = field(default_factory=list)
    mask: list[np.ndarray] = field(default_factory=list)
    action: list[int] = field(default_factory=list)
    log_prob: list[float] = field(default_factory=list)
    value: list[float] = field(default_factory=list)
    reward: list[float] = field(default_factory=list)


def collect_group(
    rollouts: int, rule: PlacementRule, model: nn.Module, unit: tuple[EpisodeSpec, int]
) -> tuple[list[Trajectory], list[float]]:
    """Run one episode ``rollouts`` times, the engines in lock-step with one batched forward per step, sampling
    actions from a generator seeded with the unit's seed: the same trajectories wherever the group runs."""
    episode, seed = unit
    generator = torch.Generator().manual_seed(seed)
    engines = [
        Engine(
            episode.cluster,
            copy.deepcopy(episode.workflows),
            seed=episode.duration_seed,
            priority=queue_order(network_config(model).queue_order),
            rule=rule,
        )
        for _ in range(rollouts)
    ]
    trajectories = [Trajectory() for _ in engines]
    observations = [engine.next_decision() for engine in engines]
    while True:
        live = [(i, observation) for i, observation in enumerate(observations) if observation is not None]
        if not live:
            break
        batch = batch_observations([observation for _, observation in live])
        with torch.inference_mode():
            output = model(*batch.tensors())
            probs = torch.softmax(output.logits, dim=-1)
            actions = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            log_probs = torch.log_softmax(output.logits, dim=-1).gather(1, actions[:, None]).squeeze(-1)
        for row, (i, observation) in enumerate(live):
            trajectory, engine = trajectories[i], engines[i]
            trajectory.primitive.append(observation.primitive_features)
            trajectory.nodes.append(observation.node_features)
            trajectory.mask.append(np.ascontiguousarray(observation.candidates))
            trajectory.action.append(int(actions[row]))
            trajectory.log_prob.append(float(log_probs[row]))
            trajectory.value.append(float(output.value[row]))
            engine.apply(int(actions[row]))
            observations[i] = engine.next_decision()
            # the cost (unfinished workflows x time) accrued until the next decision, or the drain
            trajectory.reward.append(engine.reward_since_last())
    return trajectories, [engine.result().avg_response_time for engine in engines]


def collect_rollouts(
    policy: PolicySnapshot,
    episodes: list[EpisodeSpec],
    seeds: list[int],
    rollouts_per_group: int,
    rule: PlacementRule = DEFAULT_RULE,
    workers: Workers = IN_PROCESS,
) -> tuple[list[Trajectory], list[float]]:
    """Every episode ``rollouts_per_group`` times, one group per (episode, seed) and per unit of ``workers``;
    trajectories in episode order, each group's rollouts together."""
    groups = run_units(
        policy.build, partial(collect_group, rollouts_per_group, rule), list(zip(episodes, seeds, strict=True)), workers
    )
    return (
        [trajectory for trajectories, _ in groups for trajectory in trajectories],
        [time for _, times in groups for time in times],
    )


def advantages_and_returns(
    trajectories: list[Trajectory], rollouts_per_group: int, reward_scale: float, gamma: float, gae_lambda: float
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """GAE per trajectory (episodes end when all workflows drain: terminal, no bootstrap), then the
    mean advantage of the group's rollouts at the same decision index is subtracted."""
    advantages, returns = [], []
    for trajectory in trajectories:
        rewards = np.asarray(trajectory.reward) / reward_scale
        values = np.asarray(trajectory.value)
        advantage = np.zeros_like(rewards)
        last = 0.0
        for t in reversed(range(len(rewards))):
            next_value = values[t + 1] if t + 1 < len(rewards) else 0.0
            delta = rewards[t] + gamma * next_value - values[t]
            last = delta + gamma * gae_lambda * last
            advantage[t] = last
        advantages.append(advantage)
        returns.append(advantage + values)
    centred: list[np.ndarray] = []
    for start in range(0, len(trajectories), rollouts_per_group):
        group = advantages[start : start + rollouts_per_group]
        longest = max(len(a) for a in group)
        stacked = np.full((len(group), longest), np.nan)
        for row, advantage in enumerate(group):
            stacked[row, : len(advantage)] = advantage
        baseline = np.nanmean(stacked, axis=0)
        centred.extend(advantage - baseline[: len(advantage)] for advantage in group)
    return centred, returns


def discounted_returns(trajectories: list[Trajectory], gamma: float) -> np.ndarray:
    out = []
    for trajectory in trajectories:
        running = 0.0
        for reward in reversed(trajectory.reward):
            running = reward + gamma * running
            out.append(running)
    return np.asarray(out)


class Trainer:
    """Owns the model, optimiser, RNGs and run directory; ``train`` runs until ``total_steps``."""

    def __init__(self, config: PPOConfig, out: str | Path, command: str = "", workers: Workers = IN_PROCESS):
        """``workers``: where rollouts run (inside ``parallel.connected(workers)``); the results do not depend on it."""
        self.config = config
        self.workers = workers
        self.run = RunDirectory(out, command)
        torch.manual_seed(config.seed)
        self.model = build_network(config.network)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.rule = parse_rule(config.rule)
        self.return_scale = RunningReturnScale()
        self.iteration = 0
        self.global_step = 0
        self.wall_seconds = 0.0
        self.best_validation = float("inf")
        self.validation = ValidationSet.of(config, self.rule)

    # -- persistence ---------------------------------------------------------------------------
    def save_state(self) -> None:
        self.run.save(
            {
                **learner_state(self.model, self.optimizer, self.generator, self.rng),
                "return_scale": vars(self.return_scale),
                "iteration": self.iteration,
                "global_step": self.global_step,
                "wall_seconds": self.wall_seconds,
                "best_validation": self.best_validation,
                "config": self.config.to_dict(),
            },
            self.model,
            self.config.network,
            self.config.algo,
            self.training_record(),
        )

    def resume(self) -> bool:
        """Continue from ``checkpoint.pt`` if the run directory has one; the config must match."""
        state = self.run.load_state()
        if state is None:
            return False
        saved = PPOConfig.from_dict(state["config"])
        check_resumable(saved, self.config, self.run.state_path)
        restore_learner(state, self.model, self.optimizer, self.generator, self.rng)
        vars(self.return_scale).update(state["return_scale"])
        self.iteration, self.global_step = state["iteration"], state["global_step"]
        self.wall_seconds, self.best_validation = state["wall_seconds"], state["best_validation"]
        return True

    def training_record(self) -> dict[str, Any]:
        return self.run.training_record(
            self.config.to_dict(),
            {"global_step": self.global_step, "iterations": self.iteration},
            self.wall_seconds,
            self.best_validation,
        )

    # -- one iteration -------------------------------------------------------------------------
    def rollout_and_update(self) -> dict[str, float]:
        config = self.config
        if config.anneal_lr:
            fraction = 1.0 - min(self.global_step / config.total_steps, 1.0)
            self.optimizer.param_groups[0]["lr"] = max(fraction, 0.05) * config.learning_rate
        episodes = [training_episode(self.rng, config) for _ in range(config.groups)]
        # each group samples its actions from its own seed, so a group's rollouts do not depend on where it runs
        seeds = [int(seed) for seed in self.rng.integers(2**63, size=config.groups)]
        trajectories, response_times = collect_rollouts(
            PolicySnapshot.of(self.model, config.network),
            episodes,
            seeds,
            config.rollouts_per_group,
            self.rule,
            self.workers,
        )
        self.return_scale.update(discounted_returns(trajectories, config.gamma))
        advantages, returns = advantages_and_returns(
            trajectories, config.rollouts_per_group, self.return_scale.std, config.gamma, config.gae_lambda
        )
        steps = sum(len(t.action) for t in trajectories)
        self.global_step += steps
        stats = self.update(trajectories, np.concatenate(advantages), np.concatenate(returns))
        stats.update(
            {
                "rollout/avg_response_time": float(np.mean(response_times)),
                "rollout/steps": float(steps),
                "rollout/return_scale": self.return_scale.std,
                "train/learning_rate": self.optimizer.param_groups[0]["lr"],
            }
        )
        return stats

    def update(self, trajectories: list[Trajectory], advantages: np.ndarray, returns: np.ndarray) -> dict[str, float]:
        config = self.config
        flat = [(p, n, m) for t in trajectories for p, n, m in zip(t.primitive, t.nodes, t.mask, strict=True)]
        buffer = pad_arrays([f[0] for f in flat], [f[1] for f in flat], [f[2] for f in flat])
        primitive, nodes, mask = buffer.tensors()
        node_counts = torch.tensor([len(f[2]) for f in flat])
        actions = torch.tensor([a for t in trajectories for a in t.action])
        old_log_probs = torch.tensor([x for t in trajectories for x in t.log_prob], dtype=torch.float32)
        advantages_t = torch.as_tensor(advantages, dtype=torch.float32)
        returns_t = torch.as_tensor(returns, dtype=torch.float32)
        self.model.train()
        totals: dict[str, list[float]] = {}
        size = len(actions)
        for _ in range(config.update_epochs):
            order = torch.randperm(size, generator=self.generator)
            for start in range(0, size, config.minibatch_size):
                index = order[start : start + config.minibatch_size]
                if len(index) < 2:
                    continue
                width = int(node_counts[index].max())  # pad this minibatch only to its own largest N
                batch_mask = mask[index, :width]
                output = self.model(primitive[index], nodes[index, :width], batch_mask)
                log_probs, entropy = masked_distribution_terms(output.logits, batch_mask)
                new_log_prob = log_probs.gather(1, actions[index, None]).squeeze(-1)
                log_ratio = new_log_prob - old_log_probs[index]
                ratio = log_ratio.exp()
                advantage = advantages_t[index]
                advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-8)
                policy_loss = torch.max(
                    -advantage * ratio, -advantage * ratio.clamp(1 - config.clip_coef, 1 + config.clip_coef)
                ).mean()
                value_loss = 0.5 * (output.value - returns_t[index]).pow(2).mean()
                entropy_bonus = entropy.mean()
                regulariser = (
                    srr_loss(output.features, config.decorrelation_coef, config.kl_coef)
                    if config.srr
                    else torch.zeros(())
                )
                loss = policy_loss + config.value_coef * value_loss - config.entropy_coef * entropy_bonus + regulariser
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - log_ratio).mean()
                    clip_fraction = ((ratio - 1).abs() > config.clip_coef).float().mean()
                for key, value in (
                    ("loss/policy", policy_loss),
                    ("loss/value", value_loss),
                    ("loss/entropy", entropy_bonus),
                    ("loss/srr", regulariser),
                    ("loss/total", loss),
                    ("loss/approx_kl", approx_kl),
                    ("loss/clip_fraction", clip_fraction),
                ):
                    totals.setdefault(key, []).append(float(value.detach()))
        return {key: float(np.mean(values)) for key, values in totals.items()}

    def validate(self) -> dict[str, float]:
        return self.validation.evaluate(LearnedScheduler(self.config.algo, self.model))

    # -- the loop ------------------------------------------------------------------------------
    def train(self, on_progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        self.run.open(self.config.to_dict())
        last: dict[str, float] = {}
        while self.global_step < self.config.total_steps:
            started = time.perf_counter()
            stats = self.rollout_and_update()
            self.iteration += 1
            validated = self.iteration % self.config.eval_interval == 0 or self.global_step >= self.config.total_steps
            if validated:
                stats.update(self.validate())
                score = stats[f"eval/avg_response_time_n{self.config.eval_nodes[0]}"]
                if score < self.best_validation:
                    self.best_validation = score
                    self.run.save_best(self.model)
            self.wall_seconds += time.perf_counter() - started
            stats["time/steps_per_second"] = stats["rollout/steps"] / (time.perf_counter() - started)
            stats["time/wall_seconds"] = self.wall_seconds
            self.run.log(self.global_step, stats, iteration=self.iteration)
            if validated:
                self.save_state()
            last = stats
            if on_progress:
                on_progress(self.global_step, stats)
        self.run.close()
        self.save_state()
        return last
