"""Outputs between primitives without a cluster: read from pods, refused over the limit, recorded, handed on."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from scale_scheduler.operator.core.outputs import (
    INPUTS_DIR,
    OUTPUT_LIMIT_BYTES,
    handed_on,
    input_env_name,
    outputs_config_map_name,
    with_inputs,
)
from scale_scheduler.operator.core.progress import workflow_progress, workflow_status
from scale_scheduler.operator.core.workflow_pods import CONTAINER_NAME
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive, Workflow, validate

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _plan_then_tools(retries: int = 0) -> Workflow:
    return validate(
        Workflow(
            "wf",
            [
                Primitive("plan", PrimitiveKind.TOOL_CALL, retries=retries),
                Primitive("search-web", PrimitiveKind.TOOL_CALL, depends_on=["plan"]),
                Primitive("judge", PrimitiveKind.TOOL_CALL, depends_on=["plan", "search-web"]),
            ],
        )
    )


def _succeeded(primitive: str, message: str | None, attempt: int = 0) -> dict[str, Any]:
    terminated: dict[str, Any] = {
        "exitCode": 0,
        "startedAt": "2026-01-01T00:00:00Z",
        "finishedAt": "2026-01-01T00:00:02Z",
    }
    if message is not None:
        terminated["message"] = message
    return {
        "metadata": {
            "name": f"wf-{primitive}-{attempt}",
            "labels": {labels.PRIMITIVE_LABEL: primitive, labels.ATTEMPT_LABEL: str(attempt)},
        },
        "spec": {"nodeName": "n1"},
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [{"name": CONTAINER_NAME, "state": {"terminated": terminated}}],
        },
    }


def _status(workflow: Workflow, progress: Any) -> dict[str, Any]:
    return workflow_status(
        workflow,
        progress,
        created=NOW,
        now=NOW,
        time_scale=1.0,
        lower_bound_seconds=1.0,
        policy="heft",
        placement_rule="late-binding",
        generation=1,
        previous={},
    )


def test_a_success_records_its_termination_message_as_its_output() -> None:
    workflow = _plan_then_tools()
    progress = workflow_progress(workflow, [_succeeded("plan", "tools: search")])
    assert progress.primitives["plan"].output == "tools: search"
    assert progress.ready == ["search-web"]
    assert _status(workflow, progress)["primitives"]["plan"]["output"] == "tools: search"


def test_a_recorded_output_stands_when_its_pod_is_gone() -> None:
    workflow = _plan_then_tools()
    recorded = {"plan": {"state": "Succeeded", "pod": "wf-plan-0", "attempts": 1, "output": "tools: search"}}
    progress = workflow_progress(workflow, [], recorded)
    assert progress.primitives["plan"].output == "tools: search"
    assert handed_on(progress, workflow.primitives) == {"plan": "tools: search"}


def test_an_output_over_the_limit_fails_the_primitive_naming_the_limit() -> None:
    workflow = _plan_then_tools()
    progress = workflow_progress(workflow, [_succeeded("plan", "x" * (OUTPUT_LIMIT_BYTES + 1))])
    plan = progress.primitives["plan"]
    assert progress.phase == "Failed" and progress.exhausted == "plan" and plan.output is None
    assert plan.failure is not None and plan.failure.reason == "OutputTooLarge"
    assert f"{OUTPUT_LIMIT_BYTES + 1}-byte output" in plan.failure.message
    assert f"over the {OUTPUT_LIMIT_BYTES}-byte limit" in plan.failure.message
    assert _status(workflow, progress)["primitives"]["plan"]["reason"] == "OutputTooLarge"
    # exactly at the limit (counted in bytes: "é" is two) passes
    at_limit = "é" * (OUTPUT_LIMIT_BYTES // 2)
    assert workflow_progress(workflow, [_succeeded("plan", at_limit)]).primitives["plan"].output == at_limit


def test_an_output_over_the_limit_is_retried_like_any_failure() -> None:
    progress = workflow_progress(_plan_then_tools(retries=1), [_succeeded("plan", "x" * 5000)])
    assert progress.exhausted is None and progress.ready == ["plan"] and progress.primitives["plan"].failures == 1


def test_a_child_gets_each_parents_output_as_a_variable_and_a_file() -> None:
    workflow = _plan_then_tools()
    progress = workflow_progress(workflow, [_succeeded("plan", "tools: search"), _succeeded("search-web", None)])
    judge = workflow.by_name()["judge"]
    raw = {"name": "judge", "image": "busybox:1.36", "env": [{"name": "MODE", "value": "strict"}]}
    given = with_inputs(raw, "wf", judge, progress)
    assert given["env"] == [
        {"name": "SCALE_INPUT_PLAN", "value": "tools: search"},
        {"name": "SCALE_INPUT_SEARCH_WEB", "value": ""},  # no output: an empty variable
        {"name": "MODE", "value": "strict"},
    ]
    (volume,) = given["volumes"]
    assert volume["configMap"]["name"] == "wf-outputs" and volume["configMap"]["optional"] is True
    assert volume["configMap"]["items"] == [
        {"key": "plan", "path": "plan"},
        {"key": "search-web", "path": "search-web"},
    ]
    assert given["volumeMounts"] == [{"name": volume["name"], "mountPath": INPUTS_DIR, "readOnly": True}]
    # only outputs that exist are published, so search-web's file is absent rather than empty
    assert handed_on(progress, workflow.primitives) == {"plan": "tools: search"}
    assert raw == {"name": "judge", "image": "busybox:1.36", "env": [{"name": "MODE", "value": "strict"}]}, "a copy"


def test_the_users_own_variable_wins_and_a_root_gets_nothing() -> None:
    workflow = _plan_then_tools()
    progress = workflow_progress(workflow, [_succeeded("plan", "tools: search")])
    own = {"name": "search-web", "env": [{"name": "SCALE_INPUT_PLAN", "value": "mine"}]}
    assert with_inputs(own, "wf", workflow.by_name()["search-web"], progress)["env"] == own["env"]
    root = {"name": "plan", "image": "busybox:1.36"}
    assert with_inputs(root, "wf", workflow.by_name()["plan"], progress) is root


def test_names_are_valid_variables_and_bounded_config_map_names() -> None:
    assert input_env_name("search-web-2") == "SCALE_INPUT_SEARCH_WEB_2"
    long = outputs_config_map_name("w" * 253)
    assert len(long) <= 253 and long.endswith("-outputs") and long != outputs_config_map_name("w" * 252 + "x")
