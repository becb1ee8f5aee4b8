"""The extender's wire format and decisions, through its real HTTP server (aiohttp's test client)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from kube_objects import SPEC, live_view, node_object, pod_object
from prometheus_client import REGISTRY
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube.labels import DURATION_ANNOTATION, PRIMITIVE_KIND_LABEL
from scale_scheduler.operator.serve.extender import (
    Extender,
    extender_scores,
    make_app,
    primitive_from_pod,
)
from scale_scheduler.policy.registry import make_scheduler
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.schedulers import LeastLoadedScheduler

GPU_NODES = ["gpu-large-000", "gpu-small-001", "gpu-small-002"]
ALL_NODES = [n.name for n in SPEC.nodes]


@pytest.fixture
def live() -> LiveCluster:
    return live_view()


def serve(extender: Extender, prefix: str, exchange: Callable[[TestClient], Awaitable[Any]]) -> Any:
    async def run() -> Any:
        async with TestClient(TestServer(make_app(extender, prefix))) as client:
            return await exchange(client)

    return asyncio.run(run())


def post(prefix: str, verb: str, body: Any) -> Callable[[TestClient], Awaitable[tuple[int, Any]]]:
    async def exchange(client: TestClient) -> tuple[int, Any]:
        response = await client.post(f"{prefix}/{verb}", json=body)
        payload = await response.json() if response.content_type == "application/json" else await response.text()
        return response.status, payload

    return exchange


def gpu_pod(name: str = "chat") -> dict[str, Any]:
    return pod_object(name, cpu="2", memory="8Gi", gpus=1)


def test_filter_with_node_names_keeps_nodes_that_fit(live: LiveCluster) -> None:
    # a pod already holding both GPUs of gpu-small-002
    live.apply_pod_event("ADDED", pod_object("busy", node="gpu-small-002", phase="Running", gpus=2))
    args = {"Pod": gpu_pod(), "NodeNames": ALL_NODES + ["not-a-node"]}
    extender = Extender(live, LeastLoadedScheduler(), decide=False)
    status, reply = serve(extender, "/scale", post("/scale", "filter", args))
    assert status == 200
    assert reply["Error"] == ""
    assert reply["NodeNames"] == ["gpu-large-000", "gpu-small-001"]
    assert "not enough free" in reply["FailedNodes"]["gpu-small-002"]
    assert "live view" in reply["FailedNodes"]["not-a-node"]
    assert set(reply["FailedAndUnresolvableNodes"]) == set(ALL_NODES) - set(GPU_NODES)


def test_filter_answers_a_node_list_with_a_node_list(live: LiveCluster) -> None:
    items = [node_object(name) for name in ALL_NODES]
    args = {"Pod": gpu_pod(), "Nodes": {"apiVersion": "v1", "kind": "NodeList", "items": items}}
    status, reply = serve(Extender(live, LeastLoadedScheduler(), decide=False), "", post("", "filter", args))
    assert status == 200 and reply["NodeNames"] is None
    assert [n["metadata"]["name"] for n in reply["Nodes"]["items"]] == GPU_NODES
    assert reply["Nodes"]["items"][0] == items[0], "nodes come back unchanged"


def test_decide_mode_keeps_only_the_policys_choice(live: LiveCluster) -> None:
    # load gpu-large-000 so least-loaded prefers a small GPU node
    live.apply_pod_event("ADDED", pod_object("busy", node="gpu-large-000", phase="Running", cpu="30", gpus=3))
    extender = Extender(live, LeastLoadedScheduler(), decide=True)
    status, reply = serve(extender, "", post("", "filter", {"Pod": gpu_pod(), "NodeNames": ALL_NODES}))
    observation = live.observation(primitive_from_pod(gpu_pod()), [], now=time.time())
    expected = live.node_names()[LeastLoadedScheduler().choose(observation)]
    assert status == 200 and reply["NodeNames"] == [expected]
    assert expected in {"gpu-small-001", "gpu-small-002"}
    others = {"gpu-large-000", "gpu-small-001", "gpu-small-002"} - {expected}
    assert all(f"placed the pod on {expected}" in reply["FailedNodes"][name] for name in others)
    assert extender.calls[-1].passed == [expected]


def test_prioritize_scores_zero_to_ten_with_the_policys_best_at_ten(live: LiveCluster) -> None:
    live.apply_pod_event("ADDED", pod_object("busy", node="gpu-small-001", phase="Running", cpu="15", gpus=2))
    decisions = (
        REGISTRY.get_sample_value("scale_sched_decisions_total", {"policy": "least-loaded", "source": "extender"})
        or 0.0
    )
    args = {"Pod": gpu_pod(), "NodeNames": GPU_NODES}
    status, reply = serve(Extender(live, LeastLoadedScheduler(), decide=False), "", post("", "prioritize", args))
    assert status == 200
    scores = {entry["Host"]: entry["Score"] for entry in reply}
    assert set(scores) == set(GPU_NODES)
    assert all(isinstance(score, int) and 0 <= score <= 10 for score in scores.values())
    assert scores["gpu-small-001"] == 0, "the loaded node is the worst candidate"
    assert max(scores.values()) == 10
    assert (
        REGISTRY.get_sample_value("scale_sched_decisions_total", {"policy": "least-loaded", "source": "extender"})
        == decisions + 1
    )


def test_prioritize_follows_the_shipped_scale_policy(live: LiveCluster) -> None:
    scheduler = make_scheduler("scale")
    pod = pod_object("gen", cpu="2", memory="16Gi", gpus=1, kind="llm_generate", duration="8s")
    args = {"Pod": pod, "NodeNames": ALL_NODES}
    status, reply = serve(Extender(live, scheduler, decide=False), "", post("", "prioritize", args))
    assert status == 200
    scores = {entry["Host"]: entry["Score"] for entry in reply}
    observation = live.observation(primitive_from_pod(pod), [], now=time.time())
    chosen = live.node_names()[scheduler.choose(observation)]
    assert scores[chosen] == 10
    assert all(scores[name] == 0 for name in ALL_NODES if name not in GPU_NODES), "masked nodes score 0"


def test_bad_requests_get_an_error_not_a_crash(live: LiveCluster) -> None:
    extender = Extender(live, LeastLoadedScheduler(), decide=False)

    async def exchange(client: TestClient) -> list[tuple[int, Any]]:
        results = []
        response = await client.post("/filter", data=b"{not json")
        results.append((response.status, await response.json()))
        response = await client.post("/filter", json={"NodeNames": ALL_NODES})
        results.append((response.status, await response.json()))
        response = await client.post("/prioritize", json={"NodeNames": ALL_NODES})
        results.append((response.status, await response.text()))
        response = await client.get("/healthz")
        results.append((response.status, await response.text()))
        return results

    (not_json, no_pod, bad_prioritize, health) = serve(extender, "", exchange)
    assert not_json[0] == 200 and "not JSON" in not_json[1]["Error"]
    assert no_pod[0] == 200 and "without a Pod" in no_pod[1]["Error"]
    assert bad_prioritize[0] == 500 and "without a Pod" in bad_prioritize[1]
    assert health == (200, "ok")


def test_empty_view_is_reported_through_error() -> None:
    status, reply = serve(
        Extender(LiveCluster(), LeastLoadedScheduler(), decide=False),
        "",
        post("", "filter", {"Pod": gpu_pod(), "NodeNames": ALL_NODES}),
    )
    assert status == 200 and "no schedulable node" in reply["Error"]


def test_primitive_from_pod_reads_kind_requests_and_duration() -> None:
    gpu = primitive_from_pod(pod_object("g", cpu="1500m", memory="2Gi", gpus=1, duration="3.05s"))
    assert gpu.kind is PrimitiveKind.LLM_GENERATE
    assert (gpu.cpu_millicores, gpu.memory_bytes, gpu.gpus) == (1500, 2 * 1024**3, 1)
    assert gpu.output_tokens == 180  # (3.05 s - 0.05 s overhead) at the reference 60 tokens/s
    plain = primitive_from_pod({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})
    assert plain.kind is PrimitiveKind.CODE_EXEC
    assert (plain.cpu_millicores, plain.memory_bytes, plain.gpus) == (0, 0, 0), "no requests means none, not defaults"
    labelled = pod_object("r", kind="retrieve")
    labelled["metadata"]["annotations"] = {DURATION_ANNOTATION: "2.5s"}
    retrieve = primitive_from_pod(labelled)
    assert retrieve.kind is PrimitiveKind.RETRIEVE and retrieve.work_seconds == 2.5
    odd = pod_object("o")
    odd["metadata"]["labels"] = {PRIMITIVE_KIND_LABEL: "teleport"}
    assert primitive_from_pod(odd).kind is PrimitiveKind.CODE_EXEC


def test_extender_scores_map_linearly() -> None:
    scores = extender_scores(np.array([-2.0, 0.0, 2.0, -np.inf]))
    assert scores.tolist() == [0, 5, 10, 0]
    assert extender_scores(np.array([1.0, 1.0])).tolist() == [10, 10]
    assert extender_scores(np.array([-np.inf])).tolist() == [0]


def test_filter_honours_the_pods_own_tolerations_and_selector(live: LiveCluster) -> None:
    taint = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    live.apply_node_event("MODIFIED", node_object("gpu-large-000", taints=[taint]))
    extender = Extender(live, LeastLoadedScheduler(), decide=False)
    reply = extender.filter({"Pod": gpu_pod(), "NodeNames": GPU_NODES})
    assert reply["NodeNames"] == ["gpu-small-001", "gpu-small-002"]
    assert reply["FailedAndUnresolvableNodes"]["gpu-large-000"] == (
        "node(s) had untolerated taint {nvidia.com/gpu=present:NoSchedule}"
    )
    tolerant = gpu_pod()
    tolerant["spec"]["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    tolerant["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "gpu-large-000"}
    assert extender.filter({"Pod": tolerant, "NodeNames": GPU_NODES})["NodeNames"] == ["gpu-large-000"]
    del tolerant["spec"]["nodeSelector"]
    assert extender.filter({"Pod": tolerant, "NodeNames": GPU_NODES})["NodeNames"] == GPU_NODES
