"""LiveCluster: Node and Pod objects shaped as the API server sends them, read as the simulator's state."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from kube_objects import SPEC, live_view, node_object, pod_object
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube.node_filter import NodeConstraints
from scale_scheduler.operator.kube.objects import parse_go_duration, pod_requests
from scale_scheduler.simulator.cluster import NODE_CLASS_LABEL, PROFILES
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.primitives import GIB, KIND_INDEX, KINDS, PrimitiveKind
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive


@pytest.fixture
def live() -> LiveCluster:
    return live_view()


def test_snapshot_reads_the_same_static_state_as_the_simulator(live: LiveCluster) -> None:
    state = live.snapshot()
    expected = ClusterState(SPEC)
    order = [expected.index_of(name) for name in live.node_names()]
    for field in (
        "alloc_cpu",
        "alloc_memory",
        "alloc_gpus",
        "bandwidth_gbps",
        "node_class",
        "free_cpu",
        "free_memory",
        "free_gpus",
    ):
        np.testing.assert_array_equal(getattr(state, field), getattr(expected, field)[order], err_msg=field)
    # speeds come from the class profile: the generator's per-node jitter is not on the Node object
    for i, name in enumerate(live.node_names()):
        profile = PROFILES[name.rsplit("-", 1)[0]]
        assert state.prefill_tps[i] == profile.prefill_tokens_per_second
        assert list(state.speed[i]) == [profile.speed[kind] for kind in KINDS]
    assert live.node_names() == sorted(n.name for n in SPEC.nodes)


def test_bound_pods_hold_resources_until_they_finish(live: LiveCluster) -> None:
    target = "gpu-large-000"
    i = live.node_names().index(target)
    before = live.snapshot()
    live.apply_pod_event("ADDED", pod_object("p", cpu="1500m", memory="2Gi", gpus=1))
    assert live.snapshot().free_cpu[i] == before.free_cpu[i], "an unbound pod holds nothing"
    live.apply_pod_event("MODIFIED", pod_object("p", node=target, cpu="1500m", memory="2Gi", gpus=1))
    bound = live.snapshot()
    assert bound.free_cpu[i] == before.free_cpu[i] - 1500
    assert bound.free_memory[i] == before.free_memory[i] - 2 * GIB
    assert bound.free_gpus[i] == before.free_gpus[i] - 1
    assert (bound.queue_length[i], bound.running[i]) == (0, 1), "bound counts as started, even before Running"
    live.apply_pod_event("MODIFIED", pod_object("p", node=target, phase="Running", cpu="1500m", memory="2Gi", gpus=1))
    running = live.snapshot()
    assert (running.queue_length[i], running.running[i]) == (0, 1)
    live.apply_pod_event("MODIFIED", pod_object("p", node=target, phase="Succeeded", cpu="1500m", memory="2Gi", gpus=1))
    done = live.snapshot()
    assert done.free_cpu[i] == before.free_cpu[i] and done.running[i] == 0


def test_deleted_pod_releases_its_node(live: LiveCluster) -> None:
    i = live.node_names().index("cpu-large-003")
    live.apply_pod_event("ADDED", pod_object("p", node="cpu-large-003", phase="Running", cpu="4"))
    assert live.snapshot().free_cpu[i] == 64000 - 4000
    live.apply_pod_event("DELETED", pod_object("p", node="cpu-large-003", phase="Running", cpu="4"))
    assert live.snapshot().free_cpu[i] == 64000


@pytest.mark.parametrize(("rule", "queued"), [(PlacementRule.NODE_QUEUES, 2), (PlacementRule.LATE_BINDING, 0)])
def test_next_release_and_queued_seconds_come_from_duration_annotations(rule: PlacementRule, queued: int) -> None:
    """Planned, unbound pods wait in their node's queue under node-queues only (as in the engine)."""
    live = live_view(rule)
    node = "cpu-large-003"
    i = live.node_names().index(node)
    live.apply_pod_event(
        None, pod_object("a", node=node, phase="Running", duration="30s", start_time="2030-01-01T00:00:00Z")
    )
    live.apply_pod_event(
        None,
        pod_object("b", node=node, phase="Running", duration="1m", estimate="10s", start_time="2030-01-01T00:00:00Z"),
    )
    live.apply_pod_event(None, pod_object("c", planned=node, duration="1m30s"))
    live.apply_pod_event(None, pod_object("d", planned=node, estimate="10s"))
    live.apply_pod_event(None, pod_object("not-ours", duration="1h"))
    state = live.snapshot()
    start = 1893456000.0  # 2030-01-01T00:00:00Z
    assert state.next_release[i] == pytest.approx(start + 10.0), "the estimate wins over the true duration"
    assert (state.queue_length[i], state.queued_seconds[i]) == (queued, pytest.approx(50.0 * queued))
    assert state.queue_length.sum() == queued, "an unbound pod without a planned node is in no queue"
    assert state.free_cpu[i] == 64000 - 2000, "queued pods hold nothing"
    assert np.isinf(state.next_release[live.node_names().index("cpu-small-005")])


