"""``scale-sched simulate``: run schedulers on a simulated cluster and report response times.

The workload and the true durations depend only on --seed, so ``--compare a,b,c`` runs every policy
on the identical arrival sequence with identical per-(primitive, node) durations.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from .cli_aliases import old_name, resolve
from .cli_options import cluster_option, cluster_record, load_cluster, node_profiles_option
from .cluster import ClusterSpec, heterogeneous
from .engine import Engine, SimulationResult
from .generators import generate_workload
from .manifests import load_workflow_manifests
from .placement import DEFAULT_RULE, RULE_HELP, PlacementRule, parse_rule
from .rollout import LOOKAHEAD
from .schedulers import HEURISTICS, Scheduler, make_heuristic
from .workflow import Workflow, WorkflowValidationError, validate

_COLUMNS = [
    ("avg_response_time", "avg (s)"),
    ("p95_response_time", "p95 (s)"),
    ("p99_response_time", "p99 (s)"),
    ("avg_slowdown", "slowdown"),
    ("completed_primitives", "prims"),
    ("utilisation", "util"),
]


def _run(
    cluster: ClusterSpec,
    workload: list[Workflow],
    scheduler: Scheduler,
    seed: int,
    horizon: float | None,
    rule: PlacementRule,
    progress: Progress | None,
    label: str,
) -> SimulationResult:
    scheduler.reset(seed)
    engine = Engine(cluster, workload, seed, horizon=horizon, priority=scheduler.priority, rule=rule)
    total = sum(len(w.primitives) for w in workload)
    task = progress.add_task(label, total=total) if progress else None
    decisions = 0
    while (observation := engine.next_decision()) is not None:
        engine.apply(scheduler.choose(observation))
        decisions += 1
        if progress is not None and task is not None and decisions % 256 == 0:
            progress.update(task, completed=decisions)
    if progress is not None and task is not None:
        progress.update(task, completed=total)
    return engine.result()


def register(
    app: typer.Typer,
    make_scheduler: Callable[[str], Scheduler] = make_heuristic,
    methods: tuple[str, ...] = (*HEURISTICS, *LOOKAHEAD),
    panel: str | None = None,
) -> None:
    """Add `simulate`; ``make_scheduler`` and ``methods`` name the policies it can run (the registry's, learned
    ones included, when the policy package registers it)."""

    @app.command(rich_help_panel=panel)
    def simulate(
        nodes: int | None = typer.Option(
            None,
            show_default=False,
            help="Nodes of the generated heterogeneous cluster (default 16); not with --cluster.",
        ),
        policy: str = typer.Option("least-loaded", help=f"Scheduler: {', '.join(methods)}."),
        rule: str = typer.Option(DEFAULT_RULE.value, help=RULE_HELP),
        workflows: int = typer.Option(500, help="Workflows to generate."),
        load: float = typer.Option(0.7, help="Offered load as a fraction of the bottleneck resource's capacity."),
        seed: int = typer.Option(1, help="Seed of the cluster, the workload and the true durations."),
        policies: str | None = typer.Option(
            None, help="Comma-separated policies run on the identical workload (instead of --policy)."
        ),
        cluster_file: Path | None = cluster_option(),
        node_profiles: Path | None = node_profiles_option(),
        workload_file: Path | None = typer.Option(None, "--workload", help="WorkflowDAG manifests (YAML)."),
        bursty: bool = typer.Option(False, help="On/off-modulated arrivals with the same mean rate."),
        horizon: float | None = typer.Option(None, help="Stop at this simulated time (seconds)."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of a table."),
        compare: str | None = old_name("--compare", "--policies"),
    ) -> None:
        """Simulate workflows on a cluster under one or several schedulers."""
        console = Console(stderr=True)
        compare = resolve(policies, compare, "--policies", "--compare")
        cluster = load_cluster(cluster_file, node_profiles, nodes is not None) or heterogeneous(nodes or 16, seed=seed)
        try:
            if workload_file:
                workload = [validate(w, cluster.nodes) for w in load_workflow_manifests(workload_file)]
            else:
                workload = generate_workload(cluster, workflows, load, seed=seed, bursty=bursty)
            placement_rule = parse_rule(rule)
            names = [n.strip() for n in compare.split(",") if n.strip()] if compare else [policy]
            schedulers = {name: make_scheduler(name) for name in names}
        except WorkflowValidationError as error:
            console.print(f"[red]invalid workload:[/red] {error}")
            raise typer.Exit(2) from None
        except (ValueError, OSError) as error:
            console.print(f"[red]error:[/red] {error}")
            raise typer.Exit(2) from None
        show_progress = not as_json and sum(len(w.primitives) for w in workload) * len(names) > 5000
        results: dict[str, SimulationResult] = {}
        with Progress(console=console, transient=True, disable=not show_progress) as progress:
            for name, scheduler in schedulers.items():
                results[name] = _run(
                    cluster,
                    workload,
                    scheduler,
                    seed,
                    horizon,
                    placement_rule,
                    progress if show_progress else None,
                    name,
                )
        header = {
            "nodes": len(cluster.nodes),
            "seed": seed,
            "workflows": len(workload),
            "load": load,
            "rule": placement_rule.value,
            "cluster": cluster_record(cluster_file, cluster),
        }
        if as_json:
            if compare:
                typer.echo(
                    json.dumps({**header, "policies": {n: {"policy": n, **r.to_dict()} for n, r in results.items()}})
                )
            else:
                typer.echo(json.dumps({**header, "policy": policy, **results[policy].to_dict()}))
            return
        table = Table(
            title=f"{len(workload)} workflows on {len(cluster.nodes)} nodes, load {load}, seed {seed}, "
            f"rule {placement_rule.value}"
        )
        table.add_column("policy")
        for _, title in _COLUMNS:
            table.add_column(title, justify="right")
        for name, result in results.items():
            values = result.to_dict()
            table.add_row(name, *(_format(values[key]) for key, _ in _COLUMNS))
        Console().print(table)


def _format(value: object) -> str:
    return str(value) if isinstance(value, int) else f"{value:.2f}"
