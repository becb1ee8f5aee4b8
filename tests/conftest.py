"""Shared fixtures. ``local_cluster`` gives tests a real control plane with simulated nodes."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.simulator.cluster import heterogeneous

ClusterFactory = Callable[..., kwok.ClusterInfo]

# Journeys that run the CLI, a script or Ray workers in subprocesses: minutes, not seconds.
SLOW_MODULES = frozenset(
    {
        "test_cli_journey.py",
        "test_srr_sweep_script.py",
        "test_bench_smoke.py",
        "test_parallel.py",
        "test_evaluate_suite_cli.py",
        "test_readme_comparison.py",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark by what a test needs, so the fast loop (``-m "not cluster and not slow"``) never depends on
    someone remembering a decorator: a control plane (the ``local_cluster`` fixture, ``tests/cluster/``, a
    ``*_cluster.py`` module) is ``cluster``; a subprocess journey is ``slow``."""
    for item in items:
        path = item.path
        if "local_cluster" in getattr(item, "fixturenames", ()) or path.stem.endswith("_cluster"):
            item.add_marker(pytest.mark.cluster)
        if path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterFactory]:
    """A factory: ``local_cluster(nodes=16, scheduler_config=None, kube_scheduler=True)`` starts (once per
    distinct arguments and session) a cluster of the simulator's ``heterogeneous(nodes, seed=0)`` nodes and
    returns its ClusterInfo. Names carry the pytest process id, so parallel sessions never collide; every
    cluster is stopped at the end of the session."""
    started: dict[tuple[int, str, bool], kwok.ClusterInfo] = {}

    def factory(
        nodes: int = 16, scheduler_config: str | Path | None = None, kube_scheduler: bool = True
    ) -> kwok.ClusterInfo:
        key = (nodes, str(scheduler_config or ""), kube_scheduler)
        if key not in started:
            digest = hashlib.sha1(repr(key).encode()).hexdigest()[:6]
            name = f"pytest-{os.getpid()}-{nodes}-{digest}"
            started[key] = kwok.up(
                name,
                heterogeneous(nodes, seed=0),
                scheduler_config=Path(scheduler_config) if scheduler_config else None,
                kube_scheduler=kube_scheduler,
                timeout=300,
            )
        return started[key]

    yield factory
    for info in started.values():
        kwok.down(info.name)