def test_binding_seen_by_the_watch_is_timed_locally(live: LiveCluster) -> None:
    node = "cpu-large-003"
    live.apply_pod_event("ADDED", pod_object("a", duration="20s"))
    before = time.time()
    live.apply_pod_event("MODIFIED", pod_object("a", node=node, duration="20s"))
    live.apply_pod_event(
        "MODIFIED", pod_object("a", node=node, phase="Running", duration="20s", start_time="2000-01-01T00:00:00Z")
    )
    release = live.snapshot().next_release[live.node_names().index(node)]
    assert before + 20.0 <= release <= time.time() + 20.0


def test_a_listing_of_other_namespaces_replaces_their_pods_and_leaves_ours(live: LiveCluster) -> None:
    i = live.node_names().index("cpu-large-003")
    free = live.snapshot().free_cpu[i]

    def in_namespace(namespace: str, name: str) -> dict[str, Any]:
        pod = pod_object(name, node="cpu-large-003", phase="Running", cpu="1")
        pod["metadata"]["namespace"] = namespace
        return pod

    ours = ("ours", "also-ours")  # an operator serving two namespaces
    live.apply_pod_event("ADDED", in_namespace("ours", "mine"))
    live.apply_pod_event("ADDED", in_namespace("also-ours", "mine"))
    live.replace_pods_outside(ours, [in_namespace("team-a", "x"), in_namespace("team-b", "y")])
    assert live.snapshot().free_cpu[i] == free - 4000
    live.replace_pods_outside(ours, [in_namespace("team-b", "y")])  # x finished: no longer listed
    assert live.snapshot().free_cpu[i] == free - 3000
    live.replace_pods_outside(ours, [])
    assert live.snapshot().free_cpu[i] == free - 2000, "our own pods are the watch's business, not the listing's"


def test_warm_kinds_stay_after_the_pod_is_gone(live: LiveCluster) -> None:
    node = "gpu-small-001"
    i = live.node_names().index(node)
    live.apply_pod_event("ADDED", pod_object("w", node=node, phase="Running", kind="llm_embed"))
    live.apply_pod_event("MODIFIED", pod_object("w", node=node, phase="Succeeded", kind="llm_embed"))
    live.apply_pod_event("DELETED", pod_object("w", node=node, phase="Succeeded", kind="llm_embed"))
    warm = live.snapshot().warm
    assert warm[i, KIND_INDEX[PrimitiveKind.LLM_EMBED]]
    assert warm.sum() == 1


def test_ineligible_nodes_are_left_out_and_come_back(live: LiveCluster) -> None:
    # A tainted node is no longer left out of the view (issue 14): taints are per pod, see the tests below.
    live.apply_node_event("MODIFIED", node_object("cpu-small-005", unschedulable=True))
    live.apply_node_event("MODIFIED", node_object("cpu-small-006", ready="False"))
    assert not {"cpu-small-005", "cpu-small-006"} & set(live.node_names())
    assert live.snapshot().num_nodes == 6
    live.apply_node_event("MODIFIED", node_object("cpu-small-005"))
    assert live.has_node("cpu-small-005") and live.snapshot().num_nodes == 7
    live.apply_node_event("DELETED", node_object("cpu-small-005"))
    assert not live.has_node("cpu-small-005")


