"""PPO: learns on a tiny cluster, and is reproducible (same seed, same losses; resume = no resume)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from scale_scheduler.policy.episodes import average_response_time, validation_episodes
from scale_scheduler.policy.learned import LearnedScheduler
from scale_scheduler.policy.network import NetworkConfig
from scale_scheduler.policy.ppo import PPOConfig, Trainer
from scale_scheduler.simulator.schedulers import make_heuristic


def tiny_config(**overrides: object) -> PPOConfig:
    settings = dict(
        seed=3,
        nodes=4,
        total_steps=400,
        groups=2,
        rollouts_per_group=2,
        workflows_per_episode=3,
        minibatch_size=64,
        update_epochs=2,
        eval_interval=100,
        eval_episodes=1,
        eval_workflows=3,
        eval_nodes=(4,),
        network=NetworkConfig(hidden=32, heads=2),
    )
    settings.update(overrides)
    return PPOConfig.for_algo("scale", **settings)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_same_seed_gives_identical_losses(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        trainer = Trainer(tiny_config(), tmp_path / name)
        runs.append([trainer.rollout_and_update() for _ in range(2)])
    assert runs[0] == runs[1]
    assert runs[0][0]["loss/srr"] > 0  # SRR is in the loss of the scale algo


def test_resuming_a_run_continues_exactly_where_it_stopped(tmp_path: Path) -> None:
    straight = Trainer(tiny_config(), tmp_path / "straight")
    expected = [straight.rollout_and_update() for _ in range(2)]

    first = Trainer(tiny_config(), tmp_path / "resumed")
    first.rollout_and_update()
    first.save_state()
    second = Trainer(tiny_config(), tmp_path / "resumed")
    assert second.resume()
    assert second.rollout_and_update() == expected[1]


def test_resume_refuses_a_different_config(tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(), tmp_path)
    trainer.save_state()
    with pytest.raises(ValueError, match="different config"):
        Trainer(tiny_config(learning_rate=1e-3), tmp_path).resume()


def test_smoke_training_beats_random_on_a_tiny_cluster(tmp_path: Path) -> None:
    config = tiny_config(total_steps=3000, learning_rate=1e-3, eval_interval=1000)
    trainer = Trainer(config, tmp_path)
    trainer.train()
    episodes = validation_episodes(seed=99, nodes=4, count=4, workflows=4, load=0.7)
    learned = average_response_time(episodes, lambda: LearnedScheduler("scale", trainer.model))
    random_rt = average_response_time(episodes, lambda: make_heuristic("random"))  # reseeded per episode
    assert learned < 0.9 * random_rt
    assert (tmp_path / "metrics.jsonl").exists() and (tmp_path / "model.pt").exists()
