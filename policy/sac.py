"""Discrete SAC (Christodoulou 2019) on the 16-slot window MLP: the paper's off-policy baseline.

Kept small: an actor (the same ``WindowMLPNetwork`` PPO-MLP uses, so it loads and runs the same
way), twin Q networks with Polyak-averaged targets, automatic temperature toward a target entropy
that is a fraction of log(#feasible). Resuming restores the networks and optimisers; the replay
buffer is not checkpointed (it would be ~100 MB) and refills after a resume.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import NODE_FEATURES, PRIMITIVE_FEATURES, Observation
from scale_scheduler.simulator.placement import parse_rule
from scale_scheduler.simulator.schedulers import queue_order
from torch import nn

from .batching import batch_observations
from .config import SACConfig
from .episodes import RunningReturnScale, ValidationSet, training_episode
from .learned import LearnedScheduler
from .network import WindowMLPNetwork
from .run import RunDirectory


class WindowQNetwork(WindowMLPNetwork):
    """Q(s, a) for every node: the window MLP's raw slot outputs, 0 outside the window (masked later)."""

    def q_values(self, primitive: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        _, slot_outputs, order, in_window = self.slots(primitive, nodes, mask)
        return self.scatter_to_nodes(slot_outputs, order, in_window, nodes.shape[1], 0.0)  # [B, N]


class ReplayBuffer:
    """Fixed-width ring buffer (the training cluster's N) of decision transitions."""

    def __init__(self, capacity: int, nodes: int):
        self.capacity, self.size, self.cursor = capacity, 0, 0
        self.primitive = np.zeros((2, capacity, PRIMITIVE_FEATURES), dtype=np.float32)  # [now/next, ...]
        self.nodes = np.zeros((2, capacity, nodes, NODE_FEATURES), dtype=np.float32)
        self.mask = np.zeros((2, capacity, nodes), dtype=bool)
        self.action = np.zeros(capacity, dtype=np.int64)
        self.reward = np.zeros(capacity, dtype=np.float32)
        self.done = np.zeros(capacity, dtype=np.float32)

    def add(self, observation: Observation, action: int, reward: float, next_observation: Observation | None) -> None:
        i = self.cursor
        self.primitive[0, i], self.nodes[0, i], self.mask[0, i] = (
            observation.primitive_features,
            observation.node_features,
            observation.candidates,
        )
        if next_observation is not None:
            self.primitive[1, i], self.nodes[1, i], self.mask[1, i] = (
                next_observation.primitive_features,
                next_observation.node_features,
                next_observation.candidates,
            )
        else:  # terminal: the next state is never used (done = 1) but must not be all-masked garbage
            self.primitive[1, i], self.nodes[1, i], self.mask[1, i] = 0.0, 0.0, True
        self.action[i], self.reward[i], self.done[i] = action, reward, float(next_observation is None)
        self.cursor = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        index = torch.randint(self.size, (batch_size,), generator=generator).numpy()
        return {
            "primitive": torch.from_numpy(self.primitive[:, index]),
            "nodes": torch.from_numpy(self.nodes[:, index]),
            "mask": torch.from_numpy(self.mask[:, index]),
            "action": torch.from_numpy(self.action[index]),
            "reward": torch.from_numpy(self.reward[index]),
            "done": torch.from_numpy(self.done[index]),
        }


def _policy_terms(
    actor: nn.Module, primitive: torch.Tensor, nodes: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    logits = actor(primitive, nodes, mask).logits
    log_probs = torch.log_softmax(logits, dim=-1)
    return log_probs.exp() * mask, torch.where(mask, log_probs, 0.0)


class SACTrainer:
    def __init__(self, config: SACConfig, out: str | Path, command: str = ""):
        self.config, self.run = config, RunDirectory(out, command)
        torch.manual_seed(config.seed)
        self.actor = WindowMLPNetwork(config.network)
        self.critics = nn.ModuleList([WindowQNetwork(config.network), WindowQNetwork(config.network)])
        self.targets = copy.deepcopy(self.critics).requires_grad_(False)
        # typed views of the two (ModuleList items read as plain Modules)
        self.critic_pair = cast(tuple[WindowQNetwork, WindowQNetwork], tuple(self.critics))
        self.target_pair = cast(tuple[WindowQNetwork, WindowQNetwork], tuple(self.targets))
        self.log_alpha = torch.zeros((), requires_grad=True)
        self.actor_optimizer = torch.optim.Adam(self.actor.parameters(), lr=config.actor_lr)
        self.critic_optimizer = torch.optim.Adam(self.critics.parameters(), lr=config.critic_lr)
        self.alpha_optimizer = torch.optim.Adam([self.log_alpha], lr=config.actor_lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.rule = parse_rule(config.rule)
        self.buffer = ReplayBuffer(config.buffer_size, config.nodes)
        self.return_scale = RunningReturnScale()
        self.global_step, self.wall_seconds, self.best_validation = 0, 0.0, float("inf")
        self.validation = ValidationSet.of(config, self.rule)

    def save_state(self) -> None:
        self.run.save(
            {
                "actor": self.actor.state_dict(),
                "critics": self.critics.state_dict(),
                "targets": self.targets.state_dict(),
                "log_alpha": self.log_alpha.detach(),
                "actor_optimizer": self.actor_optimizer.state_dict(),
                "critic_optimizer": self.critic_optimizer.state_dict(),
                "alpha_optimizer": self.alpha_optimizer.state_dict(),
                "generator": self.generator.get_state(),
                "numpy_rng": self.rng.bit_generator.state,
                "return_scale": vars(self.return_scale),
                "global_step": self.global_step,
                "wall_seconds": self.wall_seconds,
                "best_validation": self.best_validation,
                "config": self.config.to_dict(),
            },
            self.actor,
            self.config.network,
            "sac",
            self.training_record(),
        )

    def training_record(self) -> dict[str, Any]:
        return self.run.training_record(
            self.config.to_dict(), {"global_step": self.global_step}, self.wall_seconds, self.best_validation
        )

    def resume(self) -> bool:
        state = self.run.load_state()
        if state is None:
            return False
        self.actor.load_state_dict(state["actor"])
        self.critics.load_state_dict(state["critics"])
        self.targets.load_state_dict(state["targets"])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_optimizer", "critic_optimizer", "alpha_optimizer"):
            getattr(self, name).load_state_dict(state[name])
        self.generator.set_state(state["generator"])
        self.rng.bit_generator.state = state["numpy_rng"]
        vars(self.return_scale).update(state["return_scale"])
        self.global_step, self.wall_seconds = state["global_step"], state["wall_seconds"]
        self.best_validation = state["best_validation"]
        return True

    def new_engine(self) -> Engine:
        config = self.config
        episode = training_episode(self.rng, config)
        order = queue_order(self.config.network.queue_order)
        return Engine(episode.cluster, episode.workflows, seed=episode.duration_seed, priority=order, rule=self.rule)

    def update(self) -> dict[str, float]:
        config = self.config
        batch = self.buffer.sample(config.batch_size, self.generator)
        now = (batch["primitive"][0], batch["nodes"][0], batch["mask"][0])
        following = (batch["primitive"][1], batch["nodes"][1], batch["mask"][1])
        alpha = self.log_alpha.exp().detach()
        reward = batch["reward"] / self.return_scale.std
        with torch.no_grad():
            next_probs, next_log_probs = _policy_terms(self.actor, *following)
            next_q = torch.min(self.target_pair[0].q_values(*following), self.target_pair[1].q_values(*following))
            next_value = (next_probs * (next_q - alpha * next_log_probs)).sum(-1)
            target = reward + config.gamma * (1 - batch["done"]) * next_value
        first, second = (
            F.mse_loss(critic.q_values(*now).gather(1, batch["action"][:, None]).squeeze(-1), target)
            for critic in self.critic_pair
        )
        critic_loss = first + second
        self.critic_optimizer.zero_grad()
        critic_loss.backward()
        self.critic_optimizer.step()

        probs, log_probs = _policy_terms(self.actor, *now)
        with torch.no_grad():
            q = torch.min(self.critic_pair[0].q_values(*now), self.critic_pair[1].q_values(*now))
        actor_loss = (probs * (alpha * log_probs - q)).sum(-1).mean()
        self.actor_optimizer.zero_grad()
        actor_loss.backward()
        self.actor_optimizer.step()

        feasible = now[2].sum(-1).float()
        target_entropy = config.target_entropy_fraction * torch.log(feasible.clamp(min=1))
        entropy = -(probs.detach() * log_probs.detach()).sum(-1)
        alpha_loss = (self.log_alpha * (entropy - target_entropy)).mean()
        self.alpha_optimizer.zero_grad()
        alpha_loss.backward()
        self.alpha_optimizer.step()

        with torch.no_grad():
            for target_net, critic in zip(self.targets, self.critics, strict=True):
                for target_param, param in zip(target_net.parameters(), critic.parameters(), strict=True):
                    target_param.lerp_(param, config.tau)
        return {
            "loss/critic": float(critic_loss.detach()),
            "loss/actor": float(actor_loss.detach()),
            "train/alpha": float(self.log_alpha.detach().exp()),
            "loss/entropy": float(entropy.mean()),
        }

    def validate(self) -> dict[str, float]:
        stats = self.validation.evaluate(LearnedScheduler("sac", self.actor))
        self.actor.train()
        return stats

    def train(self, on_progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        config = self.config
        self.run.open(config.to_dict())
        engines = [self.new_engine() for _ in range(config.envs)]
        observations = [engine.next_decision() for engine in engines]
        episode_returns: list[list[float]] = [[] for _ in engines]
        finished_response_times: list[float] = []
        losses: dict[str, list[float]] = {}
        next_eval = (self.global_step // config.eval_interval + 1) * config.eval_interval
        started = time.perf_counter()
        last: dict[str, float] = {}
        while self.global_step < config.total_steps:
            batch = batch_observations(observations)  # type: ignore[arg-type]
            self.actor.eval()
            with torch.inference_mode():
                logits = self.actor(*batch.tensors()).logits
                actions = torch.multinomial(torch.softmax(logits, -1), 1, generator=self.generator).squeeze(-1)
            self.actor.train()
            for i, engine in enumerate(engines):
                engine.apply(int(actions[i]))
                following = engine.next_decision()
                reward = engine.reward_since_last()
                current = observations[i]
                assert current is not None  # an ended episode is restarted below before the next step
                self.buffer.add(current, int(actions[i]), reward, following)
                episode_returns[i].append(reward)
                if following is None:  # episode drained: record it and start a fresh arrival sequence
                    finished_response_times.append(engine.result().avg_response_time)
                    running, discounted = 0.0, []
                    for r in reversed(episode_returns[i]):
                        running = r + config.gamma * running
                        discounted.append(running)
                    self.return_scale.update(np.asarray(discounted))
                    episode_returns[i] = []
                    engines[i] = self.new_engine()
                    following = engines[i].next_decision()
                observations[i] = following
            self.global_step += len(engines)
            if self.buffer.size >= config.learning_starts and self.return_scale.count > 1:
                for _ in range(config.updates_per_step):
                    for key, value in self.update().items():
                        losses.setdefault(key, []).append(value)
            if self.global_step >= next_eval or self.global_step >= config.total_steps:
                next_eval += config.eval_interval
                stats = {key: float(np.mean(values)) for key, values in losses.items()}
                if finished_response_times:
                    stats["rollout/avg_response_time"] = float(np.mean(finished_response_times))
                stats.update(self.validate())
                self.wall_seconds += time.perf_counter() - started
                started = time.perf_counter()
                stats["time/wall_seconds"] = self.wall_seconds
                score = stats[f"eval/avg_response_time_n{config.eval_nodes[0]}"]
                if score < self.best_validation:
                    self.best_validation = score
                    self.run.save_best(self.actor)
                self.run.log(self.global_step, stats)
                self.save_state()
                losses, finished_response_times, last = {}, [], stats
                if on_progress:
                    on_progress(self.global_step, stats)
        self.run.close()
        return last
