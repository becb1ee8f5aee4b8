"""How far the node model is off, learned from finished pods: each one's observed run time against the static
node model's estimate (the prior), kept per (primitive kind, node class) as robust running statistics, exported as
metrics, and, once a kind and class have ``MIN_SAMPLES`` pods, handed to the live view as the run-time ratio that
corrects that class's speed for that kind (``cluster.corrected``). ``estimate_store`` keeps them across restarts
in a ConfigMap; ``scale-sched calibrate`` exports them as a node model (docs/node-classes.md).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scale_scheduler.operator.core import metrics
from scale_scheduler.simulator.primitives import PrimitiveKind

# Weight of the newest pod in the running statistics: roughly the last ten pods of a kind and class count.
WEIGHT = 0.2
QUANTILE = 0.9
# One pod moves the mean by at most WEIGHT times this (in log units): a pod 100x off (a stuck node, a retry
# storm) shifts it by a third, not by 2.5x, while a true 2x change passes unclipped.
LOG_CLIP = math.log(4.0)
# Pods of a kind on a class before their mean replaces the prior there: with WEIGHT 0.2 the first five pods carry
# two thirds of the mean's weight, so one odd pod cannot flip a placement.
MIN_SAMPLES = 5
# A mean within 25% of the prior leaves the prior in place: run times spread around any estimate (the simulator's
# lognormal factor, sigma 0.3, moves the weighted mean by about 10% either way), which is no wrong node model;
# a 2x error is far outside it.
DEADBAND = math.log(1.25)
# The ratio in effect moves once the mean has drifted 5% from it: each move rebuilds the live view's node arrays.
REAPPLY = math.log(1.05)

# node class -> kind -> observed / prior run time: what the live view divides that class's speeds by
Corrections = dict[str, dict[PrimitiveKind, float]]


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


def applied_ratio(statistics: RatioStatistics) -> float:
    """The run-time ratio the node model takes from these statistics: 1 (the prior stands) before
    ``MIN_SAMPLES`` pods or within ``DEADBAND`` of 1, else their mean."""
    if statistics.samples < MIN_SAMPLES or abs(statistics.log_mean) < DEADBAND:
        return 1.0
    return statistics.mean


class _StoredStatistics(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: PrimitiveKind
    node_class: str = Field(min_length=1)
    samples: int = Field(ge=1)
    log_mean: float = Field(allow_inf_nan=False)
    log_quantile: float = Field(allow_inf_nan=False)


class _Stored(BaseModel):
    """What ``RunTimes.dump`` writes: versioned, so a later format is refused rather than misread."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    statistics: list[_StoredStatistics]


class RunTimes:
    """Observed / prior run time per (kind, node class); ``observe`` is the live view's ``on_finished``, and
    ``on_corrections`` (the live view's ``set_speed_corrections``) hears each change of ``corrections()``."""

    def __init__(self, on_corrections: Callable[[Corrections], None] | None = None) -> None:
        self.on_corrections = on_corrections
        self._lock = threading.Lock()
        self._statistics: dict[tuple[str, str], RatioStatistics] = {}
        self._applied: dict[tuple[str, str], float] = {}  # only ratios other than 1
        self.version = 0  # counts changes, so the store writes only when there is something new

    def observe(
        self, kind: str, node_class: str, observed_seconds: float, estimated_seconds: float, prior_seconds: float
    ) -> None:
        """One finished pod: its observed run time, the estimate it was placed with (the error metric) and the
        static model's estimate (what the statistics learn from). Pods with no positive times say nothing."""
        if observed_seconds <= 0 or estimated_seconds <= 0 or prior_seconds <= 0:
            return
        key = (kind, node_class)
        with self._lock:
            statistics = self._statistics.setdefault(key, RatioStatistics())
            statistics.add(observed_seconds / prior_seconds)
            self.version += 1
            changed = self._reapply(key, statistics)
            mean, quantile = statistics.mean, statistics.quantile
            corrections = self._corrections() if changed else None
        metrics.ESTIMATE_ERROR.labels(kind=kind).observe(observed_seconds / estimated_seconds)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic="mean").set(mean)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic=f"p{QUANTILE * 100:.0f}").set(
            quantile
        )
        if corrections is not None and self.on_corrections is not None:
            self.on_corrections(corrections)

    def statistics(self, kind: str, node_class: str) -> RatioStatistics | None:
        with self._lock:
            found = self._statistics.get((kind, node_class))
            return None if found is None else RatioStatistics(found.samples, found.log_mean, found.log_quantile)

    def corrections(self) -> Corrections:
        """The run-time ratios in effect, per node class and kind (those other than 1)."""
        with self._lock:
            return self._corrections()

    def dump(self) -> str:
        """Every statistic as JSON (``load`` reads it back)."""
        with self._lock:
            stored = _Stored(
                statistics=[
                    _StoredStatistics(
                        kind=PrimitiveKind(kind),
                        node_class=node_class,
                        samples=statistics.samples,
                        log_mean=statistics.log_mean,
                        log_quantile=statistics.log_quantile,
                    )
                    for (kind, node_class), statistics in sorted(self._statistics.items())
                ]
            )
        return stored.model_dump_json(indent=1)

    def load(self, text: str) -> int:
        """Replace every statistic by those ``dump`` wrote (how many); ValueError, changing nothing, when the
        text is not that."""
        try:
            stored = _Stored.model_validate(json.loads(text))
        except (ValueError, ValidationError) as error:
            raise ValueError(f"not run-time statistics this operator writes: {error}") from None
        with self._lock:
            self._statistics = {
                (entry.kind.value, entry.node_class): RatioStatistics(entry.samples, entry.log_mean, entry.log_quantile)
                for entry in stored.statistics
            }
            self._applied = {}
            for key, statistics in self._statistics.items():
                self._reapply(key, statistics)
            corrections = self._corrections()
        if self.on_corrections is not None:
            self.on_corrections(corrections)
        return len(stored.statistics)

    def _reapply(self, key: tuple[str, str], statistics: RatioStatistics) -> bool:
        """Move the ratio in effect for ``key`` when the statistics have drifted ``REAPPLY`` from it."""
        target, current = applied_ratio(statistics), self._applied.get(key, 1.0)
        if abs(math.log(target) - math.log(current)) < REAPPLY:
            return False
        if target == 1.0:
            del self._applied[key]
        else:
            self._applied[key] = target
        metrics.RUN_TIME_RATIO.labels(kind=key[0], node_class=key[1], statistic="applied").set(target)
        return True

    def _corrections(self) -> Corrections:
        corrections: Corrections = {}
        for (kind, node_class), ratio in self._applied.items():
            corrections.setdefault(node_class, {})[PrimitiveKind(kind)] = ratio
        return corrections
