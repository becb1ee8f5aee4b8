"""Pod GC and TTL decisions: pure functions, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from scale_scheduler.operator.core.cleanup import expired, pods_to_collect

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _pod(name: str, phase: str, deleting: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, **({"deletionTimestamp": "2026-01-01T00:00:00Z"} if deleting else {})}
    return {"metadata": meta, "status": {"phase": phase}}


PODS = [_pod("ok", "Succeeded"), _pod("bad", "Failed"), _pod("busy", "Running"), _pod("gone", "Succeeded", True)]


@pytest.mark.parametrize(
    ("strategy", "workflow_phase", "collected"),
    [
        (None, "Succeeded", []),
        ("Never", "Failed", []),
        ("OnPodSuccess", "Running", ["ok"]),
        ("OnPodCompletion", "Running", ["ok", "bad"]),
        ("OnWorkflowSuccess", "Running", []),
        ("OnWorkflowSuccess", "Failed", []),  # a failed workflow keeps its pods for debugging
        ("OnWorkflowSuccess", "Succeeded", ["ok", "bad"]),
        ("OnWorkflowCompletion", "Failed", ["ok", "bad"]),
    ],
)
def test_pods_to_collect_by_strategy(strategy: str | None, workflow_phase: str, collected: list[str]) -> None:
    spec = {"podGC": {"strategy": strategy}} if strategy else {}
    assert [pod["metadata"]["name"] for pod in pods_to_collect(spec, workflow_phase, PODS)] == collected


def test_expired_counts_from_the_completion_time() -> None:
    status = {"completionTime": "2026-01-01T00:00:00Z"}
    assert not expired({"ttlSecondsAfterFinished": 10}, status, T0 + timedelta(seconds=9))
    assert expired({"ttlSecondsAfterFinished": 10}, status, T0 + timedelta(seconds=10))
    assert expired({"ttlSecondsAfterFinished": 0}, status, T0)
    assert not expired({}, status, T0 + timedelta(days=9))
    assert not expired({"ttlSecondsAfterFinished": 0}, {}, T0), "not finished"
