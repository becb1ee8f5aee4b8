"""The operator on a real control plane: binding throughput and decision latency beside kube-scheduler's,
and workflow response times on the cluster beside the simulator's prediction.

A benchmark, not a test: ``python bench/operator.py [--nodes 48] [--pods 300] [--workflows 24] [--json]``
brings its own local cluster up (``localcluster.kwok.up``, the simulator's heterogeneous nodes) and down.

(a) operator: ``--pods`` independent tool_call primitives in ten WorkflowDAGs, placed by ``scale-sched
    operator run --policy P`` for each of ``--throughput-policies`` (least-loaded, the default srpt-eft, the
    learned scale; it creates and binds every pod); (b) kube-scheduler: as many plain pods with the same
    requests, created by this script from eight threads. Both: pods per second from the first pod seen by a
    watch to the last seen bound. ``--rounds`` rounds of (b) then (a) for every policy, interleaved so that a
    change in a shared machine's load falls on all alike; reported: the median rate, and the median of each
    policy's per-round ratio to kube-scheduler. Every pod fits somewhere now, so under the default rule (late
    binding: no pod waits while some node has room) the rates compare binding paths, not policies.
    Decision latency p50/p99 comes from the operator's own histogram
    (``scale_sched_decision_latency_seconds{source="operator"}``, interpolated within its buckets), for
    every operator run; the headline figures are the SCALE policy's, from its run in (c).
(c) a fixed batch of ``--workflows`` workflows from ``simulator.generators`` (seed ``--seed``, load ``--load``)
    submitted at their arrival times divided by ``--time-scale``, once per policy (scale, least-loaded) with a
    fresh operator and no pods left over (so every node starts cold, as in the simulator), all under the
    placement rule ``--rule`` (recorded in the JSON as ``rule``). Response time =
    when this script's watch sees the workflow Succeeded minus when it created it, times ``--time-scale``
    (simulated seconds). The simulator runs the same workflows and arrivals on the ClusterSpec read back
    from the cluster's Node objects (what the operator sees), averaged over ``--sim-seeds`` duration draws.

``--wrong-prior CLASS`` runs only this instead: every node of CLASS is labelled ``scale.dev/simulated-speed=0.5``
(the local cluster runs its pods twice as long as its profile says), and the ``--workflows`` batch is run under
``--policy`` twice, without and with the operator's online estimates (``--no-learn-estimates``, then learning from
an empty ConfigMap): average response time and estimate error (observed / placed-with estimate, mean over every
finished pod, from ``scale_sched_estimate_error_ratio``; 1 is exact) for each. ``--seeds K`` does so for K batches
(seeds ``--seed`` .. ``--seed``+K-1) in the one cluster, each online run from an empty ConfigMap again, and reports
the means and the paired difference online - static per metric (95% CI, paired t-test p-value).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.table import Table
from scale_scheduler.operator.core.estimate_store import CONFIG_MAP_NAME
from scale_scheduler.operator.dev.cluster_watch import (
    Follower,
    create_namespace,
    delete_workflows,
    wait_no_pods,
    workflow_manifest,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.dev.samples import POD_TEMPLATE
from scale_scheduler.operator.kube import labels
from scale_scheduler.policy.evaluation import paired_difference
from scale_scheduler.policy.registry import CLUSTER_METHODS, DEFAULT_CLUSTER_POLICY, make_scheduler
from scale_scheduler.simulator.cluster import ClusterSpec, heterogeneous
from scale_scheduler.simulator.engine import simulate
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import DEFAULT_RULE, RULE_HELP, PlacementRule, parse_rule
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive, Workflow

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "charts" / "scale-scheduler" / "crds" / "workflowdags.agentic.scale.dev.yaml"
THROUGHPUT_WORKFLOWS = 10
CREATOR_THREADS = 8
POLICIES = ("scale", "least-loaded")
# least-loaded: the simplest decision; the operator's default; the learned SCALE policy (a forward pass per decision)
THROUGHPUT_POLICIES = ("least-loaded", DEFAULT_CLUSTER_POLICY, "scale")
# tool_call's default requests: small enough that every pod of the throughput runs fits at once
TOOL_CALL_REQUESTS = {"cpu": "250m", "memory": "256Mi"}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class BindTimes:
    """When this script first saw each pod, and first saw it bound."""

    first_seen: dict[str, float] = field(default_factory=dict)
    bound: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_event(self, event_type: str, pod: dict[str, Any], seen_at: float) -> None:
        name = pod["metadata"]["name"]
        with self.lock:
            self.first_seen.setdefault(name, seen_at)
            if (pod.get("spec") or {}).get("nodeName"):
                self.bound.setdefault(name, seen_at)

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.bound) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {len(self.bound)} of {count} pods bound after {timeout:.0f} s")
            time.sleep(0.05)

    def pods_per_second(self) -> float:
        span = max(self.bound.values()) - min(self.first_seen.values())
        return len(self.bound) / max(span, 1e-9)


@contextmanager
def operator_for_bench(
    kubeconfig: Path, policy: str, time_scale: float, rule: PlacementRule, log_path: Path, learn: bool = False
) -> Iterator[int]:
    """``scale-sched operator run`` on every namespace; yields its metrics port once kopf answers /healthz."""
    with running_operator(
        kubeconfig,
        policy=policy,
        time_scale=time_scale,
        metrics=True,
        log_path=log_path,
        extra=("--rule", rule.value, "--log-level", "warning"),
        learn_estimates=learn,
    ) as operator:
        yield operator.metrics_port


def latency_buckets(metrics_port: int) -> tuple[np.ndarray, np.ndarray]:
    """(upper bounds, cumulative counts) of the operator's decision-latency histogram."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    bounds, counts = [], []
    for family in text_string_to_metric_families(text):
        if family.name != "scale_sched_decision_latency_seconds":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("source") == "operator":
                bounds.append(float(sample.labels["le"]))
                counts.append(sample.value)
    order = np.argsort(bounds)
    return np.asarray(bounds)[order], np.asarray(counts)[order]


