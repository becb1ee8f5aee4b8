"""``scale-sched operator run``'s own checks of its options, before it ever reaches a cluster."""

from __future__ import annotations

import typer
from scale_scheduler.operator.serve.run import namespaces_option, register
from typer.testing import CliRunner


def test_an_unknown_placement_rule_is_refused_with_the_valid_ones() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["operator", "run", "--rule", "eager"])
    assert result.exit_code == 2
    assert "--rule" in result.output and "late-binding" in result.output and "node-queues" in result.output


def test_a_lookahead_reference_is_refused_as_a_live_policy() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["operator", "run", "--policy", "rollout-heft"])
    assert result.exit_code == 2
    assert "cannot place pods on a live cluster" in " ".join(result.output.replace("│", " ").split())


def test_a_namespace_pattern_is_refused_as_a_namespace_name() -> None:
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["operator", "run", "--namespace", "team-a", "--namespace", "team-*"])
    assert result.exit_code == 2
    assert "'team-*' is not a namespace name" in " ".join(result.output.replace("│", " ").split())


def test_several_namespaces_are_kept_in_order_without_repeats() -> None:
    assert namespaces_option(["team-b", "team-a", "team-b"]) == ("team-b", "team-a")


def test_a_bad_node_profiles_entry_is_refused_at_start_with_the_entry_named(tmp_path) -> None:  # noqa: ANN001
    mapping = tmp_path / "profiles.yaml"
    mapping.write_text(
        "profiles:\n- {node_class: fast, cpu_millicores: 1000, memory_bytes: 1000000000, bandwidth_gbps: 10,\n"
        "   speed: {llm_generate: 0, llm_embed: 1, retrieve: -2, tool_call: 1, code_exec: 1}}\n"
    )
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["operator", "run", "--node-profiles", str(mapping)])
    assert result.exit_code == 2
    output = "".join(result.output.replace("│", " ").split())
    assert "--node-profiles" in output and "profiles[0](fast).speed:speedsmustbe>=0" in output
