"""How far the node model is off, learned from finished pods: each one's observed run time against the static
node model's estimate (the prior), kept as robust running statistics under two keys, exported as metrics, and
applied once a key has ``MIN_SAMPLES`` pods (docs/node-classes.md):

- per (primitive kind, node class): the run-time ratio that corrects that class's speed for that kind, handed to
  the live view (``cluster.corrected``);
- per (workflow template, primitive): what is left after that class correction, the ratio that corrects that
  primitive's declared work in later workflows of the template (``node_model.with_work_scaled``, applied when the
  operator plans a workflow). The template is ``spec.template``, else a hash of the DAG (``template_key``).

Each key learns what the other leaves: the class statistics see observed / (prior x the template primitive's
running mean), the template statistics observed / (prior x the class's running mean), both means as they stood
before this pod, and the template nothing while the class has no pod yet (the first is the class's). On the log
scale that is one gradient step of the additive model log(observed / prior) = class + template, so the two settle
together without swinging (each pod's error shrinks to 1 - 2 x ``WEIGHT`` of itself). Running means, not the ratios
in effect, because those wait for ``MIN_SAMPLES`` pods: meanwhile both would learn a class's 2x and, once applied,
estimate 4x. A class that is slow for every template is the class's (every template on it gains at once, a new one
too); a primitive slow on every class is its template's. What a class and the templates seen on it have in common
the pods do not pin down (they fix each sum, not the split): it is split as they come, every (class, template)
estimate is right either way, and a template new to the class starts from the class's share. The product of the two
ratios in effect corrects an estimate (the class's divides the node's speed, the template's multiplies the declared
work); the template's is clipped to ``[1/TEMPLATE_RATIO_LIMIT, TEMPLATE_RATIO_LIMIT]``.
``estimate_store`` keeps both across restarts in a ConfigMap; ``scale-sched calibrate`` exports the class ratios as
a node model.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from scale_scheduler.operator.core import metrics
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Workflow

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

# A template ratio further than this from 1 is clipped to it: after the class correction, a primitive 8x off its
# declared work is more likely a broken run than a work estimate, and one template must not make its primitives
# look free or impossible to every policy.
TEMPLATE_RATIO_LIMIT = 8.0
# Bounds on what is kept per template (the ConfigMap holds at most 1 MiB; each statistic takes ~130 bytes): past
# either, the least recently seen template is forgotten whole. Workflows without spec.template are keyed by their
# DAG, so one-off DAGs pass through and recurring ones stay.
MAX_TEMPLATES = 128
MAX_TEMPLATE_STATISTICS = 2048

Key = tuple[str, str]  # (kind, node class) or (template, primitive)
# node class -> kind -> observed / prior run time: what the live view divides that class's speeds by
Corrections = dict[str, dict[PrimitiveKind, float]]
# template -> primitive name -> observed / (prior x class ratio): what a primitive's declared work is multiplied by
WorkCorrections = dict[str, dict[str, float]]


def template_key(workflow: Workflow) -> str:
    """What a workflow's primitives are learned under: its ``spec.template``, else ``dag-`` and a hash of its
    primitives' names, kinds and dependencies (not their declared work: runs of one DAG may declare different
    token counts or work seconds, and a ratio corrects whichever is declared)."""
    if workflow.template:
        return workflow.template
    structure = sorted((p.name, p.kind.value, sorted(set(p.depends_on))) for p in workflow.primitives)
    return "dag-" + hashlib.sha256(json.dumps(structure).encode()).hexdigest()[:12]


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


def applied_work_ratio(statistics: RatioStatistics) -> float:
    """A template primitive's ratio: ``applied_ratio``, clipped to ``TEMPLATE_RATIO_LIMIT`` either way."""
    return min(max(applied_ratio(statistics), 1.0 / TEMPLATE_RATIO_LIMIT), TEMPLATE_RATIO_LIMIT)


def _moved(applied: dict[Key, float], key: Key, target: float) -> bool:
    """Move the ratio in effect for ``key`` to ``target`` when it has drifted ``REAPPLY`` from it (1: none)."""
    if abs(math.log(target) - math.log(applied.get(key, 1.0))) < REAPPLY:
        return False
    if target == 1.0:
        del applied[key]
    else:
        applied[key] = target
    return True


