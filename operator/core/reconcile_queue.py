"""Keyed single-flight reconciles: at most one per workflow at a time, and a burst of triggers runs it once more.

A trigger while a reconcile of that key is already queued is merged into it; one that arrives while it runs
queues exactly one more, so no event is lost and none costs a reconcile of its own. Every structure here is
keyed by workflow and dropped by ``forget`` when the workflow is gone.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class ReconcileQueue:
    """Runs ``reconcile(key)`` in the background on ``trigger(key)``, one at a time per key."""

    def __init__(self, reconcile: Callable[[Key], Awaitable[bool]]) -> None:
        # True from ``reconcile``: it saw the workflow through (recorded for ``quiet_for``); False: it stopped early.
        self._reconcile = reconcile
        self.pending: set[Key] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.reconciled_at: dict[Key, float] = {}  # monotonic time of the last complete reconcile
        self._locks: dict[Key, asyncio.Lock] = {}  # only while some run of the key holds or waits for it
        self._users: dict[Key, int] = {}
        self._after: dict[Key, set[Key]] = {}  # key -> keys to reconcile once it has been

    def trigger(self, key: Key) -> None:
        """Reconcile soon; a trigger while one is already queued is merged into it."""
        if key in self.pending:
            return
        self.pending.add(key)
        self.spawn(self._run_logged(key))

    def trigger_after(self, key: Key, waiting: Key) -> None:
        """Reconcile ``waiting`` again once ``key`` has been (it yielded to ``key``'s pods), and ``key`` now."""
        self._after.setdefault(key, set()).add(waiting)
        self.trigger(key)

    def quiet_for(self, key: Key, seconds: float) -> bool:
        """Whether ``key`` has had no complete reconcile for ``seconds`` (or never had one in this process)."""
        return time.monotonic() - self.reconciled_at.get(key, -math.inf) >= seconds

    def busy(self, key: Key) -> bool:
        """Whether a reconcile of ``key`` is queued, running or waiting for the one running."""
        return key in self.pending or key in self._locks

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` in the background, holding a reference so the task is not garbage-collected."""
        task = asyncio.get_running_loop().create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, key: Key) -> None:
        """Reconcile ``key`` now (after any reconcile of it in progress), then those that waited for it."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                self.pending.discard(key)
                if await self._reconcile(key):
                    self.reconciled_at[key] = time.monotonic()
        finally:
            # the lock goes when no run holds or awaits it (never while held: a new run would not wait for it)
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]
            for waiting in self._after.pop(key, ()):  # they yielded to this workflow's pods: their turn now
                self.trigger(waiting)

    async def _run_logged(self, key: Key) -> None:
        try:
            await self.run(key)
        except Exception:  # logged, and the resync timer tries again
            log.exception("reconcile of WorkflowDAG %s/%s failed; retrying on the next event or resync", *key)

    def forget(self, key: Key) -> None:
        """Drop what is kept for a workflow that is gone (its lock goes when the last run of it ends)."""
        self.reconciled_at.pop(key, None)
