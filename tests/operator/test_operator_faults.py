"""What real clusters do to the operator, on the real local control plane (16 simulated nodes): bad manifests,
an operator killed mid-workflow, a node deleted under a running pod, failed pods, WorkflowDAG deletion and a
corrupt policy checkpoint, other namespaces' pods on the nodes, API errors and dropped connections between the
operator and the API server (through ``fault_proxy``), a node drained under running pods, kube-apiserver
and etcd killed and restarted, pods deleted while the operator's watch was down."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from operator_harness import (
    WFD,
    apply,
    chain,
    events_for,
    get_json,
    install_crd,
    new_namespace,
    overcommitted,
    pods_per_attempt,
    step,
    wait_for,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.core.controller import RESYNC_SECONDS, SWEEP_SECONDS
from scale_scheduler.operator.dev.fault_proxy import FAULT_KINDS, FaultPlan, FaultProxy
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.localcluster.kwok import ClusterError
from scale_scheduler.operator.dev.operator_process import OperatorProcess, running_operator
from scale_scheduler.operator.kube import labels

NODES = 16


@pytest.fixture(scope="module")
def cluster(local_cluster: Any) -> kwok.ClusterInfo:
    info = local_cluster(nodes=NODES)
    install_crd(info)
    return info


@pytest.fixture(scope="module")
def namespace(cluster: kwok.ClusterInfo) -> str:
    return new_namespace(cluster, "faults")


@pytest.fixture(scope="module")
def operator(cluster: kwok.ClusterInfo, namespace: str) -> Iterator[OperatorProcess]:
    with running_operator(cluster.kubeconfig, namespace, policy="heft", time_scale=20.0) as process:
        yield process


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (step("a") | {"kind": "gpu_magic"}, "Unsupported value"),
        (step("Not_A_Label"), "should match"),
        (step("a", depends_on=["a"]), "cannot depend on itself"),
        ({"name": "a", "kind": "llm_generate", "inputTokens": 10}, "needs outputTokens"),
    ],
)
def test_api_server_rejects_invalid_primitives(
    cluster: kwok.ClusterInfo, namespace: str, bad: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ClusterError, match=expected):
        apply(cluster, namespace, workflow("bad", [bad]))


def test_api_server_rejects_a_primitive_with_no_image_anywhere(cluster: kwok.ClusterInfo, namespace: str) -> None:
    imageless = workflow("no-image", [step("a", image="busybox:1.36"), step("b")])
    del imageless["spec"]["podTemplate"]
    with pytest.raises(ClusterError, match="every primitive needs a container image"):
        apply(cluster, namespace, imageless)
    imageless["spec"]["primitives"][1]["image"] = ""
    with pytest.raises(ClusterError, match="should be at least 1 chars long"):
        apply(cluster, namespace, imageless)


def test_api_server_rejects_duplicate_primitive_names(cluster: kwok.ClusterInfo, namespace: str) -> None:
    with pytest.raises(ClusterError, match="Duplicate value"):
        apply(cluster, namespace, workflow("dup", [step("a"), step("a", 3.0)]))


@pytest.mark.parametrize(
    ("name", "primitives", "reason", "culprit"),
    [
        (
            "cycle",
            [step("a", depends_on=["c"]), step("b", depends_on=["a"]), step("c", depends_on=["b"])],
            "Cycle",
            "'a'",
        ),
        ("unknown-dep", [step("a"), step("b", depends_on=["ghost"])], "UnknownDependency", "'b'"),
        ("too-big", [step("a"), step("huge", resources={"cpu": "500", "memory": "1Gi"})], "Unschedulable", "'huge'"),
    ],
)
def test_operator_fails_unrunnable_dags_with_a_condition_and_creates_nothing(
    cluster: kwok.ClusterInfo,
    namespace: str,
    operator: OperatorProcess,
    name: str,
    primitives: list[dict[str, Any]],
    reason: str,
    culprit: str,
) -> None:
    apply(cluster, namespace, workflow(name, primitives))
    status = wait_for_phase(cluster, namespace, name, {"Failed", "Succeeded"}, 60, operator)["status"]
    assert status["phase"] == "Failed"
    valid = next(c for c in status["conditions"] if c["type"] == "Valid")
    assert valid["status"] == "False" and valid["reason"] == reason and culprit in valid["message"], valid
    warnings = [e for e in events_for(cluster, namespace, name) if e["type"] == "Warning" and e["reason"] == reason]
    assert warnings and culprit in warnings[0]["message"]
    assert workflow_pods(cluster, namespace, name) == []


def test_operator_killed_mid_workflow_resumes_without_duplicate_pods(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "restart")
    name = "fan"
    # a fan-out and fan-in of short steps, so the kill lands among creations and bindings
    manifest = workflow(
        name,
        [step("root", 20.0)]
        + [step(f"w{i}", 100.0, ["root"]) for i in range(8)]
        + [step("join", 20.0, [f"w{i}" for i in range(8)])],
    )
    first = OperatorProcess(cluster.kubeconfig, namespace, policy="least-loaded", time_scale=20.0)
    try:
        first.wait_healthy()
        apply(cluster, namespace, manifest)
        wait_for("the fan-out pods", lambda: len(workflow_pods(cluster, namespace, name)) >= 3, 90, describe=first.log)
        first.kill()
    finally:
        first.stop()
    # only an operator creates the join pod: with it dead, the workflow is certainly unfinished here
    assert (get_json(cluster, WFD, "-n", namespace, name).get("status") or {}).get("phase") != "Succeeded"
    with running_operator(cluster.kubeconfig, namespace, policy="least-loaded", time_scale=20.0) as second:
        status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 180, second)["status"]
    assert status["phase"] == "Succeeded", status
    per_attempt = pods_per_attempt(cluster, namespace, name)
    assert all(count == 1 for count in per_attempt.values()), per_attempt
    assert sorted(p for p, _ in per_attempt) == sorted(p["name"] for p in manifest["spec"]["primitives"])


@pytest.fixture
def restore_nodes(cluster: kwok.ClusterInfo) -> Iterator[list[dict[str, Any]]]:
    """Nodes a test deletes are put back afterwards: the cluster is shared by the whole session."""
    deleted: list[dict[str, Any]] = []
    yield deleted
    for node in deleted:
        meta = node["metadata"]
        clean = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": meta["name"],
                "labels": meta.get("labels", {}),
                "annotations": {
                    k: v
                    for k, v in (meta.get("annotations") or {}).items()
                    if k.startswith("kwok.x-k8s.io") or k.startswith("node.alpha")
                },
            },
            "spec": {k: v for k, v in node.get("spec", {}).items() if k == "taints"},
            "status": {"allocatable": node["status"]["allocatable"], "capacity": node["status"]["capacity"]},
        }
        kwok.kubectl(cluster, "create", "-f", "-", stdin=json.dumps(clean))
        kwok.kubectl(cluster, "wait", "--for=condition=Ready", f"node/{meta['name']}", "--timeout=60s")


def test_node_deleted_under_a_running_pod_moves_it_and_the_workflow_succeeds(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess, restore_nodes: list[dict[str, Any]]
) -> None:
    name = "node-loss"
    apply(cluster, namespace, workflow(name, [step("long", 400.0), step("after", 2.0, ["long"])]))

    def running_pod() -> dict[str, Any] | None:
        return next((p for p in workflow_pods(cluster, namespace, name) if p["status"].get("phase") == "Running"), None)

    pod = wait_for("the long pod to run", running_pod, 60, describe=operator.log)
    lost = pod["spec"]["nodeName"]
    restore_nodes.append(get_json(cluster, "node", lost))
    kwok.kubectl(cluster, "delete", "node", lost, "--wait=false")
    status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 120, operator)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["primitives"]["long"]["node"] != lost
    assert status["primitives"]["long"].get("failures", 0) == 0  # a lost node does not use up a retry
    assert any(e["reason"] == "NodeLost" and lost in e["message"] for e in events_for(cluster, namespace, name))


def _fail_running_pod(cluster: kwok.ClusterInfo, pod: dict[str, Any]) -> None:
    """What a kubelet reports when the container exits 1."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    status = {
        "status": {
            "phase": "Failed",
            "containerStatuses": [
                {
                    "name": "primitive",
                    "image": pod["spec"]["containers"][0]["image"],
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                    "state": {"terminated": {"exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}},
                }
            ],
        }
    }
    kwok.kubectl(
        cluster,
        "-n",
        pod["metadata"]["namespace"],
        "patch",
        "pod",
        pod["metadata"]["name"],
        "--subresource=status",
        "--type=merge",
        "-p",
        json.dumps(status),
    )


def _first_attempt_running(cluster: kwok.ClusterInfo, namespace: str, name: str) -> dict[str, Any] | None:
    return next(
        (
            p
            for p in workflow_pods(cluster, namespace, name)
            if p["status"].get("phase") == "Running" and p["metadata"]["labels"][labels.ATTEMPT_LABEL] == "0"
        ),
        None,
    )


@pytest.mark.parametrize(("retries", "phase"), [(1, "Succeeded"), (0, "Failed")])
def test_failed_pod_is_retried_up_to_its_retries(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess, retries: int, phase: str
) -> None:
    name = f"retry-{retries}"
    apply(cluster, namespace, workflow(name, [step("flaky", 200.0, retries=retries), step("then", 2.0, ["flaky"])]))
    pod = wait_for(
        "the first attempt to run", lambda: _first_attempt_running(cluster, namespace, name), 60, describe=operator.log
    )
    _fail_running_pod(cluster, pod)
    status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 120, operator)["status"]
    assert status["phase"] == phase, status
    attempts = pods_per_attempt(cluster, namespace, name)
    if phase == "Succeeded":
        assert attempts[("flaky", "0")] == 1 and attempts[("flaky", "1")] == 1
        assert status["primitives"]["flaky"]["failures"] == 1
    else:
        complete = next(c for c in status["conditions"] if c["type"] == "Complete")
        assert complete["reason"] == "RetriesExhausted" and "'flaky'" in complete["message"]
        assert ("then", "0") not in attempts  # nothing after the failed primitive was started


