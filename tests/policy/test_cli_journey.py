"""The README's research loop through the public CLI: train (and resume), export, evaluate, diagnose."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from scale_scheduler.operator.dev.operator_process import SCALE_SCHED

TRAIN = [
    "train",
    "--algo",
    "scale",
    "--nodes",
    "4",
    "--seed",
    "3",
    "--workflows",
    "3",
    "--groups",
    "2",
    "--rollouts",
    "2",
    "--eval-interval",
    "1",
    "--json",
]


def _run(args: list[str]) -> str:
    # A real process, as a user runs it: the training record takes its command line from sys.argv.
    done = subprocess.run([*SCALE_SCHED, *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _json(args: list[str]) -> dict:
    return json.loads(_run(args).strip().splitlines()[-1])


def test_train_resume_export_evaluate_diagnose(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = _json([*TRAIN, "--steps", "200", "--out", str(run)])
    assert first["training"]["command"].startswith("scale-sched train --algo scale")
    assert first["training"]["seed"] == 3
    assert (run / "TRAINING.md").exists() and (run / "model_best.pt").exists()
    resumed = _json([*TRAIN, "--steps", "400", "--out", str(run)])
    assert resumed["training"]["global_step"] > first["training"]["global_step"]

    exported = tmp_path / "exported"
    _run(["export-policy", str(run), str(exported)])
    assert {"model.pt", "config.json", "TRAINING.md"} <= {p.name for p in exported.iterdir()}

    table = _json(
        [
            "evaluate",
            "--methods",
            "mine,least-loaded",
            "--checkpoint",
            f"mine={exported}",
            "--nodes",
            "4,8",
            "--seeds",
            "1",
            "--workflows",
            "2",
            "--json",
        ]
    )
    assert {(r["method"], r["nodes"]) for r in table["results"]} >= {("mine", 4), ("mine", 8), ("least-loaded", 8)}
    drift = _json(
        [
            "diagnose",
            "--models",
            "mine",
            "--checkpoint",
            f"mine={exported}",
            "--nodes",
            "4,8",
            "--seeds",
            "1",
            "--workflows",
            "3",
            "--json",
        ]
    )
    assert [row["nodes"] for row in drift["features"]] == [4, 8]
    assert all(row["decisions"] > 0 and row["feature_variance"] >= 0 for row in drift["features"])


def test_srr_weights_reach_the_training_record_and_are_refused_without_srr(tmp_path: Path) -> None:
    trained = _json(
        [*TRAIN, "--steps", "100", "--out", str(tmp_path / "run"), "--srr-decorrelation", "0.02", "--srr-kl", "0.03"]
    )
    config = trained["training"]["train_config"]
    assert (config["decorrelation_coef"], config["kl_coef"]) == (0.02, 0.03)
    refused = subprocess.run(
        [*SCALE_SCHED, "train", "--algo", "crossattn", "--srr-kl", "0.5", "--out", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    message = " ".join(refused.stderr.replace("│", " ").split())  # unwrapped from rich's error box
    assert refused.returncode == 2 and "'crossattn' trains without SRR" in message, refused.stderr
    assert not (tmp_path / "nope").exists(), "nothing is created for a refused command"
