"""hack/srr-seeds.sh's own settings (its full run is minutes of expert iteration: docs/results/srr_seeds/)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["SEEDS_RUNS", "SEEDS_WORKERS"])
def test_a_count_below_one_is_refused_before_anything_runs(tmp_path: Path, name: str) -> None:
    env = {**os.environ, "SEEDS_DIR": str(tmp_path / "runs"), name: "0"}
    done = subprocess.run(
        [str(REPO_ROOT / "hack" / "srr-seeds.sh")], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2 and f"{name} must be a positive whole number (got '0')" in done.stderr
    assert not (tmp_path / "runs").exists()
