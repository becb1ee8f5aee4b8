"""What the cluster providers would do, checked without starting anything (kind cannot run here)."""

from __future__ import annotations

import json

import pytest
import yaml
from scale_scheduler.operator.dev.localcluster import kind, kwok
from scale_scheduler.operator.dev.localcluster.nodes import KWOK_TAINT, node_objects
from scale_scheduler.simulator.cluster import heterogeneous


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALE_SCHED_CACHE", str(tmp_path))
    return tmp_path


def test_kind_provider_runs_kind_then_kwok_stages_and_tainted_nodes(cache) -> None:
    ran: list[list[str]] = []
    info = kind.up("demo", heterogeneous(8), run=ran.append)
    directory = cache / "kwok" / "clusters" / "demo"
    assert ran[0][:5] == ["kind", "create", "cluster", "--name", "demo"]
    assert ran[1][-1] == kind.KWOK_MANIFEST
    assert str(kwok.STAGES_FILE) in ran[3] and str(directory / "nodes.json") in ran[4]
    assert all(c[0] == "kubectl" and c[2] == str(directory / "kubeconfig.yaml") for c in ran[1:])
    nodes = json.loads((directory / "nodes.json").read_text())["items"]
    assert len(nodes) == 8 and all(n["spec"]["taints"] == [KWOK_TAINT] for n in nodes)
    assert info.kubeconfig == directory / "kubeconfig.yaml" and info.nodes == 8
    kind.down("demo", run=ran.append)
    assert ran[-1] == ["kind", "delete", "cluster", "--name", "demo"] and not directory.exists()


def test_kind_provider_cleans_up_when_a_step_fails(cache) -> None:
    ran: list[list[str]] = []

    def run(command: list[str]) -> None:
        ran.append(command)
        if "rollout" in command:
            raise kwok.ClusterError("kwok-controller never became available")

    with pytest.raises(kwok.ClusterError, match="kwok-controller"):
        kind.up("broken", heterogeneous(4), run=run)
    assert ran[-1] == ["kind", "delete", "cluster", "--name", "broken"]
    assert not (cache / "kwok" / "clusters" / "broken").exists()


def test_kind_provider_rejects_a_scheduler_config(cache, tmp_path) -> None:
    with pytest.raises(kwok.ClusterError, match="not supported with --provider kind"):
        kind.up("x", heterogeneous(4), scheduler_config=tmp_path / "s.yaml", run=lambda c: None)


def test_binary_provider_command_uses_local_binaries_and_loopback(tmp_path) -> None:
    command = kwok.create_command(
        "c1", tmp_path, tmp_path / "cfg.yaml", scheduler_config=None, kube_scheduler=False, wait_seconds=60
    )
    for flag, binary in [
        ("--kube-apiserver-binary", "kube-apiserver"),
        ("--etcd-binary", "etcd"),
        ("--kwok-controller-binary", "kwok"),
    ]:
        assert command[command.index(flag) + 1] == str(tmp_path / binary)
    assert command[command.index("--disable") + 1] == "kube-scheduler"
    assert command[command.index("--kubeconfig") + 1] == ""
    config = list(yaml.safe_load_all(kwok.kwokctl_config()))
    assert config[0]["options"]["bindAddress"] == "127.0.0.1"


def test_our_pod_stages_complete_after_exactly_the_annotation() -> None:
    stages = {d["metadata"]["name"]: d for d in yaml.safe_load_all(kwok.STAGES_FILE.read_text()) if d}
    assert {"node-initialize", "pod-ready", "pod-delete", "scale-pod-complete", "scale-pod-fail"} <= set(stages)
    for name in ("scale-pod-complete", "scale-pod-fail"):
        delay = stages[name]["spec"]["delay"]
        # kwok's rule: a jitter <= delay replaces the delay; no jitter keeps it exact.
        assert "jitterDurationMilliseconds" not in delay and "jitterDurationFrom" not in delay
        assert "scale.dev/duration" in delay["durationFrom"]["expressionFrom"]


def test_node_objects_carry_the_spec() -> None:
    spec = heterogeneous(5, seed=3)
    for node, obj in zip(spec.nodes, node_objects(spec), strict=True):
        assert obj["metadata"]["name"] == node.name
        assert obj["status"]["allocatable"] == node.allocatable()
        assert node.labels.items() <= obj["metadata"]["labels"].items()
