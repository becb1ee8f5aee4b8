"""A safety net for any policy: never a node whose estimated finish is far behind the best candidate's.

``Guarded(policy, factor)`` is itself a ``Scheduler``. Its ``scores`` are the policy's, except that candidates
whose estimated finish (``Observation.estimated_finish``: wait, transfer, cold start and run time) exceeds
``factor`` times the best candidate's are scored minus infinity, so every caller that picks from scores (the engine,
the operator's controller, the extender) gets the guarded choice. A decision counts as guarded when the policy's
own pick was one of those; ``on_guard`` hears of each (the operator counts them in
``scale_sched_guarded_decisions_total``), and ``guarded``/``decisions`` keep the tally for reports.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .features import Observation
from .placement import Waiting, pick
from .schedulers import Scheduler

DEFAULT_GUARD_FACTOR = 2.0  # "far worse": twice as long to finish as the best candidate


def check_factor(factor: float) -> float:
    """``factor`` if it can be a guard's (0 means no guard); ValueError saying what to give otherwise."""
    if factor < 0.0 or 0.0 < factor <= 1.0:
        raise ValueError(
            f"{factor} would guard against choices as good as the best; give a factor above 1 "
            "(e.g. 2) or 0 for no guard"
        )
    return factor


def tally(scheduler: object) -> tuple[int, int]:
    """(guarded, decisions) so far: zeros for a scheduler that is not guarded."""
    return (scheduler.guarded, scheduler.decisions) if isinstance(scheduler, Guarded) else (0, 0)


def guarded_fraction(scheduler: object, since: tuple[int, int]) -> float:
    """The share of the decisions since ``since`` (a ``tally``) that the guard replaced; 0 without a guard."""
    guarded, decisions = tally(scheduler)
    made = decisions - since[1]
    return (guarded - since[0]) / made if made else 0.0


class Guarded:
    """``policy`` with its far-worse choices replaced by what it would pick among the reasonable candidates."""

    def __init__(
        self, policy: Scheduler, factor: float = DEFAULT_GUARD_FACTOR, on_guard: Callable[[], None] | None = None
    ) -> None:
        if not factor:
            raise ValueError("factor 0 means no guard: do not wrap the policy")
        check_factor(factor)
        self.policy, self.factor, self.on_guard = policy, factor, on_guard
        self.name = policy.name
        self.decisions = 0
        self.guarded = 0

    def reset(self, seed: int | None = None) -> None:
        self.policy.reset(seed)

    def priority(self, waiting: Waiting) -> float:
        return self.policy.priority(waiting)

    def scores(self, observation: Observation) -> np.ndarray:
        scores = self.policy.scores(observation)
        reasonable = self._reasonable(observation)
        if observation.candidates.any():  # without candidates nothing is decided (the extender may still ask)
            self._count(bool(reasonable[pick(scores, observation.candidates)]))
        return np.where(reasonable, scores, -np.inf)

    def choose(self, observation: Observation) -> int:
        # The policy's own choose (a round-robin cursor moves there); only a far-worse choice is replaced.
        index = self.policy.choose(observation)
        reasonable = self._reasonable(observation)
        self._count(bool(reasonable[index]))
        if reasonable[index]:
            return index
        return pick(np.where(reasonable, self.policy.scores(observation), -np.inf), observation.candidates)

    def _reasonable(self, observation: Observation) -> np.ndarray:
        finish = observation.estimated_finish
        best = finish[observation.candidates].min(initial=np.inf)
        reasonable: np.ndarray = observation.candidates & (finish <= self.factor * best)
        return reasonable

    def _count(self, reasonable: bool) -> None:
        self.decisions += 1
        if not reasonable:
            self.guarded += 1
            if self.on_guard is not None:
                self.on_guard()
