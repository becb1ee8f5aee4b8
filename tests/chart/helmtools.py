"""Locating helm/kubectl (built from Go modules by hack/cluster/build.sh) and rendering the chart."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml
from scale_scheduler.operator.dev.localcluster import kwok

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "scale-scheduler"


def tool(name: str) -> str:
    """kubectl or helm from the project's own build (hack/cluster/build.sh; built on first use)."""
    return str(kwok.ensure_binaries() / name)


# Offline `helm template` assumes Kubernetes v1.20, below the chart's kubeVersion: render for the version we test.
KUBE_VERSION = "1.34.0"


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    version = ["--kube-version", KUBE_VERSION] if args[:1] == ("template",) else []
    return subprocess.run([tool("helm"), *args, *version], capture_output=True, text=True, check=check, timeout=120)


def template(
    *set_values: str, release: str = "scale-scheduler", namespace: str = "scale-scheduler", extra: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART_DIR), "--namespace", namespace, *extra]
    for value in set_values:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def operator_roles(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operator's own ClusterRole(s): not the user roles aggregated into view/edit/admin."""
    return [
        role
        for role in by_kind(docs, "ClusterRole")
        if not any(key.startswith("rbac.authorization.k8s.io/aggregate-to-") for key in role["metadata"]["labels"])
    ]
