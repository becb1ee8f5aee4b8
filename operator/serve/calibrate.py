"""``scale-sched calibrate``: what the operator learned about run times, as a node model the simulator runs on.

It reads the operator's ConfigMap of learned run times and the live Nodes, and writes a node-profiles mapping (the
operator's ``--node-profiles``, and that of ``simulate``, ``evaluate`` and ``train`` beside ``--cluster``) whose
classes carry the corrected speeds, and a cluster spec of the live nodes with those speeds (their ``--cluster``):
"how would these workflows run on my cluster, with its measured durations, under each policy, and what would a
policy trained on it do?". The per-template ratios stay with the operator: they belong to workflows, not nodes.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
import yaml
from scale_scheduler.operator.core.estimate_store import CONFIG_MAP_NAME, DATA_KEY
from scale_scheduler.operator.core.estimates import RunTimes
from scale_scheduler.simulator.cluster import ClusterSpec, classify_node_object, corrected
from scale_scheduler.simulator.node_classes import BUILTIN_MAPPING, NodeMapping


def calibrated(stored: str, nodes: list[dict[str, Any]], mapping: NodeMapping) -> tuple[NodeMapping, ClusterSpec]:
    """The mapping with each class that has learned ratios replaced by its corrected profile (the operator's own
    thresholds decide which ratios count), and the ``nodes`` (Node objects) as a cluster spec under it; ValueError
    when ``stored`` is not what the operator writes, or no node can be read."""
    run_times = RunTimes()
    run_times.load(stored)
    corrections = run_times.corrections()
    catalog = mapping.catalog
    unknown = sorted(node_class for node_class in corrections if node_class not in catalog)
    if unknown:
        raise ValueError(
            f"learned run times name node classes this mapping does not know ({', '.join(unknown)}): "
            "give the --node-profiles the operator runs with"
        )
    learned = {node_class: corrected(catalog[node_class], ratios) for node_class, ratios in corrections.items()}
    profiles = [profile for profile in mapping.profiles if profile.node_class not in learned]
    result = NodeMapping(profiles=[*profiles, *learned.values()], rules=mapping.rules)
    specs = []
    for node in nodes:
        try:
            specs.append(classify_node_object(node, result)[0])
        except ValueError as error:
            typer.echo(f"warning: leaving a node out: {error}", err=True)
    if not specs:
        raise ValueError("no node of the cluster could be read")
    return result, ClusterSpec(nodes=specs)


def calibrate(
    kubeconfig: Path | None = typer.Option(None, help="Kubeconfig file; default $KUBECONFIG, else in-cluster."),
    namespace: str = typer.Option(
        "default",
        help=f"Namespace of the operator's {CONFIG_MAP_NAME} ConfigMap: its own (the chart's release namespace), "
        "or its --estimates-namespace.",
    ),
    node_profiles: Path | None = typer.Option(
        None, help="The node-class mapping the operator runs with (its --node-profiles), if any."
    ),
    out: Path = typer.Option(
        ..., help="Node-profiles mapping to write (--node-profiles of the operator, and of simulate/evaluate/train)."
    ),
    cluster_out: Path | None = typer.Option(
        None,
        help="Cluster spec to write (--cluster of simulate, evaluate and train); default OUT's name with -cluster "
        "before its suffix.",
    ),
) -> None:
    """Export the run times the operator learned as a node model and cluster spec the simulator accepts."""
    from kubernetes import client
    from scale_scheduler.operator.kube.api import KubeApi
    from scale_scheduler.operator.serve.run import load_kube_config

    try:
        mapping = NodeMapping.load(node_profiles) if node_profiles else BUILTIN_MAPPING
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--node-profiles") from None
    load_kube_config(kubeconfig)

    async def read() -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        api = KubeApi(client.ApiClient())
        return await api.get_config_map(namespace, CONFIG_MAP_NAME), await api.list_all("nodes")

    config_map, nodes = asyncio.run(read())
    stored = ((config_map or {}).get("data") or {}).get(DATA_KEY)
    if stored is None:
        raise typer.BadParameter(
            f"no ConfigMap {namespace}/{CONFIG_MAP_NAME} with key {DATA_KEY}: the operator writes it once pods "
            "have finished with learned estimates on (the default). Give the operator's namespace, or let "
            "workflows run first.",
            param_hint="--namespace",
        )
    try:
        result, cluster = calibrated(stored, nodes, mapping)
    except ValueError as error:
        raise typer.BadParameter(
            f"ConfigMap {namespace}/{CONFIG_MAP_NAME}: {error}", param_hint="--namespace"
        ) from None
    cluster_path = cluster_out or out.with_name(f"{out.stem}-cluster{out.suffix or '.yaml'}")
    out.write_text(yaml.safe_dump(result.model_dump(mode="json"), sort_keys=False))
    cluster_path.write_text(cluster.to_yaml())
    before = mapping.catalog
    changed = ", ".join(sorted(p.node_class for p in result.profiles if before.get(p.node_class) != p))
    typer.echo(f"wrote {out} (learned: {changed or 'nothing yet'}) and {cluster_path} ({len(cluster.nodes)} nodes)")
    typer.echo(f"run on it: scale-sched simulate|evaluate|train --cluster {cluster_path}")


def register(app: typer.Typer, panel: str | None = None) -> None:
    app.command("calibrate", rich_help_panel=panel)(calibrate)
