"""Observed run times against the estimates pods were placed with: the running statistics, and the live view
reporting each of its pods that Succeeds once, with its node's class."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from kube_objects import SPEC, node_object, pod_object
from scale_scheduler.operator.core.estimates import QUANTILE, RatioStatistics, RunTimes
from scale_scheduler.operator.core.livestate import LiveCluster


def test_the_mean_follows_a_2x_slower_class_and_shrugs_off_one_outlier() -> None:
    statistics = RatioStatistics()
    for _ in range(30):
        statistics.add(2.0)
    assert statistics.mean == pytest.approx(2.0)
    statistics.add(100.0)  # one pod stuck on a sick node
    assert statistics.mean < 2.0 * 1.35
    assert statistics.samples == 31


def test_the_quantile_settles_at_the_quantile_of_the_ratios() -> None:
    rng = np.random.default_rng(7)
    log_ratios = rng.normal(math.log(1.5), 0.3, size=4000)
    statistics = RatioStatistics()
    tail = []
    for value in log_ratios:
        statistics.add(math.exp(value))
        tail.append(statistics.log_quantile)
    expected = float(np.quantile(log_ratios, QUANTILE))
    assert np.mean(tail[-2000:]) == pytest.approx(expected, abs=0.05)
    assert statistics.mean == pytest.approx(1.5, rel=0.2)


def test_run_times_keep_one_statistic_per_kind_and_class_and_skip_empty_samples() -> None:
    run_times = RunTimes()
    run_times.observe("llm_generate", "h100", 10.0, 5.0)
    run_times.observe("llm_generate", "l4", 5.0, 5.0)
    run_times.observe("llm_generate", "l4", 0.0, 5.0)  # finished within its start second: says nothing
    h100, l4 = run_times.statistics("llm_generate", "h100"), run_times.statistics("llm_generate", "l4")
    assert h100 is not None and l4 is not None
    assert (h100.samples, h100.mean, l4.samples, l4.mean) == (1, pytest.approx(2.0), 1, pytest.approx(1.0))
    assert run_times.statistics("tool_call", "h100") is None


def _succeeded(pod: dict[str, Any], started: str, finished: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "startedAt": started, "finishedAt": finished}
    status = {
        **pod["status"],
        "phase": "Succeeded",
        "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}],
    }
    return {**pod, "status": status}


def test_the_view_reports_each_of_its_pods_that_succeeds_once_in_simulated_seconds() -> None:
    finished: list[tuple[str, str, float, float]] = []
    live = LiveCluster(time_scale=20.0, on_finished=lambda *report: finished.append(report))
    for node in SPEC.nodes:
        live.apply_node_event("ADDED", node_object(node.name))
    placed = {"kind": "llm_generate", "gpus": 1, "estimate": "1.500s", "duration": "2.000s"}
    pod = pod_object("p", **placed)
    live.apply_pod_event("ADDED", pod)
    live.assume(pod, "gpu-large-000")
    # long ago: the view's own sightings lie outside those seconds, so the whole seconds stand
    done = _succeeded(pod_object("p", node="gpu-large-000", **placed), "2025-01-01T00:00:00Z", "2025-01-01T00:00:03Z")
    live.apply_pod_event("MODIFIED", done)
    live.apply_pod_event("MODIFIED", done)  # a repeated terminal event
    assert finished == [("llm_generate", "gpu-large", 60.0, 30.0)]
    # a relisting after a restart shows finished pods the view never saw run: nothing to report
    live.apply_pod_event(
        None,
        _succeeded(
            pod_object("q", node="gpu-large-000", kind="llm_generate", estimate="1s"),
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:09Z",
        ),
    )
    # neither a failed pod nor one placed without an estimate
    for name, estimate, phase in (("r", "1s", "Failed"), ("s", None, "Succeeded")):
        other = pod_object(name, kind="tool_call", estimate=estimate)
        live.apply_pod_event("ADDED", other)
        live.assume(other, "cpu-large-003")
        ended = _succeeded(
            pod_object(name, node="cpu-large-003", kind="tool_call", estimate=estimate),
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:02Z",
        )
        ended["status"]["phase"] = phase
        live.apply_pod_event("MODIFIED", ended)
    assert len(finished) == 1
