"""Events about WorkflowDAGs and their pods, posted in the background over the operator's own API connections.

``EventPoster.post`` queues the Event and returns at once; at most ``POSTERS`` tasks drain the queue through
``KubeApi`` (its pooled keep-alive connections and its retries), started on demand and gone when it is empty.
kube-scheduler's recorder works the same way, so a burst of Events (two per bound pod) never delays the next
create or bind. kopf's own poster, which this replaced, opened a TLS connection per Event object and posted
them all at once: during a burst of bindings, hundreds of handshakes on the operator's loop and on the API
server, which halved the operator's binding rate.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import COMPONENT, KubeApi, api_message
from scale_scheduler.operator.kube.times import format_precise_time, format_time

log = logging.getLogger(__name__)

# (object, its kind, reason, message, warning?)
PostEvent = Callable[[dict[str, Any], str, str, str, bool], None]
MESSAGE_LIMIT = 1024  # the API's limit on an Event's message
POSTERS = 2  # Events in flight at once: they yield the API server to the creates and binds
# Events waiting to be posted; more are dropped (kube-scheduler's recorder keeps 1000 too), so an API server that
# stops answering cannot make the queue grow without bound
QUEUE_LIMIT = 1000


def reporting_instance() -> str:
    """This replica's name in its Events (the chart sets POD_NAME), else the host's."""
    return os.environ.get("POD_NAME") or socket.gethostname()


def reference(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The involvedObject of an Event (list items from the API carry no apiVersion or kind)."""
    meta = obj["metadata"]
    api_version = "v1" if kind == "Pod" else labels.API_VERSION
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "namespace": meta.get("namespace"),
        "uid": meta.get("uid"),
    }


def event_manifest(
    obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool, instance: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event as ``kubectl describe`` shows it (``source`` is its "From" column)."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta.get("namespace") or "default"},
        "involvedObject": reference(obj, kind),
        "type": "Warning" if warning else "Normal",
        "reason": reason,
        "message": message[:MESSAGE_LIMIT],
        "action": reason,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": instance,
        "firstTimestamp": format_time(now),
        "lastTimestamp": format_time(now),
        "eventTime": format_precise_time(now),
        "count": 1,
    }


class EventPoster:
    """Queues Events and posts them from at most ``POSTERS`` background tasks of the running loop."""

    def __init__(self, api: KubeApi, instance: str | None = None) -> None:
        self.api, self.instance = api, instance or reporting_instance()
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_LIMIT)
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
        """Queue an Event on ``obj`` (a Pod or a WorkflowDAG); called from the operator's loop."""
        manifest = event_manifest(obj, kind, reason, message, warning, self.instance, datetime.now(UTC))
        try:
            self._queue.put_nowait(manifest)
        except asyncio.QueueFull:
            log.warning(
                "%d Events waiting to be posted: dropped %s on %s %s",
                QUEUE_LIMIT,
                reason,
                kind,
                manifest["involvedObject"]["name"],
            )
            return
        # done(), not the set's size: a poster that found the queue empty has returned, but the callback that
        # drops it from the set runs later; counting it would leave this Event queued until the next one
        if sum(not task.done() for task in self._tasks) < POSTERS:
            task = asyncio.get_running_loop().create_task(self._drain())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _drain(self) -> None:
        while not self._queue.empty():
            manifest = self._queue.get_nowait()
            namespace = manifest["metadata"]["namespace"]
            try:
                await self.api.request("POST", f"/api/v1/namespaces/{namespace}/events", manifest)
            except ApiException as error:  # an Event is a courtesy: tell the log, never the reconcile
                log.warning(
                    "cannot post Event %s on %s %s/%s: %s",
                    manifest["reason"],
                    manifest["involvedObject"]["kind"],
                    namespace,
                    manifest["involvedObject"]["name"],
                    api_message(error),
                )
            except Exception as error:  # a dropped connection after the retries: same courtesy
                log.warning("cannot post Event %s: %s", manifest["reason"], error)
