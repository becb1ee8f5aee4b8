"""Save and load trained policies: a small ``model.pt`` (weights only) plus ``config.json``.

The directory layout is the same for a run under runs/ and a shipped checkpoint under
policy/checkpoints/, so ``--checkpoint NAME=PATH`` accepts either. ``config.json`` records the feature
layout the policy was trained on (``features``: names and hash); loading refuses any other layout.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from scale_scheduler.simulator.features import feature_layout
from torch import nn

from .config import NetworkConfig
from .network import build_network

MODEL_FILE = "model.pt"
CONFIG_FILE = "config.json"
SHIPPED_DIR = Path(__file__).parent / "checkpoints"
FEATURES_KEY = "features"


class FeatureLayoutMismatch(ValueError):
    """The checkpoint was trained on other feature columns than the simulator builds today."""


def save_model(
    directory: str | Path,
    model: nn.Module,
    network: NetworkConfig,
    algo: str,
    extra: dict[str, Any] | None = None,
    model_file: str = MODEL_FILE,
) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), directory / model_file)
    config = {"algo": algo, "network": network.to_dict(), FEATURES_KEY: feature_layout(), **(extra or {})}
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    return directory / model_file


def load_model(path: str | Path, model_file: str = MODEL_FILE) -> tuple[nn.Module, dict[str, Any]]:
    """Load a policy from a checkpoint directory (or a model.pt inside one); returns (model in eval mode, config)."""
    path = Path(path)
    directory = path.parent if path.is_file() else path
    weights = path if path.is_file() else directory / model_file
    config_path = directory / CONFIG_FILE
    if not weights.exists() or not config_path.exists():
        raise FileNotFoundError(
            f"no checkpoint at {path}: expected {weights.name} and {CONFIG_FILE} in {directory} "
            "(train one with `scale-sched train --out DIR`, or point at policy/checkpoints/<name>)"
        )
    config = json.loads(config_path.read_text())
    check_feature_layout(config, directory)
    model = build_network(NetworkConfig.from_dict(config["network"]))
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    return model, config


def check_feature_layout(config: dict[str, Any], directory: Path) -> None:
    """Refuse a checkpoint whose recorded feature layout differs from today's: its weights would read every
    column as another one without any error. Runs saved before layouts were recorded have none and load."""
    recorded = config.get(FEATURES_KEY)
    current = feature_layout()
    if recorded is None or recorded.get("hash") == current["hash"]:
        return
    raise FeatureLayoutMismatch(
        f"{directory} was trained on feature layout {recorded.get('hash')} "
        f"(primitive: {', '.join(recorded.get('primitive', []))}; node: {', '.join(recorded.get('node', []))}), "
        f"but this simulator builds layout {current['hash']} (primitive: {', '.join(current['primitive'])}; "
        f"node: {', '.join(current['node'])}); retrain it, or use the scale-scheduler version it was trained with"
    )


def shipped_checkpoint(name: str) -> Path:
    path = SHIPPED_DIR / name
    if not (path / MODEL_FILE).exists():
        raise FileNotFoundError(
            f"no shipped checkpoint {name!r} in {SHIPPED_DIR}; available: "
            f"{', '.join(sorted(p.name for p in SHIPPED_DIR.iterdir() if p.is_dir())) or 'none'}"
        )
    return path
