"""Node classes from the labels real clusters carry: built-in rules, the override label, the user's mapping, the
fallback, and bad mapping entries refused with the entry named."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
import typer
from scale_scheduler.simulator.cli import register
from scale_scheduler.simulator.cluster import ClusterSpec, classify_node_object, node_spec_from_object
from scale_scheduler.simulator.node_classes import (
    BUILTIN_MAPPING,
    HARDWARE_PROFILES,
    PROFILES,
    NodeMapping,
)
from typer.testing import CliRunner


def node(name: str, labels: dict[str, str], gpus: int = 0, cpu: str = "16", memory: str = "64Gi") -> dict[str, Any]:
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110", **({"nvidia.com/gpu": str(gpus)} if gpus else {})}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **labels}},
        "status": {"allocatable": allocatable, "capacity": allocatable},
    }


# As NVIDIA GPU feature discovery labels them.
H100_NODE = node(
    "gpu-h100-0",
    {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8", "nvidia.com/gpu.memory": "81559"},
    gpus=8,
    cpu="192",
    memory="2000Gi",
)
L4_NODE = node("gpu-l4-0", {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.count": "1"}, gpus=1)


def test_h100_and_l4_product_labels_get_their_profiles_and_keep_the_nodes_resources() -> None:
    h100, how = classify_node_object(H100_NODE)
    assert (h100.node_class, how.mapped, how.source) == ("h100", True, "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3")
    assert h100.decode_tokens_per_second == HARDWARE_PROFILES["h100"].decode_tokens_per_second
    assert (h100.gpus, h100.cpu_millicores) == (8, 192000)  # the node's allocatable, not the profile's defaults
    l4 = node_spec_from_object(L4_NODE)
    assert l4.node_class == "l4" and l4.speed == HARDWARE_PROFILES["l4"].speed
    # decode is memory-bound: an H100 (3.35 TB/s) decodes about 11x faster than an L4 (0.3 TB/s)
    assert h100.decode_tokens_per_second / l4.decode_tokens_per_second == pytest.approx(3350 / 300, rel=0.01)


@pytest.mark.parametrize(
    ("product", "node_class"),
    [
        ("NVIDIA-L40S", "l40s"),  # not an L4
        ("NVIDIA-A100-SXM4-80GB", "a100-80gb"),
        ("NVIDIA-A100-SXM4-40GB", "a100-40gb"),
        ("NVIDIA-H200", "h200"),
        ("NVIDIA-A10G", "a10g"),
        ("Tesla-T4", "t4"),
    ],
)
def test_gpu_products(product: str, node_class: str) -> None:
    assert BUILTIN_MAPPING.classify({"nvidia.com/gpu.product": product}, 1, "n").node_class == node_class


@pytest.mark.parametrize(
    ("instance_type", "gpus", "node_class"),
    [
        ("p5.48xlarge", 8, "h100"),
        ("p5e.48xlarge", 8, "h200"),
        ("g6.xlarge", 1, "l4"),
        ("g6e.2xlarge", 1, "l40s"),
        ("g5.xlarge", 1, "a10g"),
        ("a2-highgpu-1g", 1, "a100-40gb"),
        ("a3-highgpu-8g", 8, "h100"),
        ("Standard_NC24ads_A100_v4", 1, "a100-80gb"),
        ("m7i.16xlarge", 0, "cpu-large"),
        ("c6i.2xlarge", 0, "cpu-small"),
        ("r6i.4xlarge", 0, "mem-optimised"),
    ],
)
def test_instance_types(instance_type: str, gpus: int, node_class: str) -> None:
    labels = {"node.kubernetes.io/instance-type": instance_type}
    classification = BUILTIN_MAPPING.classify(labels, gpus, "n")
    assert (classification.node_class, classification.mapped) == (node_class, True)


def test_gpu_memory_tells_an_80gb_a100_whose_product_name_does_not() -> None:
    product = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4"}
    assert BUILTIN_MAPPING.classify({**product, "nvidia.com/gpu.memory": "81920"}, 8, "n").node_class == "a100-80gb"
    assert BUILTIN_MAPPING.classify({**product, "nvidia.com/gpu.memory": "40960"}, 8, "n").node_class == "a100-40gb"


def test_the_product_label_wins_over_the_instance_type_and_the_project_label_over_both() -> None:
    labels = {"nvidia.com/gpu.product": "NVIDIA-L4", "node.kubernetes.io/instance-type": "p5.48xlarge"}
    assert BUILTIN_MAPPING.classify(labels, 1, "n").node_class == "l4"
    overridden = {**labels, "scale.dev/node-class": "gpu-large"}
    assert BUILTIN_MAPPING.classify(overridden, 1, "n").node_class == "gpu-large"
    assert node_spec_from_object(node("x", overridden, gpus=1)).node_class == "gpu-large"


def test_an_unmapped_node_gets_the_fallback_and_is_marked_unmapped(caplog: pytest.LogCaptureFixture) -> None:
    odd_gpu = node("odd-gpu", {"vendor.example/accelerator": "x9"}, gpus=2)
    plain = node("plain", {})
    with caplog.at_level(logging.WARNING):
        gpu_spec, how = classify_node_object(odd_gpu)
        assert (gpu_spec.node_class, how.mapped) == ("gpu-small", False)
        assert node_spec_from_object(plain).node_class == "cpu-small"
    assert gpu_spec.speed == PROFILES["gpu-small"].speed
    # classify_node_object leaves the reporting to its caller; node_spec_from_object logs the node by name
    assert [r.getMessage().split()[1] for r in caplog.records] == ["plain"]


def test_user_rules_come_before_the_built_in_ones_and_user_profiles_add_classes() -> None:
    mapping = NodeMapping.from_yaml(
        """