def test_deleting_the_workflow_removes_its_pods(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess
) -> None:
    name = "doomed"
    apply(cluster, namespace, workflow(name, [step(f"p{i}", 400.0) for i in range(3)]))
    wait_for("its pods", lambda: len(workflow_pods(cluster, namespace, name)) == 3, 60, describe=operator.log)
    # no finalizer: the delete completes without the operator's help (kubectl fails if it does not within 30 s)
    kwok.kubectl(cluster, "-n", namespace, "delete", WFD, name, "--timeout=30s")
    wait_for("the garbage collector to delete its pods", lambda: not workflow_pods(cluster, namespace, name), 90)


def test_corrupt_checkpoint_falls_back_to_least_loaded_with_a_warning(
    cluster: kwok.ClusterInfo, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "broken"
    checkpoint.mkdir()
    (checkpoint / "model.pt").write_bytes(b"not a torch checkpoint")
    (checkpoint / "config.json").write_text("{not json")
    namespace = new_namespace(cluster, "fallback")
    name = "fallback"
    with running_operator(
        cluster.kubeconfig, namespace, policy="scale", time_scale=20.0, extra=("--checkpoint", str(checkpoint))
    ) as process:
        apply(cluster, namespace, chain(name, 2, 2.0))
        status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 90, process)["status"]
        log = process.log(200)
    assert status["phase"] == "Succeeded" and status["policy"] == "least-loaded", status
    assert "least-loaded" in log and "could not be loaded" in log
    warnings = [e for e in events_for(cluster, namespace, name) if e["reason"] == "PolicyFallback"]
    assert warnings and warnings[0]["type"] == "Warning" and str(checkpoint) in warnings[0]["message"]


