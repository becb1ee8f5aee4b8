"""plan_workflow: the operator's admission of a WorkflowDAG against the live view (no API server needed)."""

from __future__ import annotations

from typing import Any

import pytest
from kube_objects import SPEC, node_object
from scale_scheduler.operator.core.controller import plan_workflow
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.simulator.workflow import WorkflowValidationError


def _live(node_classes: tuple[str, ...] = ()) -> LiveCluster:
    live = LiveCluster()
    for node in SPEC.nodes:
        if not node_classes or node.node_class in node_classes:
            live.apply_node_event("ADDED", node_object(node.name))
    return live


def _body(primitives: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "agentic.scale.dev/v1alpha1",
        "kind": "WorkflowDAG",
        "metadata": {"name": "wf", "namespace": "ns", "uid": "u"},
        "spec": {"podTemplate": {"image": "busybox:1.36"}, "primitives": primitives},
    }


def test_plan_orders_the_dag_and_estimates_downstream_work_and_the_critical_path() -> None:
    plan = plan_workflow(
        _body(
            [
                {"name": "b", "kind": "tool_call", "workSeconds": 2.0, "dependsOn": ["a"]},
                {"name": "a", "kind": "tool_call", "workSeconds": 1.0},
            ]
        ),
        _live(),
    )
    assert [p.name for p in plan.workflow.primitives] == ["a", "b"]
    assert plan.downstream_seconds["b"] == 0.0 and plan.downstream_seconds["a"] > 0.0
    assert plan.lower_bound_seconds > 0.0


@pytest.mark.parametrize(
    ("primitives", "reason", "culprit"),
    [
        (
            [
                {"name": "a", "kind": "tool_call", "dependsOn": ["b"]},
                {"name": "b", "kind": "tool_call", "dependsOn": ["a"]},
            ],
            "Cycle",
            "a",
        ),
        ([{"name": "a", "kind": "tool_call", "dependsOn": ["nope"]}], "UnknownDependency", "a"),
        ([{"name": "a", "kind": "tool_call", "resources": {"cpu": "1000"}}], "Unschedulable", "a"),
    ],
)
def test_plan_rejects_dags_that_cannot_run(primitives: list[dict[str, Any]], reason: str, culprit: str) -> None:
    with pytest.raises(WorkflowValidationError) as raised:
        plan_workflow(_body(primitives), _live())
    assert raised.value.reason == reason and raised.value.primitive == culprit


def test_plan_rejects_a_kind_no_node_class_runs_even_if_resources_fit() -> None:
    # cpu-only nodes: an llm_generate that asks for no GPU fits their resources but runs nowhere (speed 0)
    body = _body(
        [
            {
                "name": "llm",
                "kind": "llm_generate",
                "outputTokens": 10,
                "resources": {"cpu": "1", "memory": "1Gi", "nvidia.com/gpu": 0},
            }
        ]
    )
    with pytest.raises(WorkflowValidationError) as raised:
        plan_workflow(body, _live(("cpu-large", "cpu-small")))
    assert raised.value.reason == "Unschedulable" and raised.value.primitive == "llm"


def test_plan_waits_while_the_live_view_has_no_node() -> None:
    with pytest.raises(LookupError):
        plan_workflow(_body([{"name": "a", "kind": "tool_call"}]), LiveCluster())


def test_a_templates_learned_work_reaches_the_plan_and_the_declared_work_stays_for_the_prior() -> None:
    body = _body(
        [
            {"name": "fetch", "kind": "tool_call", "workSeconds": 2.0},
            {"name": "answer", "kind": "llm_generate", "inputTokens": 800, "outputTokens": 200, "dependsOn": ["fetch"]},
        ]
    )
    body["spec"]["template"] = "nightly-report"
    live = _live()
    before = plan_workflow(body, live)
    live.set_work_corrections({"nightly-report": {"fetch": 3.0, "answer": 0.5}, "other": {"fetch": 9.0}})
    after = plan_workflow(body, live)
    assert after.template == before.template == "nightly-report"
    learned, declared = after.workflow.by_name(), after.declared
    assert (learned["fetch"].work_seconds, declared["fetch"].work_seconds) == (6.0, 2.0)
    assert (learned["answer"].input_tokens, learned["answer"].output_tokens) == (400, 100)
    assert (declared["answer"].input_tokens, declared["answer"].output_tokens) == (800, 200)
    assert after.mean_seconds["fetch"] == pytest.approx(3 * before.mean_seconds["fetch"])
    assert after.mean_seconds["answer"] < before.mean_seconds["answer"]
    # without spec.template the DAG is the key: the same structure, whatever work it declares, is one template
    del body["spec"]["template"]
    untemplated = plan_workflow(body, live)
    body["spec"]["primitives"][0]["workSeconds"] = 5.0
    assert untemplated.template.startswith("dag-") and plan_workflow(body, live).template == untemplated.template
    assert untemplated.workflow.by_name()["fetch"].work_seconds == 2.0
