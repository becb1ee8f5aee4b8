"""EventPoster on a real control plane: what it queues arrives, whole and attributed, even in a burst.

The poster returns before anything is sent and drains its queue from at most two background tasks, so a lost or
stranded Event would show only as one missing from the API server; these tests count them there.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubernetes import config
from operator_harness import WFD, apply, get_json, install_crd, new_namespace, step, workflow
from scale_scheduler.operator.core.events import EventPoster
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import COMPONENT, KubeApi

BURST = 300  # two Events per bound pod: a 150-pod burst of bindings
INSTANCE = "events-test"
ARRIVAL_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def cluster(local_cluster: Any) -> kwok.ClusterInfo:
    info: kwok.ClusterInfo = local_cluster(nodes=16)
    install_crd(info)
    return info


def _stand_in_pod(info: kwok.ClusterInfo, namespace: str, name: str) -> dict[str, Any]:
    """A pod nobody schedules: an object to hang Events on."""
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"schedulerName": "nobody", "containers": [{"name": "main", "image": "busybox"}]},
    }
    apply(info, namespace, manifest)
    return get_json(info, "pod", "-n", namespace, name)


async def _post_and_collect(
    info: kwok.ClusterInfo, posts: list[tuple[dict[str, Any], str, str, str, bool]], namespace: str
) -> list[dict[str, Any]]:
    """Queue ``posts`` at once, then keep the loop (and so the poster's tasks) running until as many Events are in
    ``namespace`` (nothing else posts there: no operator runs, and nobody schedules the stand-ins), or the timeout;
    the Events found."""
    poster = EventPoster(KubeApi(config.new_client_from_config(config_file=str(info.kubeconfig))), INSTANCE)
    for post in posts:
        poster.post(*post)
    deadline = asyncio.get_running_loop().time() + ARRIVAL_TIMEOUT
    while True:
        found = (await asyncio.to_thread(get_json, info, "events", "-n", namespace))["items"]
        if len(found) >= len(posts) or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.5)


def test_events_name_their_object_reason_and_source(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "events")
    pod = _stand_in_pod(cluster, namespace, "subject")
    apply(cluster, namespace, workflow("flow", [step("a")]))
    dag = get_json(cluster, WFD, "-n", namespace, "flow")
    posts = [
        (pod, "Pod", "Scheduled", "Successfully assigned it", False),
        (dag, labels.KIND, "FailedCreate", "x" * 5000, True),
    ]
    found = asyncio.run(_post_and_collect(cluster, posts, namespace))
    by_reason = {event["reason"]: event for event in found}
    assert sorted(by_reason) == ["FailedCreate", "Scheduled"], found

    scheduled = by_reason["Scheduled"]
    assert scheduled["involvedObject"] == {
        "apiVersion": "v1",
        "kind": "Pod",
        "name": "subject",
        "namespace": namespace,
        "uid": pod["metadata"]["uid"],
    }
    assert scheduled["type"] == "Normal" and scheduled["message"] == "Successfully assigned it"
    assert scheduled["source"] == {"component": COMPONENT}  # kubectl describe's "From"
    assert scheduled["reportingComponent"] == COMPONENT and scheduled["reportingInstance"] == INSTANCE
    assert scheduled["count"] == 1

    failed = by_reason["FailedCreate"]
    assert failed["involvedObject"]["apiVersion"] == labels.API_VERSION
    assert failed["involvedObject"]["kind"] == labels.KIND
    assert failed["involvedObject"]["uid"] == dag["metadata"]["uid"]
    assert failed["type"] == "Warning"
    assert len(failed["message"]) == 1024  # cut to the API's limit, not refused


def test_a_burst_of_events_all_arrive(cluster: kwok.ClusterInfo) -> None:
    namespace = new_namespace(cluster, "burst")
    pods = [_stand_in_pod(cluster, namespace, f"subject-{index}") for index in range(3)]
    posts = [(pods[index % 3], "Pod", "Burst", f"event {index}", False) for index in range(BURST)]
    found = asyncio.run(_post_and_collect(cluster, posts, namespace))
    assert sorted(event["message"] for event in found) == sorted(f"event {index}" for index in range(BURST))
    for event in found:
        index = int(event["message"].split()[1])
        assert event["involvedObject"]["name"] == f"subject-{index % 3}"
