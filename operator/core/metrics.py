"""Prometheus metrics of the operator and its extender, and the endpoint that serves them.

Every metric lives in prometheus_client's default registry, so one ``start_metrics_server`` serves the
controller's and the extender's figures together. Record a placement with ``record_decision`` so the
counter and the latency histogram always agree.
"""

from __future__ import annotations

import logging

from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

# Decisions take well under a millisecond for heuristics and a few for the network: fine buckets there.
DECISION_LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.00075,
    0.001,
    0.0015,
    0.002,
    0.003,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
)
RESPONSE_TIME_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 3600)

DECISIONS = Counter(
    "scale_sched_decisions",
    "Placement decisions made by the policy.",
    ["policy", "source"],
)
DECISION_LATENCY = Histogram(
    "scale_sched_decision_latency_seconds",
    "Time to build the observation and run the policy for one decision.",
    ["source"],
    buckets=DECISION_LATENCY_BUCKETS,
)
BIND_ERRORS = Counter(
    "scale_sched_bind_errors",
    "Pod creations (reason=create) and bindings (reason=api) the API refused (409s meaning already done are not).",
    ["reason"],
)
GUARDED_DECISIONS = Counter(
    "scale_sched_guarded_decisions_total",
    "Decisions whose choice was estimated to finish far behind the best candidate's and were replaced by the guard.",
    ["policy"],
)
UNMAPPED_NODES = Counter(
    "scale_sched_unmapped_nodes",
    "Nodes no node-class label or rule mapped, each counted once when first seen; they get the fallback class.",
)
# Observed / estimated run time: 1 is a perfect estimate; the buckets are symmetric in log space around it.
ESTIMATE_ERROR_BUCKETS = (0.25, 0.5, 0.67, 0.8, 0.9, 1.0, 1.11, 1.25, 1.5, 2.0, 4.0)
ESTIMATE_ERROR = Histogram(
    "scale_sched_estimate_error_ratio",
    "Each finished pod's observed run time (container start to finish) over the estimate it was placed with.",
    ["kind"],
    buckets=ESTIMATE_ERROR_BUCKETS,
)
RUN_TIME_RATIO = Gauge(
    "scale_sched_run_time_ratio",
    "Running observed / prior (static node model) run time per kind and node class, less what the pod's workflow "
    "template learned: statistic=mean "
    "(exponentially weighted geometric mean), p90, or applied (the ratio the live view's node model divides the "
    "class's speed by; absent until enough pods finished there).",
    ["kind", "node_class", "statistic"],
)
WORKFLOWS = Gauge("scale_sched_workflows", "WorkflowDAGs known to the operator, by phase.", ["phase"])
WORKFLOW_RESPONSE_TIME = Histogram(
    "scale_sched_workflow_response_time_seconds",
    "Seconds from a WorkflowDAG's creation to its last primitive finishing.",
    buckets=RESPONSE_TIME_BUCKETS,
)
EXTENDER_REQUESTS = Counter(
    "scale_sched_extender_requests",
    "Requests kube-scheduler made to the extender, by verb and outcome.",
    ["verb", "outcome"],
)


def record_decision(policy: str, source: str, seconds: float) -> None:
    """Count one placement by ``policy`` (``source`` is "operator" or "extender") taking ``seconds``."""
    DECISIONS.labels(policy=policy, source=source).inc()
    DECISION_LATENCY.labels(source=source).observe(seconds)


def start_metrics_server(port: int, host: str = "0.0.0.0") -> bool:
    """Serve /metrics on ``port`` from a background thread; 0 turns metrics off. Returns whether it started."""
    if port == 0:
        return False
    try:
        start_http_server(port, addr=host)
    except OSError as error:
        raise OSError(
            f"cannot serve metrics on {host}:{port}: {error}; pick a free port with --metrics-port "
            "(0 turns metrics off)"
        ) from error
    log.info("serving Prometheus metrics on http://%s:%d/metrics", host, port)
    return True
