"""The engine's shortcuts against their definitions: the heap-ordered queue with keys kept current and set-aside
blocked primitives serves what a full re-sort would, true durations from normals are numpy's lognormal draws,
and forks carry that queue state."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from scale_scheduler.simulator import engine as engine_module
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine, simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.node_model import DURATION_LOG_MEAN, DURATION_SIGMA, duration_factor
from scale_scheduler.simulator.placement import PlacementRule, Waiting, candidates, is_fixed, queue_key
from scale_scheduler.simulator.schedulers import make_heuristic, queue_order


class _ResortingEngine(Engine):
    """Checks at every decision that the pending primitive is the first, by a fresh sort of every waiting
    primitive on the current keys, that some node may take now: the engine's definition of its queue."""

    checked = 0

    def next_decision(self):  # noqa: ANN201
        observation = super().next_decision()
        if observation is not None:
            waiting = [
                task
                for tasks in self._tasks
                for task in tasks
                if task.status in (engine_module._QUEUED, engine_module._BLOCKED)
            ]
            fresh = sorted(
                waiting,
                key=lambda task: queue_key(
                    self.priority,
                    Waiting(
                        task.primitive, task.downstream_seconds, self._unstarted_seconds[task.workflow], task.sequence
                    ),
                ),
            )
            first = next(task for task in fresh if candidates(task.primitive, self.state, task.mask, self.rule).any())
            assert first is self._pending
            self.checked += 1
        return observation


@pytest.mark.parametrize("rule", list(PlacementRule))
@pytest.mark.parametrize("method", ["srpt-eft", "heft"])
def test_the_queue_serves_what_a_full_resort_would_at_every_decision(method: str, rule: PlacementRule) -> None:
    cluster = heterogeneous(6, seed=2)
    workflows = generate_workload(cluster, 40, load=1.4, seed=2)  # overloaded: primitives wait and block
    scheduler = make_heuristic(method)
    engine = _ResortingEngine(cluster, workflows, seed=2, priority=scheduler.priority, rule=rule)
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
    assert engine.checked == engine.result().completed_primitives


def test_duration_factor_of_a_standard_normal_is_numpys_lognormal_bit_for_bit() -> None:
    for seed in range(20):
        drawn = np.random.default_rng([seed, 3]).lognormal(DURATION_LOG_MEAN, DURATION_SIGMA, size=(7, 50))
        normals = np.random.default_rng([seed, 3]).standard_normal(size=(7, 50))
        assert [duration_factor(z) for z in normals.ravel().tolist()] == drawn.ravel().tolist()


@pytest.mark.parametrize("rule", list(PlacementRule))
def test_a_fork_amid_blocked_and_rekeyed_primitives_plays_on_exactly_as_the_original(rule: PlacementRule) -> None:
    cluster = heterogeneous(6, seed=4)
    workflows = generate_workload(cluster, 40, load=1.4, seed=4)
    scheduler = make_heuristic("srpt-eft")  # its keys change whenever a workflow's primitive starts
    fresh = simulate(cluster, copy.deepcopy(workflows), scheduler, seed=4, rule=rule)
    engine = Engine(cluster, copy.deepcopy(workflows), seed=4, priority=scheduler.priority, rule=rule)
    for _ in range(70):
        engine.apply(scheduler.choose(engine.next_decision()))
    assert engine.next_decision() is not None
    fork = engine.fork()
    for played in (fork, engine):
        while (observation := played.next_decision()) is not None:
            played.apply(scheduler.choose(observation))
        result = played.result()
        assert (result.avg_response_time, result.p95_response_time, result.utilisation) == (
            fresh.avg_response_time,
            fresh.p95_response_time,
            fresh.utilisation,
        )
        assert [(p.workflow, p.primitive, p.node, p.start) for p in result.placements] == [
            (p.workflow, p.primitive, p.node, p.start) for p in fresh.placements
        ]


def test_only_priorities_blind_to_the_workflows_remaining_work_are_marked_fixed() -> None:
    # a fixed priority's waiting primitives are never re-keyed (the re-sort test above checks the queue under both)
    assert is_fixed(make_heuristic("heft").priority)
    assert is_fixed(make_heuristic("least-loaded").priority)
    assert not is_fixed(make_heuristic("srpt-eft").priority)  # its keys change as its workflow's work starts
    assert not is_fixed(lambda waiting: -waiting.workflow_remaining_seconds)  # unmarked: re-keyed, always correct
    # the orders a learned policy is deployed with are the same functions (LearnedScheduler.priority is the order)
    assert is_fixed(queue_order("upward-rank")) and not is_fixed(queue_order("srpt"))
