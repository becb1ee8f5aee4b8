"""The operator on the real local control plane: every sample WorkflowDAG runs to Succeeded on 16, 32 and 48
simulated nodes, each pod on a node that can run it and only after its parents finished."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml
from operator_harness import (
    SAMPLES,
    apply,
    events_for,
    get_json,
    install_crd,
    new_namespace,
    wait_for_phase,
    workflow_pods,
)
from scale_scheduler.operator.core.progress import pod_times
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.cluster import node_spec_from_object
from scale_scheduler.simulator.manifests import workflow_from_manifest
from scale_scheduler.simulator.node_model import feasible


def assert_placements_valid(info: Any, namespace: str, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every pod of the workflow on a node that fits it and runs its kind; each started after its parents ended."""
    workflow = workflow_from_manifest(manifest)
    primitives = workflow.by_name()
    nodes = {node["metadata"]["name"]: node_spec_from_object(node) for node in get_json(info, "nodes")["items"]}
    pods = workflow_pods(info, namespace, manifest["metadata"]["name"])
    succeeded = {}
    for pod in pods:
        name = pod["metadata"]["labels"][labels.PRIMITIVE_LABEL]
        node = pod["spec"].get("nodeName")
        assert node in nodes, f"pod {pod['metadata']['name']} is on {node!r}, not a node of the cluster"
        assert feasible(primitives[name], nodes[node]), f"{name} ({primitives[name].kind}) cannot run on {node}"
        assert pod["spec"]["schedulerName"] == labels.SCHEDULER_NAME
        if pod["status"].get("phase") == "Succeeded":
            succeeded[name] = pod_times(pod)
    assert set(succeeded) == set(primitives), f"succeeded: {sorted(succeeded)}"
    for name, primitive in primitives.items():
        start = succeeded[name][0]
        for parent in primitive.depends_on:
            assert start >= succeeded[parent][1], f"{name} started {start} before its parent {parent} finished"
    return pods


@pytest.mark.parametrize("nodes", [16, 32, 48])
def test_every_sample_succeeds_with_valid_placements(local_cluster: Any, nodes: int) -> None:
    info = local_cluster(nodes=nodes)
    install_crd(info)
    namespace = new_namespace(info, "samples")
    manifests = [yaml.safe_load(path.read_text()) for path in SAMPLES]
    with running_operator(info.kubeconfig, namespace, policy="scale", time_scale=20.0) as operator:
        for path in SAMPLES:
            apply(info, namespace, path)
        for manifest in manifests:
            workflow = wait_for_phase(
                info, namespace, manifest["metadata"]["name"], {"Succeeded", "Failed"}, 240, operator
            )
            status = workflow["status"]
            assert status["phase"] == "Succeeded", status
            total = len(manifest["spec"]["primitives"])
            assert status["done"] == f"{total}/{total}"
            assert status["responseTimeSeconds"] > 0 and status["slowdown"] > 0
            assert status["policy"] == "scale"
            assert all(entry["state"] == "Succeeded" and entry["node"] for entry in status["primitives"].values())
            pods = assert_placements_valid(info, namespace, manifest)
            assert len(pods) == total  # one pod per primitive: nothing failed, nothing duplicated
    # kube-scheduler's vocabulary on the pods, our placement decisions on the WorkflowDAG
    first_pod = pods[0]["metadata"]["name"]
    assert any(
        e["reason"] == "Scheduled" and "Successfully assigned" in e["message"]
        for e in events_for(info, namespace, first_pod)
    )
    # one Placed Event per reconcile that bound pods, each counting and naming them: every primitive once in all
    placed = [e for e in events_for(info, namespace, manifests[-1]["metadata"]["name"]) if e["reason"] == "Placed"]
    primitives = manifests[-1]["spec"]["primitives"]
    assert sum(int(e["message"].split(" ", 1)[0]) for e in placed) == len(primitives)
    assert all(sum(e["message"].count(f"'{p['name']}' attempt") for e in placed) == 1 for p in primitives)


def test_json_logs_are_one_object_per_line(local_cluster: Any) -> None:
    info = local_cluster(nodes=16)
    install_crd(info)
    namespace = new_namespace(info, "json-logs")
    manifest = yaml.safe_load(SAMPLES[0].read_text())
    with running_operator(
        info.kubeconfig, namespace, policy="heft", time_scale=20.0, extra=("--log-format", "json")
    ) as operator:
        apply(info, namespace, SAMPLES[0])
        wait_for_phase(info, namespace, manifest["metadata"]["name"], {"Succeeded"}, 240, operator)
        lines = [line for line in operator.log_path.read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object: nothing else on stdout/stderr
    assert any("placing WorkflowDAG pods with policy heft" in record["message"] for record in records)
    assert all({"message", "severity", "timestamp"} <= set(record) for record in records), records[:3]
