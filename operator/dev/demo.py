"""``scale-sched demo``: the README's first run, end to end on this machine.

Starts the local control plane with simulated nodes, installs the chart (CRD + RBAC), runs the
operator out of cluster, applies manifests/samples/, waits for the workflows and prints where each
primitive ran and each workflow's response time. Every step is a subprocess speaking the public
command-line contracts (`scale-sched cluster`, `scale-sched operator run`, kubectl, helm), so the
demo exercises exactly what a user would type.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from scale_scheduler.operator.core.progress import pod_times
from scale_scheduler.operator.dev.operator_process import SCALE_SCHED, OperatorStartError, log_tail, running_operator
from scale_scheduler.operator.dev.repo import REPO_ROOT
from scale_scheduler.operator.dev.samples import SAMPLES_DIR
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.times import parse_time
from scale_scheduler.policy.registry import CLUSTER_METHODS, DEFAULT_CLUSTER_POLICY
from scale_scheduler.simulator.cluster import NODE_CLASS_LABEL

CHART_DIR = REPO_ROOT / "charts" / "scale-scheduler"
RELEASE = "scale-scheduler"
RELEASE_NAMESPACE = "scale-scheduler"
TERMINAL_PHASES = {"succeeded", "completed", "failed"}
# `python -c` rather than the console script: works whether or not the venv's bin/ is on PATH.


class DemoError(RuntimeError):
    """A step failed; the message says which and what to do."""


@dataclass(frozen=True)
class Placement:
    workflow: str
    primitive: str
    kind: str
    node: str
    node_class: str
    start_seconds: float | None
    finish_seconds: float | None
    phase: str


@dataclass(frozen=True)
class WorkflowResult:
    workflow: str
    phase: str
    primitives: int
    response_seconds: float | None


def _run(command: list[str], what: str, timeout: float, env: dict[str, str] | None = None) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise DemoError(f"{what} did not finish within {timeout:.0f} s: {' '.join(command[:4])} ...") from None
    if done.returncode != 0:
        raise DemoError(f"{what} failed (exit {done.returncode}):\n{(done.stderr or done.stdout).strip()[-2000:]}")
    return done.stdout


class Kube:
    """kubectl and helm against one kubeconfig."""

    def __init__(self, kubeconfig: str, bin_dir: str | None) -> None:
        self.kubeconfig = kubeconfig
        self.kubectl = str(Path(bin_dir) / "kubectl") if bin_dir else "kubectl"
        self.helm = str(Path(bin_dir) / "helm") if bin_dir else "helm"

    def kubectl_run(self, *args: str, what: str, timeout: float = 60.0) -> str:
        return _run([self.kubectl, "--kubeconfig", self.kubeconfig, *args], what, timeout)

    def get_json(self, *args: str) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(
            self.kubectl_run("get", *args, "-o", "json", what=f"kubectl get {' '.join(args)}")
        )
        return reply

    def helm_install(self, values: list[str], timeout: float) -> str:
        if not CHART_DIR.is_dir():
            raise DemoError(f"chart not found at {CHART_DIR}: run the demo from a checkout of the repository")
        command = [
            self.helm,
            "upgrade",
            "--install",
            RELEASE,
            str(CHART_DIR),
            "--kubeconfig",
            self.kubeconfig,
            "--namespace",
            RELEASE_NAMESPACE,
            "--create-namespace",
        ]
        for value in values:
            command += ["--set", value]
        return _run(command, "helm install", timeout)


@contextlib.contextmanager
def local_cluster(nodes: int, name: str, keep: bool, timeout: float, console: Console) -> Iterator[dict[str, Any]]:
    """`scale-sched cluster up` for the block, then down unless keep."""
    with console.status(f"starting the local control plane with {nodes} simulated nodes ..."):
        out = _run(
            [*SCALE_SCHED, "cluster", "up", "--nodes", str(nodes), "--name", name, "--json"],
            "scale-sched cluster up",
            timeout,
        )
    try:
        info = json.loads(out.strip().splitlines()[-1])
    except (json.JSONDecodeError, IndexError):
        raise DemoError(f"scale-sched cluster up printed no JSON summary:\n{out[-1000:]}") from None
    try:
        yield info
    finally:
        if keep:
            console.print(
                f"[bold]--keep:[/] cluster {name!r} left running; kubeconfig {info.get('kubeconfig')}; "
                f"stop it with: scale-sched cluster down --name {name}"
            )
        else:
            with console.status("tearing the local control plane down ..."):
                subprocess.run(
                    [*SCALE_SCHED, "cluster", "down", "--name", name], capture_output=True, timeout=120, check=False
                )


@contextlib.contextmanager
def operator_process(
    kubeconfig: str, policy: str, time_scale: float, timeout: float, console: Console
) -> Iterator[Path]:
    """`scale-sched operator run` on every namespace, ready (healthz 200) for the block; yields its log path."""
    with contextlib.ExitStack() as stack:
        with console.status(f"starting the operator (policy {policy}) ..."):
            try:
                operator = stack.enter_context(
                    running_operator(kubeconfig, policy=policy, time_scale=time_scale, metrics=True, timeout=timeout)
                )
            except OperatorStartError as error:
                raise DemoError(str(error)) from None
        yield operator.log_path


def _phase(workflow: dict[str, Any]) -> str:
    return str((workflow.get("status") or {}).get("phase") or "Pending")


def collect(kube: Kube) -> tuple[list[Placement], list[WorkflowResult]]:
    """Placements of every operator-made pod and per-workflow response times, read from the cluster."""
    workflows = kube.get_json(f"{labels.PLURAL}.{labels.GROUP}", "--all-namespaces")["items"]
    pods = kube.get_json("pods", "--all-namespaces", "-l", labels.WORKFLOW_LABEL)["items"]
    node_class = {
        node["metadata"]["name"]: node["metadata"].get("labels", {}).get(NODE_CLASS_LABEL, "?")
        for node in kube.get_json("nodes")["items"]
    }
    created = {wf["metadata"]["name"]: parse_time(wf["metadata"]["creationTimestamp"]) for wf in workflows}
    origin = min((t for t in created.values() if t), default=None)

    def offset(moment: datetime | None) -> float | None:
        return (moment - origin).total_seconds() if moment and origin else None

    placements: list[Placement] = []
    for pod in pods:
        meta = pod["metadata"]
        workflow = meta["labels"].get(labels.WORKFLOW_LABEL, "?")
        start, finish = pod_times(pod)
        node = (pod.get("spec") or {}).get("nodeName") or "-"
        placements.append(
            Placement(
                workflow=workflow,
                primitive=meta["labels"].get(labels.PRIMITIVE_LABEL, meta["name"]),
                kind=meta["labels"].get(labels.PRIMITIVE_KIND_LABEL, "?"),
                node=node,
                node_class=node_class.get(node, "-"),
                start_seconds=offset(start),
                finish_seconds=offset(finish),
                phase=(pod.get("status") or {}).get("phase", "?"),
            )
        )
    placements.sort(key=lambda p: (p.workflow, p.start_seconds if p.start_seconds is not None else 1e18, p.primitive))
    # The operator's own figure (sub-second where it was watching), not a second computation from timestamps.
    results = [
        WorkflowResult(
            wf["metadata"]["name"],
            _phase(wf),
            len((wf.get("spec") or {}).get("primitives") or []),
            (wf.get("status") or {}).get("responseTimeSeconds"),
        )
        for wf in workflows
    ]
    return placements, sorted(results, key=lambda r: r.workflow)


def wait_for_workflows(kube: Kube, expected: int, timeout: float, console: Console, log_path: Path | None) -> None:
    """Progress until every WorkflowDAG reaches a terminal phase; DemoError on timeout."""
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("workflows finished", total=expected)
        while True:
            workflows = kube.get_json(f"{labels.PLURAL}.{labels.GROUP}", "--all-namespaces")["items"]
            finished = sum(_phase(wf).lower() in TERMINAL_PHASES for wf in workflows)
            progress.update(task, completed=finished, total=max(expected, len(workflows)))
            if workflows and finished == len(workflows):
                return
            if time.monotonic() > deadline:
                pending = ", ".join(
                    f"{wf['metadata']['name']} ({_phase(wf)})"
                    for wf in workflows
                    if _phase(wf).lower() not in TERMINAL_PHASES
                )
                hint = f"\noperator log ends:\n{log_tail(log_path)}" if log_path else ""
                raise DemoError(
                    f"workflows not finished after {timeout:.0f} s: {pending}; "
                    f"raise --timeout or inspect with kubectl get pods -o wide{hint}"
                )
            time.sleep(1.0)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render(placements: list[Placement], results: list[WorkflowResult], console: Console) -> None:
    table = Table(title="placements (seconds from the first workflow's creation)")
    for column in ("workflow", "primitive", "kind", "node", "node class", "start", "finish"):
        table.add_column(column, justify="right" if column in ("start", "finish") else "left")
    for p in placements:
        table.add_row(
            p.workflow, p.primitive, p.kind, p.node, p.node_class, _seconds(p.start_seconds), _seconds(p.finish_seconds)
        )
    console.print(table)
    summary = Table(title="workflows")
    for column in ("workflow", "phase", "primitives", "response time (s)"):
        summary.add_column(column)
    for r in results:
        summary.add_row(r.workflow, r.phase, str(r.primitives), _seconds(r.response_seconds))
    console.print(summary)


def sample_files(samples: Path) -> list[Path]:
    files = sorted(p for p in samples.glob("*.yaml") if p.is_file())
    if not files:
        raise DemoError(f"no sample WorkflowDAGs in {samples}: pass --samples DIR")
    return files


def run_demo(
    *,
    nodes: int,
    policy: str,
    keep: bool,
    timeout: float,
    time_scale: float,
    samples: Path,
    kubeconfig: str | None,
    operator_in_cluster: bool,
    cluster_name: str,
    console: Console,
) -> tuple[list[Placement], list[WorkflowResult]]:
    files = sample_files(samples)
    expected = sum(1 for f in files for line in f.read_text().splitlines() if line.strip() == f"kind: {labels.KIND}")
    with contextlib.ExitStack() as stack:
        if kubeconfig is None:
            info = stack.enter_context(local_cluster(nodes, cluster_name, keep, timeout, console))
            kube = Kube(info["kubeconfig"], info.get("bin_dir"))
        else:
            kube = Kube(kubeconfig, os.environ.get("SCALE_SCHED_BIN_DIR"))
        log_path = None
        if not operator_in_cluster:
            # The chart brings the CRD and the RBAC; replicas=0 because the operator runs out of cluster here.
            with console.status("helm install (CRD, ServiceAccount, ClusterRole) ..."):
                kube.helm_install([f"policy={policy}", "replicas=0"], timeout)
            log_path = stack.enter_context(operator_process(kube.kubeconfig, policy, time_scale, timeout, console))
        kube.kubectl_run("apply", *sum((["-f", str(f)] for f in files), []), what="kubectl apply samples")
        wait_for_workflows(kube, expected, timeout, console, log_path)
        return collect(kube)


def demo(
    nodes: int = typer.Option(16, min=1, help="Simulated nodes in the local cluster."),
    policy: str = typer.Option(DEFAULT_CLUSTER_POLICY, help=f"The operator's policy: {', '.join(CLUSTER_METHODS)}."),
    keep: bool = typer.Option(False, "--keep", help="Leave the local cluster running afterwards."),
    timeout: float = typer.Option(300.0, min=1, help="Seconds allowed for each step (cluster, operator, workflows)."),
    time_scale: float = typer.Option(10.0, min=0.001, help="Operator clock speed-up for simulated durations."),
    samples: Path = typer.Option(SAMPLES_DIR, help="Directory of WorkflowDAG manifests to apply."),
    kubeconfig: str | None = typer.Option(None, help="Use this cluster instead of starting the local one."),
    operator_in_cluster: bool = typer.Option(
        False,
        "--operator-in-cluster",
        help="The chart's Deployment already runs the operator; only apply the samples and report (kind path).",
    ),
    cluster_name: str = typer.Option("scale-demo", "--name", help="Name of the local cluster."),
    json_output: bool = typer.Option(False, "--json", help="Print placements and response times as JSON."),
) -> None:
    """Local cluster + chart + operator + samples: print placements and workflow response times."""
    console = Console(stderr=json_output)
    try:
        placements, results = run_demo(
            nodes=nodes,
            policy=policy,
            keep=keep,
            timeout=timeout,
            time_scale=time_scale,
            samples=samples,
            kubeconfig=kubeconfig,
            operator_in_cluster=operator_in_cluster,
            cluster_name=cluster_name,
            console=console,
        )
    except DemoError as error:
        console.print(f"[red]demo failed:[/] {error}")
        raise typer.Exit(1) from None
    if json_output:
        print(
            json.dumps(
                {"placements": [asdict(p) for p in placements], "workflows": [asdict(r) for r in results]}, indent=2
            )
        )
    else:
        render(placements, results, console)
    if any(r.phase.lower() != "succeeded" for r in results):
        raise typer.Exit(1)


def register(app: typer.Typer, panel: str | None = None) -> None:
    app.command("demo", rich_help_panel=panel)(demo)
