"""The placement rules on hand-computed cases: late binding waits in the cluster-wide queue and starts
on the first node that frees, node queues wait behind the chosen node; the queue's order is the
scheduler's priority; a primitive without room never blocks one that has it."""

from __future__ import annotations

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import PROFILES, ClusterSpec, NodeSpec
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.placement import PlacementRule, parse_rule
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.schedulers import HeftScheduler, Scheduler, make_heuristic
from scale_scheduler.simulator.workflow import Primitive, Workflow

COLD = 3.0  # code_exec's one-time cold start
SPEED = 0.7  # code_exec on cpu-small


class FirstNode(HeftScheduler):
    """Prefers the lowest node index, whatever it costs (a deliberately short-sighted scheduler)."""

    name = "first-node"

    def scores(self, observation: Observation) -> np.ndarray:
        return -np.arange(observation.state.num_nodes, dtype=np.float64)


def cpu_nodes(count: int) -> ClusterSpec:
    return ClusterSpec(nodes=[NodeSpec.from_profile(f"cpu-{i}", PROFILES["cpu-small"]) for i in range(count)])


def whole_node_job(name: str, seconds: float, arrival: float = 0.0) -> Workflow:
    """One code_exec primitive asking for a whole cpu-small node, running ``seconds`` there once warm."""
    return Workflow(
        name,
        [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=8000, work_seconds=seconds * SPEED)],
        arrival_time=arrival,
    )


def finishes(
    cluster: ClusterSpec, jobs: list[Workflow], scheduler: Scheduler, rule: PlacementRule = PlacementRule.LATE_BINDING
) -> dict[str, tuple[str, float, float]]:
    """(node, start, finish) per workflow, with durations exactly the estimates."""
    engine = Engine(cluster, jobs, seed=0, stochastic=False, priority=scheduler.priority, rule=rule)
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
    return {p.workflow: (p.node, p.start, p.finish) for p in engine.result().placements}


def test_late_binding_starts_on_the_first_node_that_frees_not_the_preferred_one() -> None:
    jobs = [whole_node_job("long", 10.0), whole_node_job("short", 2.0), whole_node_job("third", 2.0)]
    late = finishes(cpu_nodes(2), jobs, FirstNode())
    assert late["long"] == ("cpu-0", 0.0, pytest.approx(COLD + 10.0))
    assert late["short"] == ("cpu-1", 0.0, pytest.approx(COLD + 2.0))
    # waited in the cluster-wide queue; cpu-1 freed first (5 s), is warm, so 2 s more
    assert late["third"] == ("cpu-1", pytest.approx(COLD + 2.0), pytest.approx(COLD + 4.0))
    queued = finishes(cpu_nodes(2), jobs, FirstNode(), PlacementRule.NODE_QUEUES)
    # the same scheduler under node queues plans everything for cpu-0 and waits behind "long"
    assert queued["short"] == ("cpu-0", pytest.approx(COLD + 10.0), pytest.approx(COLD + 12.0))
    assert queued["third"] == ("cpu-0", pytest.approx(COLD + 12.0), pytest.approx(COLD + 14.0))


def test_the_queue_serves_the_schedulers_priority_when_room_frees() -> None:
    # one node busy with "first"; "big" and then "small" arrive while it runs
    jobs = [
        whole_node_job("first", 4.0),
        whole_node_job("big", 8.0, arrival=1.0),
        whole_node_job("small", 1.0, arrival=2.0),
    ]
    fifo = finishes(cpu_nodes(1), jobs, make_heuristic("heft"))
    assert fifo["big"][1] == pytest.approx(COLD + 4.0) and fifo["small"][1] == pytest.approx(COLD + 12.0)
    srpt = finishes(cpu_nodes(1), jobs, make_heuristic("srpt-eft"))
    assert srpt["small"][1] == pytest.approx(COLD + 4.0) and srpt["big"][1] == pytest.approx(COLD + 5.0)


def test_a_primitive_without_room_does_not_block_one_that_has_it() -> None:
    cluster = ClusterSpec(
        nodes=[
            NodeSpec.from_profile("cpu-0", PROFILES["cpu-small"]),
            NodeSpec.from_profile("big-0", PROFILES["cpu-large"]),
        ]
    )
    huge = Workflow("huge", [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=64000, work_seconds=4.0)])
    blocker = Workflow("blocker", [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=1000, work_seconds=4.0)])
    waiting_huge = Workflow(
        "later-huge",
        [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=64000, work_seconds=4.0)],
        arrival_time=0.5,
    )
    small = Workflow(
        "small", [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=1000, work_seconds=1.4)], arrival_time=1.0
    )
    result = finishes(cluster, [huge, blocker, waiting_huge, small], FirstNode())
    # "later-huge" fits only on big-0, which "huge" fills; "small" arrives after it and is placed at once
    assert result["small"][:2] == ("cpu-0", 1.0)
    assert result["later-huge"][0] == "big-0" and result["later-huge"][1] == pytest.approx(result["huge"][2])


def test_an_unknown_rule_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="late-binding, node-queues"):
        parse_rule("per-node-fifo")
