"""A workflow's progress, derived only from its pods (and its spec), and the status written from it.

Nothing here talks to the API server: the controller lists the pods, these functions say what is
done, what is ready to run and what the WorkflowDAG's status should be. Deriving everything from
the pods is what makes a restarted operator pick up exactly where the old one stopped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.times import format_precise_time, format_time, parse_time
from scale_scheduler.simulator.workflow import Workflow

PHASES = ("Pending", "Running", "Succeeded", "Failed")


def refine(whole_second: datetime, observed: datetime) -> datetime:
    """A Kubernetes timestamp (whole seconds, rounded down) replaced by the operator's own sighting of the same
    moment when that lies within the second (the operator was watching); a later sighting says nothing."""
    return observed if timedelta(0) <= observed - whole_second < timedelta(seconds=1) else whole_second


def pod_times(pod: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    """(started, finished) of a pod's container as the node reported them."""
    status = pod.get("status") or {}
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if state.get("terminated"):
            return parse_time(state["terminated"].get("startedAt")), parse_time(state["terminated"].get("finishedAt"))
        if state.get("running"):
            return parse_time(state["running"].get("startedAt")), None
    return parse_time(status.get("startTime")), None


def pod_attempt(pod: dict[str, Any]) -> int:
    try:
        return int(pod["metadata"]["labels"][labels.ATTEMPT_LABEL])
    except (KeyError, ValueError):
        return 0


def pod_phase(pod: dict[str, Any]) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


@dataclass
class PrimitiveProgress:
    name: str
    state: str = "Waiting"  # Waiting (for parents), Pending (pod not running yet), Running, Succeeded, Failed
    pod: str | None = None
    node: str | None = None
    attempts: int = 0  # pods created so far (highest attempt + 1)
    failures: int = 0
    start: datetime | None = None
    finish: datetime | None = None
    # the pod that is (or will be) running this primitive: not failed, not being deleted
    live_pod: dict[str, Any] | None = None


@dataclass
class WorkflowProgress:
    primitives: dict[str, PrimitiveProgress]
    ready: list[str] = field(default_factory=list)  # parents succeeded, no live pod yet: create one
    exhausted: str | None = None  # a primitive that failed more often than its retries allow

    @property
    def succeeded(self) -> int:
        return sum(p.state == "Succeeded" for p in self.primitives.values())

    @property
    def phase(self) -> str:
        if self.exhausted:
            return "Failed"
        if self.succeeded == len(self.primitives):
            return "Succeeded"
        if any(p.attempts for p in self.primitives.values()):
            return "Running"
        return "Pending"

    @property
    def first_start(self) -> datetime | None:
        return min((p.start for p in self.primitives.values() if p.start), default=None)

    @property
    def last_finish(self) -> datetime | None:
        return max((p.finish for p in self.primitives.values() if p.finish), default=None)


def workflow_progress(workflow: Workflow, pods: list[dict[str, Any]],
                      recorded: dict[str, dict[str, Any]] | None = None) -> WorkflowProgress:
    """Progress of a validated workflow (primitives in topological order) from the pods it owns.

    ``recorded`` is the previous ``status.primitives``: a success or failure recorded there stands even
    if its pod has since gone (the pod GC removes pods of deleted nodes, finished or not).
    """
    progress = {p.name: PrimitiveProgress(p.name) for p in workflow.primitives}
    for name, record in (recorded or {}).items():
        entry = progress.get(name)
        if entry is None:
            continue
        entry.attempts, entry.failures = int(record.get("attempts", 0)), int(record.get("failures", 0))
        if record.get("state") == "Succeeded":
            entry.state, entry.pod, entry.node = "Succeeded", record.get("pod"), record.get("node")
            entry.start, entry.finish = parse_time(record.get("startTime")), parse_time(record.get("finishTime"))
    failed_pods = {name: 0 for name in progress}
    for pod in sorted(pods, key=pod_attempt):
        entry = progress.get(pod["metadata"].get("labels", {}).get(labels.PRIMITIVE_LABEL, ""))
        if entry is None:
            continue
        entry.attempts = max(entry.attempts, pod_attempt(pod) + 1)
        phase = pod_phase(pod)
        if phase == "Failed":
            failed_pods[entry.name] += 1
            continue
        if entry.state == "Succeeded":
            continue
        start, finish = pod_times(pod)
        entry.pod, entry.node, entry.start = pod["metadata"]["name"], (pod.get("spec") or {}).get("nodeName"), start
        if phase == "Succeeded":
            entry.state, entry.finish, entry.live_pod = "Succeeded", finish, None
        elif pod["metadata"].get("deletionTimestamp"):
            entry.live_pod = None  # going away (its node was deleted): a new attempt replaces it
        else:
            entry.state = "Running" if phase == "Running" else "Pending"
            entry.live_pod = pod
    result = WorkflowProgress(progress)
    for primitive in workflow.primitives:
        entry = progress[primitive.name]
        entry.failures = max(entry.failures, failed_pods[primitive.name])
        if entry.failures > primitive.retries:
            result.exhausted = result.exhausted or primitive.name
            entry.state = "Failed"
            continue
        parents_done = all(progress[parent].state == "Succeeded" for parent in primitive.depends_on)
        if entry.state in ("Waiting", "Pending", "Running") and entry.live_pod is None and parents_done:
            entry.state = "Pending"
            result.ready.append(primitive.name)
    return result


