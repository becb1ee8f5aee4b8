"""`scale-sched` reads like one tool: --policy/--policies everywhere, old spellings hidden but accepted for a
release, commands grouped, --version, train's options generated from the configs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from scale_scheduler.operator import cli
from typer.testing import CliRunner

RENAMED = [
    ("train", "--algo", "--policy"),
    ("evaluate", "--methods", "--policies"),
    ("diagnose", "--models", "--policies"),
    ("simulate", "--compare", "--policies"),
]


@pytest.fixture(scope="module")
def app() -> typer.Typer:
    if not cli.app.registered_commands:
        cli._register()
    return cli.app


def _plain(text: str) -> str:
    return " ".join(text.replace("│", " ").split())  # unwrapped from rich's boxes


def test_help_groups_the_commands_and_version_prints_it(app: typer.Typer) -> None:
    shown = CliRunner().invoke(app, ["--help"])
    assert shown.exit_code == 0
    assert all(panel in shown.output for panel in ("Simulation and research", "Cluster", "Operator"))
    assert "--install-completion" in shown.output
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and version.output.startswith("scale-sched ")


@pytest.mark.parametrize(("command", "old", "new"), RENAMED)
def test_help_shows_the_new_name_and_hides_the_old_one(app: typer.Typer, command: str, old: str, new: str) -> None:
    shown = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert shown.exit_code == 0
    assert new in shown.output and old not in shown.output


def test_old_and_new_names_give_the_same_run_and_the_old_one_says_so(app: typer.Typer) -> None:
    common = ["simulate", "--nodes", "4", "--workflows", "3", "--seed", "2", "--json"]
    new = CliRunner().invoke(app, [*common, "--policies", "heft,random"])
    old = CliRunner().invoke(app, [*common, "--compare", "heft,random"])
    assert new.exit_code == 0 and old.exit_code == 0, old.output
    assert json.loads(new.stdout) == json.loads(old.stdout)
    assert "--compare is now --policies" in old.stderr and "now" not in new.stderr


def test_train_lists_its_policies_and_refuses_a_setting_the_algorithm_has_not(app: typer.Typer, tmp_path: Path) -> None:
    from scale_scheduler.policy.config import PPOConfig, SACConfig

    shown = _plain(CliRunner().invoke(app, ["train", "--help"], terminal_width=200).output)
    unknown = _plain(CliRunner().invoke(app, ["train", "--policy", "nope", "--out", str(tmp_path / "no")]).output)
    assert all(f"'{name}'" in unknown for name in ("scale", "crossattn", "ppo-mlp", "ppo-mlp-srr", "sac")), unknown
    assert f"size of the generated training clusters; not with --cluster (default {PPOConfig().nodes})" in shown
    assert f"sac: decisions between validations and checkpoints (default {SACConfig().eval_interval})" in shown
    refused = CliRunner().invoke(app, ["train", "--policy", "sac", "--groups", "2", "--out", str(tmp_path / "no")])
    assert refused.exit_code == 2
    assert "--groups does not apply to sac" in _plain(refused.output)
    assert not (tmp_path / "no").exists()