def test_a_tainted_node_stays_in_the_view_and_is_a_candidate_only_for_pods_that_tolerate_it(live: LiveCluster) -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    live.apply_node_event("MODIFIED", node_object("gpu-large-000", taints=[taint]))
    i = live.node_names().index("gpu-large-000")
    primitive = Primitive("gen", PrimitiveKind.LLM_GENERATE, input_tokens=100, output_tokens=50)
    plain = live.observation(primitive, [], now=time.time())
    tolerant = NodeConstraints.of_pod({"spec": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists"}]}})
    tolerating = live.observation(primitive, [], now=time.time(), constraints=tolerant)
    assert not plain.mask[i] and not plain.candidates[i]
    assert tolerating.mask[i] and tolerating.candidates[i]
    assert plain.mask.sum() == tolerating.mask.sum() - 1, "only the tainted node differs"
    live.apply_node_event("MODIFIED", node_object("gpu-large-000"))  # untainted: every pod may go there again
    assert live.observation(primitive, [], now=time.time()).mask[i]


def test_node_selector_and_required_affinity_narrow_the_mask(live: LiveCluster) -> None:
    primitive = Primitive("x", PrimitiveKind.CODE_EXEC)
    names = live.node_names()
    selector = NodeConstraints.of_pod({"spec": {"nodeSelector": {NODE_CLASS_LABEL: "cpu-large"}}})
    chosen = live.observation(primitive, [], now=time.time(), constraints=selector)
    assert {names[i] for i in np.flatnonzero(chosen.mask)} == {"cpu-large-003", "cpu-large-004"}
    term = {
        "matchExpressions": [{"key": NODE_CLASS_LABEL, "operator": "NotIn", "values": ["cpu-large"]}],
        "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["cpu-large-003", "cpu-small-005"]}],
    }
    affinity = NodeConstraints.of_pod(
        {
            "spec": {
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
                }
            }
        }
    )
    assert {names[i] for i in np.flatnonzero(live.allowed(affinity))} == {"cpu-small-005"}
    assert "node affinity/selector" in (live.rejection(affinity, "cpu-large-003") or "")


def test_unknown_node_class_is_left_out() -> None:
    live = LiveCluster()
    odd = node_object("gpu-large-000")
    odd["metadata"]["labels"][NODE_CLASS_LABEL] = "quantum"
    live.apply_node_event("ADDED", odd)
    with pytest.raises(LookupError, match="no schedulable node"):
        live.snapshot()


def _gpu_node(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """``gpu-small-001``'s Node with other labels, as a cluster without the project label describes its nodes."""
    node = node_object("gpu-small-001")
    node["metadata"] = {**node["metadata"], "name": name, "labels": {"kubernetes.io/hostname": name, **labels}}
    return node


def test_nodes_are_classed_from_their_gpu_labels_and_an_unmapped_one_is_reported_once() -> None:
    reported: list[tuple[str, str]] = []
    live = LiveCluster(on_unmapped=lambda name, how: reported.append((name, how.node_class)))
    live.apply_node_event("ADDED", _gpu_node("h", {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}))
    live.apply_node_event("ADDED", _gpu_node("l", {"node.kubernetes.io/instance-type": "g6.xlarge"}))
    odd = _gpu_node("odd", {"vendor.example/accelerator": "x9"})
    for revision, event in enumerate(("ADDED", "MODIFIED", "MODIFIED")):
        odd["metadata"]["labels"]["revision"] = str(revision)  # a label change: the view reads the node again
        live.apply_node_event(event, odd)
    classes = {node.name: node.node_class for node in live.snapshot().spec.nodes}
    assert classes == {"h": "h100", "l": "l4", "odd": "gpu-small"}
    assert reported == [("odd", "gpu-small")]
    # labelling it with the project label maps it; no second report either way
    odd["metadata"]["labels"][NODE_CLASS_LABEL] = "a100-80gb"
    live.apply_node_event("MODIFIED", odd)
    assert {n.name: n.node_class for n in live.snapshot().spec.nodes}["odd"] == "a100-80gb"
    assert reported == [("odd", "gpu-small")]


def test_heartbeats_do_not_rebuild_the_static_state(live: LiveCluster) -> None:
    first = live.snapshot()
    live.apply_node_event("MODIFIED", node_object("gpu-large-000", heartbeat="2025-01-01T00:00:10Z"))
    assert live.snapshot().speed is first.speed, "the cached static arrays are reused"
    live.apply_node_event("DELETED", node_object("gpu-large-000"))
    assert live.snapshot().num_nodes == first.num_nodes - 1


def test_assumed_binding_survives_an_older_unbound_event(live: LiveCluster) -> None:
    i = live.node_names().index("cpu-large-003")
    pending = pod_object("p", cpu="2")
    live.apply_pod_event("ADDED", pending)
    live.assume(pending, "cpu-large-003")
    live.apply_pod_event("MODIFIED", pending)  # the watch had not seen the binding yet
    assert live.snapshot().free_cpu[i] == 64000 - 2000
    live.apply_pod_event("DELETED", pending)  # the bind failed: the operator drops the assumption
    assert live.snapshot().free_cpu[i] == 64000


def test_a_placement_assumed_before_the_pod_exists_survives_its_added_event(live: LiveCluster) -> None:
    i = live.node_names().index("gpu-large-000")
    manifest = pod_object("p", gpus=1)
    del manifest["metadata"]["uid"]  # the placer assumes the pod it is about to create
    live.assume(manifest, "gpu-large-000")
    held = live.snapshot().free_gpus[i]
    live.apply_pod_event("ADDED", pod_object("p", gpus=1, uid="created"))  # created, not bound yet
    assert live.snapshot().free_gpus[i] == held  # the room stays taken until the bind
    live.assume(pod_object("p", gpus=1, uid="created"), "gpu-large-000")
    live.apply_pod_event("MODIFIED", pod_object("p", gpus=1, uid="created", node="gpu-large-000"))
    assert live.snapshot().free_gpus[i] == held


def test_observation_maps_parent_nodes_and_uses_shared_features(live: LiveCluster) -> None:
    primitive = Primitive("summarise", PrimitiveKind.LLM_GENERATE, input_tokens=800, output_tokens=200)
    observation = live.observation(
        primitive, [("gpu-small-001", 20.0), ("gone-node", 5.0)], now=time.time(), downstream_seconds=3.0
    )
    assert isinstance(observation, Observation)
    assert observation.parent_outputs == [(live.node_names().index("gpu-small-001"), 20.0)]
    names = live.node_names()
    assert {names[i] for i in np.flatnonzero(observation.mask)} == {"gpu-large-000", "gpu-small-001", "gpu-small-002"}
    assert observation.node_features.shape[0] == len(names)
    assert observation.transfer[names.index("gpu-small-001")] == 0.0


def test_pod_requests_follow_kubernetes_rules() -> None:
    pod = {
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "500m", "memory": "1Gi"}}},
                {"resources": {"requests": {"cpu": "250m"}}},
            ],
            "initContainers": [
                {"resources": {"requests": {"cpu": "2", "memory": "128Mi"}}},
                {"restartPolicy": "Always", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}},
                {"resources": {"requests": {"cpu": "1900m"}}},
            ],
            "overhead": {"cpu": "10m"},
        }
    }
    requests = pod_requests(pod)
    # containers + sidecar = 0.85 cpu; the init steps peak at 2 cpu (first) and 0.1 + 1.9 = 2.0 (third)
    assert requests["cpu"] == pytest.approx(2.0 + 0.01)
    assert requests["memory"] == pytest.approx(1 * GIB + 64 * 1024**2)
    assert pod_requests({"spec": {"containers": [{"name": "no-requests"}]}}) == {}
    level = {
        "spec": {"resources": {"requests": {"cpu": "3"}}, "containers": [{"resources": {"requests": {"cpu": "1"}}}]}
    }
    assert pod_requests(level)["cpu"] == 3.0


