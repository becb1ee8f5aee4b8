"""A soak of the operator on the local control plane: thousands of WorkflowDAGs at a steady load, under each policy
in turn, checking that nothing is lost, no node is ever overcommitted and the operator's memory stays bounded.

A benchmark, not a test: ``python bench/soak.py [--nodes 256] [--workflows 1000] [--policies scale,heft] [--json]``
brings its own local cluster up (``localcluster.kwok.up``: the simulator's ``heterogeneous(--nodes, seed=0)``
nodes, no kube-scheduler) and down. It stops by itself: after ``--workflows`` workflows per policy, or after
``--max-minutes`` per policy, whichever comes first.

Workload: ``generate_workload`` (seed ``--seed``, load ``--load`` of the cluster's capacity, Poisson arrivals)
from the shapes of ``--shapes``, submitted at their arrival times divided by ``--time-scale`` (the KWOK pods run
their simulated durations divided by it too). The generator's five agentic shapes average 5.8 primitives, too
few for 1,000 workflows to make 10,000 pods; the default mix adds three of the scenario library's larger shapes
(long-chain: deep DAGs, many steps; lattice; seismology: a wide fan-out) for a mean of 10.8 primitives: 11,001
pods for 1,000 workflows at seed 3. At 256 nodes and load 0.5 the arrivals span 242 simulated seconds; the default
``--time-scale 0.4`` spreads them over 10 minutes of wall time (about 18 pods/s), plus the drain.

One cluster for every policy (starting 256 nodes takes minutes, and the policies then share the same nodes);
each policy gets a fresh operator (``scale-sched operator run --all-namespaces``, as deployed) and a fresh
namespace, and starts on empty nodes: the previous policy's workflows and pods are deleted first, so neither its
pods nor its operator's memory carry over. Each WorkflowDAG is deleted once it has finished (its pods go with it,
through the garbage collector), as a TTL controller would: the cluster's object count then stays bounded, so a
growing RSS is the operator's own, not the watch caches of an ever larger cluster (``--keep-finished`` keeps
them, to see that growth instead).

Reported per policy, as it goes (one progress line) and at the end:
- workflows succeeded / failed / lost. Lost: submitted and not Succeeded or Failed when the policy's run ends,
  or with two pods of one (primitive, attempt) (the pods' workflow / primitive / attempt labels; every pod uid
  the watch ever saw counts, deleted ones too). Workflows never submitted (``--max-minutes`` came first) are
  reported apart.
- overcommit: for each node, the summed requests (cpu, memory, GPUs) of the pods bound to it and not finished,
  over its allocatable, checked at every pod event this script's watch delivers (the API server's own order of
  events, so a stronger check than sampling); the largest ratio per resource and every moment above 1, loudly.
- time to bind: from when this script's watch first sees a pod to when it first sees it bound (``spec.nodeName``);
  both ends measured by the same watch, in milliseconds (creationTimestamp has only second resolution); p50, p99.
- workflow response time: from this script's create to its watch seeing the workflow finished, wall seconds,
  p50 / p99 / max (times ``--time-scale`` for simulated seconds).
- decisions/s: the operator's ``scale_sched_decisions_total`` over the policy's run (first submission to end), and
  the highest over one sample period.
- the operator's RSS (``/proc/PID/status``) every ``--sample-seconds``: start, max, end, and the slope of a line
  fitted to RSS against workflows finished (MB per 1,000 workflows, over the samples of the second half of them:
  the first is warm-up, the model, caches, the allocator's arenas): flat means bounded.
- the operator's log (run at ``--log-level warning``): how many WARNING and ERROR lines, and the first few.
- API requests per workflow: kube-apiserver's ``apiserver_request_total`` (from its /metrics, with the kubeconfig's
  credentials), every verb but WATCH, from just before the operator starts to the end of the run, on the objects a
  workflow makes (``WORKFLOW_RESOURCES``: WorkflowDAGs, pods and their subresources, Events), less this script's
  own requests (its creates, deletes and two lists), divided by workflows submitted. The local API server runs
  without API Priority and Fairness, so it has no per-client counter: the figure holds every client the workflows
  cause, the operator's requests (reconcile reads, pods, bindings, status, Events) and kwok's (each pod's Running
  and finished status) and the garbage collector's alike; the breakdown by verb and resource (all resources, node
  heartbeats and leases too) tells them apart. The cluster's idle traffic (heartbeats, leases: bursty, tens of
  requests a second at 256 nodes) is left out by resource rather than by subtracting an idle rate, which a short
  idle window measures too poorly.

The JSON (``--json`` on stdout, ``--out FILE``) holds all of it per policy, with the command line, the git commit
and the machine. Exit code 0 when no policy lost a workflow or overcommitted a node, 1 otherwise, 2 for bad options.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
from kubernetes import client, config
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text
from scale_scheduler.operator.dev.cluster_watch import (
    Follower,
    delete_workflows,
    submit_workflow,
    wait_no_pods,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.kube import labels
from scale_scheduler.policy.registry import CLUSTER_METHODS
from scale_scheduler.simulator.cluster import GPU_RESOURCE, heterogeneous, parse_quantity
from scale_scheduler.simulator.generators import SHAPES, generate_workload
from scale_scheduler.simulator.placement import DEFAULT_RULE, RULE_HELP, PlacementRule
from scale_scheduler.simulator.scenarios import SHAPE_LIBRARY
from scale_scheduler.simulator.workflow import Workflow

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "charts" / "scale-scheduler" / "crds" / "workflowdags.agentic.scale.dev.yaml"
DEFAULT_POLICIES = ("scale", "heft")  # the learned policy and the strongest list-scheduling heuristic
DEFAULT_SHAPES = (*SHAPES, "long-chain", "lattice", "seismology")  # mean 10.8 primitives (module docstring)
RESOURCES = ("cpu", "memory", GPU_RESOURCE)
# What a workflow's life touches; the rest (nodes, leases, endpoints, ...) is the cluster's own traffic.
WORKFLOW_RESOURCES = frozenset({labels.PLURAL, "pods", "events"})
PROGRESS_LOG_SECONDS = 30.0  # when stderr is not a terminal, the progress line is logged this often
CLEANUP_SECONDS = 900.0  # deleting 10,000 pods between two policies
TERMINAL = ("Succeeded", "Failed")


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- options ------------------------------------------------------------------------------------------------------


def _number(value: str, kind: type[int] | type[float]) -> float:
    try:
        number = kind(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a{'n integer' if kind is int else ' number'}: {value!r}") from None
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"must be finite, not {value!r}")
    return number


def positive_int(value: str) -> int:
    number = int(_number(value, int))
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {number}")
    return number


def non_negative_int(value: str) -> int:
    number = int(_number(value, int))
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {number}")
    return number


def positive_float(value: str) -> float:
    number = _number(value, float)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be above 0, not {value}")
    return number


def time_scale_option(value: str) -> float:
    number = _number(value, float)
    if number < 0.001:  # the operator's own lower bound
        raise argparse.ArgumentTypeError(f"must be at least 0.001 (the operator's bound), not {value}")
    return number


def load_option(value: str) -> float:
    number = _number(value, float)
    if not 0 < number <= 1:
        raise argparse.ArgumentTypeError(
            f"must be in (0, 1], not {value}: a soak needs a steady load, and above 1 the queue grows without bound"
        )
    return number


def policies_option(value: str) -> tuple[str, ...]:
    policies = tuple(policy.strip() for policy in value.split(",") if policy.strip())
    unknown = [policy for policy in policies if policy not in CLUSTER_METHODS]
    if not policies or unknown:
        named = ", ".join(map(repr, unknown)) or "(none given)"
        raise argparse.ArgumentTypeError(f"unknown policy {named}; choose from {', '.join(CLUSTER_METHODS)}")
    if len(set(policies)) < len(policies):
        raise argparse.ArgumentTypeError(f"a policy is named twice in {value!r}")
    return policies


def shapes_option(value: str) -> tuple[str, ...]:
    shapes = tuple(shape.strip() for shape in value.split(",") if shape.strip())
    unknown = [shape for shape in shapes if shape not in SHAPE_LIBRARY]
    if not shapes or unknown:
        named = ", ".join(map(repr, unknown)) or "(none given)"
        raise argparse.ArgumentTypeError(f"unknown shape {named}; choose from {', '.join(SHAPE_LIBRARY)}")
    return shapes


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--nodes", type=positive_int, default=256, help="simulated nodes of the local cluster")
    parser.add_argument("--workflows", type=positive_int, default=1000, help="WorkflowDAGs submitted per policy")
    parser.add_argument(
        "--policies",
        type=policies_option,
        default=DEFAULT_POLICIES,
        help=f"operator policies, comma-separated, run in turn (default {','.join(DEFAULT_POLICIES)})",
    )
    parser.add_argument("--load", type=load_option, default=0.5, help="offered load, a share of the capacity")
    parser.add_argument(
        "--time-scale",
        type=time_scale_option,
        default=0.4,
        help="simulated seconds per wall second: arrivals and pod run times are divided by it (default 0.4)",
    )
    parser.add_argument(
        "--max-minutes",
        type=positive_float,
        default=30.0,
        help="wall-clock bound per policy; what is not finished then counts as lost (default %(default)g)",
    )
    parser.add_argument(
        "--sample-seconds", type=positive_float, default=5.0, help="period of the RSS and metrics samples"
    )
    parser.add_argument("--seed", type=non_negative_int, default=3, help="seed of the workload")
    parser.add_argument(
        "--shapes",
        type=shapes_option,
        default=DEFAULT_SHAPES,
        help=f"workflow shapes, comma-separated (default {','.join(DEFAULT_SHAPES)})",
    )
    parser.add_argument(
        "--rule", choices=[rule.value for rule in PlacementRule], default=DEFAULT_RULE.value, help=RULE_HELP
    )
    parser.add_argument(
        "--keep-finished",
        action="store_true",
        help="keep finished WorkflowDAGs and their pods (default: delete each once finished, as a TTL would)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--out", type=Path, help="also write the JSON to this file")
    parser.add_argument("--logs", type=Path, help="keep the operators' logs in this folder")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The options, checked together and against the workload they make; a bad one exits 2 with one line."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.sample_seconds > args.max_minutes * 60:
        parser.error(f"--sample-seconds {args.sample_seconds:g} is longer than --max-minutes {args.max_minutes:g}")
    if args.out is not None and not args.out.parent.is_dir():
        parser.error(f"--out {args.out}: folder {args.out.parent} does not exist")
    try:
        args.workload = generate_workload(
            heterogeneous(args.nodes, seed=0),
            args.workflows,
            load=args.load,
            seed=args.seed,
            shapes=args.shapes,
            library=SHAPE_LIBRARY,
        )
    except ValueError as error:  # a primitive no node of so small a cluster can hold
        parser.error(f"--nodes {args.nodes} cannot run the workload: {str(error).splitlines()[0]}")
    span_minutes = args.workload[-1].arrival_time / args.time_scale / 60
    if span_minutes >= args.max_minutes:
        parser.error(
            f"at --time-scale {args.time_scale:g} the {args.workflows} arrivals span {span_minutes:.1f} min, "
            f"not within --max-minutes {args.max_minutes:g}: raise --time-scale or --max-minutes"
        )
    return args


# -- what the watches see -------------------------------------------------------------------------------------------


def pod_requests(pod: dict[str, Any]) -> np.ndarray:
    """The pod's effective requests over RESOURCES, as the kubelet counts them: the containers' sum, or the largest
    init container's where that is more."""

    def requests(container: dict[str, Any]) -> np.ndarray:
        asked = (container.get("resources") or {}).get("requests") or {}
        return np.array([parse_quantity(asked[name]) if name in asked else 0.0 for name in RESOURCES])

    spec = pod.get("spec") or {}
    total = sum((requests(c) for c in spec.get("containers") or []), np.zeros(len(RESOURCES)))
    for init in spec.get("initContainers") or []:
        total = np.maximum(total, requests(init))
    return total


