"""One live state, three deciders: the simulator's engine, the operator's controller and the scheduler extender pick
the same node for the same pending primitive (issue 10: one placement pipeline).

The engine runs an episode on the live view's own cluster (its node order, the speeds read from Node objects); at
each decision its ``ClusterState`` is written out as the Node and Pod objects the operator would watch (bound pods
holding the resources and releasing at the engine's estimate, planned pods in the node queues, finished pods that
warmed a kind), fed to a ``LiveCluster``, and the controller's decision function and the extender decide from that
view. No API server is needed.
"""

from __future__ import annotations

import copy
import time
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from kube_objects import live_view, node_object, pod_object
from kubernetes import client
from scale_scheduler.operator.core.controller import WorkflowController, plan_workflow
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.progress import workflow_progress
from scale_scheduler.operator.core.workflow_pods import pod_manifest
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi
from scale_scheduler.operator.serve.extender import Extender
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.manifests import workflow_from_manifest, workflow_to_manifest
from scale_scheduler.simulator.placement import PlacementRule, room_now
from scale_scheduler.simulator.primitives import KINDS, PrimitiveKind
from scale_scheduler.simulator.schedulers import Scheduler, make_heuristic
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive, Workflow

POLICIES = ("least-loaded", "k8s-default", "heft", "srpt-eft", "round-robin")
DECISIONS = 60
WALL_CLOCK = 1_900_000_000.0  # time.time() while the operator decides (a whole second: Kubernetes timestamps)
# A pod the extender can see exactly as the engine sees the primitive: no tokens (its duration annotation is its
# work), and no parent outputs to move (kube-scheduler's extender arguments carry none)
EXTENDER_KINDS = (PrimitiveKind.TOOL_CALL, PrimitiveKind.CODE_EXEC, PrimitiveKind.RETRIEVE)


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _workload(live: LiveCluster) -> list[Workflow]:
    """A busy episode plus single-primitive probes the extender can see exactly; written as manifests and read
    back, so the engine runs on the values the operator reads (work seconds rounded to milliseconds)."""
    spec = live.snapshot().spec
    workflows = generate_workload(spec, 14, load=0.9, seed=5)
    end = max(w.arrival_time for w in workflows)
    probes = [
        Workflow(f"probe-{i}", [Primitive("call", kind, work_seconds=1.5 + i)], arrival_time=end * (i + 1) / 6)
        for i, kind in enumerate(EXTENDER_KINDS * 2)
    ]
    return [workflow_from_manifest(workflow_to_manifest(w, include_arrival=True)) for w in workflows + probes]


def _live_from_state(state: ClusterState, now: float, rule: PlacementRule) -> LiveCluster:
    """The operator's view of the engine's cluster: pods that add up to exactly the engine's per-node state."""
    live = LiveCluster(rule=rule)
    for node in state.spec.nodes:
        live.apply_node_event("ADDED", node_object(node.name))
    for i, node in enumerate(state.spec.nodes):
        if state.running[i]:
            release = state.next_release[i] - now
            # one pod holds everything in use and ends at the engine's estimated next release; the others hold
            # nothing and give no estimate, so they neither free room nor move the release
            live.apply_pod_event(
                None,
                pod_object(
                    f"run-{i}",
                    node=node.name,
                    phase="Running",
                    start_time=_stamp(WALL_CLOCK),
                    cpu=f"{int(state.alloc_cpu[i] - state.free_cpu[i])}m",
                    memory=str(int(state.alloc_memory[i] - state.free_memory[i])),
                    gpus=int(state.alloc_gpus[i] - state.free_gpus[i]),
                    estimate=f"{float(release)!r}s" if np.isfinite(release) else None,
                ),
            )
            for k in range(1, int(state.running[i])):
                live.apply_pod_event(
                    None,
                    pod_object(
                        f"run-{i}-{k}",
                        node=node.name,
                        phase="Running",
                        cpu="0",
                        memory="0",
                        start_time=_stamp(WALL_CLOCK),
                    ),
                )
        for k in range(int(state.queue_length[i])):
            seconds = float(state.queued_seconds[i]) if k == 0 else 0.0
            live.apply_pod_event(None, pod_object(f"queued-{i}-{k}", planned=node.name, estimate=f"{seconds!r}s"))
        for kind in np.flatnonzero(state.warm[i]):
            live.apply_pod_event(
                None, pod_object(f"warm-{i}-{kind}", node=node.name, phase="Succeeded", kind=KINDS[kind].value)
            )
    return live


