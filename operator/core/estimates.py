"""How far the node model is off: each finished pod's observed run time against the estimate it was placed with,
kept per (primitive kind, node class) as robust running statistics and exported as metrics.

This is the measuring half of online estimates. Feeding the statistics back into the features in place of the
static node model, and keeping them across restarts, is still to come (docs/node-classes.md).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

from scale_scheduler.operator.core import metrics

# Weight of the newest pod in the running statistics: roughly the last ten pods of a kind and class count.
WEIGHT = 0.2
QUANTILE = 0.9
# One pod moves the mean by at most WEIGHT times this (in log units): a pod 100x off (a stuck node, a retry
# storm) shifts it by a third, not by 2.5x, while a true 2x change passes unclipped.
LOG_CLIP = math.log(4.0)


@dataclass
class RatioStatistics:
    """Running statistics of observed / estimated run time, in log space so that one pod ten times slower
    moves them as much as one ten times faster: an exponentially weighted mean (a geometric mean; each step
    clipped to ``LOG_CLIP``) and a running
    ``QUANTILE`` (Robbins-Monro: it steps up by ``WEIGHT * QUANTILE`` for a sample above it and down by
    ``WEIGHT * (1 - QUANTILE)`` for one at or below, so it settles where that fraction of samples lies below)."""

    samples: int = 0
    log_mean: float = 0.0
    log_quantile: float = 0.0

    def add(self, ratio: float) -> None:
        value = math.log(ratio)
        if self.samples == 0:
            self.log_mean = self.log_quantile = value
        else:
            self.log_mean += WEIGHT * min(max(value - self.log_mean, -LOG_CLIP), LOG_CLIP)
            self.log_quantile += WEIGHT * (QUANTILE - float(value <= self.log_quantile))
        self.samples += 1

    @property
    def mean(self) -> float:
        return math.exp(self.log_mean)

    @property
    def quantile(self) -> float:
        return math.exp(self.log_quantile)


class RunTimes:
    """Observed / estimated run time per (kind, node class); ``observe`` is the live view's ``on_finished``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._statistics: dict[tuple[str, str], RatioStatistics] = {}

    def observe(self, kind: str, node_class: str, observed_seconds: float, estimated_seconds: float) -> None:
        """One finished pod; pods with no positive observed or estimated time say nothing and are skipped."""
        if observed_seconds <= 0 or estimated_seconds <= 0:
            return
        ratio = observed_seconds / estimated_seconds
        with self._lock:
            statistics = self._statistics.setdefault((kind, node_class), RatioStatistics())
            statistics.add(ratio)
            mean, quantile = statistics.mean, statistics.quantile
        metrics.ESTIMATE_ERROR.labels(kind=kind).observe(ratio)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic="mean").set(mean)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic=f"p{QUANTILE * 100:.0f}").set(
            quantile
        )

    def statistics(self, kind: str, node_class: str) -> RatioStatistics | None:
        with self._lock:
            found = self._statistics.get((kind, node_class))
            return None if found is None else RatioStatistics(found.samples, found.log_mean, found.log_quantile)