def estimate_error(metrics_port: int) -> float:
    """Mean observed / placed-with estimate over every pod the operator saw finish (all kinds)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    totals = {"_sum": 0.0, "_count": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name == "scale_sched_estimate_error_ratio":
            for sample in family.samples:
                for suffix in totals:
                    if sample.name.endswith(suffix):
                        totals[suffix] += sample.value
    return totals["_sum"] / totals["_count"] if totals["_count"] else float("nan")


def histogram_quantile(quantile: float, bounds: np.ndarray, cumulative: np.ndarray) -> float:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding the quantile."""
    total = cumulative[-1]
    if total <= 0:
        return float("nan")
    rank = quantile * total
    i = int(np.searchsorted(cumulative, rank))
    if i >= len(bounds) - 1 and np.isinf(bounds[i]):
        return float(bounds[-2])
    lower = 0.0 if i == 0 else bounds[i - 1]
    below = 0.0 if i == 0 else cumulative[i - 1]
    inside = cumulative[i] - below
    return float(lower + (bounds[i] - lower) * ((rank - below) / inside if inside > 0 else 1.0))


def tool_call_pod(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "containers": [
                {
                    "name": "main",
                    "image": POD_TEMPLATE["image"],
                    "resources": {"requests": TOOL_CALL_REQUESTS, "limits": TOOL_CALL_REQUESTS},
                }
            ],
        },
    }


def kube_scheduler_throughput(core: client.CoreV1Api, pods: int, namespace: str) -> float:
    create_namespace(core, namespace)
    times = BindTimes()
    follower = Follower(core.list_namespaced_pod, times.on_event, namespace=namespace).start()
    try:
        with ThreadPoolExecutor(CREATOR_THREADS) as pool:
            list(
                pool.map(lambda i: core.create_namespaced_pod(namespace, tool_call_pod(f"plain-{i:04d}")), range(pods))
            )
        times.wait(pods, timeout=300)
    finally:
        follower.close()
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_no_pods(core, namespace)
    return times.pods_per_second()