def _assert_same_state(live: LiveCluster, state: ClusterState, now: float) -> None:
    view = live.snapshot()
    assert [n.name for n in view.spec.nodes] == [n.name for n in state.spec.nodes]
    for field in ("free_cpu", "free_memory", "free_gpus", "running", "queue_length", "queued_seconds", "warm"):
        np.testing.assert_allclose(getattr(view, field), getattr(state, field), err_msg=field, atol=1e-6)
    np.testing.assert_allclose(
        view.next_release - WALL_CLOCK, np.maximum(state.next_release - now, 0.0), atol=1e-6, err_msg="next_release"
    )


def _body(workflow: Workflow) -> dict[str, Any]:
    body = workflow_to_manifest(workflow, namespace="ns")
    body["spec"]["podTemplate"] = {"image": "busybox:1.36"}
    body["metadata"].update(uid=f"uid-{workflow.name}", creationTimestamp=_stamp(WALL_CLOCK))
    return body


def _parent_pods(workflow: Workflow, primitive: Primitive, observation: Observation) -> list[dict[str, Any]]:
    """Succeeded pods of the primitive's parents on the nodes where the engine ran them."""
    pods = []
    for parent, (node, _) in zip(dict.fromkeys(primitive.depends_on), observation.parent_outputs, strict=True):
        pods.append(
            {
                "metadata": {
                    "name": f"{workflow.name}-{parent}-0",
                    "labels": {labels.PRIMITIVE_LABEL: parent, labels.ATTEMPT_LABEL: "0"},
                },
                "spec": {"nodeName": observation.state.spec.nodes[node].name},
                "status": {"phase": "Succeeded"},
            }
        )
    return pods


def _controller_pick(
    live: LiveCluster, scheduler: Scheduler, policy: str, workflow: Workflow, observation: Observation
) -> str:
    controller = WorkflowController(KubeApi(client.ApiClient()), live, scheduler, policy, time_scale=1.0)
    body = _body(workflow)
    plan = plan_workflow(body, live)
    progress = workflow_progress(plan.workflow, _parent_pods(workflow, observation.primitive, observation))
    return controller.placer.decide(body, plan, progress, plan.by_name[observation.primitive.name]).node.name


def _extender_pick(live: LiveCluster, scheduler: Scheduler, workflow: Workflow, primitive: Primitive) -> str:
    pod = pod_manifest(
        workflow=_body(workflow), primitive=primitive, raw_primitive={"image": "busybox:1.36"}, attempt=0, policy="p"
    )
    pod["metadata"]["annotations"][labels.DURATION_ANNOTATION] = f"{primitive.work_seconds!r}s"
    reply = Extender(live, scheduler, decide=True).filter({"Pod": pod, "NodeNames": live.node_names()})
    assert reply["Error"] == "" and len(reply["NodeNames"]) == 1, reply
    return str(reply["NodeNames"][0])


@pytest.mark.parametrize("rule", list(PlacementRule))
@pytest.mark.parametrize("policy", POLICIES)
def test_engine_controller_and_extender_pick_the_same_node(
    policy: str, rule: PlacementRule, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(time, "time", lambda: WALL_CLOCK)
    nodes_only = live_view(rule)
    scheduler = make_heuristic(policy)
    engine = Engine(nodes_only.snapshot().spec, _workload(nodes_only), seed=0, priority=scheduler.priority, rule=rule)
    compared = {"controller": 0, "extender": 0, "queued": 0, "full": 0}
    for _ in range(DECISIONS):
        observation = engine.next_decision()
        if observation is None:
            break
        workflow = next(w for w in engine.workflows if any(p is observation.primitive for p in w.primitives))
        live = _live_from_state(engine.state, engine.now, rule)
        _assert_same_state(live, engine.state, engine.now)
        # the same policy state (round-robin's cursor) for each decider
        controller_scheduler, extender_scheduler = copy.deepcopy(scheduler), copy.deepcopy(scheduler)
        index = scheduler.choose(observation)
        chosen = engine.state.spec.nodes[index].name
        where = f"{policy}/{rule.value}: {workflow.name}/{observation.primitive.name} at t={engine.now:.2f}"
        assert _controller_pick(live, controller_scheduler, policy, workflow, observation) == chosen, where
        compared["controller"] += 1
        if observation.primitive.kind in EXTENDER_KINDS and not observation.parent_outputs:
            assert _extender_pick(live, extender_scheduler, workflow, observation.primitive) == chosen, where
            compared["extender"] += 1
        compared["queued"] += int(engine.state.queue_length.sum() > 0)
        compared["full"] += int(not room_now(observation.primitive, engine.state)[observation.mask].all())
        engine.apply(index)
    assert compared["controller"] == DECISIONS
    assert compared["extender"] >= 3, compared
    assert compared["full"] > 0, "no node was ever full: the filter went untested"
    if rule is PlacementRule.NODE_QUEUES:
        assert compared["queued"] > 0, "the episode never queued on a node: the node-queue state went untested"
