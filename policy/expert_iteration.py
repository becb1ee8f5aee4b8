"""Expert iteration: distil a teacher that looks ahead in the simulator (rollout-heft) into the policy network.

Round 0 labels episodes the teacher drives (behaviour cloning). Every later round the network of the round before
drives, greedily as it is deployed, and the teacher labels each state it meets (DAgger), so the network learns what
to do where its own choices lead. The labels of every round are kept and the network is fitted to all of them:
cross-entropy toward the teacher's node over the candidates, plus SRR on the attention features when the method
has it. With the HEFT prior (network.py) the untrained network places exactly as HEFT does, so training starts at
HEFT and each round is validated against it; the best round's weights are kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scale_scheduler.simulator.placement import parse_rule
from scale_scheduler.simulator.schedulers import Scheduler
from torch import nn

from .batching import pad_arrays
from .config import ExpertIterationConfig
from .episodes import ValidationSet, average_response_time, training_episode
from .labels import Labels, generate_labels
from .learned import LearnedScheduler
from .network import build_network
from .parallel import IN_PROCESS, Workers
from .registry import make_scheduler
from .run import RunDirectory, check_resumable, learner_state, restore_learner
from .snapshot import PolicySnapshot
from .srr import srr_loss


class ExpertIterationTrainer:
    """Owns the model, optimiser, RNGs, the labels so far and the run directory; ``train`` runs rounds until
    ``total_steps`` labelled decisions. The same interface as PPO's ``Trainer``, so `train` drives either."""

    def __init__(
        self, config: ExpertIterationConfig, out: str | Path, command: str = "", workers: Workers = IN_PROCESS
    ):
        make_scheduler(config.teacher)  # an unknown teacher fails here, before anything is written
        self.config = config
        self.workers = workers
        self.run = RunDirectory(out, command)
        torch.manual_seed(config.seed)
        self.model = build_network(config.network)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.learning_rate, eps=1e-5)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = np.random.default_rng(config.seed)
        self.rule = parse_rule(config.rule)
        self.labels: list[Labels] = []
        self.round = 0
        self.global_step = 0
        self.wall_seconds = 0.0
        self.best_validation = float("inf")
        self.validation = ValidationSet.of(config, self.rule)
        # at the first validation size: the teacher's own response time (the ceiling to reach) and the network's before
        # any training (with the HEFT prior: HEFT's placement in the network's queue order, i.e. srpt-eft by default)
        self.teacher_validation: dict[int, float] = {}
        self.base_validation: dict[int, float] = {}

    # -- persistence ---------------------------------------------------------------------------
    def save_state(self) -> None:
        self.run.save(
            {
                **learner_state(self.model, self.optimizer, self.generator, self.rng),
                "labels": self.labels,
                "round": self.round,
                "global_step": self.global_step,
                "wall_seconds": self.wall_seconds,
                "best_validation": self.best_validation,
                "teacher_validation": self.teacher_validation,
                "base_validation": self.base_validation,
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
        if "round" not in state:
            raise ValueError(f"{self.run.state_path} is not an expert-iteration run; use another --out")
        saved = ExpertIterationConfig.from_dict(state["config"])
        check_resumable(saved, self.config, self.run.state_path)
        restore_learner(state, self.model, self.optimizer, self.generator, self.rng)
        self.labels, self.round, self.global_step = state["labels"], state["round"], state["global_step"]
        self.wall_seconds, self.best_validation = state["wall_seconds"], state["best_validation"]
        self.teacher_validation, self.base_validation = state["teacher_validation"], state["base_validation"]
        return True

    def training_record(self) -> dict[str, Any]:
        return self.run.training_record(
            self.config.to_dict(),
            {"global_step": self.global_step, "rounds": self.round},
            self.wall_seconds,
            self.best_validation,
        )

    # -- one round -----------------------------------------------------------------------------
    def collect(self) -> dict[str, float]:
        """Label one round's episodes: driven by the teacher in round 0, by the current network after."""
        config = self.config
        episodes = [training_episode(self.rng, config) for _ in range(config.episodes_per_round)]
        student = None if self.round == 0 else PolicySnapshot.of(self.model, config.network)
        labels = generate_labels(episodes, config.teacher, self.rule, self.workers, student=student)
        self.labels.extend(labels)
        decisions = sum(len(episode.action) for episode in labels)
        self.global_step += decisions
        return {
            "labels/decisions": float(decisions),
            "labels/total": float(sum(len(episode.action) for episode in self.labels)),
            # the driver's response time on this round's episodes: the teacher's in round 0, the network's after
            "rollout/avg_response_time": float(np.mean([episode.response_time for episode in labels])),
        }

    def fit(self) -> dict[str, float]:
        """``epochs`` passes over every label so far: cross-entropy toward the teacher's node (+ SRR)."""
        config = self.config
        primitive = [p for episode in self.labels for p in episode.primitive]
        nodes = [n for episode in self.labels for n in episode.nodes]
        mask = [m for episode in self.labels for m in episode.mask]
        actions = torch.tensor([a for episode in self.labels for a in episode.action])
        self.model.train()
        totals: dict[str, list[float]] = {}
        for _ in range(config.epochs):
            order = torch.randperm(len(actions), generator=self.generator)
            for start in range(0, len(actions), config.minibatch_size):
                index = order[start : start + config.minibatch_size].tolist()
                if len(index) < 2:
                    continue
                batch = pad_arrays([primitive[i] for i in index], [nodes[i] for i in index], [mask[i] for i in index])
                output = self.model(*batch.tensors())
                log_probs = torch.log_softmax(output.logits, dim=-1)
                target = actions[index]
                imitation = -log_probs.gather(1, target[:, None]).mean()
                regulariser = (
                    srr_loss(output.features, config.decorrelation_coef, config.kl_coef)
                    if config.srr
                    else torch.zeros(())
                )
                loss = imitation + regulariser
                self.optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(self.model.parameters(), config.max_grad_norm)
                self.optimizer.step()
                agreement = (output.logits.argmax(-1) == target).float().mean()
                for key, value in (("loss/imitation", imitation), ("loss/srr", regulariser), ("loss/total", loss)):
                    totals.setdefault(key, []).append(float(value.detach()))
                totals.setdefault("train/agreement_with_teacher", []).append(float(agreement))
        self.model.eval()
        return {key: float(np.mean(values)) for key, values in totals.items()}

    def _first_size(self, scheduler: Callable[[], Scheduler]) -> dict[int, float]:
        nodes = self.config.eval_nodes[0]
        return {nodes: average_response_time(self.validation.episodes[nodes], scheduler, self.rule)}

    def validate(self) -> dict[str, float]:
        stats = self.validation.evaluate(LearnedScheduler(self.config.algo, self.model))
        if not self.teacher_validation:  # once per run, at one size: the teacher is the slow part
            self.teacher_validation = self._first_size(lambda: make_scheduler(self.config.teacher))
        for nodes, response_time in self.teacher_validation.items():
            stats[f"eval/teacher_avg_response_time_n{nodes}"] = response_time
        for nodes, response_time in self.base_validation.items():
            stats[f"eval/base_avg_response_time_n{nodes}"] = response_time
        return stats

    # -- the loop ------------------------------------------------------------------------------
    def train(self, on_progress: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
        self.run.open(self.config.to_dict())
        if not self.base_validation:
            untrained = LearnedScheduler(self.config.algo, self.model)
            self.base_validation = self._first_size(lambda: untrained)
        last: dict[str, float] = {}
        while self.global_step < self.config.total_steps:
            started = time.perf_counter()
            stats = self.collect()
            stats.update(self.fit())
            self.round += 1
            stats.update(self.validate())
            score = stats[f"eval/avg_response_time_n{self.config.eval_nodes[0]}"]
            if score < self.best_validation:
                self.best_validation = score
                self.run.save_best(self.model)
            self.wall_seconds += time.perf_counter() - started
            stats["time/steps_per_second"] = stats["labels/decisions"] / (time.perf_counter() - started)
            stats["time/wall_seconds"] = self.wall_seconds
            self.run.log(self.global_step, stats, iteration=self.round)
            self.save_state()
            last = stats
            if on_progress:
                on_progress(self.global_step, stats)
        self.run.close()
        self.save_state()
        return last
