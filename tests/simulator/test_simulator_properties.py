"""Engine invariants over random clusters and workloads (hypothesis), plus bad-input errors."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scale_scheduler.simulator.cluster import PROFILES, ClusterSpec, NodeSpec, heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.node_model import estimated_durations, estimated_durations_matrix
from scale_scheduler.simulator.placement import PlacementRule, Waiting
from scale_scheduler.simulator.primitives import KIND_INDEX, PrimitiveKind
from scale_scheduler.simulator.schedulers import make_heuristic
from scale_scheduler.simulator.state import ClusterState
from scale_scheduler.simulator.workflow import Primitive, Workflow, WorkflowValidationError


class _Recorder:
    """Wraps a scheduler and records every observation's masks (can ever run, may pick now) and the choice."""

    def __init__(self, name: str) -> None:
        self.inner = make_heuristic(name)
        self.choices: list[tuple[np.ndarray, np.ndarray, int]] = []

    def priority(self, waiting: Waiting) -> float:
        return self.inner.priority(waiting)

    def choose(self, observation) -> int:  # noqa: ANN001 - Observation
        node = self.inner.choose(observation)
        self.choices.append((observation.mask.copy(), observation.candidates.copy(), node))
        return node


def _run(nodes: int, workflows: int, seed: int, policy: str, rule: PlacementRule) -> tuple[Engine, _Recorder]:
    cluster = heterogeneous(nodes, seed=seed)
    workload = generate_workload(cluster, workflows, load=0.9, seed=seed, bursty=seed % 2 == 0)
    scheduler = _Recorder(policy)
    scheduler.inner.reset(seed)
    engine = Engine(cluster, workload, seed, priority=scheduler.priority, rule=rule)
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
    return engine, scheduler


runs = given(
    nodes=st.integers(5, 24),
    workflows=st.integers(1, 25),
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(["random", "round-robin", "least-loaded", "k8s-default", "heft", "srpt-eft"]),
    rule=st.sampled_from(list(PlacementRule)),
)
quick = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@runs
@quick
def test_no_node_ever_exceeds_its_allocatable(
    nodes: int, workflows: int, seed: int, policy: str, rule: PlacementRule
) -> None:
    engine, _ = _run(nodes, workflows, seed, policy, rule)
    cluster = engine.cluster
    requests = {(w.name, p.name): p for w in engine.workflows for p in w.primitives}
    # sweep start (+request) and finish (-request) events per node; finishes first at equal times
    for index, node in enumerate(cluster.nodes):
        events = []
        for pl in engine.result().placements:
            if pl.node == node.name:
                p = requests[(pl.workflow, pl.primitive)]
                amount = np.array([p.cpu_millicores, p.memory_bytes, p.gpus])
                events += [(pl.start, 1, amount), (pl.finish, 0, -amount)]
        used = np.zeros(3)
        capacity = np.array([node.cpu_millicores, node.memory_bytes, node.gpus])
        for _, _, delta in sorted(events, key=lambda e: (e[0], e[1])):
            used = used + delta
            assert np.all(used <= capacity), f"node {index} over its allocatable: {used} > {capacity}"


@runs
@quick
def test_no_primitive_starts_before_its_parents_finish(
    nodes: int, workflows: int, seed: int, policy: str, rule: PlacementRule
) -> None:
    engine, _ = _run(nodes, workflows, seed, policy, rule)
    placements = {(pl.workflow, pl.primitive): pl for pl in engine.result().placements}
    assert len(placements) == sum(len(w.primitives) for w in engine.workflows)
    for workflow in engine.workflows:
        for p in workflow.primitives:
            mine = placements[(workflow.name, p.name)]
            assert mine.ready >= workflow.arrival_time
            for parent in p.depends_on:
                assert mine.ready >= placements[(workflow.name, parent)].finish
                assert mine.start >= placements[(workflow.name, parent)].finish