class _StoredRatio(BaseModel):
    """One ``RatioStatistics`` as stored; what it is kept for is the subclass's."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(ge=1)
    log_mean: float = Field(allow_inf_nan=False)
    log_quantile: float = Field(allow_inf_nan=False)


class _StoredStatistics(_StoredRatio):
    kind: PrimitiveKind
    node_class: str = Field(min_length=1)


class _StoredPrimitive(_StoredRatio):
    primitive: str = Field(min_length=1)


class _StoredTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    template: str = Field(min_length=1)
    primitives: list[_StoredPrimitive]


class _Stored(BaseModel):
    """What ``RunTimes.dump`` writes: versioned, so a later format is refused rather than misread. Version 1 (no
    templates) is read as having none; templates are listed least recently seen first."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1, 2] = 2
    statistics: list[_StoredStatistics]
    templates: list[_StoredTemplate] = Field(default_factory=list)


class RunTimes:
    """Observed / prior run time per (kind, node class) and per (template, primitive); ``observe`` is the live
    view's ``on_finished``. ``on_corrections`` (the live view's ``set_speed_corrections``) hears each change of
    ``corrections()``, ``on_work_corrections`` (its ``set_work_corrections``) each of ``work_corrections()``."""

    def __init__(
        self,
        on_corrections: Callable[[Corrections], None] | None = None,
        on_work_corrections: Callable[[WorkCorrections], None] | None = None,
    ) -> None:
        self.on_corrections = on_corrections
        self.on_work_corrections = on_work_corrections
        self._lock = threading.Lock()
        self._statistics: dict[Key, RatioStatistics] = {}
        self._applied: dict[Key, float] = {}  # only ratios other than 1
        # template -> primitive -> statistics, least recently seen template first (the one evicted)
        self._templates: OrderedDict[str, dict[str, RatioStatistics]] = OrderedDict()
        self._template_statistics = 0  # statistics over every template
        self._work_applied: dict[Key, float] = {}  # (template, primitive): only ratios other than 1
        self.version = 0  # counts changes, so the store writes only when there is something new

    def observe(
        self,
        kind: str,
        node_class: str,
        observed_seconds: float,
        estimated_seconds: float,
        prior_seconds: float,
        template: str = "",
        primitive: str = "",
    ) -> None:
        """One finished pod: its observed run time, the estimate it was placed with (the error metric), the
        static model's estimate (what the statistics learn from) and, when known, its workflow's template and its
        primitive's name. Pods with no positive times say nothing. Each key learns what the other's mean before
        this pod leaves of observed / prior (module docstring)."""
        if observed_seconds <= 0 or estimated_seconds <= 0 or prior_seconds <= 0:
            return
        key, ratio = (kind, node_class), observed_seconds / prior_seconds
        with self._lock:
            statistics = self._statistics.setdefault(key, RatioStatistics())
            class_mean = statistics.mean if statistics.samples else None
            learned = self._templates.get(template, {}).get(primitive) if template and primitive else None
            statistics.add(ratio / (learned.mean if learned is not None else 1.0))
            self.version += 1
            changed = self._reapply(key, statistics)
            mean, quantile = statistics.mean, statistics.quantile
            corrections = self._corrections() if changed else None
            work_changed = False
            if template and primitive and class_mean is not None:  # a class's first pod is the class's
                work_changed = self._observe_template(template, primitive, ratio / class_mean)
            work_corrections = self._work_corrections() if work_changed else None
        metrics.ESTIMATE_ERROR.labels(kind=kind).observe(observed_seconds / estimated_seconds)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic="mean").set(mean)
        metrics.RUN_TIME_RATIO.labels(kind=kind, node_class=node_class, statistic=f"p{QUANTILE * 100:.0f}").set(
            quantile
        )
        if corrections is not None and self.on_corrections is not None:
            self.on_corrections(corrections)
        if work_corrections is not None and self.on_work_corrections is not None:
            self.on_work_corrections(work_corrections)

    def statistics(self, kind: str, node_class: str) -> RatioStatistics | None:
        with self._lock:
            return _copy(self._statistics.get((kind, node_class)))

    def template_statistics(self, template: str, primitive: str) -> RatioStatistics | None:
        with self._lock:
            return _copy(self._templates.get(template, {}).get(primitive))

    def templates(self) -> list[str]:
        """The templates kept, least recently seen first."""
        with self._lock:
            return list(self._templates)

    def corrections(self) -> Corrections:
        """The run-time ratios in effect, per node class and kind (those other than 1)."""
        with self._lock:
            return self._corrections()

    def work_corrections(self) -> WorkCorrections:
        """The work ratios in effect, per template and primitive (those other than 1)."""
        with self._lock:
            return self._work_corrections()

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
                ],
                templates=[
                    _StoredTemplate(
                        template=template,
                        primitives=[
                            _StoredPrimitive(
                                primitive=primitive,
                                samples=statistics.samples,
                                log_mean=statistics.log_mean,
                                log_quantile=statistics.log_quantile,
                            )
                            for primitive, statistics in sorted(primitives.items())
                        ],
                    )
                    for template, primitives in self._templates.items()
                ],
            )
        return stored.model_dump_json(indent=1)

    def load(self, text: str) -> int:
        """Replace every statistic by those ``dump`` wrote, of this version or the one before (how many, both
        keys); ValueError, changing nothing, when the text is not that. Past the bounds, the least recently seen
        templates are left out."""
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
            self._templates, self._template_statistics, self._work_applied = OrderedDict(), 0, {}
            for entry in stored.templates:
                self._templates[entry.template] = {
                    item.primitive: RatioStatistics(item.samples, item.log_mean, item.log_quantile)
                    for item in entry.primitives
                }
                self._template_statistics += len(entry.primitives)
            self._evict()
            for template, primitives in self._templates.items():
                for primitive, statistics in primitives.items():
                    _moved(self._work_applied, (template, primitive), applied_work_ratio(statistics))
            corrections, work_corrections = self._corrections(), self._work_corrections()
            count = len(self._statistics) + self._template_statistics
        if self.on_corrections is not None:
            self.on_corrections(corrections)
        if self.on_work_corrections is not None:
            self.on_work_corrections(work_corrections)
        return count

    def _observe_template(self, template: str, primitive: str, residual: float) -> bool:
        """Add one residual to (template, primitive), which becomes the most recently seen template; whether the
        work ratios in effect changed (a move, or an eviction that took ratios with it)."""
        primitives = self._templates.get(template)
        if primitives is None:
            primitives = self._templates[template] = {}
        self._templates.move_to_end(template)
        statistics = primitives.get(primitive)
        if statistics is None:
            statistics = primitives[primitive] = RatioStatistics()
            self._template_statistics += 1
        statistics.add(residual)
        changed = _moved(self._work_applied, (template, primitive), applied_work_ratio(statistics))
        return self._evict() or changed

    def _evict(self) -> bool:
        """Forget least recently seen templates until the bounds hold (never the one just seen, which is last);
        whether a ratio in effect went with them."""
        changed = False
        while len(self._templates) > 1 and (
            len(self._templates) > MAX_TEMPLATES or self._template_statistics > MAX_TEMPLATE_STATISTICS
        ):
            template, primitives = self._templates.popitem(last=False)
            self._template_statistics -= len(primitives)
            for primitive in primitives:
                changed |= self._work_applied.pop((template, primitive), None) is not None
        return changed

    def _reapply(self, key: Key, statistics: RatioStatistics) -> bool:
        """Move the class ratio in effect for ``key`` when the statistics have drifted ``REAPPLY`` from it."""
        target = applied_ratio(statistics)
        if not _moved(self._applied, key, target):
            return False
        metrics.RUN_TIME_RATIO.labels(kind=key[0], node_class=key[1], statistic="applied").set(target)
        return True

    def _corrections(self) -> Corrections:
        corrections: Corrections = {}
        for (kind, node_class), ratio in self._applied.items():
            corrections.setdefault(node_class, {})[PrimitiveKind(kind)] = ratio
        return corrections

    def _work_corrections(self) -> WorkCorrections:
        corrections: WorkCorrections = {}
        for (template, primitive), ratio in self._work_applied.items():
            corrections.setdefault(template, {})[primitive] = ratio
        return corrections


def _copy(statistics: RatioStatistics | None) -> RatioStatistics | None:
    return (
        None
        if statistics is None
        else RatioStatistics(statistics.samples, statistics.log_mean, statistics.log_quantile)
    )
