"""A workflow's progress, derived only from its pods (and its spec), and the status written from it.

Nothing here talks to the API server: the controller lists the pods, these functions say what is
done, what is ready to run and what the WorkflowDAG's status should be. Deriving everything from
the pods is what makes a restarted operator pick up exactly where the old one stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from scale_scheduler.operator.core.outputs import oversize, termination_message
from scale_scheduler.operator.core.workflow_pods import CONTAINER_NAME
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.times import format_precise_time, format_time, parse_time
from scale_scheduler.simulator.workflow import Workflow

PHASES = ("Pending", "Running", "Succeeded", "Failed")


def refine(whole_second: datetime, observed: datetime) -> datetime:
    """A Kubernetes timestamp (whole seconds, rounded down) replaced by the operator's own sighting of the same
    moment when that lies within the second (the operator was watching); a later sighting says nothing."""
    return observed if timedelta(0) <= observed - whole_second < timedelta(seconds=1) else whole_second


def refine_span(
    started: datetime, started_seen: datetime | None, finished: datetime, finished_seen: datetime
) -> tuple[datetime, datetime]:
    """(start, finish) of a run from its whole-second timestamps and the operator's sightings of each end, each
    refined as ``refine`` does. A finish seen too late to refine after a start that was refined goes in the
    middle of what is known of it (within its second, after the start, not after the sighting): left at its
    whole second it would be half a second early on average, and a run within one second would come out at
    zero. Two whole seconds stay as they are: their difference is already right on average."""
    start = started if started_seen is None else refine(started, started_seen)
    finish = refine(finished, finished_seen)
    if start != started and finish == finished:
        earliest = max(finished, start)
        latest = max(min(finished + timedelta(seconds=1), finished_seen), earliest)
        finish = earliest + (latest - earliest) / 2
    return start, finish


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


# Container states that are normal steps on the way to running, not something to tell the user.
_ROUTINE_WAITING = frozenset({"ContainerCreating", "PodInitializing"})


@dataclass(frozen=True)
class Trouble:
    """What went wrong, or holds a primitive up: a reason (CamelCase), its message and the exit code if any."""

    reason: str
    message: str = ""
    exit_code: int | None = None


def pod_trouble(pod: dict[str, Any]) -> Trouble | None:
    """Why a pod failed or is stuck, as the kubelet reports it: the container's terminated state (Error, OOMKilled,
    with its exit code) or waiting state (ImagePullBackOff, CreateContainerConfigError ...), else the pod's own
    reason (DeadlineExceeded, Evicted ...)."""
    status = pod.get("status") or {}
    phase = pod_phase(pod)
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated and phase == "Failed":
            code = terminated.get("exitCode")
            return Trouble(
                terminated.get("reason") or "Error",
                terminated.get("message") or "",
                int(code) if code is not None else None,
            )
        if waiting and waiting.get("reason") and waiting["reason"] not in _ROUTINE_WAITING:
            return Trouble(waiting["reason"], waiting.get("message") or "")
    if phase == "Failed":
        return Trouble(status.get("reason") or "Failed", status.get("message") or "")
    return None


def disruption(pod: dict[str, Any]) -> Trouble | None:
    """Why a pod was ended from outside through no fault of its own, or None: the ``DisruptionTarget`` condition
    set before such a pod is deleted or fails (an eviction through the Eviction API as ``kubectl drain`` does, a
    preemption, the taint manager or pod GC on a lost node, the kubelet under node pressure). Such a pod ends as
    its node's or the cluster's doing, so its primitive runs again without using up a retry."""
    for entry in (pod.get("status") or {}).get("conditions") or []:
        if entry.get("type") == "DisruptionTarget" and entry.get("status") == "True":
            return Trouble(entry.get("reason") or "DisruptionTarget", entry.get("message") or "")
    return None


@dataclass(frozen=True)
class RetryStrategy:
    """When a failed attempt is tried again: a primitive's ``retryStrategy`` (its ``limit`` is the primitive's
    ``retries``, which stays the shorthand). Node loss and evictions are never failures, so they are retried whatever
    this says."""

    exit_codes: frozenset[int] = frozenset()  # with reasons: the failures that are retried; both empty: every one
    reasons: frozenset[str] = frozenset()
    backoff_seconds: float = 0.0  # before the first retry, then times ``factor`` per failure, at most ``cap``
    factor: float = 2.0
    cap_seconds: float = math.inf
    different_node: bool = False  # a retry avoids the nodes where the primitive failed (if any other can run it)

    @classmethod
    def of(cls, raw_primitive: dict[str, Any]) -> RetryStrategy:
        raw = raw_primitive.get("retryStrategy") or {}
        retry_on, backoff = raw.get("retryOn") or {}, raw.get("backoff") or {}
        return cls(
            frozenset(int(code) for code in retry_on.get("exitCodes") or []),
            frozenset(retry_on.get("reasons") or []),
            float(backoff.get("durationSeconds", 0.0)),
            float(backoff.get("factor", 2.0)),
            float(backoff.get("capSeconds", math.inf)),
            bool(raw.get("differentNode", False)),
        )

    def retries(self, failure: Trouble | None) -> bool:
        """Whether this failure may be retried (one whose pod is gone, reason unknown, may)."""
        if failure is None or not (self.exit_codes or self.reasons):
            return True
        return failure.exit_code in self.exit_codes or failure.reason in self.reasons

    def delay(self, failures: int) -> float:
        """Seconds between the ``failures``-th failure and the next attempt."""
        return min(self.backoff_seconds * self.factor ** max(failures - 1, 0), self.cap_seconds)


DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"  # the kubelet's words


def overdue(pod: dict[str, Any], now: datetime, pending_timeout: float | None = None) -> Trouble | None:
    """Why a live pod must be ended now: past its ``activeDeadlineSeconds`` (``DeadlineExceeded``), or still not
    running ``pending_timeout`` seconds after it was created (``PendingTimeout``: no room, an image that does not
    pull ...); None if neither."""
    if past_deadline(pod, now):
        return Trouble("DeadlineExceeded", DEADLINE_MESSAGE)
    created = parse_time(pod["metadata"].get("creationTimestamp"))
    if (
        pending_timeout is not None
        and created is not None
        and pod_phase(pod) == "Pending"
        and ((now - created).total_seconds() >= pending_timeout)
    ):
        return Trouble(
            "PendingTimeout", f"the pod did not start running within {pending_timeout:g}s (spec pendingTimeoutSeconds)"
        )
    return None


def past_deadline(pod: dict[str, Any], now: datetime) -> bool:
    """Whether a pod still running has outlived its ``activeDeadlineSeconds``, counted as the kubelet counts it
    (from ``status.startTime``, when the node accepted it; wall clock, whatever the --time-scale)."""
    deadline = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    started = parse_time((pod.get("status") or {}).get("startTime"))
    if deadline is None or started is None or pod_phase(pod) not in ("Pending", "Running"):
        return False
    return (now - started).total_seconds() >= float(deadline)


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
    trouble: Trouble | None = None  # the live pod's, else the last failed attempt's
    failure: Trouble | None = None  # the last failed attempt's
    failed_at: datetime | None = None  # when it ended
    failed_nodes: list[str] = field(default_factory=list)  # where attempts failed, oldest first
    not_retried: bool = False  # its last failure is one its retryStrategy does not retry
    next_attempt: datetime | None = None  # ready again after a failure: not before this (retryStrategy backoff)
    output: str | None = None  # a success's termination message, handed to the children (outputs.py)


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


def workflow_progress(
    workflow: Workflow,
    pods: list[dict[str, Any]],
    recorded: dict[str, dict[str, Any]] | None = None,
    strategies: dict[str, RetryStrategy] | None = None,
) -> WorkflowProgress:
    """Progress of a validated workflow (primitives in topological order) from the pods it owns.

    ``recorded`` is the previous ``status.primitives``: a success or failure recorded there stands even
    if its pod has since gone (the pod GC removes pods of deleted nodes, finished or not). ``strategies``: each
    primitive's retryStrategy (default: retry every failure at once, up to its ``retries``).
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
            entry.output = record.get("output")
    failed_pods = {name: 0 for name in progress}
    for pod in sorted(pods, key=pod_attempt):
        entry = progress.get(pod["metadata"].get("labels", {}).get(labels.PRIMITIVE_LABEL, ""))
        if entry is None:
            continue
        entry.attempts = max(entry.attempts, pod_attempt(pod) + 1)
        phase = pod_phase(pod)
        output = termination_message(pod, CONTAINER_NAME) if phase == "Succeeded" else None
        too_large = oversize(output, entry.name) if output else None  # a success whose result cannot be passed on
        disrupted = disruption(pod) if phase == "Failed" else None
        if disrupted is not None:  # the kubelet ended it on an eviction: a new attempt, not a failure
            entry.trouble = disrupted
            continue
        if phase == "Failed" or too_large:
            failed_pods[entry.name] += 1
            # pods come in attempt order: the last failure is kept
            entry.trouble = entry.failure = Trouble("OutputTooLarge", too_large) if too_large else pod_trouble(pod)
            entry.failed_at = pod_times(pod)[1] or parse_time((pod.get("metadata") or {}).get("creationTimestamp"))
            if (pod.get("spec") or {}).get("nodeName"):
                entry.failed_nodes.append(pod["spec"]["nodeName"])
            continue
        if entry.state == "Succeeded":
            continue
        start, finish = pod_times(pod)
        entry.pod, entry.node, entry.start = pod["metadata"]["name"], (pod.get("spec") or {}).get("nodeName"), start
        if phase == "Succeeded":
            entry.state, entry.finish, entry.live_pod, entry.output = "Succeeded", finish, None, output
        elif pod["metadata"].get("deletionTimestamp"):
            entry.live_pod = None  # going away (its node was deleted): a new attempt replaces it
        else:
            entry.state = "Running" if phase == "Running" else "Pending"
            entry.live_pod = pod
            entry.trouble = pod_trouble(pod) or entry.trouble
    result = WorkflowProgress(progress)
    for primitive in workflow.primitives:
        entry = progress[primitive.name]
        strategy = (strategies or {}).get(primitive.name) or RetryStrategy()
        entry.failures = max(entry.failures, failed_pods[primitive.name])
        latest_failed = failed_pods[primitive.name] > 0 and entry.live_pod is None and entry.state != "Succeeded"
        entry.not_retried = latest_failed and not strategy.retries(entry.failure)
        if entry.failures > primitive.retries or entry.not_retried:
            result.exhausted = result.exhausted or primitive.name
            entry.state = "Failed"
            continue
        parents_done = all(progress[parent].state == "Succeeded" for parent in primitive.depends_on)
        if entry.state in ("Waiting", "Pending", "Running") and entry.live_pod is None and parents_done:
            entry.state = "Pending"
            result.ready.append(primitive.name)
            if latest_failed and entry.failed_at is not None:
                entry.next_attempt = entry.failed_at + timedelta(seconds=strategy.delay(entry.failures))
    return result


