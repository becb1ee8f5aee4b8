"""Checkpoints record the feature layout they were trained on, and loading refuses another one."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scale_scheduler.policy.checkpoint import SHIPPED_DIR, FeatureLayoutMismatch, load_model, save_model
from scale_scheduler.policy.network import ESTIMATED_FINISH_COLUMN, NetworkConfig, build_network
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import (
    NODE_FEATURE_NAMES,
    NODE_FEATURES,
    PRIMITIVE_FEATURE_NAMES,
    PRIMITIVE_FEATURES,
    feature_layout,
)
from scale_scheduler.simulator.generators import generate_workload


def test_feature_vectors_have_one_column_per_declared_name() -> None:
    cluster = heterogeneous(8, seed=0)
    observation = Engine(cluster, generate_workload(cluster, 2, 0.7, seed=0), seed=0).next_decision()
    assert observation is not None
    assert observation.primitive_features.shape == (len(PRIMITIVE_FEATURE_NAMES),) == (PRIMITIVE_FEATURES,)
    assert observation.node_features.shape == (8, len(NODE_FEATURE_NAMES)) == (8, NODE_FEATURES)
    assert len(set(NODE_FEATURE_NAMES)) == NODE_FEATURES and len(set(PRIMITIVE_FEATURE_NAMES)) == PRIMITIVE_FEATURES
    assert NODE_FEATURE_NAMES[ESTIMATED_FINISH_COLUMN] == "log_estimated_finish"


def test_every_checkpoint_records_the_layout_and_the_shipped_ones_match_it(tmp_path: Path) -> None:
    config = NetworkConfig(hidden=32, heads=2)
    save_model(tmp_path, build_network(config), config, "scale")
    assert json.loads((tmp_path / "config.json").read_text())["features"] == feature_layout()
    for shipped in sorted(p for p in SHIPPED_DIR.iterdir() if p.is_dir()):
        assert json.loads((shipped / "config.json").read_text())["features"] == feature_layout(), shipped.name
        load_model(shipped)


def test_a_checkpoint_of_another_layout_is_refused_naming_both(tmp_path: Path) -> None:
    config = NetworkConfig(hidden=32, heads=2)
    save_model(tmp_path, build_network(config), config, "scale")
    saved = json.loads((tmp_path / "config.json").read_text())
    node = saved["features"]["node"]
    node[0], node[1] = node[1], node[0]  # two columns swapped: same count, different meaning
    saved["features"]["hash"] = "0123456789ab"
    (tmp_path / "config.json").write_text(json.dumps(saved))
    with pytest.raises(FeatureLayoutMismatch) as refused:
        load_model(tmp_path)
    message = str(refused.value)
    assert "0123456789ab" in message and feature_layout()["hash"] in message
    assert "node: log_estimated_wait, log_estimated_duration" in message
    assert "node: log_estimated_duration, log_estimated_wait" in message
