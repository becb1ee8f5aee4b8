"""What the engine keeps current node by node (room per request shape, node load) equals what the shared
feature code computes from the state from scratch, at every decision."""

from __future__ import annotations

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule, candidates
from scale_scheduler.simulator.schedulers import make_heuristic


@pytest.mark.parametrize("rule", list(PlacementRule))
def test_primed_observation_fields_equal_those_computed_from_the_state(rule: PlacementRule) -> None:
    cluster = heterogeneous(10, seed=5)
    scheduler = make_heuristic("random")  # spreads work, fills node queues under node-queues
    scheduler.reset(5)
    engine = Engine(
        cluster, generate_workload(cluster, 40, load=1.2, seed=5), seed=5, rule=rule, priority=scheduler.priority
    )
    decisions = 0
    while (primed := engine.next_decision()) is not None:
        fresh = Observation(
            now=primed.now,
            primitive=primed.primitive,
            state=primed.state,
            parent_outputs=primed.parent_outputs,
            rule=rule,
        )
        for name in ("room", "fits_now", "node_load", "mask", "estimated_duration"):
            assert np.array_equal(getattr(primed, name), getattr(fresh, name)), name
        assert np.array_equal(primed.candidates, candidates(primed.primitive, primed.state, fresh.mask, rule))
        engine.apply(scheduler.choose(primed))
        decisions += 1
    assert decisions == engine.result().completed_primitives
