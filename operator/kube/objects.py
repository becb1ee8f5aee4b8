"""Reading Kubernetes objects as kube-scheduler and the kubelet read them: requests, start times, durations."""

from __future__ import annotations

import logging
from typing import Any

import durationpy
from scale_scheduler.operator.kube.labels import DURATION_ANNOTATION, ESTIMATED_DURATION_ANNOTATION
from scale_scheduler.operator.kube.times import parse_time
from scale_scheduler.simulator.cluster import parse_quantity

log = logging.getLogger(__name__)


def parse_go_duration(text: str) -> float:
    """Seconds in a Go duration string ("12.345s", "1m30s", "250ms"), the format of the duration annotations."""
    try:
        return float(durationpy.from_str(text.strip()).total_seconds())
    except durationpy.DurationError:
        raise ValueError(f"{text!r} is not a Go duration (write it like '12.5s', '1m30s' or '250ms')") from None


def pod_requests(pod: dict[str, Any]) -> dict[str, float]:
    """Effective resource requests of a pod, as kube-scheduler computes them.

    The sum over containers and restartable (sidecar) init containers, or the largest single
    init-container step if that is higher (init containers run one at a time, beside the sidecars
    started before them), plus ``spec.overhead``; pod-level ``spec.resources.requests`` replace the
    container sums for the resources they name. Values are plain numbers: cpu in cores, memory in bytes.
    """
    spec = pod.get("spec") or {}
    total: dict[str, float] = {}
    for container in spec.get("containers") or []:
        _add(total, _container_requests(container))
    sidecars: dict[str, float] = {}
    init_peak: dict[str, float] = {}
    for container in spec.get("initContainers") or []:
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            step = dict(sidecars)
        else:
            step = dict(sidecars)
            _add(step, requests)
        for name, value in step.items():
            init_peak[name] = max(init_peak.get(name, 0.0), value)
    for name, value in init_peak.items():
        total[name] = max(total.get(name, 0.0), value)
    pod_level = ((spec.get("resources") or {}).get("requests")) or {}
    for name, quantity in pod_level.items():
        total[name] = parse_quantity(quantity)
    _add(total, {name: parse_quantity(q) for name, q in (spec.get("overhead") or {}).items()})
    return total


def _container_requests(container: dict[str, Any]) -> dict[str, float]:
    requests = ((container.get("resources") or {}).get("requests")) or {}
    return {name: parse_quantity(quantity) for name, quantity in requests.items()}


def _add(into: dict[str, float], values: dict[str, float]) -> None:
    for name, value in values.items():
        into[name] = into.get(name, 0.0) + value


def timestamp(text: str | None) -> float | None:
    """Seconds since the epoch of a timestamp field; None when absent or malformed (a start time to skip)."""
    try:
        moment = parse_time(text)
    except ValueError:
        return None
    return moment.timestamp() if moment else None


def pod_key(pod: dict[str, Any]) -> str:
    meta = pod.get("metadata") or {}
    return f"{meta.get('namespace', 'default')}/{meta.get('name', '')}"


def expected_seconds(pod: dict[str, Any]) -> float | None:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    for key in (ESTIMATED_DURATION_ANNOTATION, DURATION_ANNOTATION):
        if key in annotations:
            try:
                return max(parse_go_duration(str(annotations[key])), 0.0)
            except ValueError:
                log.warning(
                    "pod %s: ignoring annotation %s=%r (not a Go duration)", pod_key(pod), key, annotations[key]
                )
    return None


def start_time(pod: dict[str, Any]) -> float | None:
    status = pod.get("status") or {}
    started = timestamp(status.get("startTime"))
    for container in status.get("containerStatuses") or []:
        running_since = timestamp(((container.get("state") or {}).get("running") or {}).get("startedAt"))
        if running_since is not None:
            started = running_since if started is None else max(started, running_since)
    return started
