"""``cluster up --provider kind``: a one-node kind cluster with kwok deployed in it, for users with Docker.

The simulated nodes and the pod stages are the same as the local (binary) cluster's: the Node
objects come from nodes.py and the stages from stages.yaml, applied as kwok Stage resources.
Needs ``docker``, ``kind`` and ``kubectl`` on PATH; none of them can run on our CI machines, so the
tests check the commands this module would run rather than running them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from scale_scheduler.operator.dev.repo import REPO_ROOT
from scale_scheduler.simulator.cluster import ClusterSpec

from .kwok import INFO_FILE, STAGES_FILE, ClusterError, ClusterInfo, state_dir
from .nodes import node_list

# The version build.sh builds (hack/cluster/versions.env, its single source)
KWOK_VERSION = dict(
    line.split("=", 1)
    for line in (REPO_ROOT / "hack" / "cluster" / "versions.env").read_text().splitlines()
    if line and not line.startswith("#")
)["KWOK_VERSION"]
KWOK_MANIFEST = f"https://github.com/kubernetes-sigs/kwok/releases/download/{KWOK_VERSION}/kwok.yaml"
# One real node runs the control plane and kwok; the scheduling targets are kwok's fake nodes.
KIND_CONFIG = """kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
nodes:
  - role: control-plane
"""
Runner = Callable[[list[str]], None]


def up_commands(name: str, directory: Path) -> list[list[str]]:
    """The commands ``up`` runs, in order; ``directory`` holds the kind config, kubeconfig and node list."""
    kubeconfig = str(directory / "kubeconfig.yaml")
    kubectl = ["kubectl", "--kubeconfig", kubeconfig]
    return [
        [
            "kind",
            "create",
            "cluster",
            "--name",
            name,
            "--config",
            str(directory / "kind-config.yaml"),
            "--kubeconfig",
            kubeconfig,
            "--wait",
            "120s",
        ],
        [*kubectl, "apply", "-f", KWOK_MANIFEST],
        [*kubectl, "-n", "kube-system", "rollout", "status", "deployment/kwok-controller", "--timeout=180s"],
        [*kubectl, "apply", "-f", str(STAGES_FILE)],
        [*kubectl, "apply", "-f", str(directory / "nodes.json")],
        [*kubectl, "wait", "--for=condition=Ready", "node", "-l", "type=kwok", "--timeout=180s"],
    ]


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ClusterError(f"`{' '.join(command)}` failed:\n{done.stderr.strip()[-2000:]}")


def up(
    name: str,
    spec: ClusterSpec,
    *,
    scheduler_config: Path | None = None,
    run: Runner = _run,
    progress: Callable[[str], None] | None = None,
) -> ClusterInfo:
    if scheduler_config is not None:
        raise ClusterError(
            "--scheduler-config is not supported with --provider kind: kind runs kube-scheduler as a "
            "static pod; deploy the chart with extender.enabled=true for a second scheduler instead"
        )
    if run is _run:
        missing = [tool for tool in ("docker", "kind", "kubectl") if shutil.which(tool) is None]
        if missing:
            raise ClusterError(
                f"--provider kind needs {', '.join(missing)} on PATH; without Docker use the default --provider binary"
            )
    directory = state_dir(name)
    if directory.exists():
        raise ClusterError(
            f"a cluster named {name!r} already exists ({directory}); "
            f"run `scale-sched cluster down --name {name} --provider kind` first"
        )
    directory.mkdir(parents=True)
    (directory / "kind-config.yaml").write_text(KIND_CONFIG)
    # Tainted: the kind node is real, and ordinary pods must not land on the fake ones.
    (directory / "nodes.json").write_text(json.dumps(node_list(spec, taint=True)))
    try:
        for command in up_commands(name, directory):
            if progress:
                progress(" ".join(command))
            run(command)
    except ClusterError:
        down(name, run=run)
        raise
    kubectl = shutil.which("kubectl")
    info = ClusterInfo(
        name=name,
        kubeconfig=directory / "kubeconfig.yaml",
        bin_dir=Path(kubectl).parent if kubectl else Path(),
        nodes=len(spec.nodes),
        state_dir=directory,
    )
    (directory / INFO_FILE).write_text(json.dumps({**info.to_json(), "provider": "kind"}, indent=2))
    return info


def down(name: str, *, run: Runner = _run) -> None:
    run(["kind", "delete", "cluster", "--name", name])
    shutil.rmtree(state_dir(name), ignore_errors=True)
