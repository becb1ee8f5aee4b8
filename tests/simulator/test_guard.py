"""The guard replaces a far-worse choice by a reasonable one, counts it, and leaves good policies alone."""

from __future__ import annotations

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.guard import Guarded
from scale_scheduler.simulator.schedulers import HeftScheduler, Scheduler, make_heuristic


class SlowestNode(HeftScheduler):
    """A constructed bad policy: the candidate estimated to finish last."""

    name = "slowest"

    def scores(self, observation: Observation) -> np.ndarray:
        finish = observation.estimated_finish
        return np.where(observation.candidates, finish, -np.inf)


def _run(scheduler: Scheduler, seed: int = 3) -> tuple[Engine, int]:
    spec = heterogeneous(16, seed=seed)
    engine = Engine(spec, generate_workload(spec, 20, load=0.7, seed=seed), seed=seed, priority=scheduler.priority)
    guarded_picks = 0
    while (observation := engine.next_decision()) is not None:
        index = scheduler.choose(observation)
        finish = observation.estimated_finish
        best = finish[observation.candidates].min()
        assert observation.candidates[index]
        if isinstance(scheduler, Guarded):
            assert finish[index] <= scheduler.factor * best, "a far-worse node got through the guard"
        guarded_picks += int(finish[index] > 2.0 * best)
        engine.apply(index)
    return engine, guarded_picks


def test_guard_fires_on_a_constructed_bad_policy_and_replaces_its_choice() -> None:
    _, bad_unguarded = _run(SlowestNode())
    assert bad_unguarded > 0, "the constructed policy must make far-worse choices for this test to mean anything"
    fired: list[int] = []
    guarded = Guarded(SlowestNode(), factor=2.0, on_guard=lambda: fired.append(1))
    _run(guarded)
    assert guarded.guarded > 0 and len(fired) == guarded.guarded
    assert guarded.decisions > guarded.guarded


@pytest.mark.parametrize("policy", ["heft", "srpt-eft"])
def test_guard_never_fires_on_earliest_finish_policies(policy: str) -> None:
    guarded = Guarded(make_heuristic(policy))
    engine, _ = _run(guarded)
    plain, _ = _run(make_heuristic(policy))
    assert guarded.decisions > 0 and guarded.guarded == 0
    assert engine.result().avg_response_time == plain.result().avg_response_time


def test_scores_mask_the_far_worse_nodes_for_callers_that_pick_from_scores() -> None:
    spec = heterogeneous(16, seed=1)
    engine = Engine(spec, generate_workload(spec, 10, load=0.7, seed=1), seed=1)
    masked = 0
    while (observation := engine.next_decision()) is not None:
        scores = Guarded(SlowestNode()).scores(observation)
        finish = observation.estimated_finish
        far = observation.candidates & (finish > 2.0 * finish[observation.candidates].min())
        assert np.all(np.isneginf(scores[far])) and np.all(np.isfinite(scores[observation.candidates & ~far]))
        masked += int(far.sum())
        engine.apply(HeftScheduler().choose(observation))
    assert masked > 0, "no decision had a far-worse candidate: the test would pass on any scores"


def test_a_factor_of_one_or_less_is_refused() -> None:
    with pytest.raises(ValueError, match="give a factor above 1"):
        Guarded(make_heuristic("heft"), factor=1.0)