@dataclass
class PodRecord:
    name: str
    requests: np.ndarray
    first_seen: float
    bound_at: float | None = None
    node: str | None = None
    holds_room: bool = False  # bound and not finished: its requests count on its node
    phase: str | None = None


@dataclass
class Ledger:
    """Every pod and WorkflowDAG event of one policy's namespace: bind times, duplicates, per-node use."""

    allocatable: dict[str, np.ndarray]
    pods: dict[str, PodRecord] = field(default_factory=dict)  # by uid
    uids_by_attempt: dict[tuple[str, str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    used: dict[str, np.ndarray] = field(default_factory=dict)
    max_ratio: np.ndarray = field(default_factory=lambda: np.zeros(len(RESOURCES)))
    overcommits: list[dict[str, Any]] = field(default_factory=list)  # the first few moments above 1
    overcommit_count: int = 0
    bound: int = 0  # pods seen bound (kept as it happens: counts() is called several times a second)
    phases: dict[str, str] = field(default_factory=dict)  # workflow -> its last phase seen
    submitted_at: dict[str, float] = field(default_factory=dict)
    finished_at: dict[str, float] = field(default_factory=dict)  # when the watch first saw it Succeeded or Failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def on_pod(self, event_type: str, pod: dict[str, Any], seen_at: float) -> None:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        with self.lock:
            record = self.pods.get(meta["uid"])
            if record is None:
                record = self.pods[meta["uid"]] = PodRecord(meta["name"], pod_requests(pod), seen_at)
                pod_labels = meta.get("labels") or {}
                attempt = (
                    pod_labels.get(labels.WORKFLOW_LABEL, ""),
                    pod_labels.get(labels.PRIMITIVE_LABEL, ""),
                    pod_labels.get(labels.ATTEMPT_LABEL, ""),
                )
                self.uids_by_attempt[attempt].add(meta["uid"])
            if spec.get("nodeName") and record.bound_at is None:
                record.bound_at, record.node = seen_at, spec["nodeName"]
                self.bound += 1
            phase = record.phase = (pod.get("status") or {}).get("phase")
            holds_room = record.node is not None and phase not in TERMINAL and event_type != "DELETED"
            if holds_room == record.holds_room or record.node is None:
                return
            record.holds_room = holds_room
            used = self.used.setdefault(record.node, np.zeros(len(RESOURCES)))
            used += record.requests if holds_room else -record.requests
            if holds_room:
                self._check(record.node, used, seen_at)

    def _check(self, node: str, used: np.ndarray, seen_at: float) -> None:
        allocatable = self.allocatable.get(node, np.zeros(len(RESOURCES)))
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(allocatable > 0, used / np.where(allocatable > 0, allocatable, 1), np.inf * (used > 0))
        ratio = np.nan_to_num(ratio, nan=0.0)
        self.max_ratio = np.maximum(self.max_ratio, ratio)
        if (ratio > 1 + 1e-9).any():
            self.overcommit_count += 1
            if len(self.overcommits) < 20:
                holding = [
                    {
                        "pod": r.name,
                        "phase": r.phase,
                        "bound_at": r.bound_at,
                        **dict(zip(RESOURCES, r.requests.tolist(), strict=True)),
                    }
                    for r in self.pods.values()
                    if r.node == node and r.holds_room
                ]
                self.overcommits.append(
                    {
                        "at": seen_at,
                        "node": node,
                        **{r: float(x) for r, x in zip(RESOURCES, ratio, strict=True)},
                        "pods": holding,  # what the watch saw holding room on the node at that moment
                    }
                )

    def on_workflow(self, event_type: str, workflow: dict[str, Any], seen_at: float) -> None:
        phase = (workflow.get("status") or {}).get("phase")
        if phase:
            name = workflow["metadata"]["name"]
            with self.lock:
                self.phases[name] = phase
                if phase in TERMINAL:
                    self.finished_at.setdefault(name, seen_at)

    def response_seconds(self) -> np.ndarray:
        """Wall seconds from each finished workflow's submission to the watch seeing it finished."""
        with self.lock:
            return np.array(
                [at - self.submitted_at[name] for name, at in self.finished_at.items() if name in self.submitted_at]
            )

    def finished(self) -> set[str]:
        with self.lock:
            return {name for name, phase in self.phases.items() if phase in TERMINAL}

    def counts(self) -> dict[str, int]:
        with self.lock:
            phases = Counter(self.phases.values())
            return {
                "succeeded": phases["Succeeded"],
                "failed": phases["Failed"],
                "pods": len(self.pods),
                "pods_bound": self.bound,
            }

    def duplicated_attempts(self) -> dict[tuple[str, str, str], int]:
        with self.lock:
            return {key: len(uids) for key, uids in self.uids_by_attempt.items() if len(uids) > 1}

    def bind_milliseconds(self) -> np.ndarray:
        with self.lock:
            return np.array([(r.bound_at - r.first_seen) * 1000 for r in self.pods.values() if r.bound_at is not None])


# -- probes ------------------------------------------------------------------------------------------------------


def rss_megabytes(pid: int) -> float:
    """Resident set size of process ``pid`` (Linux, as the local cluster is); NaN once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0  # kB
    except OSError:
        pass
    return float("nan")


def operator_decisions(metrics_port: int) -> float:
    """Every placement decision the operator counted so far, all policies and sources."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "scale_sched_decisions"
        for sample in family.samples
        if sample.name == "scale_sched_decisions_total"
    )


def apiserver_requests(api: client.ApiClient) -> Counter[str]:
    """kube-apiserver's ``apiserver_request_total`` by "VERB resource[/subresource]", resource requests other than
    WATCH (long-running; counted when they end); from its /metrics with the kubeconfig's credentials."""
    method, url, headers, body, post_params = api.param_serialize("GET", "/metrics", auth_settings=["BearerToken"])
    response = api.call_api(method, url, header_params=headers, body=body, post_params=post_params)
    if response.status != 200:
        raise RuntimeError(f"kube-apiserver /metrics answered HTTP {response.status} {response.reason}")
    lines = [line for line in response.read().decode().splitlines() if "apiserver_request_total" in line]
    totals: Counter[str] = Counter()
    for family in text_string_to_metric_families("\n".join(lines) + "\n"):
        for sample in family.samples:
            resource, verb = sample.labels.get("resource", ""), sample.labels.get("verb", "")
            if family.name != "apiserver_request" or not resource or verb == "WATCH":
                continue
            subresource = sample.labels.get("subresource", "")
            totals[f"{verb} {resource}{'/' + subresource if subresource else ''}"] += sample.value
    return totals


def percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


# -- one policy ---------------------------------------------------------------------------------------------------


@dataclass
class Progress:
    """The one progress line: on a terminal it updates in place; elsewhere it is logged now and then."""

    console: Console = field(default_factory=lambda: Console(stderr=True))
    live: Live | None = None
    last_logged: float = 0.0

    def __enter__(self) -> Progress:
        if self.console.is_terminal:
            self.live = Live(Text(""), console=self.console, refresh_per_second=2, transient=False)
            self.live.__enter__()
        return self

    def show(self, line: str, force: bool = False) -> None:
        if self.live is not None:
            self.live.update(Text(line))
        elif force or time.monotonic() - self.last_logged >= PROGRESS_LOG_SECONDS:
            self.last_logged = time.monotonic()
            log(line)

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(None, None, None)


def namespace_of(policy: str) -> str:
    return f"soak-{policy}"


def soak_policy(
    args: argparse.Namespace,
    info: kwok.ClusterInfo,
    api: client.ApiClient,
    allocatable: dict[str, np.ndarray],
    policy: str,
    work: Path,
) -> dict[str, Any]:
    """Submit the workload under a fresh ``policy`` operator and follow it until it is done or time is up."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    workflows: list[Workflow] = args.workload
    namespace = namespace_of(policy)
    kwok.create_namespace(info, namespace)  # returns once its default ServiceAccount exists: pods can be made
    ledger = Ledger(allocatable)

    before = apiserver_requests(api)
    window_start = time.monotonic()

    samples: list[dict[str, float]] = []
    submitted = 0
    with running_operator(
        info.kubeconfig,
        policy=policy,
        time_scale=args.time_scale,
        metrics=True,
        log_path=work / f"operator-{policy}.log",
        extra=("--rule", args.rule, "--log-level", "warning"),
    ) as operator:
        pid = operator.process.pid
        followers = [
            Follower(core.list_namespaced_pod, ledger.on_pod, namespace=namespace).start(),
            Follower(
                custom.list_namespaced_custom_object,
                ledger.on_workflow,
                group=labels.GROUP,
                version=labels.VERSION,
                namespace=namespace,
                plural=labels.PLURAL,
            ).start(),
        ]
        own_requests = 2  # the followers' lists
        deleted: set[str] = set()  # finished workflows this script deleted (their pods go with them)
        decisions_start = operator_decisions(operator.metrics_port)
        start = time.time()
        deadline = start + args.max_minutes * 60
        next_sample = start
        stopped_by = "done"

        def take_sample(now: float) -> None:
            counts = ledger.counts()
            alive = operator.process.poll() is None
            samples.append(
                {
                    "seconds": now - start,
                    "submitted": submitted,
                    "finished": counts["succeeded"] + counts["failed"],
                    "pods_bound": counts["pods_bound"],
                    "rss_mb": rss_megabytes(pid),
                    "decisions": (
                        operator_decisions(operator.metrics_port) - decisions_start
                        if alive
                        else (samples[-1]["decisions"] if samples else 0.0)
                    ),
                }
            )

        def progress_line() -> str:
            counts = ledger.counts()
            running = submitted - counts["succeeded"] - counts["failed"]
            rss = samples[-1]["rss_mb"] if samples else float("nan")
            use = " ".join(
                f"{name.split('/')[-1]} {x:.2f}" for name, x in zip(RESOURCES, ledger.max_ratio, strict=True)
            )
            return (
                f"{policy}: submitted {submitted}/{len(workflows)}  succeeded {counts['succeeded']}  failed "
                f"{counts['failed']}  running {running}  pods bound {counts['pods_bound']}/{counts['pods']}  "
                f"max node use {use}  operator RSS {rss:.0f} MB  {time.time() - start:.0f} s"
            )

        try:
            with Progress() as progress:
                while True:
                    now = time.time()
                    while (
                        submitted < len(workflows)
                        and start + workflows[submitted].arrival_time / args.time_scale <= now
                    ):
                        ledger.submitted_at[workflows[submitted].name] = time.time()
                        submit_workflow(custom, workflows[submitted], namespace)
                        submitted += 1
                        own_requests += 1
                    if not args.keep_finished:
                        for name in sorted(ledger.finished() - deleted):
                            custom.delete_namespaced_custom_object(
                                labels.GROUP, labels.VERSION, namespace, labels.PLURAL, name
                            )
                            deleted.add(name)
                            own_requests += 1
                    if now >= next_sample:
                        take_sample(now)
                        next_sample += args.sample_seconds
                    progress.show(progress_line())
                    if not all(follower.alive() for follower in followers):
                        raise RuntimeError(f"{policy}: a watch of this script died (its error is above)")
                    counts = ledger.counts()
                    if submitted == len(workflows) and counts["succeeded"] + counts["failed"] == submitted:
                        break
                    if now >= deadline:
                        stopped_by = "max-minutes"
                        break
                    if operator.process.poll() is not None:
                        stopped_by = f"operator exited with code {operator.process.returncode}"
                        break
                    time.sleep(0.2)
                end = time.time()
                counts = ledger.counts()
                take_sample(end)
                progress.show(progress_line(), force=True)
            after = apiserver_requests(api)
            window = time.monotonic() - window_start
        finally:
            for follower in followers:
                follower.close()
    if stopped_by != "done":
        log(f"{policy}: stopped by {stopped_by}")

    names = [workflow.name for workflow in workflows[:submitted]]
    unfinished = [name for name in names if ledger.phases.get(name) not in TERMINAL]
    duplicates = ledger.duplicated_attempts()
    lost = sorted(set(unfinished) | {workflow for workflow, _, _ in duplicates})
    bind_ms = ledger.bind_milliseconds()
    response = ledger.response_seconds()
    requests = after - before
    caused = sum(n for key, n in requests.items() if key.split(" ")[1].split("/")[0] in WORKFLOW_RESOURCES)
    caused -= own_requests
    result = {
        "policy": policy,
        "stopped_by": stopped_by,
        "wall_seconds": end - start,
        "workflows": {
            "submitted": submitted,
            "never_submitted": len(workflows) - submitted,
            "succeeded": counts["succeeded"],
            "failed": counts["failed"],
            "lost": len(lost),
            "lost_not_terminal": len(unfinished),
            "lost_examples": lost[:10],
            "duplicate_pods": [
                {"workflow": w, "primitive": p, "attempt": a, "pods": n}
                for (w, p, a), n in list(duplicates.items())[:10]
            ],
            "duplicate_attempts": len(duplicates),
        },
        "pods": {
            "created": counts["pods"],
            "bound": counts["pods_bound"],
            "never_bound": counts["pods"] - counts["pods_bound"],
            "planned": sum(len(workflow.primitives) for workflow in workflows[:submitted]),
        },
        "overcommit": {
            "max_ratio": {name: float(x) for name, x in zip(RESOURCES, ledger.max_ratio, strict=True)},
            "moments_over_one": ledger.overcommit_count,
            "first_moments": ledger.overcommits,
        },
        "time_to_bind_ms": {
            "p50": percentile(bind_ms, 50),
            "p99": percentile(bind_ms, 99),
            "max": float(bind_ms.max()) if len(bind_ms) else None,
        },
        "response_seconds": {  # wall seconds; times --time-scale for simulated ones
            "p50": percentile(response, 50),
            "p99": percentile(response, 99),
            "max": float(response.max()) if len(response) else None,
        },
        "decisions": samples[-1]["decisions"],
        "decisions_per_second": samples[-1]["decisions"] / max(end - start, 1e-9),
        "decisions_per_second_peak": max(
            ((b["decisions"] - a["decisions"]) / max(b["seconds"] - a["seconds"], 1e-9) for a, b in pairwise(samples)),
            default=0.0,
        ),
        "operator_rss_mb": rss_summary(samples),
        "api_requests": {
            "per_workflow": caused / submitted if submitted else None,
            "total": sum(requests.values()),
            "own": own_requests,
            "other_resources_per_second": (sum(requests.values()) - caused - own_requests) / window,
            "window_seconds": window,
            "per_workflow_by_request": {
                key: value / submitted for key, value in requests.most_common() if submitted and value > 0
            },
        },
        "operator_log": log_summary(work / f"operator-{policy}.log"),
        "samples": samples,
    }
    result["ok"] = result["workflows"]["lost"] == 0 and ledger.overcommit_count == 0
    return result


def empty_namespace(api: client.ApiClient, namespace: str) -> None:
    """Delete what a policy's run left, so the next starts on empty nodes with an operator with nothing to remember."""
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    delete_workflows(custom, namespace)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
    wait_no_pods(core, namespace, timeout=CLEANUP_SECONDS)


def log_summary(path: Path) -> dict[str, Any]:
    """How many WARNING and ERROR lines the operator logged (it runs at --log-level warning), and the first few."""
    lines = path.read_text(errors="replace").splitlines() if path.exists() else []
    flagged = [line for line in lines if " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
    return {
        "warnings": sum(" WARNING " in line for line in flagged),
        "errors": sum(" ERROR " in line or " CRITICAL " in line for line in flagged),
        "first": [line[:300] for line in flagged[:5]],
    }


def rss_summary(samples: list[dict[str, float]]) -> dict[str, float | None]:
    """Start, max, end and MB per 1,000 finished workflows (a line fitted over the second half of them)."""
    rss = np.array([s["rss_mb"] for s in samples])
    finished = np.array([s["finished"] for s in samples])
    fitted = (finished >= 0.5 * finished[-1]) & np.isfinite(rss)
    slope = None
    if len(np.unique(finished[fitted])) >= 2:
        slope = float(np.polyfit(finished[fitted], rss[fitted], 1)[0] * 1000)
    return {
        "start": float(rss[0]),
        "max": float(np.nanmax(rss)),
        "end": float(rss[-1]),
        "slope_mb_per_1000_workflows": slope,
    }


# -- the whole run ------------------------------------------------------------------------------------------------


def git_commit() -> dict[str, Any]:
    def git(*command: str) -> str:
        done = subprocess.run(["git", *command], cwd=REPO, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None, "dirty": bool(git("status", "--porcelain"))}


def node_allocatable(core: client.CoreV1Api) -> dict[str, np.ndarray]:
    return {
        node.metadata.name: np.array(
            [parse_quantity((node.status.allocatable or {}).get(name, 0)) for name in RESOURCES]
        )
        for node in core.list_node().items
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    workflows: list[Workflow] = args.workload
    result: dict[str, Any] = {
        "command": shlex.join([sys.executable, *sys.argv]),
        "git": git_commit(),
        "machine": {"cores": os.cpu_count(), "load_average": os.getloadavg(), "platform": platform.platform()},
        "nodes": args.nodes,
        "workflows": args.workflows,
        "pods_planned": sum(len(workflow.primitives) for workflow in workflows),
        "shapes": list(args.shapes),
        "load": args.load,
        "time_scale": args.time_scale,
        "arrival_span_seconds": workflows[-1].arrival_time / args.time_scale,
        "max_minutes": args.max_minutes,
        "seed": args.seed,
        "rule": args.rule,
        "keep_finished": args.keep_finished,
        "policies": {},
    }
    name = f"soak-{int(time.time())}"
    log(f"starting cluster {name} with {args.nodes} nodes ...")
    info = kwok.up(name, heterogeneous(args.nodes, seed=0), kube_scheduler=False, timeout=900, progress=log)
    try:
        kwok.kubectl(info, "apply", "--server-side", "--force-conflicts", "-f", str(CRD))
        kwok.wait_established(info, f"{labels.PLURAL}.{labels.GROUP}")
        api = config.new_client_from_config(config_file=str(info.kubeconfig))
        allocatable = node_allocatable(client.CoreV1Api(api))
        with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
            work = args.logs or Path(tmp)
            work.mkdir(parents=True, exist_ok=True)
            for i, policy in enumerate(args.policies):
                if i > 0:
                    empty_namespace(api, namespace_of(args.policies[i - 1]))
                log(
                    f"{policy}: {len(workflows)} workflows ({result['pods_planned']} pods) over "
                    f"{result['arrival_span_seconds'] / 60:.1f} min at --time-scale {args.time_scale:g} ..."
                )
                result["policies"][policy] = soak_policy(args, info, api, allocatable, policy, work)
    finally:
        log(f"stopping cluster {name} ...")
        kwok.down(name)
    result["ok"] = all(run["ok"] for run in result["policies"].values())
    return result


def print_report(result: dict[str, Any]) -> None:
    console = Console()
    if not console.is_terminal:  # a log file or a pipe: no terminal width to wrap to
        console = Console(width=200)
    table = Table(
        title=f"soak: {result['workflows']} workflows ({result['pods_planned']} pods) per policy on {result['nodes']} "
        f"nodes, load {result['load']}, time scale {result['time_scale']}, seed {result['seed']}"
    )
    columns = ("policy", "succeeded", "failed", "lost", "max node use", "bind p50 / p99", "response p50 / p99")
    columns += ("decisions/s",)
    for column in (*columns, "operator RSS start / max / end", "RSS slope", "API req/workflow"):
        table.add_column(column, justify="right")
    for policy, run in result["policies"].items():
        workflows, rss, bind = run["workflows"], run["operator_rss_mb"], run["time_to_bind_ms"]
        response = run["response_seconds"]
        use = max(run["overcommit"]["max_ratio"].values())
        slope = rss["slope_mb_per_1000_workflows"]
        table.add_row(
            policy,
            str(workflows["succeeded"]),
            str(workflows["failed"]),
            f"[bold red]{workflows['lost']}[/]" if workflows["lost"] else "0",
            f"[bold red]{use:.2f} OVERCOMMITTED[/]" if use > 1 + 1e-9 else f"{use:.2f}",
            f"{bind['p50'] or float('nan'):.0f} / {bind['p99'] or float('nan'):.0f} ms",
            f"{response['p50'] or float('nan'):.1f} / {response['p99'] or float('nan'):.1f} s",
            f"{run['decisions_per_second']:.1f}",
            f"{rss['start']:.0f} / {rss['max']:.0f} / {rss['end']:.0f} MB",
            "n/a" if slope is None else f"{slope:+.1f} MB/1k wf",
            f"{run['api_requests']['per_workflow'] or float('nan'):.1f}",
        )
    console.print(table)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    if args.out is not None:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    if args.json:
        print(json.dumps(result))
    else:
        print_report(result)
    for policy, run_ in result["policies"].items():
        if run_["overcommit"]["moments_over_one"]:
            log(f"{policy}: NODES OVERCOMMITTED at {run_['overcommit']['moments_over_one']} moments")
        if run_["workflows"]["lost"]:
            log(f"{policy}: {run_['workflows']['lost']} WORKFLOWS LOST, e.g. {run_['workflows']['lost_examples'][:3]}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