def condition(
    kind: str,
    status: bool | None,
    reason: str,
    message: str,
    previous: list[dict[str, Any]],
    now: datetime,
    generation: int | None = None,
) -> dict[str, Any]:
    """A status condition (``status`` None: Unknown); lastTransitionTime moves only when its status changes."""
    value = "Unknown" if status is None else "True" if status else "False"
    old = next((c for c in previous if c.get("type") == kind), None)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == value and old.get("lastTransitionTime")
        else format_time(now)
    )
    entry = {"type": kind, "status": value, "reason": reason, "message": message, "lastTransitionTime": since}
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def outcome_conditions(
    succeeded: bool | None,
    reason: str,
    message: str,
    previous: list[dict[str, Any]],
    now: datetime,
    generation: int | None,
) -> list[dict[str, Any]]:
    """``Succeeded`` (Unknown while running) and ``Failed`` (True once failed), for ``kubectl wait --for=condition=``;
    ``Complete`` keeps its meaning (False both while running and after a failure)."""
    failed = succeeded is False
    return [
        condition("Succeeded", succeeded, reason, message, previous, now, generation),
        condition(
            "Failed", failed, reason if failed else "NotFailed", message if failed else "", previous, now, generation
        ),
    ]


def _primitive_record(p: PrimitiveProgress, trouble: Trouble | None, now: datetime) -> dict[str, Any]:
    record = {
        "state": p.state,
        "node": p.node,
        "pod": p.pod,
        "attempts": p.attempts,
        "failures": p.failures,
        "startTime": format_time(p.start),
        "finishTime": format_time(p.finish),
        "nextAttemptTime": format_time(p.next_attempt) if p.next_attempt and p.next_attempt > now else None,
        "output": p.output,
    }
    if trouble is not None and p.state != "Succeeded":
        record.update(reason=trouble.reason, message=trouble.message[:1024], exitCode=trouble.exit_code)
    return {k: v for k, v in record.items() if v not in (None, 0, "")}