def wide_workflow(name: str, width: int) -> Workflow:
    """Independent tool calls that run for an hour: every pod of the throughput run is bound and stays."""
    calls = [Primitive(f"call-{i:03d}", PrimitiveKind.TOOL_CALL, work_seconds=3600.0) for i in range(width)]
    return Workflow(name, calls)


@dataclass
class Latency:
    """The operator's decision latency over one run, from its histogram."""

    p50_ms: float
    p99_ms: float
    decisions: int


@dataclass
class DecisionHistogram:
    """The operator's decision-latency histogram over a run (cumulative bucket counts, after minus before); the
    histograms of several operators' runs add up (every operator has the same buckets)."""

    bounds: np.ndarray
    cumulative: np.ndarray

    def __add__(self, other: DecisionHistogram) -> DecisionHistogram:
        return DecisionHistogram(self.bounds, self.cumulative + other.cumulative)

    def latency(self) -> Latency:
        return Latency(
            histogram_quantile(0.5, self.bounds, self.cumulative) * 1000.0,
            histogram_quantile(0.99, self.bounds, self.cumulative) * 1000.0,
            int(self.cumulative[-1]),
        )


@contextmanager
def measured_latency(metrics_port: int) -> Iterator[list[DecisionHistogram]]:
    """Yields a list that holds the run's DecisionHistogram once the block ends."""
    bounds, before = latency_buckets(metrics_port)
    result: list[DecisionHistogram] = []
    yield result
    after_bounds, after = latency_buckets(metrics_port)
    if len(before) == 0:  # no decision had been recorded yet: the histogram had no series
        bounds, before = after_bounds, np.zeros_like(after)
    result.append(DecisionHistogram(bounds, after - before))


