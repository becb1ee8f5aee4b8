"""rollout-heft: lookahead over HEFT in forks of the engine."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine, simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.rollout import RolloutHeftScheduler
from scale_scheduler.simulator.schedulers import Scheduler, make_heuristic


def test_rollout_heft_against_heft_on_a_fixed_seed_set() -> None:
    """With the true future (exact rollouts) lookahead improves on HEFT, as the cost-improvement property says; with
    sampled futures, what a scheduler can know, it stays close to HEFT: on these seeds, picked before looking at
    any result, it was 0.7% behind (the gain measured elsewhere is 1.5-2.5%: docs/simulator.md)."""
    heft, sampled, clairvoyant = [], [], []
    for seed in (11, 12, 13, 14):
        cluster = heterogeneous(8, seed=seed)
        workflows = generate_workload(cluster, 24, load=0.8, seed=seed)

        def mean_response(scheduler: Scheduler) -> float:
            return simulate(cluster, copy.deepcopy(workflows), scheduler, seed).avg_response_time  # noqa: B023

        heft.append(mean_response(make_heuristic("heft")))
        sampled.append(mean_response(RolloutHeftScheduler()))
        clairvoyant.append(mean_response(RolloutHeftScheduler(clairvoyant=True)))
    assert np.mean(clairvoyant) <= 0.97 * np.mean(heft)
    assert np.mean(sampled) <= 1.02 * np.mean(heft)


def test_rollout_heft_only_picks_candidates_and_is_reproducible() -> None:
    cluster = heterogeneous(6, seed=2)
    workflows = generate_workload(cluster, 10, load=0.9, seed=2)
    results = []
    for _ in range(2):
        scheduler = RolloutHeftScheduler(top_k=3, samples=1, horizon=8)
        scheduler.reset(2)
        engine = Engine(cluster, copy.deepcopy(workflows), seed=2, priority=scheduler.priority)
        while (observation := engine.next_decision()) is not None:
            node = scheduler.choose(observation)
            assert observation.candidates[node]
            engine.apply(node)
        results.append(engine.result().avg_response_time)
        assert scheduler.rollouts > 0
    assert results[0] == results[1]


def test_rollout_heft_refuses_a_live_cluster_and_bad_settings() -> None:
    cluster = heterogeneous(4, seed=0)
    engine = Engine(cluster, generate_workload(cluster, 2, load=0.5, seed=0), seed=0)
    observation = engine.next_decision()
    observation.fork = None  # what the operator's observations carry
    with pytest.raises(RuntimeError, match="cannot place on a live cluster"):
        RolloutHeftScheduler().choose(observation)
    with pytest.raises(ValueError, match="top_k >= 1"):
        RolloutHeftScheduler(top_k=0)
    with pytest.raises(ValueError, match="sampled ones do not apply"):
        RolloutHeftScheduler(clairvoyant=True, arrivals=2)
