"""Several operator replicas through kopf peering (the chart's `peering.enabled`), on the real local control
plane: only the highest-priority replica places pods, a standby takes over when it leaves or is killed, and a
missing peering object is refused at start instead of leaving every replica paused."""

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
    pods_per_attempt,
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


def _peering_namespace(info: kwok.ClusterInfo, prefix: str) -> str:
    """A new namespace with kopf's peering CRDs and our KopfPeering object in it."""
    install_crd(info)
    kwok.kubectl(info, "apply", "-f", str(PEERING_CRDS))
    kwok.wait_established(info, "kopfpeerings.kopf.dev")
    namespace = new_namespace(info, prefix)
    apply(info, namespace, {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}})
    return namespace


def _by_priority(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Two replicas' pod names, lower peering priority first (the chart's replicas differ by pod name)."""

    def priority(pod_name: str) -> int:
        monkeypatch.setenv("POD_NAME", pod_name)
        return peering_priority()

    return sorted(["replica-a", "replica-b"], key=priority)


def _start_replica(info: kwok.ClusterInfo, namespace: str, pod_name: str) -> OperatorProcess:
    replica = OperatorProcess(
        info.kubeconfig, namespace, policy="least-loaded", extra=("--peering", PEERING), env={"POD_NAME": pod_name}
    )
    try:
        replica.wait_healthy()
    except BaseException:
        replica.stop()
        raise
    return replica


def _log_of(replica: OperatorProcess) -> Any:
    return lambda: replica.log(400)


def test_only_the_leading_replica_places_pods_and_a_standby_takes_over(
    local_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    info = local_cluster(nodes=16)
    namespace = _peering_namespace(info, "peering")
    low, high = _by_priority(monkeypatch)
    replicas: list[OperatorProcess] = []
    try:
        replicas.append(first := _start_replica(info, namespace, low))
        wait_for(
            "the only replica to lead", lambda: "Resuming operations" in first.log(400), 60, describe=_log_of(first)
        )
        replicas.append(leader := _start_replica(info, namespace, high))
        wait_for(
            "the first replica to give way to the higher priority",
            lambda: "Pausing operations" in first.log(400),
            60,
            describe=_log_of(first),
        )
        _succeeds_once_per_primitive(info, namespace, "while-both-run", leader)

        leader.stop()  # SIGTERM, as a rolling update does: kopf leaves the peering on its way out
        wait_for(
            "the standby to resume",
            lambda: first.log(400).count("Resuming operations") >= 2,
            60,
            describe=_log_of(first),
        )
        _succeeds_once_per_primitive(info, namespace, "after-the-leader-left", first)
    finally:
        for replica in replicas:
            replica.stop()


@pytest.mark.slow
def test_a_leader_killed_mid_workflow_is_replaced_by_the_standby_without_duplicates(
    local_cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The leading replica dies without SIGTERM (its node fails, it is OOM-killed) mid-workflow while a standby
    waits: kopf cannot leave the peering, so the standby resumes only once the dead leader's entry expires (kopf's
    60 s lifetime), then finishes the workflow from its pods. No primitive runs twice."""
    info = local_cluster(nodes=16)
    namespace = _peering_namespace(info, "peering-kill")
    low, high = _by_priority(monkeypatch)
    name = "leader-killed"
    replicas: list[OperatorProcess] = []
    try:
        replicas.append(standby := _start_replica(info, namespace, low))
        wait_for("the standby to lead alone", lambda: "Resuming operations" in standby.log(400), 60)
        replicas.append(leader := _start_replica(info, namespace, high))
        wait_for("the standby to give way", lambda: "Pausing operations" in standby.log(400), 60)
        apply(info, namespace, chain(name, 6, 100.0))
        wait_for("the leader's first pods", lambda: len(workflow_pods(info, namespace, name)) >= 2, 90)
        leader.kill()
        # only an operator creates the next step's pod: with the leader dead, the chain is certainly unfinished
        assert len(workflow_pods(info, namespace, name)) < 6
        wait_for(
            "the standby to resume once the dead leader's entry expired",
            lambda: standby.log(400).count("Resuming operations") >= 2,
            180,
            describe=_log_of(standby),
        )
        status = wait_for_phase(info, namespace, name, {"Succeeded", "Failed"}, 180, standby)["status"]
    finally:
        for replica in replicas:
            replica.stop()
    assert status["phase"] == "Succeeded", status
    per_attempt = pods_per_attempt(info, namespace, name)
    assert len(per_attempt) == 6 and all(count == 1 for count in per_attempt.values()), per_attempt


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
