"""The discrete-event engine: exact times on a hand-computed case, node queues, masking,
determinism, and the reward's defining identity."""

from __future__ import annotations

import copy

import pytest
from scale_scheduler.simulator.cluster import PROFILES, ClusterSpec, NodeSpec, heterogeneous
from scale_scheduler.simulator.engine import Engine, simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.schedulers import make_heuristic
from scale_scheduler.simulator.workflow import Primitive, Workflow


def two_cpu_nodes() -> ClusterSpec:
    return ClusterSpec(
        nodes=[
            NodeSpec.from_profile("cpu-a", PROFILES["cpu-small"]),
            NodeSpec.from_profile("cpu-b", PROFILES["cpu-small"]),
        ]
    )


def chain(name: str = "chain", arrival: float = 0.0) -> Workflow:
    # tool calls: 2 s of work at speed 1.0, cold start 1 s on first use; tiny outputs (no transfer on one node)
    steps = [
        Primitive("a", PrimitiveKind.TOOL_CALL, output_megabytes=0.0),
        Primitive("b", PrimitiveKind.TOOL_CALL, depends_on=["a"], output_megabytes=0.0),
        Primitive("c", PrimitiveKind.TOOL_CALL, depends_on=["b"], output_megabytes=0.0),
    ]
    return Workflow(name, steps, arrival_time=arrival)


def run_all_on(engine: Engine, node: int) -> None:
    while engine.next_decision() is not None:
        engine.apply(node)


def test_three_step_chain_on_one_node_has_the_hand_computed_response_time() -> None:
    engine = Engine(two_cpu_nodes(), [chain()], seed=0, stochastic=False)
    run_all_on(engine, 0)
    result = engine.result()
    assert result.avg_response_time == pytest.approx(1.0 + 3 * 2.0)  # one cold start, three 2 s steps
    assert result.completed_primitives == 3
    assert engine.reward_since_last() == pytest.approx(-7.0)  # return = minus total response time


def test_under_node_queues_a_full_node_queues_in_order() -> None:
    heavy = [Workflow(f"w{i}", [Primitive("x", PrimitiveKind.CODE_EXEC, cpu_millicores=8000)]) for i in range(2)]
    engine = Engine(two_cpu_nodes(), heavy, seed=0, stochastic=False, rule=PlacementRule.NODE_QUEUES)
    run_all_on(engine, 0)  # 8 cores each on an 8-core node: the second waits for the first
    result = engine.result()
    first = 3.0 + 4.0 / 0.7  # cold start + work / speed
    assert sorted(p.finish for p in result.placements) == pytest.approx([first, first + 4.0 / 0.7])


def test_masked_node_is_refused() -> None:
    cluster = ClusterSpec(
        nodes=[NodeSpec.from_profile("cpu", PROFILES["cpu-small"]), NodeSpec.from_profile("gpu", PROFILES["gpu-small"])]
    )
    llm = Workflow("w", [Primitive("g", PrimitiveKind.LLM_GENERATE, input_tokens=100, output_tokens=10)])
    engine = Engine(cluster, [llm], seed=0)
    observation = engine.next_decision()
    assert observation is not None and not observation.mask[0] and observation.mask[1]
    with pytest.raises(ValueError, match="not a candidate"):
        engine.apply(0)


def test_same_seed_same_result_and_rewards_sum_to_minus_total_response_time() -> None:
    cluster = heterogeneous(16, seed=3)
    workload = generate_workload(cluster, 30, 0.7, seed=3)
    first = simulate(cluster, copy.deepcopy(workload), make_heuristic("least-loaded"), seed=5)
    second = simulate(cluster, copy.deepcopy(workload), make_heuristic("least-loaded"), seed=5)
    assert first.to_dict() == second.to_dict()
    engine = Engine(cluster, copy.deepcopy(workload), seed=5)
    scheduler, total = make_heuristic("least-loaded"), 0.0
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        total += engine.reward_since_last()
    total += engine.reward_since_last()
    result = engine.result()
    assert total == pytest.approx(-result.avg_response_time * result.completed_workflows)


def test_no_node_ever_exceeds_its_allocatable() -> None:
    cluster = heterogeneous(8, seed=1)
    engine = Engine(cluster, generate_workload(cluster, 40, 0.9, seed=1), seed=1)
    scheduler = make_heuristic("random")
    while (observation := engine.next_decision()) is not None:
        state = observation.state
        assert (state.free_cpu >= 0).all() and (state.free_memory >= 0).all() and (state.free_gpus >= 0).all()
        engine.apply(scheduler.choose(observation))
