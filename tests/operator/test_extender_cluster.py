"""The extender wired into the real kube-scheduler of the local cluster places plain pods where SCALE says.

Two extender servers run in this process (an asyncio loop in a thread) on one LiveCluster, fed by
Node and Pod watches of the cluster: one advises (prioritize, weight 100), one decides (filter keeps
only the policy's node). Each is reached only by pods requesting its extended resource
(managedResources), as the chart configures it.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from kubernetes import client, config, watch
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import free_port
from scale_scheduler.operator.serve.extender import EXTENDER_KEY, Extender, primitive_from_pod, start_extender
from scale_scheduler.policy.registry import make_scheduler
from scale_scheduler.simulator.cluster import GPU_RESOURCE

ADVISE_RESOURCE = "scale.dev/advise"
DECIDE_RESOURCE = "scale.dev/decide"
NODES = 16


def scheduler_configuration(advise_port: int, decide_port: int) -> dict[str, Any]:
    def extender(port: int, resource: str) -> dict[str, Any]:
        return {
            "urlPrefix": f"http://127.0.0.1:{port}/scale",
            "filterVerb": "filter",
            "prioritizeVerb": "prioritize",
            # weight 100: an extender point is worth 1000, more than all default plugins together can differ
            "weight": 100,
            "nodeCacheCapable": True,
            "enableHTTPS": False,
            "httpTimeout": "5s",
            "ignorable": False,
            "managedResources": [{"name": resource, "ignoredByScheduler": True}],
        }

    return {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "leaderElection": {"leaderElect": False},
        "extenders": [extender(advise_port, ADVISE_RESOURCE), extender(decide_port, DECIDE_RESOURCE)],
    }


def _follow(live: LiveCluster, list_call: Any, apply: Any, stop: threading.Event) -> None:
    """Feed one watch into the view until ``stop``; short server timeouts so the thread notices ``stop``."""
    while not stop.is_set():
        try:
            for event in watch.Watch().stream(list_call, timeout_seconds=5):
                apply(event["type"], event["raw_object"])
                if stop.is_set():
                    return
        except Exception:  # the cluster going away at teardown ends the stream
            if stop.is_set():
                return
            time.sleep(0.5)


class ExtenderHarness:
    def __init__(
        self,
        info: kwok.ClusterInfo,
        advise: web.AppRunner,
        decide: web.AppRunner,
        live: LiveCluster,
        core: client.CoreV1Api,
    ):
        self.info, self.live, self.core = info, live, core
        self.advise: Extender = advise.app[EXTENDER_KEY]
        self.decide: Extender = decide.app[EXTENDER_KEY]


@pytest.fixture(scope="module")
def harness(local_cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExtenderHarness]:
    advise_port, decide_port = free_port(), free_port()
    path: Path = tmp_path_factory.mktemp("extender") / "scheduler-config.yaml"
    path.write_text(yaml.safe_dump(scheduler_configuration(advise_port, decide_port)))
    live = LiveCluster()
    scheduler = make_scheduler("scale")
    loop = asyncio.new_event_loop()
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()

    def run(coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    advise = run(start_extender(live, scheduler, advise_port, host="127.0.0.1", prefix="/scale", decide=False))
    decide = run(start_extender(live, scheduler, decide_port, host="127.0.0.1", prefix="/scale", decide=True))
    stop = threading.Event()
    watchers: list[threading.Thread] = []
    try:
        info = local_cluster(nodes=NODES, scheduler_config=path)
        core = client.CoreV1Api(config.new_client_from_config(config_file=str(info.kubeconfig)))
        watchers = [
            threading.Thread(target=_follow, args=(live, core.list_node, live.apply_node_event, stop), daemon=True),
            threading.Thread(
                target=_follow, args=(live, core.list_pod_for_all_namespaces, live.apply_pod_event, stop), daemon=True
            ),
        ]
        for thread in watchers:
            thread.start()
        deadline = time.monotonic() + 60
        while len(live.node_names()) < NODES and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(live.node_names()) == NODES, f"the watch fed {len(live.node_names())} of {NODES} nodes"
        yield ExtenderHarness(info, advise, decide, live, core)
    finally:
        stop.set()
        for thread in watchers:
            thread.join(timeout=15)
        run(advise.cleanup())
        run(decide.cleanup())
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join(timeout=10)


def plain_gpu_pod(name: str, extended_resource: str) -> dict[str, Any]:
    """A pod the operator did not create: default scheduler, only its requests tell what it is."""
    requests = {"cpu": "2", "memory": "8Gi", GPU_RESOURCE: "1", extended_resource: "1"}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
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


def policy_choice(harness: ExtenderHarness, pod: dict[str, Any]) -> str:
    """The node the shipped SCALE policy picks for ``pod`` among nodes it fits on now, from the same view."""
    scheduler = harness.advise.scheduler
    observation = harness.live.observation(primitive_from_pod(pod), [], now=time.time())
    preference = scheduler.scores(observation)
    fits = observation.mask & (observation.state.free_gpus >= 1) & (observation.state.free_cpu >= 2000)
    names = harness.live.node_names()
    return max((names[i] for i in range(len(names)) if fits[i]), key=lambda name: preference[names.index(name)])


def wait_for_view(harness: ExtenderHarness, timeout: float = 30.0) -> None:
    """Until the view holds as many GPUs as the bound pods request (the watch may lag the API)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pods = harness.core.list_namespaced_pod("default").items
        requested = sum(
            int((c.resources.requests or {}).get(GPU_RESOURCE, 0))
            for p in pods
            if p.spec.node_name and p.status.phase not in ("Succeeded", "Failed")
            for c in p.spec.containers
        )
        state = harness.live.snapshot()
        if state.alloc_gpus.sum() - state.free_gpus.sum() == requested:
            return
        time.sleep(0.1)
    raise AssertionError("the live view did not catch up with the API server's pods")


