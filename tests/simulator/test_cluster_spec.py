"""ClusterSpec: the generator's mix, YAML and kubectl round trips, and clear errors."""

import json

import pytest
from scale_scheduler.simulator.cluster import (
    NODE_CLASS_LABEL,
    PROFILES,
    ClusterSpec,
    class_counts,
    heterogeneous,
    parse_quantity,
)


@pytest.mark.parametrize("n", [1, 5, 16, 32, 48, 500])
def test_class_counts_sum_to_n_and_keep_the_mix(n):
    counts = class_counts(n)
    assert sum(counts.values()) == n
    if n % 8 == 0:
        assert counts == {
            "gpu-large": n // 8,
            "gpu-small": n // 4,
            "cpu-large": n // 4,
            "cpu-small": n // 4,
            "mem-optimised": n // 8,
        }


def test_heterogeneous_is_deterministic_for_a_seed_and_varies_across_seeds():
    assert heterogeneous(16, seed=3) == heterogeneous(16, seed=3)
    assert heterogeneous(16, seed=3) != heterogeneous(16, seed=4)
    names = [n.name for n in heterogeneous(48, seed=0).nodes]
    assert len(set(names)) == 48


def test_yaml_round_trip_and_class_shorthand():
    spec = heterogeneous(8, seed=1)
    assert ClusterSpec.from_yaml(spec.to_yaml()) == spec
    short = ClusterSpec.from_yaml(
        "nodes:\n- {name: big-0, node_class: gpu-large}\n- {name: c-0, node_class: cpu-small}\n"
    )
    assert short.nodes[0].gpus == PROFILES["gpu-large"].gpus
    assert short.nodes[0].labels[NODE_CLASS_LABEL] == "gpu-large"


def test_yaml_with_unknown_class_names_it():
    with pytest.raises(ValueError, match=r"nodes\[0\]: unknown node class 'tpu'; known: .*h100"):
        ClusterSpec.from_yaml("nodes:\n- {name: a, node_class: tpu}\n")


def test_duplicate_node_names_are_rejected():
    spec = heterogeneous(2, seed=0)
    with pytest.raises(ValueError, match="duplicate node name"):
        ClusterSpec(nodes=[spec.nodes[0], spec.nodes[0]])


def test_kubectl_json_reads_allocatable_and_class_label(tmp_path):
    spec = heterogeneous(16, seed=2)
    node_list = {
        "kind": "NodeList",
        "items": [
            {"metadata": {"name": n.name, "labels": n.labels}, "status": {"allocatable": n.allocatable()}}
            for n in spec.nodes
        ],
    }
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps(node_list))
    read = ClusterSpec.load(path)
    assert [n.name for n in read.nodes] == [n.name for n in spec.nodes]
    for original, parsed in zip(spec.nodes, read.nodes, strict=True):
        assert (parsed.cpu_millicores, parsed.memory_bytes, parsed.gpus) == (
            original.cpu_millicores,
            original.memory_bytes,
            original.gpus,
        )
        assert parsed.node_class == original.node_class


@pytest.mark.parametrize(("text", "value"), [("500m", 0.5), ("16Gi", 16 * 1024**3), ("2", 2.0), ("1k", 1000.0)])
def test_parse_quantity(text, value):
    assert parse_quantity(text) == pytest.approx(value)


def test_parse_quantity_names_bad_input():
    with pytest.raises(ValueError, match="'lots' is not a Kubernetes quantity"):
        parse_quantity("lots")


def test_a_class_outside_the_five_is_shown_to_the_policy_as_its_tier() -> None:
    """The one-hot node-class feature keeps the generator's five columns (checkpoints record them): an H100 node
    reads as gpu-large, an L4 node as gpu-small, a large unnamed CPU node by its size."""
    from scale_scheduler.simulator.state import NODE_CLASSES, ClusterState

    spec = ClusterSpec.from_yaml(
        "nodes:\n- {name: h, node_class: h100}\n- {name: l, node_class: l4}\n- {name: c, node_class: cpu-small}\n"
    )
    spec.nodes[2] = spec.nodes[2].model_copy(update={"node_class": "quantum", "cpu_millicores": 96000})
    state = ClusterState(spec)
    assert [NODE_CLASSES[i] for i in state.node_class] == ["gpu-large", "gpu-small", "cpu-large"]
