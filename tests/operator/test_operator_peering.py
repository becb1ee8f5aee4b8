"""Several operator replicas through kopf peering (the chart's `peering.enabled`), on the real local control
plane: only the highest-priority replica places pods, a standby takes over when it leaves, and a missing
peering object is refused at start instead of leaving every replica paused."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from operator_harness import (
    REPO_ROOT,
    apply,
    chain,
    install_crd,
    new_namespace,
    wait_for,
    wait_for_phase,
    workflow_pods,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED, OperatorProcess
from scale_scheduler.operator.serve.run import peering_priority

PEERING_CRDS = REPO_ROOT / "charts" / "scale-scheduler" / "crds" / "kopf-peerings.yaml"
PEERING = "scale-scheduler-test"


def _succeeds_once_per_primitive(info: kwok.ClusterInfo, namespace: str, name: str, operator: OperatorProcess) -> None:
    apply(info, namespace, chain(name, 3, 2.0))
    status = wait_for_phase(info, namespace, name, {"Succeeded", "Failed"}, 120, operator)["status"]
    assert status["phase"] == "Succeeded", status
    assert len(workflow_pods(info, namespace, name)) == 3, "one pod per primitive: no replica placed one twice"


def test_only_the_leading_replica_places_pods_and_a_standby_takes_over(
    local_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = local_cluster(nodes=16)
    install_crd(info)
    kwok.kubectl(info, "apply", "-f", str(PEERING_CRDS))
    kwok.wait_established(info, "kopfpeerings.kopf.dev")
    namespace = new_namespace(info, "peering")
    apply(info, namespace, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}})

    def priority(pod_name: str) -> int:
        monkeypatch.setenv("POD_NAME", pod_name)
        return peering_priority()

    low, high = sorted(["replica-a", "replica-b"], key=priority)  # the chart's replicas differ by pod name
    replicas: dict[str, OperatorProcess] = {}

    def start(name: str) -> OperatorProcess:
        replicas[name] = OperatorProcess(
            info.kubeconfig, namespace, policy="least-loaded", extra=("--peering", PEERING), env={"POD_NAME": name}
        )
        replicas[name].wait_healthy()
        return replicas[name]

    def log_of(replica: OperatorProcess) -> Any:
        return lambda: replica.log(400)

    try:
        first = start(low)
        wait_for(
            "the only replica to lead", lambda: "Resuming operations" in first.log(400), 60, describe=log_of(first)
        )
        leader = start(high)
        wait_for(
            "the first replica to give way to the higher priority",
            lambda: "Pausing operations" in first.log(400),
            60,
            describe=log_of(first),
        )
        _succeeds_once_per_primitive(info, namespace, "while-both-run", leader)

        leader.stop()  # SIGTERM, as a rolling update does: kopf leaves the peering on its way out
        wait_for(
            "the standby to resume",
            lambda: first.log(400).count("Resuming operations") >= 2,
            60,
            describe=log_of(first),
        )
        _succeeds_once_per_primitive(info, namespace, "after-the-leader-left", first)
    finally:
        for replica in replicas.values():
            replica.stop()


def test_a_missing_peering_object_is_refused_with_what_to_apply(local_cluster: Any) -> None:
    info = local_cluster(nodes=16)
    namespace = new_namespace(info, "no-peering")
    run = subprocess.run(
        [
            *SCALE_SCHED,
            "operator",
            "run",
            "--kubeconfig",
            str(info.kubeconfig),
            "--namespace",
            namespace,
            "--policy",
            "least-loaded",
            "--peering",
            "nobody-made-this",
            "--metrics-port",
            "0",
            "--extender-port",
            "0",
            "--health-port",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2, run.stderr
    message = " ".join(run.stderr.replace("│", " ").split())  # unwrapped from rich's error box
    assert "no KopfPeering 'nobody-made-this'" in message and "kopf-peerings.yaml" in message, run.stderr