def bound_node(harness: ExtenderHarness, name: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = harness.core.read_namespaced_pod(name, "default")
        if pod.spec.node_name:
            return pod.spec.node_name
        time.sleep(0.2)
    events = kwok.kubectl(harness.info, "get", "events", "-n", "default", "-o", "json")
    reasons = [e.get("message") for e in json.loads(events)["items"] if e["involvedObject"]["name"] == name]
    raise AssertionError(f"pod {name} not bound after {timeout} s; events: {reasons}")


def test_prioritize_puts_a_plain_pod_on_the_node_scale_scores_highest(harness: ExtenderHarness) -> None:
    pod = plain_gpu_pod("advised", ADVISE_RESOURCE)
    expected = policy_choice(harness, pod)
    harness.core.create_namespaced_pod("default", pod)
    node = bound_node(harness, "advised")
    calls = [c for c in harness.advise.calls if c.verb == "prioritize" and c.pod == "default/advised"]
    assert calls, "kube-scheduler never called the extender's prioritize"
    scores = calls[-1].scores
    assert len(scores) > 1 and scores[expected] == 10
    # the extender's integer scores may tie at 10; kube-scheduler then breaks the tie its own way
    best = {name for name, score in scores.items() if score == 10}
    assert node in best, f"bound to {node}, SCALE scored {scores}"
    assert not harness.decide.calls, "the deciding extender is reached only by pods requesting its resource"


def test_filter_in_decide_mode_binds_the_policys_choice(harness: ExtenderHarness) -> None:
    pod = plain_gpu_pod("decided", DECIDE_RESOURCE)
    wait_for_view(harness)
    expected = policy_choice(harness, pod)
    harness.core.create_namespaced_pod("default", pod)
    node = bound_node(harness, "decided")
    calls = [c for c in harness.decide.calls if c.verb == "filter" and c.pod == "default/decided"]
    assert calls and calls[-1].passed == [expected]
    gpu_nodes = {
        n for n, gpus in zip(harness.live.node_names(), harness.live.snapshot().alloc_gpus, strict=True) if gpus > 0
    }
    assert set(calls[-1].candidates) == gpu_nodes, "kube-scheduler's own filters ran first; names only"
    assert node == expected
