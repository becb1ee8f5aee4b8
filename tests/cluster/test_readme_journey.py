"""The README's commands as a newcomer runs them: the demo (local cluster, chart, operator, samples) and
the tools it points at. Each starts its own cluster through the public CLI, as a user would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED
from scale_scheduler.simulator.cluster import heterogeneous

pytestmark = pytest.mark.cluster  # the demo starts its own control plane: no fixture tells conftest
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "manifests" / "samples").glob("*.yaml"))


def test_demo_places_every_sample_and_reports_response_times(tmp_path: Path) -> None:
    name = f"readme-{tmp_path.name[-8:].lower().replace('_', '-')}"
    done = subprocess.run(
        [*SCALE_SCHED, "demo", "--name", name, "--json"], capture_output=True, text=True, timeout=900, check=False
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert len(report["workflows"]) == len(SAMPLES)
    assert all(w["phase"] == "Succeeded" and w["response_seconds"] is not None for w in report["workflows"])
    nodes = {n.name: n.node_class for n in heterogeneous(16, seed=0).nodes}
    assert sum(w["primitives"] for w in report["workflows"]) == len(report["placements"])
    for placement in report["placements"]:
        assert nodes[placement["node"]] == placement["node_class"]
        assert placement["phase"] == "Succeeded"
    assert not kwok.state_dir(name).exists(), "the demo leaves no cluster behind without --keep"


def test_bin_dir_prints_the_built_kubectl_and_helm() -> None:
    done = subprocess.run(
        [*SCALE_SCHED, "cluster", "bin-dir"], capture_output=True, text=True, timeout=1200, check=True
    )
    directory = Path(done.stdout.strip())
    for tool in ("kubectl", "helm"):
        version = subprocess.run(
            [str(directory / tool), "version", "--client"], capture_output=True, text=True, timeout=60, check=True
        )
        assert version.stdout.strip()
