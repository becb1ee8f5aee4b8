"""Discrete SAC: a short run trains, validates, and leaves a checkpoint the registry can load."""

from __future__ import annotations

from pathlib import Path

import torch
from scale_scheduler.policy.network import NetworkConfig
from scale_scheduler.policy.registry import make_scheduler
from scale_scheduler.policy.sac import SACConfig, SACTrainer


def test_short_sac_run_updates_and_saves_a_loadable_actor(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    config = SACConfig(
        seed=1,
        nodes=4,
        total_steps=600,
        envs=4,
        workflows_per_episode=3,
        learning_starts=100,
        batch_size=32,
        eval_interval=300,
        eval_episodes=1,
        eval_workflows=3,
        eval_nodes=(4,),
        network=NetworkConfig(architecture="mlp", hidden=32),
    )
    trainer = SACTrainer(config, tmp_path)
    before = [p.detach().clone() for p in trainer.actor.parameters()]
    final = trainer.train()
    assert any(not torch.equal(b, p) for b, p in zip(before, trainer.actor.parameters(), strict=True))
    assert all(torch.isfinite(torch.tensor(v)) for v in final.values())
    assert make_scheduler("sac", str(tmp_path)).name == "sac"