def test_pods_wait_unschedulable_while_no_node_has_room_and_run_when_room_frees(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess
) -> None:
    name = "crowd"
    # 20 one-GPU LLM calls at once on a cluster with 16 GPUs: 4 must wait for a GPU to free up
    apply(
        cluster,
        namespace,
        workflow(
            name,
            [{"name": f"llm-{i}", "kind": "llm_generate", "inputTokens": 200, "outputTokens": 400} for i in range(20)],
        ),
    )
    status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 180, operator)["status"]
    assert status["phase"] == "Succeeded", status
    pods = workflow_pods(cluster, namespace, name)
    assert len(pods) == 20
    waited = [
        p
        for p in pods
        if any(
            e["reason"] == "FailedScheduling" and "free" in e["message"]
            for e in events_for(cluster, namespace, p["metadata"]["name"])
        )
    ]
    assert len(waited) >= 4, "the pods beyond the cluster's 16 GPUs were reported unschedulable first"


def _hog_every_gpu(cluster: kwok.ClusterInfo, namespace: str) -> dict[str, str]:
    """A pod on each GPU node (bound by nodeName, past any scheduler) holding all its GPUs, Running on return;
    node -> its GPUs."""
    allocatable = {n["metadata"]["name"]: n["status"]["allocatable"] for n in get_json(cluster, "nodes")["items"]}
    gpu_nodes = {node: a["nvidia.com/gpu"] for node, a in allocatable.items() if int(a.get("nvidia.com/gpu", 0))}
    for node, gpus in gpu_nodes.items():
        resources = {"cpu": "100m", "memory": "64Mi", "nvidia.com/gpu": gpus}
        apply(
            cluster,
            namespace,
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": f"hog-{node}", "labels": {"hog": "true"}},
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {"name": "main", "image": "busybox", "resources": {"requests": resources, "limits": resources}}
                    ],
                },
            },
        )
    wait_for(
        "the hogs to run",
        lambda: all(
            p["status"].get("phase") == "Running"
            for p in get_json(cluster, "pods", "-n", namespace, "-l", "hog")["items"]
        ),
        60,
    )
    return gpu_nodes


