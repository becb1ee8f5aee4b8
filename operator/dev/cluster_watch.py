"""What the benchmarks do to a local cluster around the operator: follow a watch from a thread, make and empty
namespaces, submit WorkflowDAGs and remove them (``bench/operator.py``, ``bench/soak.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from kubernetes import client, watch
from scale_scheduler.operator.dev.samples import POD_TEMPLATE
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.manifests import workflow_to_manifest
from scale_scheduler.simulator.workflow import Workflow


class Follower:
    """Follows one watch in a thread, calling ``on_event(type, raw_object, seen_at)``; started from a fresh
    list's resourceVersion, so nothing created after ``start`` returns is missed."""

    def __init__(
        self, list_call: Callable[..., Any], on_event: Callable[[str, dict[str, Any], float], None], **list_args: Any
    ):
        self.list_call, self.on_event, self.list_args = list_call, on_event, list_args
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Follower:
        listing = self.list_call(**self.list_args)
        self.resource_version = (
            listing["metadata"]["resourceVersion"] if isinstance(listing, dict) else listing.metadata.resource_version
        )
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            stream = watch.Watch().stream(
                self.list_call, resource_version=self.resource_version, timeout_seconds=5, **self.list_args
            )
            try:
                for event in stream:
                    raw = event["raw_object"]
                    self.resource_version = raw["metadata"].get("resourceVersion", self.resource_version)
                    self.on_event(event["type"], raw, time.time())
                    if self.stop.is_set():
                        return
            except client.ApiException as error:
                if error.status == 410:  # resourceVersion too old: a relist would hide events; say so
                    raise RuntimeError("watch expired (410 Gone): the benchmark's timings would be wrong") from None
                raise

    def alive(self) -> bool:
        """False once the watch has died (its thread printed why) or was closed."""
        return self.thread.is_alive()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=15)


def create_namespace(core: client.CoreV1Api, name: str) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))


def wait_no_pods(core: client.CoreV1Api, namespace: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while core.list_namespaced_pod(namespace, limit=1).items:  # one pod is enough to know: cheap at 10,000 pods
        if time.monotonic() > deadline:
            raise TimeoutError(f"pods of namespace {namespace} still there after {timeout:.0f} s")
        time.sleep(0.5)


def workflow_manifest(workflow: Workflow, namespace: str) -> dict[str, Any]:
    """The WorkflowDAG of ``workflow``, running the samples' container (every primitive needs an image)."""
    manifest = workflow_to_manifest(workflow, namespace=namespace)
    manifest["spec"]["podTemplate"] = dict(POD_TEMPLATE)
    return manifest


def submit_workflow(custom: client.CustomObjectsApi, workflow: Workflow, namespace: str) -> None:
    manifest = workflow_manifest(workflow, namespace)
    custom.create_namespaced_custom_object(labels.GROUP, labels.VERSION, namespace, labels.PLURAL, manifest)


def delete_workflows(custom: client.CustomObjectsApi, namespace: str) -> None:
    custom.delete_collection_namespaced_custom_object(labels.GROUP, labels.VERSION, namespace, labels.PLURAL)