@runs
@quick
def test_only_candidates_are_chosen(nodes: int, workflows: int, seed: int, policy: str, rule: PlacementRule) -> None:
    engine, recorder = _run(nodes, workflows, seed, policy, rule)
    assert recorder.choices
    for mask, allowed, node in recorder.choices:
        assert mask[node] and allowed[node]
        if rule is PlacementRule.LATE_BINDING:
            assert not (allowed & ~mask).any()
    names = [n.name for n in engine.cluster.nodes]
    gpu_nodes = {n.name for n in engine.cluster.nodes if n.gpus > 0}
    kinds = {(w.name, p.name): p.kind for w in engine.workflows for p in w.primitives}
    for pl in engine.result().placements:
        assert pl.node in names
        if kinds[(pl.workflow, pl.primitive)] is PrimitiveKind.LLM_GENERATE:
            assert pl.node in gpu_nodes


def test_apply_rejects_a_masked_node() -> None:
    cluster = ClusterSpec(
        nodes=[NodeSpec.from_profile("cpu", PROFILES["cpu-small"]), NodeSpec.from_profile("gpu", PROFILES["gpu-small"])]
    )
    engine = Engine(
        cluster,
        [Workflow("w", [Primitive("gen", PrimitiveKind.LLM_GENERATE, input_tokens=100, output_tokens=10)])],
        seed=0,
    )
    observation = engine.next_decision()
    assert observation is not None and not observation.mask[0]
    with pytest.raises(ValueError, match="gen"):
        engine.apply(0)


def _engine_error(primitives: list[Primitive]) -> WorkflowValidationError:
    with pytest.raises(WorkflowValidationError) as caught:
        Engine(heterogeneous(4, seed=0), [Workflow("bad", primitives)], seed=0)
    return caught.value


def test_cycle_names_a_primitive_on_the_cycle() -> None:
    error = _engine_error(
        [
            Primitive("a", PrimitiveKind.TOOL_CALL, depends_on=["b"]),
            Primitive("b", PrimitiveKind.TOOL_CALL, depends_on=["a"]),
        ]
    )
    assert error.reason == "Cycle" and error.primitive in {"a", "b"} and error.primitive in str(error)


def test_cycle_error_spells_out_the_whole_cycle_from_its_first_listed_primitive() -> None:
    error = _engine_error(
        [
            Primitive("root", PrimitiveKind.TOOL_CALL),
            Primitive("a", PrimitiveKind.TOOL_CALL, depends_on=["c", "root"]),
            Primitive("b", PrimitiveKind.TOOL_CALL, depends_on=["a"]),
            Primitive("c", PrimitiveKind.TOOL_CALL, depends_on=["b"]),
        ]
    )
    assert error.primitive == "a"
    assert str(error).endswith("dependency cycle: a → c → b → a")  # a depends on c, c on b, b on a


def test_unknown_dependency_names_the_primitive() -> None:
    error = _engine_error([Primitive("a", PrimitiveKind.TOOL_CALL, depends_on=["ghost"])])
    assert error.primitive == "a" and "ghost" in str(error)


def test_duplicate_name_names_the_primitive() -> None:
    error = _engine_error([Primitive("a", PrimitiveKind.TOOL_CALL), Primitive("a", PrimitiveKind.CODE_EXEC)])
    assert error.primitive == "a" and "a" in str(error)


def test_impossible_request_names_the_primitive() -> None:
    error = _engine_error([Primitive("huge", PrimitiveKind.CODE_EXEC, cpu_millicores=10_000_000)])
    assert error.primitive == "huge" and "huge" in str(error)


@given(nodes=st.integers(1, 30), seed=st.integers(0, 1000))
@settings(max_examples=20, deadline=None)
def test_batched_estimates_equal_the_per_primitive_node_model(nodes: int, seed: int) -> None:
    cluster = heterogeneous(nodes, seed=seed)
    state = ClusterState(cluster)
    primitives = [p for w in generate_workload(cluster, 5, load=0.7, seed=seed) for p in w.primitives]
    batched = estimated_durations_matrix(primitives, state.speed, state.prefill_tps, state.decode_tps)
    single = np.stack(
        [
            estimated_durations(p, state.speed[:, KIND_INDEX[p.kind]], state.prefill_tps, state.decode_tps)
            for p in primitives
        ]
    )
    assert np.array_equal(batched, single)
