"""The local control plane: real etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.cluster import GPU_RESOURCE, heterogeneous, parse_quantity


def _get(info: kwok.ClusterInfo, *args: str) -> dict[str, Any]:
    return json.loads(kwok.kubectl(info, "get", *args, "-o", "json"))


def _pod(
    name: str, *, duration: str | None = None, gpus: int = 0, cpu: str = "500m", namespace: str = "default"
) -> dict[str, Any]:
    requests = {"cpu": cpu, "memory": "256Mi", **({GPU_RESOURCE: str(gpus)} if gpus else {})}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {labels.DURATION_ANNOTATION: duration} if duration else {},
        },
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": "registry.k8s.io/pause:3.10",
                    "resources": {"requests": requests, "limits": requests},
                }
            ],
        },
    }


def _wait_phase(
    info: kwok.ClusterInfo, name: str, phases: set[str], timeout: float = 90, namespace: str = "default"
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = _get(info, "pod", name, "-n", namespace)
        if pod.get("status", {}).get("phase") in phases:
            return pod
        time.sleep(0.5)
    raise AssertionError(f"pod {name} not in {phases} after {timeout} s: {pod.get('status')}")


def _time(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def test_nodes_match_the_spec(local_cluster) -> None:
    info = local_cluster(16)
    spec = {n.name: n for n in heterogeneous(16, seed=0).nodes}
    nodes = _get(info, "nodes")["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == sorted(spec)
    for node in nodes:
        want = spec[node["metadata"]["name"]]
        conditions = {c["type"]: c["status"] for c in node["status"]["conditions"]}
        assert conditions["Ready"] == "True"
        assert want.labels.items() <= node["metadata"]["labels"].items()
        allocatable = node["status"]["allocatable"]
        assert parse_quantity(allocatable["cpu"]) * 1000 == want.cpu_millicores
        assert parse_quantity(allocatable["memory"]) == want.memory_bytes
        assert parse_quantity(allocatable.get(GPU_RESOURCE, 0)) == want.gpus


def test_plain_pod_is_scheduled_and_succeeds_after_its_annotated_duration(local_cluster) -> None:
    info = local_cluster(16)
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(_pod("timed", duration="4s", cpu="2")))
    pod = _wait_phase(info, "timed", {"Succeeded", "Failed"})
    assert pod["status"]["phase"] == "Succeeded"
    node = _get(info, "node", pod["spec"]["nodeName"])
    assert parse_quantity(node["status"]["allocatable"]["cpu"]) >= 2
    state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    ran = (_time(state["finishedAt"]) - _time(state["startedAt"])).total_seconds()
    # Timestamps have one-second resolution; kwok adds watch lag but never shortens the duration.
    assert 3 <= ran <= 15, ran


def test_pod_without_duration_keeps_running(local_cluster) -> None:
    info = local_cluster(16)
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(_pod("forever")))
    _wait_phase(info, "forever", {"Running"})
    time.sleep(2)
    assert _get(info, "pod", "forever")["status"]["phase"] == "Running"


def test_fail_annotation_makes_the_pod_fail(local_cluster) -> None:
    info = local_cluster(16)
    pod = _pod("doomed", duration="1s")
    pod["metadata"]["annotations"]["scale.dev/fail"] = "true"
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(pod))
    done = _wait_phase(info, "doomed", {"Succeeded", "Failed"})
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 1


def test_gpu_pods_land_only_on_gpu_nodes(local_cluster) -> None:
    info = local_cluster(16)
    gpu_nodes = {n.name for n in heterogeneous(16, seed=0).nodes if n.gpus}
    names = [f"gpu-{i}" for i in range(6)]
    docs = {"apiVersion": "v1", "kind": "List", "items": [_pod(n, gpus=1, cpu="1") for n in names]}
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(docs))
    for name in names:
        pod = _wait_phase(info, name, {"Running"})
        assert pod["spec"]["nodeName"] in gpu_nodes


def test_deleting_a_namespace_removes_its_pods(local_cluster) -> None:
    info = local_cluster(16)
    kwok.create_namespace(info, "doomed-ns")
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(_pod("victim", namespace="doomed-ns")))
    _wait_phase(info, "victim", {"Running"}, namespace="doomed-ns")
    kwok.kubectl(info, "delete", "namespace", "doomed-ns", "--wait=false")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if "doomed-ns" not in {n["metadata"]["name"] for n in _get(info, "namespaces")["items"]}:
            break
        time.sleep(1)
    else:
        raise AssertionError("namespace doomed-ns was not removed: the controller-manager did not finish it")
    assert _get(info, "pods", "-n", "doomed-ns")["items"] == []


def test_rbac_is_enforced(local_cluster) -> None:
    info = local_cluster(16)

    def can_i(user: str) -> str:
        # `kubectl auth can-i` answers on stdout and exits 1 for "no".
        done = subprocess.run(
            [
                str(info.bin_dir / "kubectl"),
                "--kubeconfig",
                str(info.kubeconfig),
                "auth",
                "can-i",
                "list",
                "pods",
                "--as",
                user,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout.strip()

    assert can_i("system:serviceaccount:default:default") == "no"
    assert can_i("system:kube-scheduler") == "yes"


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [32, 48])
def test_larger_clusters_come_up(local_cluster, nodes: int) -> None:
    info = local_cluster(nodes)
    ready = [
        n
        for n in _get(info, "nodes")["items"]
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]
    assert len(ready) == nodes


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_cli_up_status_down_leaves_nothing_behind(tmp_path) -> None:
    name = f"cli-{tmp_path.name[-12:].lower().replace('_', '-')}"
    up = subprocess.run(
        [*SCALE_SCHED, "cluster", "up", "--nodes", "4", "--name", name, "--json"],
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )
    assert up.returncode == 0, up.stderr[-2000:]
    summary = json.loads(up.stdout.strip().splitlines()[-1])
    assert summary["nodes"] == 4 and (Path(summary["bin_dir"]) / "kubectl").exists()
    try:
        again = subprocess.run(
            [*SCALE_SCHED, "cluster", "up", "--nodes", "4", "--name", name],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert again.returncode == 1 and "already exists" in again.stderr
        status = json.loads(
            subprocess.run(
                [*SCALE_SCHED, "cluster", "status", "--name", name, "--json"],
                capture_output=True,
                text=True,
                timeout=60,
                check=True,
            ).stdout
        )
        components = status["clusters"][0]["components"]
        assert {"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok-controller"} <= set(
            components
        )
        assert all(c["running"] for c in components.values())
        pids = [c["pid"] for c in components.values()]
        server = yaml.safe_load(Path(summary["kubeconfig"]).read_text())["clusters"][0]["cluster"]["server"]
        port = urlparse(server).port
        assert urlparse(server).hostname == "127.0.0.1" and _listening(port)
    finally:
        down = subprocess.run(
            [*SCALE_SCHED, "cluster", "down", "--name", name], capture_output=True, text=True, timeout=180, check=False
        )
    assert down.returncode == 0, down.stderr
    assert not any(kwok.alive(pid) for pid in pids)
    assert not _listening(port)
    assert not kwok.state_dir(name).exists()


def test_down_of_an_unknown_cluster_says_so() -> None:
    done = subprocess.run(
        [*SCALE_SCHED, "cluster", "down", "--name", "no-such-cluster"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1 and "no cluster named 'no-such-cluster'" in done.stderr
