"""WorkflowDAG as a workflow engine, on the real local control plane (issue 14): real pod specs, the cluster's
own scheduling constraints, failures the user can see, suspend and shutdown."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from operator_harness import (
    WFD,
    apply,
    events_for,
    get_json,
    install_crd,
    new_namespace,
    step,
    wait_for,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.kube import labels

GPU_TAINT = "nvidia.com/gpu=present:NoSchedule"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}


@pytest.fixture
def cluster(local_cluster: Any) -> kwok.ClusterInfo:
    info: kwok.ClusterInfo = local_cluster(nodes=16)
    install_crd(info)
    return info


def condition(workflow_object: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (workflow_object.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def llm(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "kind": "llm_generate", "inputTokens": 200, "outputTokens": 40, **extra}


def test_a_primitive_with_env_from_a_secret_and_a_volume_gets_exactly_that_pod_spec(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "containers")
    # Pod Security "restricted" enforced: the operator's defaults must pass it
    kwok.kubectl(cluster, "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted")
    kwok.kubectl(cluster, "-n", namespace, "create", "secret", "generic", "llm-keys", "--from-literal=API_KEY=s3cr3t")
    env = [
        {"name": "API_KEY", "valueFrom": {"secretKeyRef": {"name": "llm-keys", "key": "API_KEY"}}},
        {"name": "MODE", "value": "fast"},
    ]
    manifest = workflow(
        "real",
        [
            step(
                "fetch",
                1.0,
                image="busybox:1.36",
                command=["sh", "-c"],
                args=["echo $MODE > /work/out"],
                env=env,
                volumeMounts=[{"name": "work", "mountPath": "/work"}],
                resources={"ephemeral-storage": "100Mi"},
            ),
            step("use", 1.0, ["fetch"]),
        ],
    )
    manifest["spec"]["podTemplate"] |= {
        "envFrom": [{"secretRef": {"name": "llm-keys"}}],
        "volumes": [{"name": "work", "emptyDir": {"sizeLimit": "50Mi"}}],
        "imagePullSecrets": [{"name": "registry"}],
    }
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        wait_for_phase(cluster, namespace, "real", {"Succeeded"}, 120, operator)
    pods = {pod["metadata"]["labels"][labels.PRIMITIVE_LABEL]: pod for pod in workflow_pods(cluster, namespace, "real")}
    fetch, use = pods["fetch"], pods["use"]
    container = fetch["spec"]["containers"][0]
    assert container["image"] == "busybox:1.36"
    assert container["command"] == ["sh", "-c"] and container["args"] == ["echo $MODE > /work/out"]
    assert container["env"] == env
    assert container["envFrom"] == [{"secretRef": {"name": "llm-keys"}}]
    assert container["volumeMounts"][0] == {"name": "work", "mountPath": "/work"}
    assert container["resources"]["requests"]["ephemeral-storage"] == "100Mi"
    assert container["resources"]["limits"]["ephemeral-storage"] == "100Mi"
    assert {"name": "work", "emptyDir": {"sizeLimit": "50Mi"}} in fetch["spec"]["volumes"]
    assert fetch["spec"]["imagePullSecrets"] == [{"name": "registry"}]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert fetch["spec"]["securityContext"]["runAsNonRoot"] is True
    # the template reaches every primitive; the other's container has no args of its own
    assert use["spec"]["containers"][0]["envFrom"] == [{"secretRef": {"name": "llm-keys"}}]
    assert "args" not in use["spec"]["containers"][0]


def test_an_unknown_pod_template_field_is_refused_by_name(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "unknown")
    manifest = workflow("typo", [step("a")])
    manifest["spec"]["podTemplate"]["hostNetwork"] = True
    with running_operator(cluster.kubeconfig, namespace) as operator:
        apply(cluster, namespace, manifest)
        status = wait_for_phase(cluster, namespace, "typo", {"Failed"}, 60, operator)
    valid = condition(status, "Valid")
    assert valid["status"] == "False" and valid["reason"] == "UnknownField"
    assert "spec.podTemplate.hostNetwork" in valid["message"]
    assert workflow_pods(cluster, namespace, "typo") == []


@pytest.fixture
def gpu_nodes_tainted(cluster: kwok.ClusterInfo) -> Iterator[set[str]]:
    """Every GPU node tainted as GKE taints GPU pools; untainted afterwards (the cluster is shared)."""
    gpu = {
        node["metadata"]["name"]
        for node in get_json(cluster, "nodes")["items"]
        if node["metadata"]["name"].startswith("gpu-")
    }
    for name in gpu:
        kwok.kubectl(cluster, "taint", "nodes", name, GPU_TAINT, "--overwrite")
    try:
        yield gpu
    finally:
        for name in gpu:
            kwok.kubectl(cluster, "taint", "nodes", name, "nvidia.com/gpu-")


def test_tainted_gpu_nodes_receive_the_pods_that_tolerate_them_and_no_others(
    cluster: kwok.ClusterInfo, gpu_nodes_tainted: set[str]
) -> None:
    namespace = new_namespace(cluster, "taints")
    tolerant = workflow("tolerant", [llm("gen0"), llm("gen1"), step("tool", 1.0, ["gen0", "gen1"])])
    tolerant["spec"]["podTemplate"]["tolerations"] = [GPU_TOLERATION]
    # tool_call runs on GPU nodes too: without the toleration these must all land elsewhere
    plain_tools = workflow("plain-tools", [step(f"t{i}", 1.0) for i in range(12)])
    intolerant = workflow("intolerant", [llm("gen")])
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        for manifest in (tolerant, plain_tools, intolerant):
            apply(cluster, namespace, manifest)
        wait_for_phase(cluster, namespace, "tolerant", {"Succeeded"}, 120, operator)
        wait_for_phase(cluster, namespace, "plain-tools", {"Succeeded"}, 120, operator)
        refused = wait_for_phase(cluster, namespace, "intolerant", {"Failed"}, 60, operator)
    generated = [
        pod
        for pod in workflow_pods(cluster, namespace, "tolerant")
        if pod["metadata"]["labels"][labels.PRIMITIVE_KIND_LABEL] == "llm_generate"
    ]
    assert len(generated) == 2 and all(pod["spec"]["nodeName"] in gpu_nodes_tainted for pod in generated)
    assert all(GPU_TOLERATION in pod["spec"]["tolerations"] for pod in generated)
    tools = workflow_pods(cluster, namespace, "plain-tools")
    assert len(tools) == 12 and not any(pod["spec"]["nodeName"] in gpu_nodes_tainted for pod in tools)
    valid = condition(refused, "Valid")
    assert valid["reason"] == "Unschedulable" and "tolerations" in valid["message"]
    assert workflow_pods(cluster, namespace, "intolerant") == []


def test_node_selector_of_a_primitive_is_honoured(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "selector")
    manifest = workflow(
        "pinned", [step(f"s{i}", 1.0, nodeSelector={"kubernetes.io/hostname": "cpu-small-011"}) for i in range(3)]
    )
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        wait_for_phase(cluster, namespace, "pinned", {"Succeeded"}, 120, operator)
    assert {pod["spec"]["nodeName"] for pod in workflow_pods(cluster, namespace, "pinned")} == {"cpu-small-011"}


def _kubectl_wait(
    cluster: kwok.ClusterInfo, namespace: str, name: str, condition_type: str, timeout: int
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(cluster.bin_dir / "kubectl"),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "-n",
            namespace,
            "wait",
            f"--for=condition={condition_type}",
            f"{WFD}/{name}",
            f"--timeout={timeout}s",
        ],
        capture_output=True,
        text=True,
        timeout=timeout + 30,
        check=False,
    )


def _status(cluster: kwok.ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    return get_json(cluster, WFD, "-n", namespace, name).get("status") or {}


def _patch_spec(cluster: kwok.ClusterInfo, namespace: str, name: str, spec: dict[str, Any]) -> None:
    kwok.kubectl(cluster, "-n", namespace, "patch", WFD, name, "--type=merge", "-p", json.dumps({"spec": spec}))


def _running(cluster: kwok.ClusterInfo, namespace: str, name: str, count: int) -> list[dict[str, Any]]:
    pods = [p for p in workflow_pods(cluster, namespace, name) if p["status"].get("phase") == "Running"]
    return pods if len(pods) >= count else []


def _fail_pod(cluster: kwok.ClusterInfo, pod: dict[str, Any], exit_code: int) -> None:
    """What a kubelet reports when the container exits non-zero."""
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
                    "state": {
                        "terminated": {
                            "exitCode": exit_code,
                            "reason": "Error",
                            "message": "boom",
                            "startedAt": now,
                            "finishedAt": now,
                        }
                    },
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


def test_a_create_refused_by_a_resource_quota_is_a_warning_event_and_a_reason_in_status(
    cluster: kwok.ClusterInfo,
) -> None:
    namespace = new_namespace(cluster, "quota")
    kwok.kubectl(cluster, "-n", namespace, "create", "quota", "no-pods", "--hard=pods=0")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("quota", [step("first", 1.0)]))

        def refused() -> dict[str, Any] | None:
            status = _status(cluster, namespace, "quota")
            return status if (status.get("primitives") or {}).get("first", {}).get("reason") == "FailedCreate" else None

        status = wait_for("the refusal in status", refused, 20, describe=operator.log)
        entry = status["primitives"]["first"]
        assert "exceeded quota" in entry["message"] and entry["message"].startswith("Error creating: ")
        assert status["reason"] == "FailedCreate" and "'first'" in status["message"]
        event = wait_for(
            "the FailedCreate Event",
            lambda: next((e for e in events_for(cluster, namespace, "quota") if e["reason"] == "FailedCreate"), None),
            20,
        )
        assert event["type"] == "Warning" and "'first'" in event["message"] and "exceeded quota" in event["message"]
        assert workflow_pods(cluster, namespace, "quota") == []
        kwok.kubectl(cluster, "-n", namespace, "delete", "quota", "no-pods")  # room again: it goes ahead by itself
        status = wait_for_phase(cluster, namespace, "quota", {"Succeeded"}, 120, operator)["status"]
    assert "reason" not in status["primitives"]["first"] and status["reason"] == "Succeeded"
    # once per distinct message, not once per retry
    assert len([e for e in events_for(cluster, namespace, "quota") if e["reason"] == "FailedCreate"]) == 1


def test_kubectl_wait_tells_a_failed_workflow_from_a_good_one(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "wait")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("good", [step("a", 1.0), step("b", 1.0, ["a"])]))
        apply(cluster, namespace, workflow("bad", [step("doomed", 300.0), step("after", 1.0, ["doomed"])]))
        pod = wait_for(
            "the doomed pod to run", lambda: _running(cluster, namespace, "bad", 1), 60, describe=operator.log
        )[0]
        running = _status(cluster, namespace, "bad")
        assert condition({"status": running}, "Succeeded")["status"] == "Unknown"
        assert condition({"status": running}, "Failed")["status"] == "False"
        _fail_pod(cluster, pod, exit_code=3)
        bad = _kubectl_wait(cluster, namespace, "bad", "Failed", 60)
        good = _kubectl_wait(cluster, namespace, "good", "Succeeded", 60)
        assert bad.returncode == 0, bad.stderr + operator.log()
        assert good.returncode == 0, good.stderr + operator.log()
    status = _status(cluster, namespace, "bad")
    assert status["phase"] == "Failed" and status["reason"] == "RetriesExhausted"
    assert condition({"status": status}, "Complete")["status"] == "False"  # Complete keeps its meaning
    assert condition({"status": status}, "Succeeded")["status"] == "False"
    doomed = status["primitives"]["doomed"]
    assert (doomed["state"], doomed["reason"], doomed["exitCode"], doomed["message"]) == ("Failed", "Error", 3, "boom")
    assert "exit code 3" in status["message"]
    assert _kubectl_wait(cluster, namespace, "good", "Failed", 1).returncode != 0


def test_suspend_holds_new_pods_and_resume_continues(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "suspend")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("pausable", [step("first", 30.0), step("second", 1.0, ["first"])]))
        wait_for("the first pod to run", lambda: _running(cluster, namespace, "pausable", 1), 60, describe=operator.log)
        _patch_spec(cluster, namespace, "pausable", {"suspend": True})
        wait_for(
            "first to finish",
            lambda: (
                (_status(cluster, namespace, "pausable").get("primitives") or {}).get("first", {}).get("state")
                == "Succeeded"
            ),
            60,
            describe=operator.log,
        )
        time.sleep(4)  # two resyncs: a running operator would have started the second by now
        status = _status(cluster, namespace, "pausable")
        assert [
            p["metadata"]["labels"][labels.PRIMITIVE_LABEL] for p in workflow_pods(cluster, namespace, "pausable")
        ] == ["first"]
        assert status["reason"] == "Suspended" and condition({"status": status}, "Suspended")["status"] == "True"
        _patch_spec(cluster, namespace, "pausable", {"suspend": False})
        status = wait_for_phase(cluster, namespace, "pausable", {"Succeeded"}, 60, operator)["status"]
    assert condition({"status": status}, "Suspended")["status"] == "False"


def test_terminate_deletes_running_pods_and_keeps_the_record(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "terminate")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(
            cluster,
            namespace,
            workflow("long", [step(f"p{i}", 600.0) for i in range(3)] + [step("after", 1.0, ["p0", "p1", "p2"])]),
        )
        wait_for("all three to run", lambda: _running(cluster, namespace, "long", 3), 60, describe=operator.log)
        _patch_spec(cluster, namespace, "long", {"shutdown": "Terminate"})
        failed = _kubectl_wait(cluster, namespace, "long", "Failed", 30)
        assert failed.returncode == 0, failed.stderr + operator.log()
        wait_for("the pods to be deleted", lambda: workflow_pods(cluster, namespace, "long") == [], 30)
    status = _status(cluster, namespace, "long")  # the record stays
    assert status["phase"] == "Failed" and status["reason"] == "Terminated"
    assert all(status["primitives"][f"p{i}"]["state"] == "Failed" for i in range(3))
    assert all(status["primitives"][f"p{i}"]["reason"] == "Terminated" for i in range(3))
    assert "pod" not in status["primitives"]["after"]


def test_stop_lets_running_pods_finish_and_starts_nothing_more(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "stop")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("stoppable", [step("first", 30.0), step("second", 1.0, ["first"])]))
        wait_for(
            "the first pod to run", lambda: _running(cluster, namespace, "stoppable", 1), 60, describe=operator.log
        )
        _patch_spec(cluster, namespace, "stoppable", {"shutdown": "Stop"})
        status = wait_for_phase(cluster, namespace, "stoppable", {"Failed"}, 60, operator)["status"]
    assert status["reason"] == "Stopped"
    assert status["primitives"]["first"]["state"] == "Succeeded"
    assert [
        p["metadata"]["labels"][labels.PRIMITIVE_LABEL] for p in workflow_pods(cluster, namespace, "stoppable")
    ] == ["first"]


def test_a_deadline_fails_a_primitive_that_runs_too_long(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "deadline")
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        # 600 simulated seconds are 60 s on the wall clock; the deadline is wall clock, whatever the time scale
        apply(
            cluster,
            namespace,
            workflow(
                "slow", [step("hung", 600.0, activeDeadlineSeconds=3), step("quick", 1.0, activeDeadlineSeconds=60)]
            ),
        )
        started = time.monotonic()
        status = wait_for_phase(cluster, namespace, "slow", {"Failed"}, 30, operator)["status"]
    assert time.monotonic() - started < 15
    hung = status["primitives"]["hung"]
    assert (hung["state"], hung["reason"]) == ("Failed", "DeadlineExceeded"), status
    assert status["primitives"]["quick"]["state"] == "Succeeded"
    assert status["reason"] == "RetriesExhausted" and "DeadlineExceeded" in status["message"]
    (pod,) = [
        p
        for p in workflow_pods(cluster, namespace, "slow")
        if p["metadata"]["labels"][labels.PRIMITIVE_LABEL] == "hung"
    ]
    assert pod["spec"]["activeDeadlineSeconds"] == 3 and pod["status"]["reason"] == "DeadlineExceeded"


def test_a_workflow_deadline_terminates_what_still_runs(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "wf-deadline")
    manifest = workflow("bounded", [step("long", 600.0), step("after", 1.0, ["long"])])
    manifest["spec"]["activeDeadlineSeconds"] = 5
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        failed = _kubectl_wait(cluster, namespace, "bounded", "Failed", 30)
        assert failed.returncode == 0, failed.stderr + operator.log()
        wait_for("the running pod to be deleted", lambda: workflow_pods(cluster, namespace, "bounded") == [], 30)
    status = _status(cluster, namespace, "bounded")
    assert status["reason"] == "DeadlineExceeded" and "5s" in status["message"]
    assert status["primitives"]["long"]["reason"] == "DeadlineExceeded"


def _attempt(
    cluster: kwok.ClusterInfo, namespace: str, name: str, attempt: int, phase: str | None = None
) -> dict[str, Any] | None:
    return next(
        (
            p
            for p in workflow_pods(cluster, namespace, name)
            if p["metadata"]["labels"][labels.ATTEMPT_LABEL] == str(attempt)
            and (phase is None or p["status"].get("phase") == phase)
        ),
        None,
    )


def test_retry_backoff_delays_are_observed(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "backoff")
    strategy = {"limit": 2, "backoff": {"durationSeconds": 3, "factor": 2, "capSeconds": 60}}
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("flaky", [step("flaky", 300.0, retryStrategy=strategy)]))
        for attempt, expected in ((0, 3.0), (1, 6.0)):
            pod = wait_for(
                f"attempt {attempt} to run",
                lambda a=attempt: _attempt(cluster, namespace, "flaky", a, "Running"),
                60,
                describe=operator.log,
            )
            failed_at = time.monotonic()
            _fail_pod(cluster, pod, exit_code=1)
            if attempt == 1:  # the wait is told in status while it lasts
                wait_for(
                    "nextAttemptTime",
                    lambda: "nextAttemptTime" in (_status(cluster, namespace, "flaky")["primitives"]["flaky"]),
                    4,
                    interval=0.1,
                )
            wait_for(
                f"attempt {attempt + 1}",
                lambda a=attempt: _attempt(cluster, namespace, "flaky", a + 1),
                30,
                interval=0.1,
                describe=operator.log,
            )
            delay = time.monotonic() - failed_at
            # the failure's finishedAt has whole seconds (up to 1 s early); the 2 s resync may add up to 2 s
            assert expected - 1.0 <= delay <= expected + 3.0, (attempt, delay)


def test_retry_on_chosen_exit_codes_elsewhere_and_no_other_failure(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "retry-on")
    strategy = {"limit": 3, "retryOn": {"exitCodes": [42]}, "differentNode": True}
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, workflow("picky", [step("p", 300.0, retryStrategy=strategy)]))
        first = wait_for(
            "attempt 0 to run", lambda: _attempt(cluster, namespace, "picky", 0, "Running"), 60, describe=operator.log
        )
        _fail_pod(cluster, first, exit_code=42)  # retried, on another node
        second = wait_for(
            "attempt 1 to run", lambda: _attempt(cluster, namespace, "picky", 1, "Running"), 60, describe=operator.log
        )
        assert second["spec"]["nodeName"] != first["spec"]["nodeName"]
        terms = second["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert terms["nodeSelectorTerms"][0]["matchFields"] == [
            {"key": "metadata.name", "operator": "NotIn", "values": [first["spec"]["nodeName"]]}
        ]
        _fail_pod(cluster, second, exit_code=3)  # not a code it retries: the workflow fails at once
        status = wait_for_phase(cluster, namespace, "picky", {"Failed"}, 30, operator)["status"]
    assert status["primitives"]["p"]["failures"] == 2 and status["primitives"]["p"]["exitCode"] == 3
    assert "does not retry" in status["message"]
    assert _attempt(cluster, namespace, "picky", 2) is None


def test_pod_gc_deletes_pods_once_recorded_and_keeps_a_failed_workflows_pods(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "podgc")
    tidy = workflow("tidy", [step("a", 1.0), step("b", 1.0, ["a"]), step("c", 1.0, ["b"])])
    tidy["spec"]["podGC"] = {"strategy": "OnPodSuccess"}
    kept = workflow("kept", [step("doomed", 300.0)])
    kept["spec"]["podGC"] = {"strategy": "OnWorkflowSuccess"}
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, tidy)
        apply(cluster, namespace, kept)
        status = wait_for_phase(cluster, namespace, "tidy", {"Succeeded"}, 60, operator)["status"]
        wait_for("tidy's pods to be collected", lambda: workflow_pods(cluster, namespace, "tidy") == [], 20)
        pod = wait_for("the doomed pod to run", lambda: _running(cluster, namespace, "kept", 1), 60)[0]
        _fail_pod(cluster, pod, exit_code=1)
        wait_for_phase(cluster, namespace, "kept", {"Failed"}, 30, operator)
        time.sleep(3)  # a resync or two: nothing may collect a failed workflow's pods under OnWorkflowSuccess
    assert status["done"] == "3/3" and all(
        entry["state"] == "Succeeded" and entry["node"] for entry in status["primitives"].values()
    )
    assert _status(cluster, namespace, "tidy")["primitives"] == status["primitives"], "the record stays"
    assert len(workflow_pods(cluster, namespace, "kept")) == 1


def test_ttl_deletes_a_finished_workflow_and_with_it_its_pods(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "ttl")
    manifest = workflow("ephemeral", [step("a", 1.0)])
    manifest["spec"]["ttlSecondsAfterFinished"] = 3
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        wait_for_phase(cluster, namespace, "ephemeral", {"Succeeded"}, 60, operator)
        finished = time.monotonic()
        wait_for(
            "the WorkflowDAG to be deleted",
            lambda: not get_json(cluster, WFD, "-n", namespace)["items"],
            30,
            describe=operator.log,
        )
        assert time.monotonic() - finished >= 1.5  # not before its TTL (completionTime has whole seconds)
    wait_for("its pods to follow (garbage collector)", lambda: workflow_pods(cluster, namespace, "ephemeral") == [], 60)


def test_a_pod_that_does_not_start_within_its_pending_timeout_fails(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "pending")
    node = next(n for n in get_json(cluster, "nodes")["items"] if n["metadata"]["name"] == "cpu-small-010")
    more_than_half = f"{int(float(node['status']['allocatable']['cpu']) * 600)}m"
    pinned = {
        "resources": {"cpu": more_than_half},
        "nodeSelector": {"kubernetes.io/hostname": "cpu-small-010"},
        "pendingTimeoutSeconds": 3,
    }
    # two pods that cannot share their one node: whichever waits for room fails after 3 s
    manifest = workflow("stuck", [step("first", 600.0, **pinned), step("second", 600.0, **pinned)])
    with running_operator(cluster.kubeconfig, namespace, time_scale=10.0) as operator:
        apply(cluster, namespace, manifest)
        status = wait_for_phase(cluster, namespace, "stuck", {"Failed"}, 30, operator)["status"]
    reasons = sorted(entry.get("reason", "") for entry in status["primitives"].values())
    assert "PendingTimeout" in reasons, status
    assert status["reason"] == "RetriesExhausted" and "PendingTimeout" in status["message"]
