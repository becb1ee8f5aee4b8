"""Learned run times on the real local control plane (issue 15): pods on a node the local cluster runs at half its
class profile's speed (``SIMULATED_SPEED_LABEL``) teach the operator that class's true speed; after
``MIN_SAMPLES`` pods the class loses the work the static model gave it, the statistics are in the operator's
ConfigMap, and a restarted operator places by them from its first decision. A ConfigMap it cannot read is
reported and replaced, never a reason to stop scheduling."""

from __future__ import annotations

import json
import math
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from operator_harness import (
    WFD,
    apply,
    get_json,
    install_crd,
    new_namespace,
    wait_for,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.core.estimate_store import CONFIG_MAP_NAME, DATA_KEY
from scale_scheduler.operator.core.estimates import MIN_SAMPLES
from scale_scheduler.operator.core.workflow_pods import run_seconds
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.localcluster.nodes import node_list
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED, running_operator
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.objects import parse_go_duration
from scale_scheduler.simulator.cluster import PROFILES, ClusterSpec
from scale_scheduler.simulator.node_classes import NodeMapping
from scale_scheduler.simulator.node_model import estimated_duration
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive

TIME_SCALE = 20.0
STEPS = MIN_SAMPLES + 3
RATIO_BOUNDS = (1.2, 3.0)  # the learned ratio of a class at half speed (2), with the spread of 5-6 pods' run times


@pytest.fixture
def cluster(local_cluster: Any) -> kwok.ClusterInfo:
    info: kwok.ClusterInfo = local_cluster(nodes=16)
    install_crd(info)
    return info


def _code_steps(pool: str, count: int) -> list[dict[str, Any]]:
    """code_exec steps one after another, each allowed only on the test's nodes: each is placed when the one
    before it has finished, so every placement sees what was learned from the pods before it."""
    return [
        {
            "name": f"c{i}",
            "kind": "code_exec",
            "workSeconds": 30.0,
            "nodeSelector": {"scale.dev/test-pool": pool},
            **({"dependsOn": [f"c{i - 1}"]} if i else {}),
        }
        for i in range(count)
    ]


def _document(info: kwok.ClusterInfo, namespace: str) -> dict[str, Any]:
    """The operator's run-times.json as stored now ({} when there is none it wrote)."""
    found = kwok.kubectl(
        info, "get", "configmap", "-n", namespace, "-o", "json", "--field-selector", f"metadata.name={CONFIG_MAP_NAME}"
    )
    items = json.loads(found)["items"]
    data = (items[0].get("data") or {}).get(DATA_KEY) if items else None
    try:
        document = json.loads(data) if data else {}
    except ValueError:
        return {}
    return document if isinstance(document, dict) and "statistics" in document else {}


def _stored(info: kwok.ClusterInfo, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {(entry["kind"], entry["node_class"]): entry for entry in _document(info, namespace).get("statistics", [])}


def _calibrate(cluster: kwok.ClusterInfo, namespace: str, out: Path) -> subprocess.CompletedProcess[str]:
    command = [*SCALE_SCHED, "calibrate", "--kubeconfig", str(cluster.kubeconfig), "--namespace", namespace]
    return subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=120, check=False)


def test_a_class_twice_as_slow_as_its_prior_loses_its_work_and_the_lesson_outlives_a_restart(
    cluster: kwok.ClusterInfo, tmp_path: Path
) -> None:
    namespace = new_namespace(cluster, "learn")
    nothing_yet = _calibrate(cluster, namespace, tmp_path / "none.yaml")
    assert nothing_yet.returncode != 0 and "no ConfigMap" in nothing_yet.stderr, nothing_yet.stderr
    pool = f"pool-{uuid.uuid4().hex[:6]}"
    slow, fast = f"slow-{pool}", f"fast-{pool}"
    # code_exec runs at 1.5 on cpu-large and 1.2 on gpu-large by the static model: earliest finish picks the
    # cpu-large node, which the local cluster runs at half that (0.75)
    nodes = [
        {
            "name": slow,
            "node_class": "cpu-large",
            "labels": {"scale.dev/test-pool": pool, labels.SIMULATED_SPEED_LABEL: "0.5"},
        },
        {"name": fast, "node_class": "gpu-large", "labels": {"scale.dev/test-pool": pool}},
    ]
    spec = ClusterSpec.from_yaml(yaml.safe_dump({"nodes": nodes}))
    kwok.kubectl(cluster, "apply", "-f", "-", stdin=json.dumps(node_list(spec)))
    try:
        wait_for(
            "the new nodes to be Ready",
            lambda: all(
                kwok.kubectl(
                    cluster, "get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
                )
                == "True"
                for name in (slow, fast)
            ),
            120,
        )
        with running_operator(
            cluster.kubeconfig, namespace, policy="heft", time_scale=TIME_SCALE, learn_estimates=True
        ) as operator:
            learn = workflow("learn", _code_steps(pool, STEPS))
            learn["spec"]["template"] = "learn-steps"
            apply(cluster, namespace, learn)
            status = wait_for_phase(cluster, namespace, "learn", {"Succeeded", "Failed"}, 240, operator)["status"]
            assert status["phase"] == "Succeeded", status
            placed = [status["primitives"][f"c{i}"]["node"] for i in range(STEPS)]
            # the static model's choice until MIN_SAMPLES pods have finished there; the other node after
            assert placed[:MIN_SAMPLES] == [slow] * MIN_SAMPLES, placed
            assert placed[-1] == fast, (placed, operator.log())
            entry = wait_for(
                "the learned run times in the ConfigMap",
                lambda: (e := _stored(cluster, namespace).get(("code_exec", "cpu-large"))) and e["samples"] >= 5 and e,
                30,
                describe=operator.log,
            )
        # observed / prior: 2 times the lognormal factor's geometric mean (0.96); after 5-6 pods (sigma 0.3, weight
        # 0.2) the mean's own spread is about 15 % either way, so the bounds sit 3 of those from 1.9
        assert RATIO_BOUNDS[0] < math.exp(entry["log_mean"]) < RATIO_BOUNDS[1], entry
        # the template's statistics are kept beside the class's, one per primitive (each ran once; the first pod on
        # a class is the class's alone). Their values are not checked here: one pod each, taken while the class's
        # mean is still forming, carries the run-time draw and KWOK's stage delays (a residual of 3.5x was seen
        # in CI); how the two statistics split an error is tests/operator/test_estimates.py's
        (template,) = [t for t in _document(cluster, namespace)["templates"] if t["template"] == "learn-steps"]
        assert all(entry["samples"] == 1 for entry in template["primitives"]), template
        assert len(template["primitives"]) >= MIN_SAMPLES - 1, template
        assert {
            pod["metadata"]["annotations"][labels.TEMPLATE_ANNOTATION]
            for pod in workflow_pods(cluster, namespace, "learn")
        } == {"learn-steps"}
        # calibrate exports it: the class's profile at its learned speed (as stored once the operator stopped),
        # and every live node under it
        ratio = math.exp(_stored(cluster, namespace)[("code_exec", "cpu-large")]["log_mean"])
        profiles, exported = tmp_path / "learned.yaml", tmp_path / "learned-cluster.yaml"
        calibrate = _calibrate(cluster, namespace, profiles)
        assert calibrate.returncode == 0, calibrate.stderr
        learned = NodeMapping.load(profiles).catalog["cpu-large"].speed[PrimitiveKind.CODE_EXEC]
        assert learned == pytest.approx(PROFILES["cpu-large"].speed[PrimitiveKind.CODE_EXEC] / ratio)
        live_nodes = get_json(cluster, "nodes")["items"]
        assert len(ClusterSpec.load(exported).nodes) == len(live_nodes)

        with running_operator(
            cluster.kubeconfig, namespace, policy="heft", time_scale=TIME_SCALE, learn_estimates=True
        ) as restarted:
            apply(cluster, namespace, workflow("after", _code_steps(pool, 1)))
            status = wait_for_phase(cluster, namespace, "after", {"Succeeded", "Failed"}, 120, restarted)["status"]
            assert status["phase"] == "Succeeded", status
            assert status["primitives"]["c0"]["node"] == fast, restarted.log()
            assert "statistics read from ConfigMap" in restarted.log(400)
            # a pod that may only run on the slow node is estimated at its learned speed there, while its drawn
            # run time (the local cluster's "hardware") and the prior it is measured against stay the profile's
            pinned = _code_steps(pool, 1)
            pinned[0]["nodeSelector"] = {"kubernetes.io/hostname": slow}
            apply(cluster, namespace, workflow("pinned", pinned))
            status = wait_for_phase(cluster, namespace, "pinned", {"Succeeded", "Failed"}, 120, restarted)["status"]
            assert status["phase"] == "Succeeded", status
            (pod,) = workflow_pods(cluster, namespace, "pinned")
            annotations = pod["metadata"]["annotations"]
            estimated, prior, drawn = (
                parse_go_duration(annotations[key])
                for key in (
                    labels.ESTIMATED_DURATION_ANNOTATION,
                    labels.PRIOR_ESTIMATED_DURATION_ANNOTATION,
                    labels.DURATION_ANNOTATION,
                )
            )
            assert RATIO_BOUNDS[0] < estimated / prior < RATIO_BOUNDS[1], annotations
            code = Primitive("c0", PrimitiveKind.CODE_EXEC, work_seconds=30.0)
            profile_node = spec.nodes[0]  # the slow node as its profile has it (and its simulated-speed label)
            setup = prior * TIME_SCALE - estimated_duration(code, profile_node)
            uid = get_json(cluster, WFD, "-n", namespace, "pinned")["metadata"]["uid"]
            expected = run_seconds(code, profile_node, uid, 0, setup)
            assert drawn * TIME_SCALE == pytest.approx(expected, abs=0.1), annotations
    finally:
        kwok.kubectl(cluster, "delete", "node", slow, fast, "--ignore-not-found")


def test_a_configmap_the_operator_cannot_read_is_reported_and_replaced(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "learnbad")
    foreign = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": CONFIG_MAP_NAME},
        "data": {DATA_KEY: '{"version": 9, "anything": true}'},
    }
    apply(cluster, namespace, foreign)
    with running_operator(
        cluster.kubeconfig, namespace, policy="heft", time_scale=TIME_SCALE, learn_estimates=True
    ) as operator:
        apply(cluster, namespace, workflow("w", [{"name": "t", "kind": "tool_call", "workSeconds": 2.0}]))
        status = wait_for_phase(cluster, namespace, "w", {"Succeeded", "Failed"}, 120, operator)["status"]
        assert status["phase"] == "Succeeded", status
        assert "ignoring ConfigMap" in operator.log(400) and "starting from the prior" in operator.log(400)
        wait_for(
            "the ConfigMap rewritten in the operator's format",
            lambda: any(kind == "tool_call" for kind, _ in _stored(cluster, namespace)),
            30,
            describe=operator.log,
        )
    assert get_json(cluster, "configmap", "-n", namespace, CONFIG_MAP_NAME)["data"][DATA_KEY].startswith("{")
