"""Locating helm/kubectl (built from Go modules by hack/cluster/build.sh) and rendering the chart."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "scale-scheduler"


def bin_dir() -> Path | None:
    """The cached control-plane/helm build, without building it (that takes many minutes)."""
    if os.environ.get("SCALE_SCHED_BIN_DIR"):
        return Path(os.environ["SCALE_SCHED_BIN_DIR"])
    cache = Path(os.environ.get("SCALE_SCHED_CACHE", Path.home() / ".cache" / "scale-sched"))
    builds = sorted(p for p in cache.glob("bin-kube*") if (p / "helm").exists())
    return builds[-1] if builds else None


def tool(name: str) -> str:
    directory = bin_dir()
    if directory and (directory / name).exists():
        return str(directory / name)
    found = shutil.which(name)
    if not found:
        pytest.skip(f"{name} not built: run hack/cluster/build.sh")
    return found


def helm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("helm"), *args], capture_output=True, text=True, check=check, timeout=120)


def template(*set_values: str, release: str = "scale-scheduler", namespace: str = "scale-scheduler",
             extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    args = ["template", release, str(CHART_DIR), "--namespace", namespace, *extra]
    for value in set_values:
        args += ["--set", value]
    return [doc for doc in yaml.safe_load_all(helm(*args).stdout) if doc]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]