def workflow_status(
    workflow: Workflow,
    progress: WorkflowProgress,
    *,
    created: datetime,
    now: datetime,
    time_scale: float,
    lower_bound_seconds: float,
    policy: str,
    placement_rule: str,
    generation: int | None,
    previous: dict[str, Any],
    problems: dict[str, Trouble] | None = None,
    ended_by: Trouble | None = None,
    suspended: bool = False,
) -> dict[str, Any]:
    """The WorkflowDAG status for this progress (compact: a few fields per primitive).

    ``problems``: what the operator itself met per primitive (a refused create or bind), shown over the pods'.
    ``ended_by``: why the operator ended it before its primitives did (``Stopped``, ``Terminated`` once a shutdown
    is complete, ``DeadlineExceeded``); the workflow then ends Failed with that reason.
    Slowdown = response time x time scale / the critical path with every primitive on its fastest
    feasible node (estimated durations, no waiting or transfers): the simulator's definition.
    """
    conditions = list(previous.get("conditions") or [])
    phase = "Failed" if ended_by else progress.phase
    total = len(workflow.primitives)
    troubles = {name: (problems or {}).get(name) or p.trouble for name, p in progress.primitives.items()}
    valid = condition(
        "Valid", True, "Validated", f"{total} primitives, acyclic, each fits some node", conditions, now, generation
    )
    if ended_by:
        reason, message = ended_by.reason, f"{ended_by.message}; {progress.succeeded}/{total} primitives succeeded"
        complete = condition("Complete", False, reason, message, conditions, now, generation)
    elif phase == "Failed":
        name = progress.exhausted or ""
        entry, trouble = progress.primitives[name], troubles[name]
        last = (
            ""
            if trouble is None
            else f" (last: {trouble.reason}"
            + (f", exit code {trouble.exit_code})" if trouble.exit_code is not None else ")")
        )
        allowed = (
            "its retryStrategy does not retry that failure"
            if entry.not_retried
            else f"allowed retries {entry.failures - 1}"
        )
        reason, message = (
            "RetriesExhausted",
            (f"primitive {name!r} failed {entry.failures} time(s){last}, {allowed}; see its pods' events"),
        )
        complete = condition("Complete", False, reason, message, conditions, now, generation)
    elif phase == "Succeeded":
        reason, message = "Succeeded", f"all {total} primitives succeeded"
        complete = condition("Complete", True, reason, message, conditions, now, generation)
    else:
        reason, message = "InProgress", f"{progress.succeeded}/{total} primitives succeeded"
        complete = condition("Complete", False, reason, message, conditions, now, generation)
    outcome = {"Succeeded": True, "Failed": False}.get(phase)
    held = next(
        (
            (name, t)
            for name, t in troubles.items()
            if t is not None and progress.primitives[name].state in ("Pending", "Running")
        ),
        None,
    )
    top_reason: str | None
    top_message: str | None
    if outcome is None and held is not None:  # running, but something holds a primitive up: say so at the top
        top_reason, top_message = held[1].reason, f"primitive {held[0]!r}: {held[1].message}"[:1024]
    elif outcome is None:
        top_reason, top_message = ("Suspended", "spec.suspend: no new pod starts") if suspended else (None, None)
    else:
        top_reason, top_message = reason, message
    status: dict[str, Any] = {
        "phase": phase,
        "done": f"{progress.succeeded}/{total}",
        "reason": top_reason,
        "message": top_message,
        "policy": policy,
        "placementRule": placement_rule,
        "timeScale": time_scale,
        "conditions": [
            valid,
            complete,
            *outcome_conditions(outcome, reason, message, conditions, now, generation),
            condition(
                "Suspended",
                suspended and outcome is None,
                "Suspended" if suspended else "Running",
                "",
                conditions,
                now,
                generation,
            ),
        ],
        "primitives": {
            name: _primitive_record(p, troubles[name] or (Trouble(ended_by.reason) if ended_by else None), now)
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
        start, finish = refine_span(created, received, progress.last_finish or now, now)
        status["completionTime"] = format_time(finish)
        if phase == "Succeeded":
            # Whole-second timestamps alone would be off by up to a second, all of a short workflow at a large
            # --time-scale: both ends are the operator's sub-second sightings when it was watching (a finish
            # seen late: the middle of what its timestamp allows).
            response = max((finish - start).total_seconds(), 0.0)
            status["responseTimeSeconds"] = round(response, 3)
            status["slowdown"] = round(response * time_scale / max(lower_bound_seconds, 1e-9), 3)
    return status


def failed_status(
    reason: str,
    message: str,
    *,
    total: int,
    now: datetime,
    policy: str,
    placement_rule: str,
    generation: int | None,
    previous: dict[str, Any],
) -> dict[str, Any]:
    """Status of a WorkflowDAG that was rejected before anything ran (bad DAG, nothing fits)."""
    conditions = list(previous.get("conditions") or [])
    status: dict[str, Any] = {
        "phase": "Failed",
        "done": f"0/{total}",
        "policy": policy,
        "placementRule": placement_rule,
        "completionTime": format_time(now),
        "reason": reason,
        "message": message,
        "conditions": [
            condition("Valid", False, reason, message, conditions, now, generation),
            condition("Complete", False, reason, message, conditions, now, generation),
            *outcome_conditions(False, reason, message, conditions, now, generation),
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
            for name, entry in status["primitives"].items()
            if old.get(name) != entry
        }
    return patch