def operator_throughput(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kubeconfig: Path,
    pods: int,
    policy: str,
    rule: PlacementRule,
    namespace: str,
    log_path: Path,
) -> tuple[float, DecisionHistogram]:
    """(pods per second, decision latencies) of the operator under ``policy`` placing and binding ``pods`` pods."""
    create_namespace(core, namespace)
    widths = [pods // THROUGHPUT_WORKFLOWS + (i < pods % THROUGHPUT_WORKFLOWS) for i in range(THROUGHPUT_WORKFLOWS)]
    with (
        operator_for_bench(kubeconfig, policy, 1.0, rule, log_path) as metrics_port,
        measured_latency(metrics_port) as latency,
    ):
        times = BindTimes()
        follower = Follower(core.list_namespaced_pod, times.on_event, namespace=namespace).start()
        try:
            for i, width in enumerate(widths):
                manifest = workflow_manifest(wide_workflow(f"wide-{i:02d}", width), namespace)
                custom.create_namespaced_custom_object(labels.GROUP, labels.VERSION, namespace, labels.PLURAL, manifest)
            times.wait(pods, timeout=300)
        finally:
            follower.close()
        delete_workflows(custom, namespace)  # the garbage collector removes their pods
        wait_no_pods(core, namespace)
    return times.pods_per_second(), latency[0]


@dataclass
class ResponseRun:
    policy: str
    cluster_seconds: list[float]  # simulated seconds, from this script's watch
    status_seconds: list[float]  # simulated seconds, from the operator's status.responseTimeSeconds
    simulator_seconds: list[float]  # avg response time per simulator seed
    latency: Latency

    @property
    def cluster_mean(self) -> float:
        return float(np.mean(self.cluster_seconds))

    @property
    def simulator_mean(self) -> float:
        return float(np.mean(self.simulator_seconds))


def cluster_response_times(
    core: client.CoreV1Api,
    custom: client.CustomObjectsApi,
    kubeconfig: Path,
    workflows: list[Workflow],
    policy: str,
    time_scale: float,
    rule: PlacementRule,
    work: Path,
    learn: bool = False,
    batch: str = "",
) -> tuple[list[float], list[float], Latency, float]:
    """(response times seen by this script, response times in the operator's status, decision latency, estimate
    error) of the batch, under a fresh operator (``learn``: with online estimates), in a namespace of its own
    (``batch`` tells apart batches run under the same policy)."""
    tag = f"{policy}-learn" if learn else policy
    namespace = f"bench-response-{tag}{batch}"
    create_namespace(core, namespace)
    submitted: dict[str, float] = {}
    finished: dict[str, tuple[float, float]] = {}
    failed: list[str] = []

    def on_event(event_type: str, obj: dict[str, Any], seen_at: float) -> None:
        status, name = obj.get("status") or {}, obj["metadata"]["name"]
        if status.get("phase") == "Succeeded" and name not in finished:
            finished[name] = (seen_at, float(status.get("responseTimeSeconds", "nan")))
        elif status.get("phase") == "Failed" and name not in failed:
            failed.append(name)

    with (
        operator_for_bench(kubeconfig, policy, time_scale, rule, work / f"operator-{tag}.log", learn) as metrics_port,
        measured_latency(metrics_port) as latency,
    ):
        follower = Follower(
            custom.list_namespaced_custom_object,
            on_event,
            group=labels.GROUP,
            version=labels.VERSION,
            namespace=namespace,
            plural=labels.PLURAL,
        ).start()
        try:
            start = time.time()
            for workflow in workflows:
                time.sleep(max(start + workflow.arrival_time / time_scale - time.time(), 0.0))
                manifest = workflow_manifest(workflow, namespace)
                submitted[workflow.name] = time.time()
                custom.create_namespaced_custom_object(labels.GROUP, labels.VERSION, namespace, labels.PLURAL, manifest)
            deadline = time.monotonic() + 600
            while len(finished) + len(failed) < len(workflows):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{policy}: {len(finished)} of {len(workflows)} workflows done after 600 s")
                time.sleep(0.2)
            error = estimate_error(metrics_port)
        finally:
            follower.close()
        if failed:
            raise RuntimeError(f"{policy}: workflows failed on the cluster: {failed}")
        delete_workflows(custom, namespace)  # the garbage collector removes their pods
        wait_no_pods(core, namespace)  # the next policy starts on cold, empty nodes, as the simulator does
    cluster = [(finished[w.name][0] - submitted[w.name]) * time_scale for w in workflows]
    status = [finished[w.name][1] * time_scale for w in workflows]
    return cluster, status, latency[0].latency(), error


def simulator_response_times(
    spec: ClusterSpec, workflows: list[Workflow], policy: str, seeds: int, rule: PlacementRule
) -> list[float]:
    results = []
    for seed in range(seeds):
        scheduler = make_scheduler(policy)
        scheduler.reset(seed)
        results.append(simulate(spec, copy.deepcopy(workflows), scheduler, seed=seed, rule=rule).avg_response_time)
    return results


def run(args: argparse.Namespace) -> dict[str, Any]:
    name = f"bench-operator-{int(time.time())}"
    log(f"starting cluster {name} with {args.nodes} nodes ...")
    info = kwok.up(name, heterogeneous(args.nodes, seed=0), timeout=600, progress=log)
    runs: list[ResponseRun] = []
    kube_rates: list[float] = []
    rates: dict[str, list[float]] = {policy: [] for policy in args.throughput_policies}
    histograms: dict[str, DecisionHistogram] = {}
    try:
        kwok.kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kwok.wait_established(info, f"{labels.PLURAL}.{labels.GROUP}")
        api = config.new_client_from_config(config_file=str(info.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        spec = ClusterSpec.from_kubectl_json(kwok.kubectl(info, "get", "nodes", "-o", "json"))
        with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
            work = Path(args.logs) if args.logs else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            # Rounds interleave kube-scheduler and every policy, so a change in the machine's load (a shared
            # machine's other work) falls on all of them alike; each ratio is taken within its round.
            for round_ in range(args.rounds):
                log(f"round {round_ + 1}/{args.rounds}: kube-scheduler binding {args.pods} plain pods ...")
                kube_rates.append(kube_scheduler_throughput(core, args.pods, f"bench-kube-scheduler-{round_}"))
                for policy in args.throughput_policies:
                    log(f"round {round_ + 1}/{args.rounds}: operator (policy {policy}) binding {args.pods} pods ...")
                    rate, histogram = operator_throughput(
                        core,
                        custom,
                        info.kubeconfig,
                        args.pods,
                        policy,
                        args.rule,
                        f"bench-operator-{policy}-{round_}",
                        work / f"operator-throughput-{policy}-{round_}.log",
                    )
                    rates[policy].append(rate)
                    histograms[policy] = histograms[policy] + histogram if policy in histograms else histogram
            if not args.throughput_only:
                workflows = generate_workload(spec, args.workflows, load=args.load, seed=args.seed)
                for policy in POLICIES:
                    log(f"{args.workflows} workflows under --policy {policy} at --time-scale {args.time_scale} ...")
                    cluster, status, latency, _ = cluster_response_times(
                        core,
                        custom,
                        info.kubeconfig,
                        copy.deepcopy(workflows),
                        policy,
                        args.time_scale,
                        args.rule,
                        work,
                    )
                    runs.append(
                        ResponseRun(
                            policy,
                            cluster,
                            status,
                            simulator_response_times(spec, workflows, policy, args.sim_seeds, args.rule),
                            latency,
                        )
                    )
    finally:
        log(f"stopping cluster {name} ...")
        kwok.down(name)
    headline = args.throughput_policies[0]
    # medians over the rounds; a policy's ratio is the median of its per-round ratios
    throughput = {
        policy: {
            "pods_per_second": float(np.median(policy_rates)),
            "vs_kube_scheduler": float(np.median(np.asarray(policy_rates) / np.asarray(kube_rates))),
            "pods_per_second_by_round": policy_rates,
        }
        for policy, policy_rates in rates.items()
    }
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "pods": args.pods,
        "rounds": args.rounds,
        "rule": args.rule.value,  # the placement rule of the operator and of the simulator alike
        # headline: the first --throughput-policies entry's; every policy's under "throughput"
        "operator_pods_per_second": throughput[headline]["pods_per_second"],
        "operator_throughput_policy": headline,
        "kube_scheduler_pods_per_second": float(np.median(kube_rates)),
        "kube_scheduler_pods_per_second_by_round": kube_rates,
        "operator_vs_kube_scheduler_throughput": throughput[headline]["vs_kube_scheduler"],
        "throughput": throughput,
        "decision_latency_ms": {
            # every round's decisions of the policy, in one histogram
            **{f"{policy} (throughput run)": asdict(histogram.latency()) for policy, histogram in histograms.items()},
            **{f"{run.policy} (response-time run)": asdict(run.latency) for run in runs},
        },
    }
    if not runs:
        return result
    return {
        **result,
        # headline: the SCALE policy's decisions in its response-time run
        "decision_latency_p50_ms": runs[0].latency.p50_ms,
        "decision_latency_p99_ms": runs[0].latency.p99_ms,
        "workflows": args.workflows,
        "time_scale": args.time_scale,
        "load": args.load,
        "seed": args.seed,
        # headline: the SCALE policy's; per policy below
        "sim_vs_cluster_response_time_ratio": runs[0].simulator_mean / runs[0].cluster_mean,
        "response_time": {
            run.policy: {
                "cluster_avg_seconds": run.cluster_mean,
                "operator_status_avg_seconds": float(np.mean(run.status_seconds)),
                "simulator_avg_seconds": run.simulator_mean,
                "simulator_seed_spread_seconds": [min(run.simulator_seconds), max(run.simulator_seconds)],
                "sim_vs_cluster_ratio": run.simulator_mean / run.cluster_mean,
            }
            for run in runs
        },
    }


WRONG_PRIOR_METRICS = ("avg_response_seconds", "estimate_error_mean_ratio")


def wrong_prior(args: argparse.Namespace) -> dict[str, Any]:
    """The ``--wrong-prior`` experiment (module docstring), on ``--seeds`` workflow batches in one cluster."""
    name = f"bench-estimates-{int(time.time())}"
    spec = heterogeneous(args.nodes, seed=0)
    slow = [node.name for node in spec.nodes if node.node_class == args.wrong_prior]
    seeds = list(range(args.seed, args.seed + args.seeds))
    log(f"starting cluster {name} with {args.nodes} nodes; {len(slow)} {args.wrong_prior} nodes run at half speed")
    info = kwok.up(name, spec, timeout=600, progress=log)
    per_seed: list[dict[str, Any]] = []
    try:
        kwok.kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kwok.wait_established(info, f"{labels.PLURAL}.{labels.GROUP}")
        kwok.kubectl(info, "label", "node", *slow, f"{labels.SIMULATED_SPEED_LABEL}=0.5", "--overwrite")
        api = config.new_client_from_config(config_file=str(info.kubeconfig))
        core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
        with tempfile.TemporaryDirectory(prefix="bench-estimates-") as tmp:
            work = Path(args.logs) if args.logs else Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            for seed in seeds:
                workflows = generate_workload(spec, args.workflows, load=args.load, seed=seed)
                runs: dict[str, Any] = {"seed": seed}
                (work / f"seed-{seed}").mkdir(exist_ok=True)
                for learn in (False, True):
                    log(f"seed {seed}: {args.workflows} workflows, --policy {args.policy}, online estimates {learn}")
                    if learn:  # every seed's online run learns from nothing, as the first one does
                        forget_learned(core)
                    cluster, _, _, error = cluster_response_times(
                        core,
                        custom,
                        info.kubeconfig,
                        copy.deepcopy(workflows),
                        args.policy,
                        args.time_scale,
                        args.rule,
                        work / f"seed-{seed}",
                        learn,
                        batch=f"-seed{seed}",
                    )
                    runs["online" if learn else "static"] = {
                        "avg_response_seconds": float(np.mean(cluster)),
                        "estimate_error_mean_ratio": error,
                    }
                per_seed.append(runs)
    finally:
        log(f"stopping cluster {name} ...")
        kwok.down(name)
    return {
        "nodes": args.nodes,
        "slow_class": args.wrong_prior,
        "slow_nodes": len(slow),
        "policy": args.policy,
        "workflows": args.workflows,
        "load": args.load,
        "seed": args.seed,
        "seeds": seeds,
        "time_scale": args.time_scale,
        "rule": args.rule.value,
        **wrong_prior_summary(per_seed),
    }


def forget_learned(core: client.CoreV1Api) -> None:
    """Delete what an operator learned before (the bench's operators keep it in namespace default)."""
    try:
        core.delete_namespaced_config_map(CONFIG_MAP_NAME, "default")
    except client.ApiException as error:
        if error.status != 404:
            raise


def wrong_prior_summary(per_seed: list[dict[str, Any]]) -> dict[str, Any]:
    """``runs``: each metric's mean over the seeds, without (static) and with (online) online estimates (one seed:
    its own figures); ``per_seed``; and, from two seeds on, ``paired``: online - static per metric over the seeds
    (mean difference, 95% CI, paired t-test p-value, relative change)."""
    summary: dict[str, Any] = {
        "runs": {
            run: {metric: float(np.mean([seed[run][metric] for seed in per_seed])) for metric in WRONG_PRIOR_METRICS}
            for run in ("static", "online")
        },
        "per_seed": per_seed,
    }
    if len(per_seed) > 1:
        summary["paired"] = {
            metric: paired_difference(
                np.array([seed["online"][metric] for seed in per_seed]),
                np.array([seed["static"][metric] for seed in per_seed]),
            )
            for metric in WRONG_PRIOR_METRICS
        }
    return summary


def print_table(result: dict[str, Any]) -> None:
    console = Console()
    binding = Table(
        title=f"binding {result['pods']} pods on {result['nodes']} nodes (one cluster, median of {result['rounds']} "
        "interleaved rounds)"
    )
    for column in ("scheduler", "pods/s", "vs kube-scheduler"):
        binding.add_column(column, justify="right")
    for policy, row in result["throughput"].items():
        binding.add_row(
            f"scale-sched operator ({policy})", f"{row['pods_per_second']:.1f}", f"{row['vs_kube_scheduler']:.2f}x"
        )
    binding.add_row("kube-scheduler", f"{result['kube_scheduler_pods_per_second']:.1f}", "1.00x")
    console.print(binding)
    latency = Table(title="operator decision latency (observation + policy)")
    for column in ("run", "decisions", "p50", "p99"):
        latency.add_column(column, justify="right")
    for run, row in result["decision_latency_ms"].items():
        latency.add_row(run, str(row["decisions"]), f"{row['p50_ms']:.2f} ms", f"{row['p99_ms']:.2f} ms")
    console.print(latency)
    if "response_time" not in result:
        return
    response = Table(
        title=f"avg workflow response time, {result['workflows']} workflows, load {result['load']}, "
        f"seed {result['seed']}, time scale {result['time_scale']}, rule {result['rule']} "
        "(simulated seconds)"
    )
    for column in ("policy", "cluster", "operator status", "simulator", "sim / cluster"):
        response.add_column(column, justify="right")
    for policy, row in result["response_time"].items():
        response.add_row(
            policy,
            f"{row['cluster_avg_seconds']:.1f}",
            f"{row['operator_status_avg_seconds']:.1f}",
            f"{row['simulator_avg_seconds']:.1f}",
            f"{row['sim_vs_cluster_ratio']:.3f}",
        )
    console.print(response)


def positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def throughput_policies(value: str) -> tuple[str, ...]:
    """--throughput-policies: comma-separated operator policies, each one the operator accepts."""
    policies = tuple(policy.strip() for policy in value.split(",") if policy.strip())
    unknown = [policy for policy in policies if policy not in CLUSTER_METHODS]
    if not policies or unknown:
        named = ", ".join(map(repr, unknown)) or "(none given)"
        raise argparse.ArgumentTypeError(f"unknown policy {named}; choose from {', '.join(CLUSTER_METHODS)}")
    return policies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=48)
    parser.add_argument("--pods", type=int, default=300, help="pods bound by each scheduler in the throughput run")
    parser.add_argument("--workflows", type=int, default=24, help="workflows in the response-time batch")
    parser.add_argument("--load", type=float, default=0.5, help="offered load of the batch's arrivals")
    parser.add_argument("--seed", type=int, default=3, help="seed of the workflow batch")
    parser.add_argument(
        "--time-scale",
        type=float,
        default=1.0,
        help="simulated seconds per wall second of the operator (pods run 1/time-scale as long)",
    )
    parser.add_argument("--sim-seeds", type=int, default=5, help="simulator duration draws averaged")
    parser.add_argument(
        "--rule", choices=[rule.value for rule in PlacementRule], default=DEFAULT_RULE.value, help=RULE_HELP
    )
    parser.add_argument(
        "--throughput-policies",
        type=throughput_policies,
        default=THROUGHPUT_POLICIES,
        help=f"operator policies of the throughput run, comma-separated (default {','.join(THROUGHPUT_POLICIES)}; "
        "the first is the JSON's headline)",
    )
    parser.add_argument(
        "--throughput-only", action="store_true", help="only the binding throughput runs, no response-time batch"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=3,
        help="interleaved throughput rounds (kube-scheduler, then each policy); the medians are reported",
    )
    parser.add_argument("--logs", help="keep the operators' logs in this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--wrong-prior", metavar="CLASS", help="run only the wrong-prior experiment on this class")
    parser.add_argument("--policy", default="srpt-eft", help="the policy of the --wrong-prior experiment")
    parser.add_argument(
        "--seeds",
        type=positive_int,
        default=1,
        help="--wrong-prior: workflow batches of seeds --seed, --seed+1, ..., each run without and with online "
        "estimates; reported: the means and the paired difference (online - static) with its 95%% CI and p-value",
    )
    args = parser.parse_args()
    args.rule = parse_rule(args.rule)
    if args.seeds > 1 and not args.wrong_prior:
        parser.error("--seeds repeats the --wrong-prior experiment: give --wrong-prior CLASS")
    if args.wrong_prior:
        classes = sorted({node.node_class for node in heterogeneous(args.nodes, seed=0).nodes})
        if args.wrong_prior not in classes:
            parser.error(
                f"--wrong-prior: no {args.wrong_prior} node among {args.nodes} nodes; choose from {', '.join(classes)}"
            )
    if args.wrong_prior:
        print(json.dumps(wrong_prior(args), indent=None if args.json else 1))
        return
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)


if __name__ == "__main__":
    main()