def _failed_scheduling(cluster: kwok.ClusterInfo, namespace: str, name: str) -> list[dict[str, Any]]:
    pods = workflow_pods(cluster, namespace, name)
    return [
        e
        for p in pods
        for e in events_for(cluster, namespace, p["metadata"]["name"])
        if e["reason"] == "FailedScheduling"
    ]


def test_pods_of_other_namespaces_take_room_from_a_namespaced_operator(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess
) -> None:
    # Another team's pods hold every GPU. The operator watches only its own namespace, yet must count them.
    other = new_namespace(cluster, "other-team")
    gpu_nodes = _hog_every_gpu(cluster, other)
    time.sleep(2 * RESYNC_SECONDS)  # other namespaces are relisted every RESYNC_SECONDS, not watched
    try:
        name = "after-hogs"
        apply(
            cluster,
            namespace,
            workflow(name, [{"name": "llm", "kind": "llm_generate", "inputTokens": 200, "outputTokens": 400}]),
        )
        pod = wait_for("the LLM pod", lambda: workflow_pods(cluster, namespace, name), 60)[0]["metadata"]["name"]
        wait_for(
            "a FailedScheduling event: no GPU is free",
            lambda: [e for e in events_for(cluster, namespace, pod) if e["reason"] == "FailedScheduling"],
            60,
            describe=lambda: f"{kwok.kubectl(cluster, 'get', 'pods', '-A', '-o', 'wide')}\n{operator.log()}",
        )
        assert not get_json(cluster, "pod", "-n", namespace, pod)["spec"].get("nodeName")
    finally:
        kwok.kubectl(cluster, "delete", "namespace", other, "--wait=false")
    status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 120, operator)["status"]
    assert status["phase"] == "Succeeded", status
    assert status["primitives"]["llm"]["node"] in gpu_nodes


# SCALE_SCHED_FAULT_SOAK=N runs the API-fault test N times as long with N times the workflows (default 1: small).
SOAK = max(int(os.environ.get("SCALE_SCHED_FAULT_SOAK", "1")), 1)


def _wait_terminal_without_overcommit(
    cluster: kwok.ClusterInfo, namespace: str, names: list[str], timeout: float, operator: OperatorProcess
) -> dict[str, dict[str, Any]]:
    """Every workflow's status once all are Succeeded or Failed; checks that no node is overcommitted at each poll."""
    seen: list[str] = []

    def check() -> dict[str, dict[str, Any]] | None:
        seen.extend(overcommitted(cluster))
        workflows = {
            w["metadata"]["name"]: w.get("status") or {} for w in get_json(cluster, WFD, "-n", namespace)["items"]
        }
        done = all(workflows.get(name, {}).get("phase") in ("Succeeded", "Failed") for name in names)
        return workflows if done else None

    def describe() -> str:
        phases = {
            w["metadata"]["name"]: (w.get("status") or {}).get("done")
            for w in get_json(cluster, WFD, "-n", namespace)["items"]
        }
        return f"progress: {phases}\noperator log:\n{operator.log(80)}"

    statuses = wait_for("every workflow to end", check, timeout, interval=1.0, describe=describe)
    assert not seen, f"nodes overcommitted while the workflows ran: {sorted(set(seen))}"
    return statuses


def _fault_workflows(copies: int) -> list[dict[str, Any]]:
    """A fan-out/fan-in, a chain and parallel LLM calls (GPUs) per copy: creations, bindings and DAG steps all along."""
    manifests = []
    for copy in range(copies):
        manifests += [
            workflow(
                f"fan-{copy}",
                [step("root", 40.0)]
                + [step(f"w{i}", 60.0, ["root"]) for i in range(6)]
                + [step("join", 20.0, [f"w{i}" for i in range(6)])],
            ),
            chain(f"chain-{copy}", 5, 60.0),
            workflow(
                f"llm-{copy}",
                [
                    {"name": f"llm-{i}", "kind": "llm_generate", "inputTokens": 200, "outputTokens": 400}
                    for i in range(3)
                ]
                + [step("use", 20.0, [f"llm-{i}" for i in range(3)])],
            ),
        ]
    return manifests


