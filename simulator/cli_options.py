"""Option values every command parses the same way, refused with the same message naming the option."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer

from .cluster import ClusterSpec
from .guard import check_factor
from .node_classes import BUILTIN_MAPPING, NodeMapping
from .placement import PlacementRule, parse_rule


def rule_option(value: str) -> PlacementRule:
    """``--rule``'s value, or the usage error naming the valid rules."""
    try:
        return parse_rule(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--rule") from None


def guard_option(value: float) -> float:
    """``--guard``'s value, or the usage error saying what a factor must be."""
    try:
        return check_factor(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--guard") from None


CLUSTER_HELP = (
    "Cluster spec to run on instead of the generator's heterogeneous cluster: YAML (nodes in full, by node_class "
    "or by labels), `kubectl get nodes -o json` output, or what `scale-sched calibrate --cluster-out` writes "
    "(the operator's learned speeds). Not with --nodes: the spec's nodes are the cluster."
)
NODE_PROFILES_HELP = (
    "Node-class mapping (profiles and label rules; docs/node-classes.md; `scale-sched calibrate --out` writes "
    "one with the learned speeds) that names the classes of --cluster's nodes, as the operator's --node-profiles "
    "does; only with --cluster."
)


def cluster_option() -> Any:
    """``--cluster``: the same option, help and all, on every command that can run on a given cluster."""
    return typer.Option(None, "--cluster", help=CLUSTER_HELP, show_default=False)


def node_profiles_option() -> Any:
    """``--node-profiles`` for the classes of ``--cluster``'s nodes."""
    return typer.Option(None, "--node-profiles", help=NODE_PROFILES_HELP, show_default=False)


def load_cluster(cluster: Path | None, node_profiles: Path | None, nodes_given: bool) -> ClusterSpec | None:
    """``--cluster`` read under ``--node-profiles``' mapping (None without ``--cluster``), or the usage error
    naming the option, the file and the problem in one line: an unreadable or invalid file, ``--nodes``
    beside it (which nodes would run is then ambiguous), or ``--node-profiles`` without it."""
    if cluster is None:
        if node_profiles is not None:
            raise typer.BadParameter(
                "it names the classes of --cluster's nodes; the generated cluster has the built-in ones",
                param_hint="--node-profiles",
            )
        return None
    if nodes_given:
        raise typer.BadParameter(
            "give one of them: --cluster's nodes are the cluster, --nodes sizes a generated one",
            param_hint="--cluster/--nodes",
        )
    try:
        mapping = NodeMapping.load(node_profiles) if node_profiles else BUILTIN_MAPPING
    except OSError as error:
        raise typer.BadParameter(f"{node_profiles}: {error.strerror}", param_hint="--node-profiles") from None
    except ValueError as error:  # it names the file itself
        raise typer.BadParameter(str(error), param_hint="--node-profiles") from None
    try:
        return ClusterSpec.load(cluster, mapping)
    except OSError as error:
        raise typer.BadParameter(f"{cluster}: {error.strerror}", param_hint="--cluster") from None
    except ValueError as error:
        raise typer.BadParameter(f"{cluster}: {error}", param_hint="--cluster") from None


def cluster_record(cluster: Path | None, spec: ClusterSpec | None) -> dict[str, Any]:
    """Where a run's cluster came from, for its results: the spec file and its nodes per class, or the
    generator."""
    if cluster is None or spec is None:
        return {"source": "generated", "generator": "heterogeneous(nodes, seed)"}
    classes = Counter(node.node_class for node in spec.nodes)
    return {"source": str(cluster), "nodes": len(spec.nodes), "classes": dict(sorted(classes.items()))}
