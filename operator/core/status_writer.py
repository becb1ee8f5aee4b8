"""A WorkflowDAG's status as the operator writes it, the Events of its ending, and the per-phase gauge."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from scale_scheduler.operator.core import metrics
from scale_scheduler.operator.core.events import PostEvent
from scale_scheduler.operator.core.plan import WorkflowPlan
from scale_scheduler.operator.core.progress import (
    PHASES,
    Trouble,
    WorkflowProgress,
    failed_status,
    status_patch,
    workflow_status,
)
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi
from scale_scheduler.operator.kube.times import parse_time
from scale_scheduler.simulator.workflow import WorkflowValidationError

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)


class StatusWriter:
    """Patches status (only what changed), posts the closing Event, and keeps the phase of every live workflow."""

    def __init__(self, api: KubeApi, post_event: PostEvent, policy: str, rule: str, time_scale: float) -> None:
        self.api, self.post_event = api, post_event
        self.policy, self.rule, self.time_scale = policy, rule, time_scale
        self.phases: dict[Key, str] = {}  # dropped by ``forget`` when the WorkflowDAG is gone

    async def write(
        self,
        body: dict[str, Any],
        plan: WorkflowPlan,
        progress: WorkflowProgress,
        *,
        problems: dict[str, Trouble] | None = None,
        ended_by: Trouble | None = None,
        suspended: bool = False,
    ) -> str:
        """Bring the status up to date (``progress.workflow_status`` says what the keywords mean); the phase."""
        meta, previous = body["metadata"], body.get("status") or {}
        key = (meta["namespace"], meta["name"])
        created = parse_time(meta["creationTimestamp"]) or datetime.now(UTC)
        status = workflow_status(
            plan.workflow,
            progress,
            created=created,
            now=datetime.now(UTC),
            time_scale=self.time_scale,
            lower_bound_seconds=plan.lower_bound_seconds,
            policy=self.policy,
            placement_rule=self.rule,
            generation=meta.get("generation"),
            previous=previous,
            problems=problems,
            ended_by=ended_by,
            suspended=suspended,
        )
        patch = status_patch(previous, status)
        if not patch:
            self.set_phase(key, status["phase"])
            return str(status["phase"])
        await self.api.patch_workflow_status(meta["namespace"], meta["name"], patch)
        self.set_phase(key, status["phase"])
        if status["phase"] == "Succeeded":
            metrics.WORKFLOW_RESPONSE_TIME.observe(status["responseTimeSeconds"])
            self.post_event(
                body,
                labels.KIND,
                "Succeeded",
                f"all {len(plan.workflow.primitives)} primitives succeeded; response time "
                f"{status['responseTimeSeconds']:.2f}s, slowdown {status['slowdown']:.2f}",
                False,
            )
        elif status["phase"] == "Failed":
            condition = next(c for c in status["conditions"] if c["type"] == "Complete")
            self.post_event(body, labels.KIND, condition["reason"], condition["message"], True)
        return str(status["phase"])

    async def reject(self, body: dict[str, Any], error: WorkflowValidationError) -> None:
        """A WorkflowDAG that cannot run: Failed, with the reason in its status and a Warning Event."""
        meta = body["metadata"]
        log.warning("WorkflowDAG %s/%s rejected (%s): %s", meta["namespace"], meta["name"], error.reason, error)
        total = len((body.get("spec") or {}).get("primitives") or [])
        status = failed_status(
            error.reason,
            str(error),
            total=total,
            now=datetime.now(UTC),
            policy=self.policy,
            placement_rule=self.rule,
            generation=meta.get("generation"),
            previous=body.get("status") or {},
        )
        await self.api.patch_workflow_status(meta["namespace"], meta["name"], status)
        self.post_event(body, labels.KIND, error.reason, str(error), True)
        self.set_phase((meta["namespace"], meta["name"]), "Failed")

    def set_phase(self, key: Key, phase: str) -> None:
        if self.phases.get(key) != phase:
            self.phases[key] = phase
            self._update_gauge()

    def forget(self, key: Key) -> None:
        if self.phases.pop(key, None) is not None:
            self._update_gauge()

    def _update_gauge(self) -> None:
        for phase in PHASES:
            metrics.WORKFLOWS.labels(phase=phase).set(sum(p == phase for p in self.phases.values()))