@pytest.mark.slow  # a 25 s fault window, then the workflows' end
def test_api_errors_and_dropped_connections_leave_every_workflow_correct(
    cluster: kwok.ClusterInfo, tmp_path: Path
) -> None:
    """An overloaded or flaky API server, or the network in front of it: for 25 s the operator's requests are
    answered 429 (Retry-After), 500 or 503, or their connections are dropped (before the server saw them, or
    after it acted and before the reply), and its watch streams are cut mid-way. Every workflow must still
    succeed, with one pod per primitive (no write repeated into a duplicate) and no node given more than it has."""
    namespace = new_namespace(cluster, "api-faults")
    plan = FaultPlan(
        error_fraction=0.15, drop_fraction=0.1, stream_drop_fraction=0.15, end_seconds=25.0 * SOAK, seed=16
    )
    manifests = _fault_workflows(SOAK)
    with FaultProxy(cluster.kubeconfig, plan) as proxy:
        through_proxy = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig.yaml")
        with running_operator(through_proxy, namespace, policy="least-loaded", time_scale=20.0) as operator:
            proxy.arm()
            for manifest in manifests:
                apply(cluster, namespace, manifest)
            statuses = _wait_terminal_without_overcommit(
                cluster, namespace, [m["metadata"]["name"] for m in manifests], 240 * SOAK, operator
            )
            wait_for("the fault window to close", lambda: not proxy.active(), 60 * SOAK)
    injected = {kind: proxy.counts[kind] for kind in FAULT_KINDS if kind != "expired_watch"}
    assert all(count > 0 for count in injected.values()), injected
    _assert_each_succeeded_with_one_pod_per_primitive(cluster, namespace, manifests, statuses)


def _assert_each_succeeded_with_one_pod_per_primitive(
    cluster: kwok.ClusterInfo, namespace: str, manifests: list[dict[str, Any]], statuses: dict[str, dict[str, Any]]
) -> None:
    for manifest in manifests:
        name = manifest["metadata"]["name"]
        assert statuses[name]["phase"] == "Succeeded", (name, statuses[name])
        per_attempt = pods_per_attempt(cluster, namespace, name)
        assert all(count == 1 for count in per_attempt.values()), (name, per_attempt)
        assert sorted(p for p, _ in per_attempt) == sorted(p["name"] for p in manifest["spec"]["primitives"]), name
    assert not overcommitted(cluster)


@pytest.mark.parametrize("component", kwok.RESTARTABLE)
def test_control_plane_component_killed_and_restarted_mid_run_leaves_every_workflow_correct(
    cluster: kwok.ClusterInfo, component: str
) -> None:
    """A crashed kube-apiserver (OOM-killed, its node rebooted) or etcd that comes back on the same data: every
    watch and connection of the operator breaks at once (kube-apiserver), or the API server fails its requests
    until its storage answers again (etcd). Every workflow must still succeed, with one pod per primitive and no
    node overcommitted."""
    namespace = new_namespace(cluster, f"{component}-restart")
    manifests = _fault_workflows(SOAK)
    with running_operator(cluster.kubeconfig, namespace, policy="least-loaded", time_scale=20.0) as operator:
        for manifest in manifests:
            apply(cluster, namespace, manifest)

        def succeeded_pods(at_least: int) -> bool:
            return sum(p["status"].get("phase") == "Succeeded" for p in workflow_pods(cluster, namespace)) >= at_least

        for restart in range(SOAK):
            # mid-run: once a few more primitives have succeeded, with the rest still to be created and bound
            target = 3 * (restart + 1)
            wait_for(f"{target} primitives to succeed", partial(succeeded_pods, target), 120, describe=operator.log)
            kwok.restart(cluster, component)
        statuses = _wait_terminal_without_overcommit(
            cluster, namespace, [m["metadata"]["name"] for m in manifests], 300 * SOAK, operator
        )
    _assert_each_succeeded_with_one_pod_per_primitive(cluster, namespace, manifests, statuses)


