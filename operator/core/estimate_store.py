"""The learned run times (``estimates.RunTimes``) kept in a ConfigMap, so an operator restart starts from what its
predecessor learned: read once at start, written at most every ``SAVE_INTERVAL`` seconds while they change.

Delete the ConfigMap to forget them (the static node model is the prior again at the next start). Content this
operator cannot read (edited by hand, a later format) is reported and left alone until the first write replaces
it: never a reason not to schedule.
"""

from __future__ import annotations

import asyncio
import logging

from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.core.estimates import RunTimes
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi, api_message

log = logging.getLogger(__name__)

CONFIG_MAP_NAME = "scale-scheduler-estimates"
DATA_KEY = "run-times.json"
# Seconds between writes while pods finish: a restart loses at most this much learning, and a busy cluster costs
# one small PATCH per interval, not one per pod.
SAVE_INTERVAL = 5.0


class EstimateStore:
    """``run_times`` in ConfigMap ``name`` of ``namespace`` (the operator's own: POD_NAMESPACE)."""

    def __init__(self, api: KubeApi, run_times: RunTimes, namespace: str, name: str = CONFIG_MAP_NAME) -> None:
        self.api, self.run_times, self.namespace, self.name = api, run_times, namespace, name
        self._saved_version = -1

    @property
    def where(self) -> str:
        return f"ConfigMap {self.namespace}/{self.name}"

    async def load(self) -> None:
        """Start from the stored statistics; from the prior when there are none or they cannot be read."""
        try:
            config_map = await self.api.get_config_map(self.namespace, self.name)
        except ApiException as error:
            log.warning(
                "learned run times: cannot read %s (%s); starting from the prior", self.where, api_message(error)
            )
            return
        text = ((config_map or {}).get("data") or {}).get(DATA_KEY)
        if text is None:
            log.info("learned run times: no %s (key %s) yet; starting from the prior", self.where, DATA_KEY)
            return
        try:
            count = self.run_times.load(text)
        except ValueError as error:
            log.warning(
                "learned run times: ignoring %s key %s: %s; starting from the prior", self.where, DATA_KEY, error
            )
            return
        self._saved_version = self.run_times.version
        log.info(
            "learned run times: %d statistics read from %s (per kind and class, per template and primitive)",
            count,
            self.where,
        )

    async def save(self) -> None:
        """Write the statistics if they changed since the last write (created on the first)."""
        version = self.run_times.version
        if version == self._saved_version:
            return
        data = {DATA_KEY: self.run_times.dump()}
        try:
            await self.api.patch_config_map(self.namespace, self.name, data)
        except ApiException as error:
            if error.status != 404:
                raise
            await self.api.create_config_map(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": self.name,
                        "namespace": self.namespace,
                        "labels": {labels.MANAGED_BY_LABEL: labels.MANAGED_BY_VALUE},
                    },
                    "data": data,
                }
            )
        self._saved_version = version

    async def keep(self, interval: float = SAVE_INTERVAL) -> None:
        """Save every ``interval`` seconds until cancelled; a failed write is logged and tried again next time."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.save()
            except ApiException as error:
                log.warning("learned run times: cannot write %s (%s); retrying", self.where, api_message(error))
