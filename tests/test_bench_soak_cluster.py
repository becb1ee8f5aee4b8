"""bench/soak.py on a tiny local cluster: its report holds the invariants a soak checks (figures are not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parents[1] / "bench" / "soak.py"

# The script starts and stops its own cluster (8 nodes): about a minute and a half on 2 busy cores.
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def test_a_tiny_soak_finishes_every_workflow_without_loss_or_overcommit() -> None:
    command = [sys.executable, str(SOAK), "--nodes", "8", "--workflows", "10", "--policies", "least-loaded"]
    command += ["--time-scale", "10", "--sample-seconds", "1", "--max-minutes", "5", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["ok"] and report["machine"]["cores"] and report["git"]["commit"]
    run = report["policies"]["least-loaded"]
    assert run["stopped_by"] == "done"
    assert run["workflows"]["succeeded"] == run["workflows"]["submitted"] == 10
    assert run["workflows"]["failed"] == run["workflows"]["lost"] == run["workflows"]["duplicate_attempts"] == 0
    assert run["pods"]["bound"] == run["pods"]["created"] >= report["pods_planned"]
    assert run["overcommit"]["moments_over_one"] == 0
    assert all(0 < ratio <= 1 for ratio in run["overcommit"]["max_ratio"].values())
    bind = run["time_to_bind_ms"]
    assert 0 <= bind["p50"] <= bind["p99"] <= bind["max"]
    assert run["decisions"] >= run["pods"]["bound"] and run["decisions_per_second"] > 0
    rss = run["operator_rss_mb"]
    assert 0 < rss["start"] <= rss["max"] and 0 < rss["end"] <= rss["max"]
    assert run["api_requests"]["per_workflow"] > 0
    assert run["api_requests"]["per_workflow_by_request"]["POST pods"] > 0