profiles:
- node_class: mi300x
  accelerator: mi300x
  cpu_millicores: 192000
  memory_bytes: 2199023255552
  gpus: 8
  speed: {llm_generate: 2.5, llm_embed: 12.0, retrieve: 1.2, tool_call: 1.0, code_exec: 1.2}
  prefill_tokens_per_second: 15000
  decode_tokens_per_second: 160
  bandwidth_gbps: 100
rules:
- node_class: mi300x
  labels: {amd.com/gpu.product-name: "AMD_Instinct_MI300X.*"}
- node_class: a100-80gb
  labels: {nvidia.com/gpu.product: "NVIDIA-H100.*", pool: "borrowed"}
"""
    )
    mi300x = mapping.classify({"amd.com/gpu.product-name": "AMD_Instinct_MI300X_OAM"}, 8, "n")
    assert (mi300x.node_class, mi300x.profile.decode_tokens_per_second) == ("mi300x", 160)
    # every label of a rule must match: without pool=borrowed the built-in H100 rule applies
    assert mapping.classify({"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}, 8, "n").node_class == "h100"
    borrowed = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "pool": "borrowed"}
    assert mapping.classify(borrowed, 8, "n").node_class == "a100-80gb"


GOOD_PROFILE = (
    "{node_class: fast, cpu_millicores: 1000, memory_bytes: 1000000000, bandwidth_gbps: 10, "
    "speed: {llm_generate: 0, llm_embed: 1, retrieve: 1, tool_call: 1, code_exec: 1}"
)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("profiles:\n- " + GOOD_PROFILE + ", colour: red}\n", "profiles[0] (fast): unknown field 'colour'"),
        (
            "profiles:\n- " + GOOD_PROFILE.replace("retrieve: 1", "retrieve: -1") + "}\n",
            "profiles[0] (fast).speed: speeds must be >= 0, got {'retrieve': -1.0}",
        ),
        (
            "profiles:\n- " + GOOD_PROFILE.replace("tool_call: 1, ", "") + "}\n",
            "profiles[0] (fast).speed: speed must give every kind (0 where it does not run); missing tool_call",
        ),
        ("profiles:\n- " + GOOD_PROFILE + ", decode_tokens_per_second: -5}\n", "decode_tokens_per_second"),
        ("rules:\n- {node_class: h100, labels: {a: b}, weight: 2}\n", "rules[0] (h100): unknown field 'weight'"),
        ("rules:\n- {node_class: h100, labels: {a: '(['}}\n", "rules[0] (h100).labels: label 'a': '([' is not"),
        ("rules:\n- {node_class: tpu-v5, labels: {a: b}}\n", "rules[0]: node_class 'tpu-v5' is neither"),
        ("rulez: []\n", "unknown field 'rulez'"),
    ],
)
def test_bad_mapping_entries_are_refused_with_the_entry_named(text: str, named: str) -> None:
    with pytest.raises(ValueError) as refused:
        NodeMapping.from_yaml(text, source="profiles.yaml")
    assert str(refused.value).startswith("profiles.yaml: ")
    assert named in str(refused.value)


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command()
    def version() -> None:  # a second command keeps typer from collapsing the app into `simulate`
        typer.echo("test")

    return app


def test_a_kubectl_node_list_simulates_as_that_cluster(tmp_path: Path) -> None:
    """``kubectl get nodes -o json`` prints a v1 List: its H100 and L4 nodes and an unlabelled CPU node are
    simulated with their profiles."""
    nodes = [H100_NODE, L4_NODE, node("cpu-0", {}, cpu="32", memory="128Gi")]
    path = tmp_path / "nodes.json"
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": nodes, "metadata": {}}))
    spec = ClusterSpec.load(path)
    assert [n.node_class for n in spec.nodes] == ["h100", "l4", "cpu-small"]
    result = CliRunner().invoke(_app(), ["simulate", "--cluster", str(path), "--workflows", "20", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["nodes"] == 3 and data["completed_primitives"] > 0


def test_simulate_takes_the_mapping_and_names_a_bad_entry(tmp_path: Path) -> None:
    path = tmp_path / "nodes.json"
    pool = node("pool-0", {"pool": "big"}, gpus=8, cpu="96", memory="1Ti")
    path.write_text(json.dumps({"apiVersion": "v1", "kind": "List", "items": [pool, node("cpu-0", {})]}))
    mapping = tmp_path / "profiles.yaml"
    mapping.write_text("rules:\n- {node_class: h200, labels: {pool: big}}\n")
    assert ClusterSpec.load(path, NodeMapping.load(mapping)).nodes[0].node_class == "h200"
    ok = CliRunner().invoke(
        _app(), ["simulate", "--cluster", str(path), "--node-profiles", str(mapping), "--workflows", "5", "--json"]
    )
    assert ok.exit_code == 0, ok.output
    mapping.write_text("rules:\n- {node_class: h200, labels: {pool: big}, priority: 1}\n")
    bad = CliRunner().invoke(_app(), ["simulate", "--cluster", str(path), "--node-profiles", str(mapping)])
    assert bad.exit_code == 2
    assert "rules[0] (h200): unknown field 'priority'" in bad.output


def test_a_yaml_spec_may_give_nodes_by_labels_alone() -> None:
    spec = ClusterSpec.from_yaml(
        "nodes:\n"
        "- {name: a, gpus: 8, labels: {nvidia.com/gpu.product: NVIDIA-H100-80GB-HBM3}}\n"
        "- {name: b, labels: {nvidia.com/gpu.product: NVIDIA-L4, nvidia.com/gpu.count: '1'}}\n"
    )
    assert [(n.node_class, n.gpus) for n in spec.nodes] == [("h100", 8), ("l4", 1)]
    assert spec.nodes[0].labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"


def test_the_docs_table_lists_every_hardware_profile_with_its_rates() -> None:
    """docs/node-classes.md is where users look the numbers up: it must say what the code uses."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "node-classes.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == 9 and cells[0].strip("`") in HARDWARE_PROFILES:
            rows[cells[0].strip("`")] = cells
    assert set(rows) == set(HARDWARE_PROFILES)
    for name, cells in rows.items():
        profile = HARDWARE_PROFILES[name]
        assert (float(cells[6]), float(cells[7])) == (
            profile.prefill_tokens_per_second,
            profile.decode_tokens_per_second,
        ), name
        assert int(cells[3]) == profile.gpus and int(cells[4]) * 1000 == profile.cpu_millicores, name