def condition(kind: str, status: bool, reason: str, message: str, previous: list[dict[str, Any]],
              now: datetime, generation: int | None = None) -> dict[str, Any]:
    """A status condition; lastTransitionTime moves only when its status changes."""
    value = "True" if status else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = old["lastTransitionTime"] if old and old.get("status") == value and old.get("lastTransitionTime") \
        else format_time(now)
    entry = {"type": kind, "status": value, "reason": reason, "message": message, "lastTransitionTime": since}
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def workflow_status(workflow: Workflow, progress: WorkflowProgress, *, created: datetime, now: datetime,
                    time_scale: float, lower_bound_seconds: float, policy: str, placement_rule: str,
                    generation: int | None, previous: dict[str, Any]) -> dict[str, Any]:
    """The WorkflowDAG status for this progress (compact: a few fields per primitive).

    Slowdown = response time x time scale / the critical path with every primitive on its fastest
    feasible node (estimated durations, no waiting or transfers): the simulator's definition.
    """
    conditions = list(previous.get("conditions") or [])
    phase = progress.phase
    total = len(workflow.primitives)
    valid = condition("Valid", True, "Validated", f"{total} primitives, acyclic, each fits some node",
                      conditions, now, generation)
    if phase == "Failed":
        name = progress.exhausted or ""
        entry = progress.primitives[name]
        complete = condition("Complete", False, "RetriesExhausted",
                             f"primitive {name!r} failed {entry.failures} time(s), allowed retries "
                             f"{entry.failures - 1}; see its pods' events", conditions, now, generation)
    elif phase == "Succeeded":
        complete = condition("Complete", True, "Succeeded", f"all {total} primitives succeeded", conditions, now,
                             generation)
    else:
        complete = condition("Complete", False, "InProgress", f"{progress.succeeded}/{total} primitives succeeded",
                             conditions, now, generation)
    status: dict[str, Any] = {
        "phase": phase,
        "done": f"{progress.succeeded}/{total}",
        "policy": policy,
        "placementRule": placement_rule,
        "timeScale": time_scale,
        "conditions": [valid, complete],
        "primitives": {
            name: {k: v for k, v in {
                "state": p.state, "node": p.node, "pod": p.pod, "attempts": p.attempts, "failures": p.failures,
                "startTime": format_time(p.start), "finishTime": format_time(p.finish),
            }.items() if v not in (None, 0)}
            for name, p in progress.primitives.items()
        },
    }
    if generation is not None:
        status["observedGeneration"] = generation
    received = parse_time(previous.get("receivedTime")) or now
    status["receivedTime"] = format_precise_time(received)
    if progress.first_start:
        status["startTime"] = format_time(progress.first_start)
    if phase in ("Succeeded", "Failed"):
        finish = refine(progress.last_finish, now) if progress.last_finish else now
        status["completionTime"] = format_time(finish)
        if phase == "Succeeded":
            # Whole-second timestamps alone would be off by up to a second, all of a short workflow at a large
            # --time-scale: both ends are the operator's sub-second sightings when it was watching.
            response = max((finish - refine(created, received)).total_seconds(), 0.0)
            status["responseTimeSeconds"] = round(response, 3)
            status["slowdown"] = round(response * time_scale / max(lower_bound_seconds, 1e-9), 3)
    return status


def failed_status(reason: str, message: str, *, total: int, now: datetime, policy: str, placement_rule: str,
                  generation: int | None, previous: dict[str, Any]) -> dict[str, Any]:
    """Status of a WorkflowDAG that was rejected before anything ran (bad DAG, nothing fits)."""
    conditions = list(previous.get("conditions") or [])
    status: dict[str, Any] = {
        "phase": "Failed",
        "done": f"0/{total}",
        "policy": policy,
        "placementRule": placement_rule,
        "completionTime": format_time(now),
        "conditions": [
            condition("Valid", False, reason, message, conditions, now, generation),
            condition("Complete", False, reason, message, conditions, now, generation),
        ],
    }
    if generation is not None:
        status["observedGeneration"] = generation
    return status


def status_patch(previous: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``previous`` into ``status`` (empty if nothing changed).

    Per-primitive fields that no longer apply (the node of a pod that was replaced) are set to null,
    which a merge patch removes; fields we never write (kopf's) are left alone.
    """
    patch = {key: value for key, value in status.items() if previous.get(key) != value}
    if "primitives" in patch:
        old = previous.get("primitives") or {}
        patch["primitives"] = {
            name: {**{field: None for field in (old.get(name) or {}) if field not in entry}, **entry}
            for name, entry in status["primitives"].items() if old.get(name) != entry
        }
    return patch
