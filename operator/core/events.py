"""Events about WorkflowDAGs and their pods, through kopf's poster.

``kopf.event`` queues the Event and returns at once; kopf's poster task sends it on kopf's own API session,
so a burst of Events (two per bound pod) never delays the next create or bind. It needs the running
operator's context; code that runs without one (unit tests) is handed another ``PostEvent``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import kopf
from scale_scheduler.operator.kube import labels

# (object, its kind, reason, message, warning?)
PostEvent = Callable[[dict[str, Any], str, str, str, bool], None]
MESSAGE_LIMIT = 1024  # the API's limit on an Event's message


def reference(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    """The identity kopf needs (list items from the API carry no apiVersion or kind)."""
    meta = obj["metadata"]
    api_version = "v1" if kind == "Pod" else labels.API_VERSION
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {"name": meta["name"], "namespace": meta.get("namespace"), "uid": meta.get("uid")},
    }


def post_event(obj: dict[str, Any], kind: str, reason: str, message: str, warning: bool = False) -> None:
    """Queue an Event on ``obj`` (a Pod or a WorkflowDAG) for kopf's poster."""
    body = kopf.Body(cast("kopf.RawBody", reference(obj, kind)))
    kopf.event(body, type="Warning" if warning else "Normal", reason=reason, message=message[:MESSAGE_LIMIT])
