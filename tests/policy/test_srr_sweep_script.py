"""hack/srr-sweep.sh, which regenerates docs/results/srr_sweep/, run end to end at a tiny size."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_srr_sweep_trains_six_runs_with_their_weights_and_evaluates_them(tmp_path: Path) -> None:
    # 3 at a time: the pool refills as runs finish; the evaluation runs on 3 Ray workers
    env = {
        **os.environ,
        "SWEEP_DIR": str(tmp_path / "runs"),
        "SWEEP_OUT": str(tmp_path / "out"),
        "SWEEP_STEPS": "100",
        "SWEEP_SEEDS": "1",
        "SWEEP_WORKFLOWS": "2",
        "SWEEP_WORKERS": "3",
    }
    done = subprocess.run(
        [str(REPO_ROOT / "hack" / "srr-sweep.sh")], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    weights = {}
    for name in ("ca", "s10", "s03", "s01", "sdecorr", "skl"):
        config = json.loads((tmp_path / "runs" / f"{name}.json").read_text().splitlines()[-1])["training"]
        weights[name] = (
            config["train_config"]["srr"],
            config["train_config"]["decorrelation_coef"],
            config["train_config"]["kl_coef"],
        )
    assert weights["ca"][0] is False
    assert {name: w[1:] for name, w in weights.items() if name != "ca"} == {
        "s10": (0.1, 0.1),
        "s03": (0.03, 0.03),
        "s01": (0.01, 0.01),
        "sdecorr": (0.1, 0.0),
        "skl": (0.0, 0.1),
    }
    methods = {row["method"] for row in json.loads((tmp_path / "out" / "results.json").read_text())["results"]}
    assert methods == {"heft", "k8s-default", "ca", "s10", "s03", "s01", "sdecorr", "skl"}


def test_srr_sweep_refuses_a_worker_count_below_one(tmp_path: Path) -> None:
    env = {**os.environ, "SWEEP_DIR": str(tmp_path / "runs"), "SWEEP_WORKERS": "0"}
    done = subprocess.run(
        [str(REPO_ROOT / "hack" / "srr-sweep.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and "SWEEP_WORKERS must be a positive whole number" in done.stderr
    assert not (tmp_path / "runs").exists()
