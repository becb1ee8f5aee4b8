"""``scale-sched cluster up|down|status|bin-dir``: the local control plane with simulated nodes."""

from __future__ import annotations

import json
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table
from scale_scheduler.simulator.cli_aliases import old_name, resolve

from . import kind, kwok

if TYPE_CHECKING:  # imported where used: `scale-sched --help` stays quick
    from scale_scheduler.simulator.cluster import ClusterSpec

DEFAULT_NAME = "scale-sched"
cluster_app = typer.Typer(
    help="A real Kubernetes control plane with KWOK-simulated heterogeneous nodes.", no_args_is_help=True
)
err = Console(stderr=True)


class Provider(StrEnum):
    binary = "binary"
    kind = "kind"


def _spec(nodes: int, seed: int, spec_path: Path | None, node_profiles: Path | None) -> ClusterSpec:
    from scale_scheduler.simulator.cli_options import load_cluster
    from scale_scheduler.simulator.cluster import heterogeneous

    # here --cluster overrides --nodes (its default is a real size, not "not given")
    return load_cluster(spec_path, node_profiles, nodes_given=False) or heterogeneous(nodes, seed=seed)


@cluster_app.command("up")
def up_command(
    nodes: int = typer.Option(16, min=1, help="Simulated nodes (the simulator's heterogeneous mix)."),
    seed: int = typer.Option(0, help="Seed of the node mix's speed variation."),
    cluster: Path | None = typer.Option(
        None,
        help="ClusterSpec YAML or `kubectl get nodes -o json` output "
        "(overrides --nodes/--seed); what `simulate --cluster` takes.",
    ),
    spec: Path | None = old_name("--spec", "--cluster"),
    node_profiles: Path | None = typer.Option(
        None,
        help="Node-class mapping (profiles and label rules; docs/node-classes.md) for --cluster's nodes; "
        "give the operator the same file (--node-profiles) so it reads the nodes as the same classes.",
    ),
    name: str = typer.Option(DEFAULT_NAME, help="Cluster name; several clusters can run side by side."),
    provider: Provider = typer.Option(
        Provider.binary,
        help="binary: local processes (no Docker); kind: a kind cluster with kwok inside (needs Docker).",
    ),
    scheduler_config: Path | None = typer.Option(
        None, help="KubeSchedulerConfiguration for kube-scheduler (e.g. with `extenders:`)."
    ),
    kube_scheduler: bool = typer.Option(True, help="Run the stock kube-scheduler."),
    timeout: float = typer.Option(300.0, min=1, help="Seconds before giving up (the cluster is removed again)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (kubeconfig, nodes, bin_dir) last."),
) -> None:
    """Start a cluster and return when all its nodes are Ready; the components keep running."""
    cluster_spec = _spec(nodes, seed, resolve(cluster, spec, "--cluster", "--spec"), node_profiles)
    started = time.monotonic()
    try:
        if provider is Provider.kind:
            info = kind.up(name, cluster_spec, scheduler_config=scheduler_config, progress=err.print)
        else:
            with err.status("starting the local cluster ...") as spinner:
                info = kwok.up(
                    name,
                    cluster_spec,
                    scheduler_config=scheduler_config,
                    kube_scheduler=kube_scheduler,
                    timeout=timeout,
                    progress=lambda message: spinner.update(message),
                )
    except kwok.ClusterError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    summary = {**info.to_json(), "provider": provider.value, "seconds": round(time.monotonic() - started, 1)}
    if as_json:
        print(json.dumps(summary))
        return
    err.print(f"[green]cluster {name!r} is up[/] with {info.nodes} Ready nodes in {summary['seconds']} s")
    print(f"export KUBECONFIG={info.kubeconfig}")
    err.print(f"kubectl and helm: {info.bin_dir}   stop it with: scale-sched cluster down --name {name}")


@cluster_app.command("down")
def down_command(
    name: str = typer.Option(DEFAULT_NAME, help="Cluster to stop."),
    provider: Provider = typer.Option(Provider.binary, help="How it was started."),
) -> None:
    """Stop every process of the cluster and remove its state."""
    try:
        if provider is Provider.kind:
            kind.down(name)
        else:
            kwok.down(name)
    except kwok.ClusterError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None
    err.print(f"cluster {name!r} stopped and removed")


@cluster_app.command("status")
def status_command(
    name: str | None = typer.Option(None, help="One cluster; default: every local cluster."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Which local clusters exist and which of their components are running."""
    reports = [kwok.status(n) for n in ([name] if name else kwok.names())]
    if as_json:
        print(json.dumps({"clusters": reports}))
        return
    if not reports:
        err.print("no local clusters; start one with: scale-sched cluster up")
        return
    table = Table("cluster", "nodes", "component", "pid", "running", "kubeconfig")
    for report in reports:
        for component, state in report["components"].items() or {"-": {"pid": "-", "running": False}}.items():
            table.add_row(
                report["name"],
                str(report["nodes"]),
                component,
                str(state["pid"]),
                "yes" if state["running"] else "[red]no[/]",
                report["kubeconfig"] or "-",
            )
    Console().print(table)


@cluster_app.command("bin-dir")
def bin_dir_command() -> None:
    """Build the control-plane binaries if needed and print their directory (kubectl, helm, ...)."""
    try:
        print(kwok.ensure_binaries(progress=err.print))
    except kwok.ClusterError as error:
        err.print(f"[red]error:[/] {error}")
        raise typer.Exit(1) from None


def register(app: typer.Typer, panel: str | None = None) -> None:
    app.add_typer(cluster_app, name="cluster", rich_help_panel=panel)
