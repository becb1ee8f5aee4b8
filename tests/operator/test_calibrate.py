"""``scale-sched calibrate``'s export: the learned run times as a node-profiles mapping and a cluster spec that load
back, keep the live cluster's nodes and classes, carry the corrected speeds, and simulate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kube_objects import SPEC, node_object
from scale_scheduler.operator import cli
from scale_scheduler.operator.core.estimates import MIN_SAMPLES, RunTimes
from scale_scheduler.operator.serve.calibrate import calibrated
from scale_scheduler.simulator.cluster import ClusterSpec
from scale_scheduler.simulator.node_classes import BUILTIN_MAPPING, PROFILES, NodeMapping
from scale_scheduler.simulator.primitives import PrimitiveKind
from typer.testing import CliRunner


def _learned() -> str:
    run_times = RunTimes()
    for _ in range(MIN_SAMPLES):
        run_times.observe("code_exec", "cpu-large", 20.0, 10.0, 10.0)
        run_times.observe("llm_generate", "gpu-small", 15.0, 10.0, 10.0)
        run_times.observe("retrieve", "cpu-small", 10.5, 10.0, 10.0)  # within the deadband: the prior stands
    return run_times.dump()


def test_the_export_loads_back_and_simulates_the_same_nodes_with_the_learned_speeds(tmp_path: Path) -> None:
    mapping, cluster = calibrated(_learned(), [node_object(node.name) for node in SPEC.nodes], BUILTIN_MAPPING)
    profiles_file, cluster_file = tmp_path / "profiles.yaml", tmp_path / "cluster.yaml"
    profiles_file.write_text(json.dumps(mapping.model_dump(mode="json")))
    cluster_file.write_text(cluster.to_yaml())

    loaded = NodeMapping.load(profiles_file)
    assert sorted(profile.node_class for profile in loaded.profiles) == ["cpu-large", "gpu-small"]
    cpu_large = loaded.catalog["cpu-large"]
    assert cpu_large.speed[PrimitiveKind.CODE_EXEC] == pytest.approx(
        PROFILES["cpu-large"].speed[PrimitiveKind.CODE_EXEC] / 2
    )
    assert cpu_large.speed[PrimitiveKind.RETRIEVE] == PROFILES["cpu-large"].speed[PrimitiveKind.RETRIEVE]
    gpu_small = loaded.catalog["gpu-small"]
    assert gpu_small.decode_tokens_per_second == pytest.approx(PROFILES["gpu-small"].decode_tokens_per_second / 1.5)
    assert loaded.catalog["cpu-small"] == PROFILES["cpu-small"]

    spec = ClusterSpec.load(cluster_file)
    assert [(n.name, n.node_class) for n in spec.nodes] == [(n.name, n.node_class) for n in SPEC.nodes]
    for node in spec.nodes:
        assert node.speed == loaded.catalog[node.node_class].speed
    if not cli.app.registered_commands:
        cli._register()
    result = CliRunner().invoke(cli.app, ["simulate", "--cluster", str(cluster_file), "--workflows", "5", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["nodes"] == len(SPEC.nodes)


def test_statistics_of_a_class_the_mapping_does_not_know_ask_for_the_operators_profiles() -> None:
    run_times = RunTimes()
    for _ in range(MIN_SAMPLES):
        run_times.observe("code_exec", "my-accelerator", 20.0, 10.0, 10.0)
    with pytest.raises(ValueError, match="my-accelerator.*--node-profiles"):
        calibrated(run_times.dump(), [node_object(SPEC.nodes[0].name)], BUILTIN_MAPPING)


def test_evaluate_and_train_run_on_the_calibrated_model_and_record_the_cluster(tmp_path: Path) -> None:
    mapping, cluster = calibrated(_learned(), [node_object(node.name) for node in SPEC.nodes], BUILTIN_MAPPING)
    profiles_file, cluster_file = tmp_path / "profiles.yaml", tmp_path / "cluster.yaml"
    profiles_file.write_text(json.dumps(mapping.model_dump(mode="json")))
    cluster_file.write_text(cluster.to_yaml())
    # nodes named by class only: --node-profiles (calibrate's --out) gives them the learned speeds
    by_class = tmp_path / "by-class.yaml"
    by_class.write_text("nodes:\n- {name: a, node_class: cpu-large}\n- {name: b, node_class: gpu-small}\n")
    if not cli.app.registered_commands:
        cli._register()
    runner = CliRunner()

    out = tmp_path / "evaluation"
    evaluated = runner.invoke(
        cli.app,
        [
            "evaluate",
            "--cluster",
            str(by_class),
            "--node-profiles",
            str(profiles_file),
            "--policies",
            "heft,least-loaded",
        ]
        + ["--seeds", "2", "--workflows", "3", "--out", str(out), "--json"],
    )
    assert evaluated.exit_code == 0, evaluated.output
    document = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert document["config"]["cluster"] == {
        "source": str(by_class),
        "nodes": 2,
        "classes": {"cpu-large": 1, "gpu-small": 1},
    }
    assert {(row["nodes"], row["regime"]) for row in document["results"]} == {(2, "per-node")}
    ran_on = ClusterSpec.load(out / "cluster.yaml")
    assert ran_on.nodes[0].speed == mapping.catalog["cpu-large"].speed != PROFILES["cpu-large"].speed

    run = tmp_path / "run"
    trained = runner.invoke(
        cli.app,
        ["train", "--cluster", str(cluster_file), "--steps", "60", "--workflows", "2", "--groups", "1"]
        + ["--rollouts", "2", "--eval-interval", "1", "--eval-episodes", "1", "--eval-workflows", "2"]
        + ["--out", str(run), "--json"],
    )
    assert trained.exit_code == 0, trained.output
    config = json.loads(trained.stdout.strip().splitlines()[-1])["training"]["train_config"]
    assert config["cluster_source"] == str(cluster_file) and config["nodes"] == len(SPEC.nodes)
    assert ClusterSpec.model_validate(config["cluster"]) == cluster
    assert f"eval/avg_response_time_n{len(SPEC.nodes)}" in (run / "metrics.jsonl").read_text()
    assert f"cluster: {cluster_file}" in (run / "TRAINING.md").read_text()