def test_a_drained_node_gets_nothing_new_and_its_evicted_pods_run_again_without_using_a_retry(
    cluster: kwok.ClusterInfo, namespace: str, operator: OperatorProcess
) -> None:
    """Node maintenance: `kubectl drain` cordons a node (spec.unschedulable) under running pods, then evicts them
    through the Eviction API. The evicted primitives run again elsewhere, an eviction does not use up a retry
    (retries 0 here), and nothing is placed on the cordoned node afterwards."""
    name = "drain"
    parallel = [f"p{i}" for i in range(6)]
    apply(cluster, namespace, workflow(name, [step(p, 400.0) for p in parallel] + [step("join", 20.0, parallel)]))

    def all_running() -> list[dict[str, Any]] | None:
        pods = workflow_pods(cluster, namespace, name)
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return running if len(running) == len(parallel) else None

    running = wait_for("the parallel pods to run", all_running, 90, describe=operator.log)
    drained = Counter(p["spec"]["nodeName"] for p in running).most_common(1)[0][0]
    before = {p["metadata"]["name"] for p in running if p["spec"]["nodeName"] == drained}
    evicted = {p["metadata"]["labels"][labels.PRIMITIVE_LABEL] for p in running if p["metadata"]["name"] in before}
    kwok.kubectl(cluster, "cordon", drained)
    try:
        # drain as an administrator does; it evicts only this workflow's pods: the cluster is shared by the module
        kwok.kubectl(
            cluster,
            "drain",
            drained,
            "--pod-selector",
            f"{labels.WORKFLOW_LABEL}={name}",
            "--ignore-daemonsets",
            "--timeout=120s",
            timeout=180,
        )
        status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, 180, operator)["status"]
    finally:
        kwok.kubectl(cluster, "uncordon", drained)
    assert status["phase"] == "Succeeded", status
    for primitive in evicted:
        record = status["primitives"][primitive]
        assert record["attempts"] == 2 and record.get("failures", 0) == 0 and record["node"] != drained, record
    per_attempt = pods_per_attempt(cluster, namespace, name)
    assert all(count == 1 for count in per_attempt.values()), per_attempt
    placed_after = [
        p["metadata"]["name"]
        for p in workflow_pods(cluster, namespace, name)
        if p["spec"].get("nodeName") == drained and p["metadata"]["name"] not in before
    ]
    assert placed_after == [], f"placed on the cordoned node {drained}: {placed_after}"


@pytest.mark.slow  # up to SWEEP_SECONDS before the view is checked against a listing
def test_pods_deleted_while_the_watch_was_down_stop_holding_room(cluster: kwok.ClusterInfo, tmp_path: Path) -> None:
    """The operator's watches cut and told their resourceVersion has expired, as after a partition longer than
    etcd keeps history (or a restarted API server's fresh watch cache): kopf lists afresh, and a listing never
    reports what was deleted meanwhile. The operator's view must not keep counting such pods: here they held
    every GPU, and an LLM call waits for one."""
    namespace = new_namespace(cluster, "watch-gap")
    outage = FaultPlan(expire_watch_fraction=1.0, stream_drop_fraction=1.0, stream_check_seconds=0.2, end_seconds=8)
    with FaultProxy(cluster.kubeconfig, outage) as proxy:
        through_proxy = proxy.write_kubeconfig(tmp_path / "proxy-kubeconfig.yaml")
        with running_operator(through_proxy, namespace, policy="least-loaded", time_scale=20.0) as operator:
            _hog_every_gpu(cluster, namespace)
            try:
                name = "waits-for-a-gpu"
                apply(
                    cluster,
                    namespace,
                    workflow(name, [{"name": "llm", "kind": "llm_generate", "inputTokens": 200, "outputTokens": 400}]),
                )
                wait_for(
                    "a FailedScheduling event: every GPU is held",
                    lambda: _failed_scheduling(cluster, namespace, name),
                    60,
                    describe=operator.log,
                )
                proxy.arm()
                wait_for(
                    "the watches to be cut", lambda: proxy.counts["drop_stream"] and proxy.counts["expired_watch"], 30
                )
            finally:  # the hogs go in any case: the cluster is shared by the module
                kwok.kubectl(cluster, "-n", namespace, "delete", "pods", "-l", "hog", "--grace-period=0", "--force")
            wait_for("the watch outage to end", lambda: not proxy.active(), 60)
            status = wait_for_phase(cluster, namespace, name, {"Succeeded", "Failed"}, SWEEP_SECONDS + 90, operator)[
                "status"
            ]
    assert status["phase"] == "Succeeded", status