@pytest.mark.parametrize(
    ("text", "seconds"), [("12.345s", 12.345), ("1m30s", 90.0), ("250ms", 0.25), ("1h0m0.5s", 3600.5), ("0", 0.0)]
)
def test_parse_go_duration(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


def test_parse_go_duration_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not a Go duration"):
        parse_go_duration("12 seconds")


def test_forget_absent_drops_what_a_watch_gap_hid_and_keeps_what_came_after_the_listing(live: LiveCluster) -> None:
    i = live.node_names().index("cpu-large-003")
    free = live.snapshot().free_cpu[i]
    live.apply_pod_event("ADDED", pod_object("deleted-unseen", node="cpu-large-003", phase="Running", cpu="2"))
    live.apply_pod_event("ADDED", pod_object("still-there", node="cpu-large-003", phase="Running", cpu="1"))
    # placed before the listing, its create still in flight (no uid yet): not in the listing, and not gone
    being_created = pod_object("being-created", cpu="8")
    del being_created["metadata"]["uid"]
    live.assume(being_created, "cpu-large-003")
    known = live.known()
    # after the listing was requested: a pod the operator created and bound (not in the listing)
    live.assume(pod_object("bound-since", cpu="4"), "cpu-large-003")
    listing = [pod_object("still-there", node="cpu-large-003", phase="Running", cpu="1")]
    nodes = [node_object(name) for name in live.node_names() if name != "gpu-large-000"]
    assert live.forget_absent(known, listing, nodes) == (1, 1)
    assert live.snapshot().free_cpu[i] == free - 1000 - 8000 - 4000
    assert "gpu-large-000" not in live.node_names() and not live.node_exists("gpu-large-000")
    assert live.forget_absent(live.known(), listing + [pod_object("bound-since", cpu="4")], nodes) == (0, 0)
