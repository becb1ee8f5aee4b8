"""A training run's directory, the same for every algorithm: what `scale-sched train --out DIR` writes.

``train_config.json`` (the full config), ``metrics.jsonl`` (one JSON object per logged step; `evaluate`
plots training curves from it), ``tensorboard/``, ``model_best.pt`` (best validation), ``model.pt`` plus
``config.json`` (the last weights, loadable as a checkpoint) and ``checkpoint.pt`` (everything to resume).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scale_scheduler.simulator.extras import require
from torch import nn

from .checkpoint import save_model
from .config import NetworkConfig

METRICS_FILE = "metrics.jsonl"
STATE_FILE = "checkpoint.pt"
BEST_WEIGHTS_FILE = "model_best.pt"


class RunDirectory:
    def __init__(self, out: str | Path, command: str = "") -> None:
        self.out = Path(out)
        self.command = command  # the command line, recorded with every checkpoint
        self._writer: Any = None  # TensorBoard's SummaryWriter while open

    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def open(self, config: dict[str, Any]) -> None:
        """Start (or continue) logging: the config beside the run, a TensorBoard writer."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "train_config.json").write_text(json.dumps(config, indent=2) + "\n")
        summary_writer = require("torch.utils.tensorboard", "train").SummaryWriter
        self._writer = summary_writer(str(self.out / "tensorboard"))

    def log(self, step: int, stats: dict[str, float], **leading: int) -> None:
        """Every scalar to TensorBoard and one line of metrics.jsonl: ``leading`` counters, global_step, stats."""
        for key, value in stats.items():
            self._writer.add_scalar(key, value, step)
        with (self.out / METRICS_FILE).open("a") as handle:
            handle.write(json.dumps({**leading, "global_step": step, **stats}) + "\n")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def save_best(self, model: nn.Module) -> None:
        torch.save(model.state_dict(), self.out / BEST_WEIGHTS_FILE)

    def save(
        self, state: dict[str, Any], model: nn.Module, network: NetworkConfig, algo: str, record: dict[str, Any]
    ) -> None:
        """The resumable state, and the current weights as a loadable checkpoint carrying the training record."""
        self.out.mkdir(parents=True, exist_ok=True)
        torch.save(state, self.state_path)
        save_model(self.out, model, network, algo, record)

    def load_state(self) -> dict[str, Any] | None:
        """The state ``save`` wrote, or None for a new run."""
        if not self.state_path.exists():
            return None
        state: dict[str, Any] = torch.load(self.state_path, map_location="cpu", weights_only=False)
        return state

    def training_record(
        self, config: dict[str, Any], counters: dict[str, int], wall_seconds: float, best_validation: float
    ) -> dict[str, Any]:
        """How the weights were made (TRAINING.json / config.json): command, config, progress, best validation."""
        return {
            "command": self.command,
            "seed": config["seed"],
            "train_config": config,
            **counters,
            "wall_seconds": round(wall_seconds, 1),
            "best_validation_avg_response_time": best_validation,
        }


def learner_state(
    model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, rng: np.random.Generator
) -> dict[str, Any]:
    """What a trainer keeps of its network, optimiser and random streams in ``checkpoint.pt`` (``restore_learner``)."""
    return {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "numpy_rng": rng.bit_generator.state,
    }


def restore_learner(
    state: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    rng: np.random.Generator,
) -> None:
    """Put back what ``learner_state`` saved, so a resumed run draws exactly what an uninterrupted one would."""
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    rng.bit_generator.state = state["numpy_rng"]


def check_resumable(saved: Any, current: Any, state_path: Path) -> None:
    """ValueError unless the run's saved config (a dataclass) is ``current`` but for ``total_steps``, the one
    setting a resumed run may raise."""
    if asdict(saved) | {"total_steps": 0} != asdict(current) | {"total_steps": 0}:
        raise ValueError(f"{state_path} was written with a different config; use another --out or the same options")
