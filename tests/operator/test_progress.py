"""Workflow progress and status from pods: pure functions, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from scale_scheduler.operator.core.progress import (
    RetryStrategy,
    Trouble,
    WorkflowProgress,
    condition,
    failed_status,
    overdue,
    past_deadline,
    pod_trouble,
    status_patch,
    workflow_progress,
    workflow_status,
)
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive, Workflow, validate

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _diamond(retries: int = 0) -> Workflow:
    return validate(
        Workflow(
            "wf",
            [
                Primitive("a", PrimitiveKind.TOOL_CALL),
                Primitive("b", PrimitiveKind.TOOL_CALL, depends_on=["a"], retries=retries),
                Primitive("c", PrimitiveKind.TOOL_CALL, depends_on=["a"]),
                Primitive("d", PrimitiveKind.TOOL_CALL, depends_on=["b", "c"]),
            ],
        )
    )


def _stamp(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _pod(
    primitive: str,
    attempt: int,
    phase: str,
    node: str | None = "n1",
    start: float | None = None,
    finish: float | None = None,
    deleting: bool = False,
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if finish is not None:
        status["containerStatuses"] = [
            {"state": {"terminated": {"startedAt": _stamp(start or 0), "finishedAt": _stamp(finish)}}}
        ]
    elif start is not None:
        status["containerStatuses"] = [{"state": {"running": {"startedAt": _stamp(start)}}}]
    meta: dict[str, Any] = {
        "name": f"wf-{primitive}-{attempt}",
        "labels": {labels.PRIMITIVE_LABEL: primitive, labels.ATTEMPT_LABEL: str(attempt)},
    }
    if deleting:
        meta["deletionTimestamp"] = _stamp(0)
    return {"metadata": meta, "spec": {"nodeName": node} if node else {}, "status": status}


def test_nothing_created_yet_means_only_roots_are_ready() -> None:
    progress = workflow_progress(_diamond(), [])
    assert progress.ready == ["a"]
    assert progress.phase == "Pending"
    assert progress.primitives["d"].state == "Waiting"


def test_children_become_ready_only_when_every_parent_succeeded() -> None:
    progress = workflow_progress(_diamond(), [_pod("a", 0, "Succeeded", start=0, finish=2)])
    assert progress.ready == ["b", "c"]
    progress = workflow_progress(
        _diamond(),
        [
            _pod("a", 0, "Succeeded", start=0, finish=2),
            _pod("b", 0, "Succeeded", start=2, finish=4),
            _pod("c", 0, "Running", start=2),
        ],
    )
    assert progress.ready == []  # d waits for c; c already has its pod
    assert progress.phase == "Running" and progress.succeeded == 2


def test_failed_pod_is_retried_until_retries_are_used_up() -> None:
    done_a = _pod("a", 0, "Succeeded", start=0, finish=1)
    progress = workflow_progress(_diamond(retries=1), [done_a, _pod("b", 0, "Failed", start=1, finish=2)])
    assert "b" in progress.ready and progress.primitives["b"].attempts == 1  # next pod is attempt 1
    assert progress.exhausted is None
    progress = workflow_progress(
        _diamond(retries=1),
        [done_a, _pod("b", 0, "Failed", start=1, finish=2), _pod("b", 1, "Failed", start=2, finish=3)],
    )
    assert progress.exhausted == "b" and progress.phase == "Failed"
    assert "b" not in progress.ready


def test_pod_being_deleted_is_replaced_without_using_a_retry() -> None:
    progress = workflow_progress(_diamond(), [_pod("a", 0, "Running", start=0, deleting=True)])
    entry = progress.primitives["a"]
    assert progress.ready == ["a"] and entry.failures == 0 and entry.attempts == 1 and entry.live_pod is None


def test_an_evicted_pod_that_the_kubelet_failed_is_replaced_without_using_a_retry() -> None:
    # What a real kubelet leaves of a pod evicted by `kubectl drain`: Failed (its container killed), with the
    # DisruptionTarget condition the API server set on the eviction, and being deleted.
    evicted = _pod("a", 0, "Failed", start=0, finish=1, deleting=True)
    evicted["status"]["conditions"] = [
        {"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI", "message": "Eviction API"}
    ]
    progress = workflow_progress(_diamond(retries=0), [evicted])
    entry = progress.primitives["a"]
    assert progress.exhausted is None and progress.ready == ["a"]
    assert entry.failures == 0 and entry.attempts == 1 and entry.trouble is not None
    assert entry.trouble.reason == "EvictionByEvictionAPI"
    evicted["status"]["conditions"][0]["status"] = "False"  # not disrupted after all: an ordinary failure
    assert workflow_progress(_diamond(retries=0), [evicted]).exhausted == "a"


def test_recorded_success_stands_when_its_pod_is_gone() -> None:
    recorded = {
        "a": {
            "state": "Succeeded",
            "node": "n1",
            "pod": "wf-a-0",
            "attempts": 1,
            "startTime": _stamp(0),
            "finishTime": _stamp(2),
        }
    }
    progress = workflow_progress(_diamond(), [], recorded)
    assert progress.primitives["a"].state == "Succeeded" and progress.ready == ["b", "c"]


def test_status_of_a_succeeded_workflow_has_response_time_slowdown_and_done() -> None:
    pods = [
        _pod("a", 0, "Succeeded", start=1, finish=3),
        _pod("b", 0, "Succeeded", start=3, finish=5),
        _pod("c", 0, "Succeeded", start=3, finish=6),
        _pod("d", 0, "Succeeded", "n2", start=6, finish=10),
    ]
    workflow = _diamond()
    progress = workflow_progress(workflow, pods)
    status = workflow_status(
        workflow,
        progress,
        created=T0,
        now=T0 + timedelta(seconds=11),
        time_scale=10.0,
        lower_bound_seconds=50.0,
        policy="heft",
        placement_rule="late-binding",
        generation=1,
        previous={},
    )
    assert status["phase"] == "Succeeded" and status["done"] == "4/4"
    assert status["responseTimeSeconds"] == 10.0  # creation -> last finish, wall clock
    assert status["slowdown"] == 2.0  # 10 s x time scale 10 / 50 simulated seconds
    assert status["primitives"]["d"] == {
        "state": "Succeeded",
        "node": "n2",
        "pod": "wf-d-0",
        "attempts": 1,
        "startTime": _stamp(6),
        "finishTime": _stamp(10),
    }
    complete = next(c for c in status["conditions"] if c["type"] == "Complete")
    assert complete["status"] == "True" and complete["reason"] == "Succeeded"


def test_response_time_uses_the_operators_sub_second_sightings_when_it_was_watching() -> None:
    # All within one whole second: the timestamps alone would say 0 s.
    pods = [
        _pod("a", 0, "Succeeded", start=0, finish=0),
        _pod("b", 0, "Succeeded", start=0, finish=0),
        _pod("c", 0, "Succeeded", start=0, finish=0),
        _pod("d", 0, "Succeeded", start=0, finish=0),
    ]
    workflow = _diamond()
    progress = workflow_progress(workflow, pods)

    def seen(progress: WorkflowProgress, seconds: float, previous: dict[str, Any]) -> dict[str, Any]:
        """The status as an operator computes it ``seconds`` after the creation at T0."""
        return workflow_status(
            workflow,
            progress,
            created=T0,
            now=T0 + timedelta(seconds=seconds),
            time_scale=20.0,
            lower_bound_seconds=1.0,
            policy="heft",
            placement_rule="late-binding",
            generation=1,
            previous=previous,
        )

    first = seen(workflow_progress(workflow, []), 0.1, {})
    assert first["receivedTime"] == "2026-01-01T00:00:00.100000Z"
    done = seen(progress, 0.85, first)
    assert done["responseTimeSeconds"] == 0.75 and done["receivedTime"] == first["receivedTime"]
    # An operator that saw the creation but the end only seconds later (a busy machine): the end is somewhere
    # in its whole second after the creation, and the middle of that is the estimate, never before creation.
    busy = seen(progress, 1.5, first)
    assert busy["responseTimeSeconds"] == 0.45  # (0.1 + 1.0) / 2 - 0.1
    # An operator that started late (or came back after the end) saw neither moment: whole seconds it is.
    late = seen(progress, 30, {})
    assert late["responseTimeSeconds"] == 0.0


def test_status_of_an_exhausted_workflow_names_the_primitive() -> None:
    pods = [_pod("a", 0, "Succeeded", start=0, finish=1), _pod("b", 0, "Failed", start=1, finish=2)]
    workflow = _diamond()
    status = workflow_status(
        workflow,
        workflow_progress(workflow, pods),
        created=T0,
        now=T0,
        time_scale=1.0,
        lower_bound_seconds=1.0,
        policy="heft",
        placement_rule="late-binding",
        generation=1,
        previous={},
    )
    complete = next(c for c in status["conditions"] if c["type"] == "Complete")
    assert status["phase"] == "Failed" and complete["reason"] == "RetriesExhausted" and "'b'" in complete["message"]
    assert "responseTimeSeconds" not in status


def test_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    first = condition("Complete", False, "InProgress", "0/4", [], T0)
    later = condition("Complete", False, "InProgress", "1/4", [first], T0 + timedelta(seconds=5))
    flipped = condition("Complete", True, "Succeeded", "4/4", [later], T0 + timedelta(seconds=9))
    assert later["lastTransitionTime"] == first["lastTransitionTime"] == _stamp(0)
    assert flipped["lastTransitionTime"] == _stamp(9)


def test_failed_status_carries_the_validation_reason() -> None:
    status = failed_status(
        "Cycle",
        "primitive 'b' is part of a dependency cycle",
        total=4,
        now=T0,
        policy="heft",
        placement_rule="node-queues",
        generation=2,
        previous={},
    )
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert status["phase"] == "Failed" and valid["status"] == "False" and valid["reason"] == "Cycle"
    assert "'b'" in valid["message"] and status["observedGeneration"] == 2 and status["done"] == "0/4"
    assert status["placementRule"] == "node-queues"


def test_status_patch_is_empty_when_nothing_changed_and_nulls_fields_that_no_longer_apply() -> None:
    previous = {
        "phase": "Running",
        "done": "1/4",
        "kopf": {"progress": {}},
        "primitives": {
            "a": {"state": "Running", "node": "n1", "pod": "wf-a-0", "attempts": 1},
            "b": {"state": "Waiting"},
        },
    }
    same = {"phase": "Running", "done": "1/4", "primitives": {k: dict(v) for k, v in previous["primitives"].items()}}
    assert status_patch(previous, same) == {}
    moved = {
        "phase": "Running",
        "done": "1/4",
        "primitives": {"a": {"state": "Pending", "pod": "wf-a-1", "attempts": 2}, "b": {"state": "Waiting"}},
    }
    assert status_patch(previous, moved) == {
        "primitives": {"a": {"node": None, "state": "Pending", "pod": "wf-a-1", "attempts": 2}}
    }


def test_trouble_comes_from_the_container_then_the_pod() -> None:
    failed = _pod("a", 0, "Failed", start=0, finish=1)
    failed["status"]["containerStatuses"][0]["state"]["terminated"].update(reason="OOMKilled", exitCode=137)
    assert pod_trouble(failed) == Trouble("OOMKilled", "", 137)
    pulling = _pod("a", 1, "Pending")
    pulling["status"]["containerStatuses"] = [{"state": {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}}}]
    assert pod_trouble(pulling) == Trouble("ImagePullBackOff", "nope")
    creating = _pod("a", 1, "Pending")
    creating["status"]["containerStatuses"] = [{"state": {"waiting": {"reason": "ContainerCreating"}}}]
    assert pod_trouble(creating) is None, "a routine step is nothing to report"
    evicted = {"status": {"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"}}
    assert pod_trouble(evicted) == Trouble("DeadlineExceeded", "too long")


def test_past_deadline_counts_from_the_pod_start_time() -> None:
    pod = _pod("a", 0, "Running", start=0)
    pod["status"]["startTime"] = _stamp(0)
    pod["spec"]["activeDeadlineSeconds"] = 10
    assert not past_deadline(pod, T0 + timedelta(seconds=9))
    assert past_deadline(pod, T0 + timedelta(seconds=10))
    del pod["spec"]["activeDeadlineSeconds"]
    assert not past_deadline(pod, T0 + timedelta(days=1))


def test_succeeded_and_failed_conditions_tell_running_from_failed() -> None:
    workflow = _diamond()

    def conditions(pods: list[dict[str, Any]]) -> dict[str, str]:
        status = workflow_status(
            workflow,
            workflow_progress(workflow, pods),
            created=T0,
            now=T0,
            time_scale=1.0,
            lower_bound_seconds=1.0,
            policy="heft",
            placement_rule="late-binding",
            generation=1,
            previous={},
        )
        return {c["type"]: c["status"] for c in status["conditions"]}

    running = conditions([_pod("a", 0, "Running", start=0)])
    assert (running["Complete"], running["Succeeded"], running["Failed"]) == ("False", "Unknown", "False")
    failed = conditions([_pod("a", 0, "Failed", start=0, finish=1)])
    assert (failed["Complete"], failed["Succeeded"], failed["Failed"]) == ("False", "False", "True")


def test_retry_strategy_chooses_failures_and_backs_off() -> None:
    strategy = RetryStrategy.of(
        {
            "retryStrategy": {
                "retryOn": {"exitCodes": [42], "reasons": ["OOMKilled"]},
                "backoff": {"durationSeconds": 2, "factor": 3, "capSeconds": 10},
            }
        }
    )
    assert strategy.retries(Trouble("Error", "", 42)) and strategy.retries(Trouble("OOMKilled", "", 137))
    assert not strategy.retries(Trouble("Error", "", 1))
    assert strategy.retries(None), "a failure whose pod is gone may be retried"
    assert [strategy.delay(n) for n in (1, 2, 3)] == [2.0, 6.0, 10.0]
    assert RetryStrategy().retries(Trouble("Error", "", 1)) and RetryStrategy().delay(3) == 0.0


def test_a_failure_the_strategy_does_not_retry_exhausts_the_primitive_and_backoff_sets_the_next_attempt() -> None:
    workflow = _diamond(retries=3)
    done_a = _pod("a", 0, "Succeeded", start=0, finish=1)
    failed_b = _pod("b", 0, "Failed", start=1, finish=2)
    failed_b["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] = 7
    picky = {"b": RetryStrategy(exit_codes=frozenset({42}))}
    progress = workflow_progress(workflow, [done_a, failed_b], strategies=picky)
    assert progress.exhausted == "b" and progress.primitives["b"].not_retried
    patient = {"b": RetryStrategy(backoff_seconds=5)}
    progress = workflow_progress(workflow, [done_a, failed_b], strategies=patient)
    assert "b" in progress.ready and progress.primitives["b"].next_attempt == T0 + timedelta(seconds=7)


def test_overdue_tells_a_deadline_from_a_pending_timeout() -> None:
    waiting = _pod("a", 0, "Pending", node=None)
    waiting["metadata"]["creationTimestamp"] = _stamp(0)
    assert overdue(waiting, T0 + timedelta(seconds=4), pending_timeout=5) is None
    assert overdue(waiting, T0 + timedelta(seconds=5), pending_timeout=5) == Trouble(
        "PendingTimeout", "the pod did not start running within 5s (spec pendingTimeoutSeconds)"
    )
    assert overdue(waiting, T0 + timedelta(days=1)) is None, "no timeout, no end"
    running = _pod("a", 0, "Running", start=0)
    running["status"]["startTime"] = _stamp(0)
    running["spec"]["activeDeadlineSeconds"] = 1
    assert overdue(running, T0 + timedelta(seconds=2), pending_timeout=5).reason == "DeadlineExceeded"
