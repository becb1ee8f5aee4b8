"""What a WorkflowDAG's clean-up policy removes: pods by ``spec.podGC.strategy``, the workflow itself after
``spec.ttlSecondsAfterFinished``. Pure functions; the controller deletes what they name.

A primitive's success and failures are recorded in the status before its pod can be collected, so progress
derived afterwards is unchanged (``progress.workflow_progress`` reads the record when the pod is gone).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from scale_scheduler.operator.core.progress import pod_phase
from scale_scheduler.operator.kube.times import parse_time

# strategy -> (pod phases collected while the workflow runs, workflow phases after which every pod is collected)
POD_GC: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "Never": (frozenset(), frozenset()),  # the default: every pod stays (failed ones for debugging) until deletion
    "OnPodSuccess": (frozenset({"Succeeded"}), frozenset()),
    "OnPodCompletion": (frozenset({"Succeeded", "Failed"}), frozenset()),
    "OnWorkflowSuccess": (frozenset(), frozenset({"Succeeded"})),
    "OnWorkflowCompletion": (frozenset(), frozenset({"Succeeded", "Failed"})),
}


def pods_to_collect(spec: dict[str, Any], workflow_phase: str, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished pods ``spec.podGC`` says to delete now (none that is being deleted already)."""
    pod_phases, workflow_phases = POD_GC[(spec.get("podGC") or {}).get("strategy") or "Never"]
    every = workflow_phase in workflow_phases
    return [
        pod
        for pod in pods
        if not pod["metadata"].get("deletionTimestamp")
        and pod_phase(pod) in ("Succeeded", "Failed")
        and (every or pod_phase(pod) in pod_phases)
    ]


def expired(spec: dict[str, Any], status: dict[str, Any], now: datetime) -> bool:
    """Whether a finished WorkflowDAG has outlived ``spec.ttlSecondsAfterFinished`` (from its completionTime)."""
    ttl, finished = spec.get("ttlSecondsAfterFinished"), parse_time(status.get("completionTime"))
    return ttl is not None and finished is not None and (now - finished).total_seconds() >= float(ttl)
