"""The demo's report: placements and response times read from cluster objects (no cluster needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from scale_scheduler.operator.dev import demo
from scale_scheduler.operator.kube import labels


def _pod(workflow: str, primitive: str, kind: str, node: str, started: str, finished: str | None) -> dict[str, Any]:
    state = {"terminated": {"startedAt": started, "finishedAt": finished}} if finished else {"running": {}}
    return {
        "metadata": {
            "name": f"{workflow}-{primitive}",
            "labels": {
                labels.WORKFLOW_LABEL: workflow,
                labels.PRIMITIVE_LABEL: primitive,
                labels.PRIMITIVE_KIND_LABEL: kind,
            },
        },
        "spec": {"nodeName": node},
        "status": {
            "phase": "Succeeded" if finished else "Running",
            "startTime": started,
            "containerStatuses": [{"state": state}],
        },
    }


class FakeKube:
    """Answers the three list calls collect() makes, as kubectl get -o json would."""

    def __init__(self, workflows: list[dict[str, Any]], pods: list[dict[str, Any]], nodes: list[dict[str, Any]]):
        self.answers = {"workflowdags": workflows, "pods": pods, "nodes": nodes}

    def get_json(self, resource: str, *args: str) -> dict[str, Any]:
        return {"items": self.answers[resource.split(".")[0]]}


def _workflow(name: str, created: str, phase: str, primitives: int, response: float | None = None) -> dict[str, Any]:
    status = {"phase": phase, **({"responseTimeSeconds": response} if response is not None else {})}
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"primitives": [{"name": f"p{i}"} for i in range(primitives)]},
        "status": status,
    }


def test_report_places_pods_on_the_first_creation_clock_and_takes_the_operators_response_time() -> None:
    kube = FakeKube(
        workflows=[
            _workflow("rag", "2026-01-01T00:00:00Z", "Succeeded", 2, response=12.34),
            _workflow("agent", "2026-01-01T00:00:05Z", "Running", 1),
        ],
        pods=[
            _pod("rag", "generate", "llm", "gpu-large-000", "2026-01-01T00:00:04Z", "2026-01-01T00:00:12Z"),
            _pod("rag", "retrieve", "retrieval", "cpu-small-003", "2026-01-01T00:00:01Z", "2026-01-01T00:00:03Z"),
            _pod("agent", "plan", "llm", "gpu-small-001", "2026-01-01T00:00:06Z", None),
        ],
        nodes=[
            {"metadata": {"name": "gpu-large-000", "labels": {"scale.dev/node-class": "gpu-large"}}},
            {"metadata": {"name": "cpu-small-003", "labels": {"scale.dev/node-class": "cpu-small"}}},
            {"metadata": {"name": "gpu-small-001", "labels": {"scale.dev/node-class": "gpu-small"}}},
        ],
    )
    placements, results = demo.collect(kube)  # type: ignore[arg-type]
    assert [(p.workflow, p.primitive) for p in placements] == [
        ("agent", "plan"),
        ("rag", "retrieve"),
        ("rag", "generate"),
    ]
    generate = placements[2]
    assert (generate.node, generate.node_class, generate.kind) == ("gpu-large-000", "gpu-large", "llm")
    assert (generate.start_seconds, generate.finish_seconds) == (4.0, 12.0)
    by_name = {r.workflow: r for r in results}
    assert by_name["rag"].response_seconds == 12.34 and by_name["rag"].primitives == 2
    assert by_name["agent"].response_seconds is None, "an unfinished workflow has no response time"


def test_sample_files_error_names_the_directory(tmp_path: Path) -> None:
    with pytest.raises(demo.DemoError, match="no sample WorkflowDAGs"):
        demo.sample_files(tmp_path)
