"""Engine.fork: a copy at a decision point that plays on exactly as the original, without touching it."""

from __future__ import annotations

import copy

import pytest
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine, SimulationResult, simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.schedulers import make_heuristic


def play(engine: Engine, method: str, decisions: int | None = None) -> None:
    scheduler = make_heuristic(method)
    while (decisions is None or decisions > 0) and (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        decisions = None if decisions is None else decisions - 1


def summary(result: SimulationResult) -> tuple[float, ...]:
    return (result.avg_response_time, result.p95_response_time, result.completed_primitives, result.utilisation)


@pytest.mark.parametrize("rule", list(PlacementRule))
@pytest.mark.parametrize("method", ["heft", "least-loaded"])
def test_a_fork_plays_on_exactly_as_a_fresh_engine_and_leaves_the_original_untouched(method: str, rule) -> None:
    cluster = heterogeneous(12, seed=3)
    workflows = generate_workload(cluster, 40, load=0.9, seed=3)
    fresh = simulate(cluster, copy.deepcopy(workflows), make_heuristic(method), seed=3, rule=rule)

    engine = Engine(cluster, copy.deepcopy(workflows), seed=3, priority=make_heuristic(method).priority, rule=rule)
    play(engine, method, decisions=60)  # mid-episode: workflows in flight, arrivals to come
    assert engine.next_decision() is not None  # a pending decision travels with the fork
    fork = engine.fork()
    play(fork, method)
    assert summary(fork.result()) == summary(fresh)
    play(engine, method)  # the original, after its fork ran to the end
    assert summary(engine.result()) == summary(fresh)


def test_a_fork_of_a_fork_and_a_sampled_future_are_reproducible() -> None:
    cluster = heterogeneous(8, seed=1)
    workflows = generate_workload(cluster, 30, load=0.8, seed=1)
    engine = Engine(cluster, workflows, seed=1)
    play(engine, "heft", decisions=40)
    engine.next_decision()
    outcomes = []
    for _ in range(2):
        sampled = engine.fork(future_seed=7).fork()
        play(sampled, "heft")
        outcomes.append(summary(sampled.result()))
    assert outcomes[0] == outcomes[1]  # the same seed, the same draws
    drawn = engine.fork(future_seed=7)
    play(drawn, "heft")
    assert summary(drawn.result()) == outcomes[0]  # a copy of a drawn future is that future (rollout-heft's samples)
    other = engine.fork(future_seed=8)
    play(other, "heft")
    assert summary(other.result()) != outcomes[0]
    # a sampled future has no arrivals to come unless asked for: fewer workflows complete than in the true one
    true_future = engine.fork()
    play(true_future, "heft")
    assert outcomes[0][2] < true_future.result().completed_primitives
    quiet, busier = engine.fork(future_seed=7), engine.fork(future_seed=7, arrivals=3)
    for fork in (quiet, busier):
        play(fork, "heft")
    assert busier.result().completed_workflows == quiet.result().completed_workflows + 3
    assert len(engine.workflows) == 30  # the sampled workflows live in the fork alone
    with pytest.raises(ValueError, match="need a future_seed"):
        engine.fork(arrivals=3)


def test_forking_a_finished_engine_is_an_error() -> None:
    cluster = heterogeneous(4, seed=0)
    engine = Engine(cluster, generate_workload(cluster, 3, load=0.5, seed=0), seed=0)
    play(engine, "heft")
    with pytest.raises(RuntimeError, match="finished engine"):
        engine.fork()
