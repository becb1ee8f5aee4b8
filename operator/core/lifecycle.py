"""How a WorkflowDAG's run ends other than by its DAG: deadlines, ``spec.shutdown``, clean-up and its TTL.

The controller asks; this module deletes or fails pods (and, after its TTL, the workflow) on the API server and
keeps the live view in step. What to collect is decided by the pure functions of ``cleanup``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from scale_scheduler.operator.core.binding import BindingQueue
from scale_scheduler.operator.core.cleanup import expired, pods_to_collect
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.plan import WorkflowPlan
from scale_scheduler.operator.core.progress import Trouble, WorkflowProgress, overdue
from scale_scheduler.operator.core.reconcile_queue import Key
from scale_scheduler.operator.kube.api import KubeApi
from scale_scheduler.operator.kube.times import parse_time


class Lifecycle:
    """Deadlines, shutdown and clean-up of the workflows one controller runs."""

    def __init__(self, api: KubeApi, live: LiveCluster, queue: BindingQueue) -> None:
        self.api, self.live, self.queue = api, live, queue

    @staticmethod
    def ending(body: dict[str, Any]) -> tuple[Trouble, bool] | None:
        """(why, terminate running pods?) when the workflow must stop starting work, else None."""
        spec = body.get("spec") or {}
        deadline = spec.get("activeDeadlineSeconds")
        created = parse_time(body["metadata"]["creationTimestamp"])
        if deadline and created and (datetime.now(UTC) - created).total_seconds() > deadline:
            # Argo's and Job's workflow deadline: what still runs is terminated
            why = f"spec.activeDeadlineSeconds: the workflow ran longer than {deadline}s"
            return Trouble("DeadlineExceeded", why), True
        if spec.get("shutdown"):
            terminate = spec["shutdown"] == "Terminate"
            return Trouble("Terminated" if terminate else "Stopped", f"spec.shutdown: {spec['shutdown']}"), terminate
        return None

    async def end_overdue(self, plan: WorkflowPlan, progress: WorkflowProgress) -> bool:
        """Fail the pods past their activeDeadlineSeconds or their primitive's pendingTimeoutSeconds; whether any.

        The kubelet ends a pod past its activeDeadlineSeconds; a node that does not (KWOK's, an unreachable one)
        would keep the primitive running for ever, so the operator does it too. Either failure counts as a retry.
        """
        now = datetime.now(UTC)
        ended = [
            (entry.live_pod, why)
            for entry in progress.primitives.values()
            if entry.live_pod is not None
            and (why := overdue(entry.live_pod, now, plan.raw[entry.name].get("pendingTimeoutSeconds")))
        ]
        for pod, why in ended:
            await self.api.fail_pod(pod["metadata"]["namespace"], pod["metadata"]["name"], why.reason, why.message)
            self.live.apply_pod_event("DELETED", pod)  # it holds nothing once failed (the watch confirms)
        return bool(ended)

    async def clean_up(
        self, key: Key, body: dict[str, Any], phase: str, pods: list[dict[str, Any]], *, expire: bool = True
    ) -> None:
        """Delete the pods ``spec.podGC`` collects and, when ``expire``, a finished workflow past its
        ``spec.ttlSecondsAfterFinished`` (its pods go with it, by their ownerReferences)."""
        spec = body.get("spec") or {}
        if expire and expired(spec, body.get("status") or {}, datetime.now(UTC)):
            await self.api.delete_workflow(*key)
            return
        collected = pods_to_collect(spec, phase, pods)
        await asyncio.gather(
            *(self.api.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"]) for pod in collected)
        )
        for pod in collected:
            self.live.apply_pod_event("DELETED", pod)

    async def shut_down(self, key: Key, progress: WorkflowProgress, why: Trouble, terminate: bool) -> Trouble | None:
        """Start nothing more; ``terminate`` deletes every live pod, else only those not yet bound (they have not
        started) and the bound ones finish (spec.shutdown Stop). ``why`` once nothing of it runs any more
        (``progress`` is marked for the record), else None (a later reconcile looks again)."""
        self.queue.forget(key)
        running = False
        for entry in progress.primitives.values():
            pod = entry.live_pod
            if pod is None:
                if entry.state == "Pending":
                    entry.state = "Waiting"  # ready, but nothing will start it now
                continue
            if terminate or not (pod.get("spec") or {}).get("nodeName"):
                await self.api.delete_pod(pod["metadata"]["namespace"], pod["metadata"]["name"])
                self.live.apply_pod_event("DELETED", pod)
                # a terminated pod was running (or about to): Failed; a stopped one had not started yet: Waiting
                entry.state = "Failed" if terminate else "Waiting"
                entry.trouble = Trouble(why.reason, f"pod {pod['metadata']['name']} deleted: {why.message}")
            else:
                running = True
        if running or progress.phase == "Succeeded":  # a Stop that came after the last primitive finished: success
            return None
        return why
