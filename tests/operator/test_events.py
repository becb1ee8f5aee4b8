"""EventPoster's bookkeeping without an API server: an Event queued while the last poster is finishing is still
posted (the cluster test, tests/operator/test_events_cluster.py, checks what the API server receives)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from scale_scheduler.operator.core import events
from scale_scheduler.operator.core.binder import Binder
from scale_scheduler.operator.core.events import EventPoster

POD = {"metadata": {"name": "p", "namespace": "ns", "uid": "u"}}


class RecordingApi:
    """Answers at once; on its first request, queues one more Event through ``then`` (as a reconcile would)."""

    def __init__(self) -> None:
        self.posted: list[str] = []
        self.then: Any = None

    async def request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.posted.append(body["message"])
        if self.then is not None:
            # runs after this poster has drained the queue and returned, but before the callback that drops it
            # from the poster's set of tasks
            asyncio.get_running_loop().call_soon(self.then)
            self.then = None
        return {}


def test_an_event_queued_while_the_last_poster_finishes_is_posted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "POSTERS", 1)
    api = RecordingApi()
    poster = EventPoster(api, instance="test")  # type: ignore[arg-type]

    async def scenario() -> None:
        api.then = lambda: poster.post(POD, "Pod", "Second", "second", False)
        poster.post(POD, "Pod", "First", "first", False)
        for _ in range(10):  # a few turns of the loop: no timing involved
            await asyncio.sleep(0)

    asyncio.run(scenario())
    assert api.posted == ["first", "second"]


class SilentApi:
    """An API server that never answers: every request waits."""

    def __init__(self) -> None:
        self.attempted: list[str] = []

    async def request(self, method: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        self.attempted.append(body["message"])
        await asyncio.Event().wait()
        raise AssertionError("unreachable: nobody answers")


def test_events_beyond_the_queue_limit_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "QUEUE_LIMIT", 3)
    api = SilentApi()
    poster = EventPoster(api, instance="test")  # type: ignore[arg-type]

    async def scenario() -> int:
        for index in range(10):  # queued without yielding: the posters have not taken any yet
            poster.post(POD, "Pod", "Burst", f"event {index}", False)
        for _ in range(10):
            await asyncio.sleep(0)
        waiting = poster._queue.qsize()
        for task in poster._tasks:
            task.cancel()
        return waiting

    waiting = asyncio.run(scenario())
    # the first three were kept: two are with the (stuck) posters, one still waits; the other seven were dropped
    assert api.attempted == ["event 0", "event 1"] and waiting == 1


def test_one_placed_event_per_reconcile_counts_every_pod_within_the_message_limit() -> None:
    posted: list[tuple[str, str]] = []
    binder = Binder(None, None, "heft", lambda obj, kind, reason, message, warning: posted.append((reason, message)))  # type: ignore[arg-type]
    workflow = {"metadata": {"name": "w", "namespace": "ns", "uid": "u"}}
    binder.post_placed(workflow, [])
    assert posted == []  # a reconcile that bound nothing says nothing

    binder.post_placed(
        workflow, ["'a' attempt 0 -> n1 (run 1.0, estimated 1.2)", "'b' attempt 1 -> n2 (run 2.0, estimated 2.5)"]
    )
    assert posted == [
        (
            "Placed",
            "2 placed by policy heft (run and estimated seconds, wall clock): "
            "'a' attempt 0 -> n1 (run 1.0, estimated 1.2); 'b' attempt 1 -> n2 (run 2.0, estimated 2.5)",
        )
    ]

    lines = [f"'step-{i}' attempt 0 -> node-{i} (run 1.0, estimated 1.0)" for i in range(100)]
    binder.post_placed(workflow, lines)
    reason, message = posted[-1]
    assert reason == "Placed" and len(message) <= events.MESSAGE_LIMIT
    shown = message.count("' attempt 0 ->")
    assert message.startswith("100 placed") and message.endswith(f"; and {100 - shown} more") and 0 < shown < 100
