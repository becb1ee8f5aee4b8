"""Data between primitives on the real local control plane (issue 15): a parent's output (on KWOK nodes, its
``simulatedOutput`` made the termination message by the local cluster's completion stage) reaches its children as
an environment variable and a file, is recorded in status, survives an operator restart, and is bounded."""

from __future__ import annotations

from typing import Any

import pytest
from operator_harness import (
    WFD,
    apply,
    get_json,
    install_crd,
    new_namespace,
    step,
    wait_for,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.core.outputs import INPUTS_DIR, OUTPUT_LIMIT_BYTES
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import OperatorProcess, running_operator
from scale_scheduler.operator.kube import labels


@pytest.fixture
def cluster(local_cluster: Any) -> kwok.ClusterInfo:
    info: kwok.ClusterInfo = local_cluster(nodes=16)
    install_crd(info)
    return info


def _pod_of(cluster: kwok.ClusterInfo, namespace: str, workflow_name: str, primitive: str) -> dict[str, Any] | None:
    pods = workflow_pods(cluster, namespace, workflow_name)
    return next((p for p in pods if p["metadata"]["labels"][labels.PRIMITIVE_LABEL] == primitive), None)


def _inputs(pod: dict[str, Any]) -> tuple[dict[str, str], list[str], str]:
    """(the SCALE_INPUT_* variables, the keys its inputs volume mounts, from which ConfigMap) of a pod."""
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value", "") for e in container.get("env") or [] if e["name"].startswith("SCALE_INPUT_")}
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == INPUTS_DIR)
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    return env, [item["key"] for item in volume["configMap"]["items"]], volume["configMap"]["name"]


def _primitives(cluster: kwok.ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    return (get_json(cluster, WFD, "-n", namespace, name).get("status") or {}).get("primitives") or {}


def test_outputs_reach_children_as_variables_and_files_and_survive_an_operator_restart(
    cluster: kwok.ClusterInfo,
) -> None:
    namespace = new_namespace(cluster, "outputs")
    manifest = workflow(
        "chain",
        [
            step("plan", 1.0, simulatedOutput="tools: search"),
            step("act", 60.0, ["plan"], simulatedOutput="found 3 sources"),
            step("judge", 1.0, ["plan", "act"]),
        ],
    )
    first = OperatorProcess(cluster.kubeconfig, namespace, time_scale=10.0)
    try:
        first.wait_healthy()
        apply(cluster, namespace, manifest)
        act = wait_for("act's pod", lambda: _pod_of(cluster, namespace, "chain", "act"), 60, describe=first.log)
        # the pod is created before the status that made it ready is written: wait for that write
        recorded = wait_for(
            "plan's output in status", lambda: _primitives(cluster, namespace, "chain")["plan"].get("output"), 30
        )
        assert recorded == "tools: search"
    finally:
        first.kill()  # mid-workflow: act runs for 6 s at --time-scale 10
    # as a podGC would: from now on the plan's output lives in status only
    kwok.kubectl(cluster, "-n", namespace, "delete", "pod", "-l", f"{labels.PRIMITIVE_LABEL}=plan", "--wait")
    env, keys, config_map = _inputs(act)
    assert env == {"SCALE_INPUT_PLAN": "tools: search"} and keys == ["plan"]
    assert config_map == "chain-outputs"
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as second:
        status = wait_for_phase(cluster, namespace, "chain", {"Succeeded", "Failed"}, 90, second)["status"]
        judge = wait_for("judge's pod", lambda: _pod_of(cluster, namespace, "chain", "judge"), 10)
    assert status["phase"] == "Succeeded", status
    assert status["primitives"]["plan"]["output"] == "tools: search"
    assert status["primitives"]["act"]["output"] == "found 3 sources"
    assert "output" not in status["primitives"]["judge"]
    env, keys, _ = _inputs(judge)
    assert env == {"SCALE_INPUT_PLAN": "tools: search", "SCALE_INPUT_ACT": "found 3 sources"}
    assert keys == ["plan", "act"]
    data = get_json(cluster, "configmap", "-n", namespace, config_map)
    assert data["data"] == {"plan": "tools: search", "act": "found 3 sources"}, "judge's files"
    owner = data["metadata"]["ownerReferences"][0]
    assert owner["kind"] == labels.KIND and owner["name"] == "chain", "deleted with its workflow"


def test_an_output_over_the_limit_fails_its_primitive_naming_the_limit(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "big-output")
    manifest = workflow(
        "verbose", [step("talk", 1.0, simulatedOutput="x" * (OUTPUT_LIMIT_BYTES + 1)), step("listen", 1.0, ["talk"])]
    )
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        status = wait_for_phase(cluster, namespace, "verbose", {"Succeeded", "Failed"}, 60, operator)["status"]
    talk = status["primitives"]["talk"]
    assert status["phase"] == "Failed" and talk["reason"] == "OutputTooLarge", status
    assert f"over the {OUTPUT_LIMIT_BYTES}-byte limit" in talk["message"] and "output" not in talk
    assert _pod_of(cluster, namespace, "verbose", "listen") is None, "nothing is handed on"
