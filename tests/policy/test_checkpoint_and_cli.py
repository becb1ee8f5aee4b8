"""Checkpoints round-trip; the registry resolves every method; evaluate --json has the documented keys."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from scale_scheduler.policy.checkpoint import load_model, save_model
from scale_scheduler.policy.cli import register
from scale_scheduler.policy.learned import LearnedScheduler
from scale_scheduler.policy.network import NetworkConfig, build_network
from scale_scheduler.policy.registry import make_scheduler
from scale_scheduler.simulator.features import NODE_FEATURES, PRIMITIVE_FEATURES
from scale_scheduler.simulator.schedulers import Scheduler
from typer.testing import CliRunner


@pytest.mark.parametrize("architecture", ["scale", "mlp"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path: Path, architecture: str) -> None:
    torch.manual_seed(0)
    config = NetworkConfig(architecture=architecture, hidden=32, heads=2)
    model = build_network(config).eval()
    save_model(tmp_path, model, config, "scale")
    loaded, saved_config = load_model(tmp_path)
    mask = torch.ones(3, 16, dtype=torch.bool)
    inputs = (torch.randn(3, PRIMITIVE_FEATURES), torch.randn(3, 16, NODE_FEATURES), mask)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(*inputs).logits, model(*inputs).logits, rtol=0, atol=0)
    assert saved_config["algo"] == "scale" and saved_config["network"]["architecture"] == architecture
    assert (tmp_path / "model.pt").stat().st_size < 5 * 1024 * 1024


def test_loading_a_missing_checkpoint_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="scale-sched train"):
        load_model(tmp_path / "nothing-here")


def test_registry_gives_heuristics_and_learned_schedulers(tmp_path: Path) -> None:
    assert make_scheduler("heft").name == "heft"
    config = NetworkConfig(hidden=32, heads=2)
    save_model(tmp_path, build_network(config), config, "scale")
    learned = make_scheduler("scale", str(tmp_path))
    assert isinstance(learned, LearnedScheduler) and isinstance(learned, Scheduler)
    assert make_scheduler("my-run", str(tmp_path)).name == "my-run"  # any name with a checkpoint
    with pytest.raises(ValueError, match="unknown scheduler"):
        make_scheduler("no-such-method")


def test_evaluate_json_has_the_documented_keys(tmp_path: Path) -> None:
    import typer

    torch.manual_seed(0)
    config = NetworkConfig(hidden=32, heads=2)
    for name in ("scale", "crossattn"):
        save_model(tmp_path / name, build_network(config), config, name)
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--methods",
            "scale,crossattn,heft",
            "--nodes",
            "16,20",
            "--seeds",
            "2",
            "--workflows",
            "2",
            "--checkpoint",
            f"scale={tmp_path / 'scale'}",
            "--checkpoint",
            f"crossattn={tmp_path / 'crossattn'}",
            "--json",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout.strip().splitlines()[-1])
    rows = document["results"]
    assert {
        "method",
        "nodes",
        "regime",
        "avg_response_time",
        "avg_response_time_ci95",
        "p95_response_time",
        "completed_primitives",
        "avg_slowdown",
        "lower_bound",
        "ratio_to_lower_bound",
    } == set(rows[0])
    assert {(r["nodes"], r["regime"]) for r in rows} == {
        (16, "per-node"),
        (16, "total-rate"),
        (20, "per-node"),
        (20, "total-rate"),
    }
    low, high = rows[0]["avg_response_time_ci95"]
    assert low <= rows[0]["avg_response_time"] <= high
    assert {r["nodes"] for r in document["paired"]} == {16, 20}
    for name in ("summary.csv", "episodes.csv", "table.md", "response_time_vs_nodes.png", "completed_vs_nodes.png"):
        assert (tmp_path / "out" / name).exists()
