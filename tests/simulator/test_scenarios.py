"""The OOD scenario suite: every scenario builds and runs, is deterministic per seed, and really differs
from the training generator (heterogeneous mix, PROFILES speeds, the five shapes)."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import NODE_CLASS_LABEL, PROFILES, ClusterSpec, class_counts
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.generators import SHAPES
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.scenarios import (
    GPU_CLASSES,
    OOD_SHAPES,
    SCENARIOS,
    TINY_MAX_NODES,
    TINY_WORKFLOWS,
    WORLD_NODES,
    all_gpu,
    cpu_heavy,
    draw_world,
    get_scenario,
    lattice,
    long_chain,
    montage,
    off_profile,
    random_mix,
    skewed,
    wide_tool_fanout,
)
from scale_scheduler.simulator.schedulers import make_heuristic
from scale_scheduler.simulator.workflow import validate

FAMILIES = {
    "all-gpu": all_gpu,
    "cpu-heavy": cpu_heavy,
    "skewed": skewed,
    "random-mix": random_mix,
    "off-profile": off_profile,
}


def mix(cluster: ClusterSpec) -> dict[str, int]:
    counts = Counter(node.node_class for node in cluster.nodes)
    return {c: counts.get(c, 0) for c in PROFILES}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_builds_tiny_and_least_loaded_and_heft_complete_every_workflow(name: str) -> None:
    scenario = get_scenario(name)
    cluster, workflows = scenario.build(seed=0, size="tiny")
    assert len(workflows) == TINY_WORKFLOWS
    assert len(cluster) == (scenario.nodes if scenario.nodes_are_the_point else min(scenario.nodes, TINY_MAX_NODES))
    for method in ("least-loaded", "heft"):
        result = simulate(cluster, workflows, make_heuristic(method), seed=0)
        assert result.completed_workflows == len(workflows), method


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_same_seed_gives_identical_cluster_and_workflows_and_another_seed_differs(name: str) -> None:
    scenario = get_scenario(name)
    cluster, workflows = scenario.build(seed=3, size="tiny")
    again_cluster, again_workflows = scenario.build(seed=3, size="tiny")
    other_cluster, other_workflows = scenario.build(seed=4, size="tiny")
    assert cluster.model_dump() == again_cluster.model_dump()
    assert workflows == again_workflows
    assert cluster.model_dump() != other_cluster.model_dump()
    assert workflows != other_workflows


def test_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown scenario 'nope'.*all-gpu.*bursty"):
        get_scenario("nope")


def test_sizes_default_tiny_and_a_factor() -> None:
    scenario = get_scenario("montage")
    assert scenario.size("default") == (scenario.nodes, scenario.workflows)
    assert scenario.size("tiny") == (min(scenario.nodes, TINY_MAX_NODES), TINY_WORKFLOWS)
    assert scenario.size(0.5) == (scenario.nodes, scenario.workflows // 2)
    with pytest.raises(ValueError, match="unknown scenario size"):
        scenario.size("huge")


def test_registry_spans_loads_from_0_3_to_0_95_and_has_bursty_arrivals() -> None:
    loads = {s.load for s in SCENARIOS.values()}
    assert min(loads) == 0.3 and max(loads) == 0.95
    assert any(s.bursty for s in SCENARIOS.values())
    assert {shape for s in SCENARIOS.values() for shape in s.shapes} >= set(OOD_SHAPES) - {"cybershake", "seismology"}


@pytest.mark.parametrize("n", [8, 256])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_families_make_n_nodes_named_and_labelled_like_heterogeneous_with_a_gpu(family: str, n: int) -> None:
    cluster = FAMILIES[family](n, 1)
    assert len(cluster) == n
    for i, node in enumerate(cluster.nodes):
        assert node.name == f"{node.node_class}-{i:03d}"
        assert node.labels[NODE_CLASS_LABEL] == node.node_class
    assert any(node.gpus for node in cluster.nodes)


@pytest.mark.parametrize("n", [8, 16, 256])
def test_mixes_are_ones_heterogeneous_never_makes(n: int) -> None:
    assert all(node.node_class in GPU_CLASSES for node in all_gpu(n, 0).nodes)
    assert sum(node.gpus > 0 for node in cpu_heavy(n, 0, gpu_nodes=1).nodes) == 1
    assert sum(node.gpus > 0 for node in cpu_heavy(n, 0, gpu_nodes=2).nodes) == 2
    assert mix(skewed(n, 0, dominant="cpu-small", share=0.8))["cpu-small"] == round(0.8 * n)
    for cluster in (all_gpu(n, 0), cpu_heavy(n, 0), skewed(n, 0), random_mix(n, 0)):
        assert mix(cluster) != class_counts(n)


def test_random_mix_always_has_a_gpu_and_varies_with_the_seed() -> None:
    mixes = [mix(random_mix(16, seed)) for seed in range(20)]
    assert all(sum(m[c] for c in GPU_CLASSES) >= 1 for m in mixes)
    assert len({tuple(m.values()) for m in mixes}) > 10


def test_off_profile_speeds_and_token_rates_lie_outside_every_profile_and_its_jitter() -> None:
    for seed in range(5):
        for node in off_profile(32, seed).nodes:
            profile = PROFILES[node.node_class]
            # heterogeneous jitters a profile by 0.8-1.2: every off-profile speed is beyond that
            ratio = node.speed[PrimitiveKind.TOOL_CALL] / profile.speed[PrimitiveKind.TOOL_CALL]
            assert not 0.8 <= ratio <= 1.2
            if profile.decode_tokens_per_second:
                token_ratio = node.decode_tokens_per_second / profile.decode_tokens_per_second
                assert not 0.8 <= token_ratio <= 1.2
            assert all(node.speed != other.speed for other in PROFILES.values())


def test_off_profile_changes_the_classes_relative_speeds() -> None:
    cluster = off_profile(16, 0)
    first = {node.node_class: node for node in cluster.nodes}
    relative = first["gpu-large"].decode_tokens_per_second / first["gpu-small"].decode_tokens_per_second
    reference = PROFILES["gpu-large"].decode_tokens_per_second / PROFILES["gpu-small"].decode_tokens_per_second
    assert relative != pytest.approx(reference, rel=0.5)


@pytest.mark.parametrize("shape", list(OOD_SHAPES))
def test_each_new_shape_makes_valid_dags_of_known_kinds_unlike_the_five(shape: str) -> None:
    rng = np.random.default_rng(0)
    cluster = all_gpu(8, 0)
    for i in range(5):
        workflow = validate(OOD_SHAPES[shape](rng, f"w{i}"), cluster.nodes)
        assert workflow.shape == shape and shape not in SHAPES
        assert {p.kind for p in workflow.primitives} <= set(PrimitiveKind)
        llm = [p for p in workflow.primitives if p.kind is PrimitiveKind.LLM_GENERATE]
        assert all(p.input_tokens > 0 and p.output_tokens > 0 for p in llm)


def test_shape_structures() -> None:
    rng = np.random.default_rng(1)
    chain = long_chain(rng, "c", length=12)
    assert [p.depends_on for p in chain.primitives[1:]] == [[f"step-{i}"] for i in range(11)]
    fan = wide_tool_fanout(rng, "f", width=20)
    assert sum(p.kind is PrimitiveKind.TOOL_CALL for p in fan.primitives) == 20
    assert fan.by_name()["join"].depends_on == [f"tool-{i}" for i in range(20)]
    grid = lattice(rng, "g", rows=3, columns=4)
    assert len(grid.primitives) == 12
    assert grid.by_name()["cell-2-3"].depends_on == ["cell-1-3", "cell-2-2"]
    mosaic = montage(rng, "m", images=4)  # a 2x2 grid of images: 4 overlapping pairs
    assert len([p for p in mosaic.primitives if re.match(r"diff-", p.name)]) == 4
    assert mosaic.by_name()["background-3"].depends_on == ["background-model", "project-3"]


def test_the_world_spans_sizes_mixes_shapes_and_arrivals_and_repeats_per_seed() -> None:
    """Training's world mix: 8-128 nodes, several cluster mixes and shape sets, bursty and steady arrivals, each
    draw reproducible from its generator's state, and every drawn episode schedulable."""
    draws = [draw_world(np.random.default_rng(seed), 6, (0.5, 0.9)) for seed in range(40)]
    sizes = [len(cluster.nodes) for cluster, _, _ in draws]
    assert min(sizes) >= WORLD_NODES[0] and max(sizes) <= WORLD_NODES[1] and max(sizes) >= 4 * min(sizes)
    mixes = {tuple(sorted(Counter(n.node_class for n in cluster.nodes).items())) for cluster, _, _ in draws}
    assert len(mixes) >= 20
    shape_sets = {frozenset(w.shape for w in workload) for _, workload, _ in draws}
    assert len(shape_sets) >= 10 and set().union(*shape_sets) - set(SHAPES)  # shapes beyond the generator's
    assert all(len(workload) >= 6 for _, workload, _ in draws)
    assert all(0.5 <= load <= 0.9 for _, _, load in draws)
    again = draw_world(np.random.default_rng(3), 6, (0.5, 0.9))
    assert again[0] == draws[3][0] and [w.name for w in again[1]] == [w.name for w in draws[3][1]]
    cluster, workload, _ = draws[0]
    assert simulate(cluster, workload, make_heuristic("heft"), seed=0).completed_workflows == len(workload)
