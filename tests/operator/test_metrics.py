"""Operator metrics: names as documented, served over HTTP, port 0 turns them off."""

from __future__ import annotations

import urllib.request

from prometheus_client import REGISTRY
from scale_scheduler.operator.core.metrics import BIND_ERRORS, record_decision, start_metrics_server
from scale_scheduler.operator.dev.operator_process import free_port


def _sample(name: str, labels: dict[str, str]) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_record_decision_counts_and_times_together() -> None:
    count = _sample("scale_sched_decisions_total", {"policy": "least-loaded", "source": "operator"})
    observed = _sample("scale_sched_decision_latency_seconds_count", {"source": "operator"})
    fast = _sample("scale_sched_decision_latency_seconds_bucket", {"source": "operator", "le": "0.0005"})
    record_decision("least-loaded", "operator", 0.0003)
    assert _sample("scale_sched_decisions_total", {"policy": "least-loaded", "source": "operator"}) == count + 1
    assert _sample("scale_sched_decision_latency_seconds_count", {"source": "operator"}) == observed + 1
    assert _sample("scale_sched_decision_latency_seconds_bucket", {"source": "operator", "le": "0.0005"}) == fast + 1


def test_metrics_endpoint_serves_the_operator_metrics() -> None:
    assert start_metrics_server(0) is False
    port = free_port()
    assert start_metrics_server(port, host="127.0.0.1") is True
    BIND_ERRORS.labels(reason="Conflict").inc()
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert 'scale_sched_bind_errors_total{reason="Conflict"}' in body
    assert "scale_sched_workflow_response_time_seconds_bucket" in body
