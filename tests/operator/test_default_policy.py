"""The operator's default policy, as `operator run`, the demo and the chart set it, is one and is safe everywhere.

Safe: on every out-of-distribution scenario (tiny size, the fast loop's) within a fixed margin of the best
heuristic of that scenario, so no scenario shows a collapse onto a few nodes.
"""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from scale_scheduler.operator.dev.repo import REPO_ROOT
from scale_scheduler.operator.serve.run import register
from scale_scheduler.policy.registry import CLUSTER_METHODS, DEFAULT_CLUSTER_POLICY, make_scheduler
from scale_scheduler.policy.suite import run_suite, summarise_suite
from scale_scheduler.simulator.scenarios import SCENARIOS

CHART = REPO_ROOT / "charts" / "scale-scheduler"
MARGIN = 1.10  # at the tiny size one seed's noise is a few percent; a collapse costs tens of percent
HEURISTICS = ("heft", "srpt-eft", "k8s-default", "least-loaded")


def _option_default(app: typer.Typer, command: str, option: str) -> object:
    click_command = typer.main.get_command(app)
    for name in command.split():
        click_command = click_command.commands[name]  # type: ignore[attr-defined]
    return next(p.default for p in click_command.params if p.name == option)


def test_operator_run_and_the_chart_default_to_the_same_policy_and_the_chart_offers_every_cluster_policy() -> None:
    app = typer.Typer()
    register(app)
    assert _option_default(app, "operator run", "policy") == DEFAULT_CLUSTER_POLICY
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["policy"] == DEFAULT_CLUSTER_POLICY
    schema = yaml.safe_load(Path(CHART / "values.schema.json").read_text())
    assert schema["properties"]["policy"]["enum"] == list(CLUSTER_METHODS)


def test_the_default_policy_is_never_far_behind_the_best_heuristic_out_of_distribution() -> None:
    methods = list(dict.fromkeys([DEFAULT_CLUSTER_POLICY, *HEURISTICS]))
    episodes = run_suite(list(SCENARIOS), methods, [0], make_scheduler, size="tiny")
    rows = [r for r in summarise_suite(episodes, HEURISTICS)["rows"] if r["method"] == DEFAULT_CLUSTER_POLICY]
    assert len(rows) == len(SCENARIOS)
    worst = max(rows, key=lambda r: r["ratio_to_best_heuristic"])
    assert worst["ratio_to_best_heuristic"] <= MARGIN, worst
    assert all(r["completed_fraction"] == 1.0 for r in rows)
