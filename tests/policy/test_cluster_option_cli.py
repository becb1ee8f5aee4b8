"""``--cluster`` and ``--node-profiles`` of simulate, evaluate and train (one loader, simulator/cli_options.py): a
file that cannot be read or is no cluster spec, or a clash with ``--nodes``, is refused in one message naming the
option, the file and the problem, with exit code 2 and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from scale_scheduler.operator import cli
from typer.testing import CliRunner

COMMANDS = {
    "simulate": ["simulate", "--workflows", "2"],
    "evaluate": ["evaluate", "--policies", "heft", "--seeds", "1", "--workflows", "2"],
    "train": ["train", "--steps", "10"],
}


def _refused(command: str, out: Path, *args: str) -> str:
    if not cli.app.registered_commands:
        cli._register()
    extra = [] if command == "simulate" else ["--out", str(out)]
    # a terminal wide enough that rich never wraps inside the message: a wrap falls wherever the tmp path's length
    # puts it (joining the lines back would put a space there)
    result = CliRunner().invoke(cli.app, [*COMMANDS[command], *args, *extra], env={"COLUMNS": "1000"})
    assert result.exit_code == 2, result.output
    assert not out.exists(), "nothing is written for a refused command"
    return " ".join(result.output.replace("│", " ").split())  # unwrapped from rich's error box


@pytest.mark.parametrize("command", list(COMMANDS))
def test_an_unreadable_or_invalid_spec_is_refused_naming_the_file_and_the_problem(command: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    not_yaml, bad_node, unknown_class = (tmp_path / name for name in ("not-yaml.yaml", "bad.yaml", "class.yaml"))
    not_yaml.write_text("nodes: [\n")
    bad_node.write_text("nodes:\n- {name: a, node_class: cpu-large, cpu_millicores: 0}\n")
    unknown_class.write_text("nodes:\n- {name: a, node_class: tpu-v9}\n")
    out = tmp_path / "out"
    for spec, problem in [
        (missing, "No such file or directory"),
        (not_yaml, "not YAML: expected the node content, but found '<stream end>' at line 2"),
        (bad_node, "nodes[0] (a).cpu_millicores: Input should be greater than 0"),
        (unknown_class, "nodes[0]: unknown node class 'tpu-v9'; known: gpu-large"),
    ]:
        message = _refused(command, out, "--cluster", str(spec))
        assert f"Invalid value for --cluster: {spec}: {problem}" in message, message


@pytest.mark.parametrize("command", list(COMMANDS))
def test_nodes_beside_a_spec_and_profiles_without_one_are_refused(command: str, tmp_path: Path) -> None:
    spec = tmp_path / "cluster.yaml"
    spec.write_text("nodes:\n- {name: a, node_class: cpu-large}\n")
    profiles = tmp_path / "profiles.yaml"
    profiles.write_text("rules: []\n")
    out = tmp_path / "out"
    message = _refused(command, out, "--cluster", str(spec), "--nodes", "4")
    assert "Invalid value for --cluster/--nodes: give one of them" in message
    message = _refused(command, out, "--node-profiles", str(profiles))
    assert "Invalid value for --node-profiles: it names the classes of --cluster's nodes" in message


def test_train_refuses_a_spec_beside_the_world_mix(tmp_path: Path) -> None:
    spec = tmp_path / "cluster.yaml"
    spec.write_text("nodes:\n- {name: a, node_class: cpu-large}\n")
    message = _refused("train", tmp_path / "out", "--cluster", str(spec), "--world")
    assert "Invalid value for --world: the world mix draws its own clusters: give --world or --cluster" in message


def test_evaluate_refuses_a_spec_beside_a_suite(tmp_path: Path) -> None:
    spec = tmp_path / "cluster.yaml"
    spec.write_text("nodes:\n- {name: a, node_class: cpu-large}\n")
    message = _refused("evaluate", tmp_path / "out", "--cluster", str(spec), "--suite", "ood")
    assert "Invalid value for --suite/--cluster: each scenario brings its own cluster" in message
