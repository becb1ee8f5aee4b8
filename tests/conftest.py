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


@pytest.fixture(scope="session")
def local_cluster() -> Iterator[ClusterFactory]:
    """A factory: ``local_cluster(nodes=16, scheduler_config=None, kube_scheduler=True)`` starts (once per
    distinct arguments and session) a cluster of the simulator's ``heterogeneous(nodes, seed=0)`` nodes and
    returns its ClusterInfo. Names carry the pytest process id, so parallel sessions never collide; every
    cluster is stopped at the end of the session."""
    started: dict[tuple[int, str, bool], kwok.ClusterInfo] = {}

    def factory(nodes: int = 16, scheduler_config: str | Path | None = None,
                kube_scheduler: bool = True) -> kwok.ClusterInfo:
        key = (nodes, str(scheduler_config or ""), kube_scheduler)
        if key not in started:
            digest = hashlib.sha1(repr(key).encode()).hexdigest()[:6]
            name = f"pytest-{os.getpid()}-{nodes}-{digest}"
            started[key] = kwok.up(name, heterogeneous(nodes, seed=0),
                                   scheduler_config=Path(scheduler_config) if scheduler_config else None,
                                   kube_scheduler=kube_scheduler, timeout=300)
        return started[key]

    yield factory
    for info in started.values():
        kwok.down(info.name)
