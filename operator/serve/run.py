"""``scale-sched operator run``: the kopf operator, its liveness probe, metrics and (optionally) the extender.

kopf is embedded (``kopf.operator()`` in our own asyncio loop) so the extender's HTTP server and the
controller share one process and one live view of the cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import re
import socket
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from scale_scheduler.policy.registry import CLUSTER_METHODS, DEFAULT_CLUSTER_POLICY
from scale_scheduler.simulator.cli_options import guard_option, rule_option
from scale_scheduler.simulator.placement import DEFAULT_RULE, RULE_HELP, PlacementRule
from scale_scheduler.simulator.rollout import LOOKAHEAD

if TYPE_CHECKING:  # imported where used: `scale-sched --help` loads neither the kubernetes client nor a policy
    from scale_scheduler.operator.core.events import PostEvent
    from scale_scheduler.operator.kube.api import KubeApi
    from scale_scheduler.simulator.node_classes import Classification, NodeMapping
    from scale_scheduler.simulator.schedulers import Scheduler

log = logging.getLogger("scale_scheduler.operator")

operator_app = typer.Typer(
    help="The WorkflowDAG operator (kopf): places and binds primitives' pods.", no_args_is_help=True
)

FALLBACK_POLICY = "least-loaded"
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")  # a DNS-1123 label


class LogLevel(StrEnum):  # an enum so that --help lists them
    debug = "debug"
    info = "info"
    warning = "warning"
    error = "error"


class LogFormat(StrEnum):
    text = "text"  # one line per record, for people
    json = "json"  # one JSON object per line (kopf's formatter, with the object a record is about), for collectors


# Watch streams that end silently leave an operator deaf (kopf issue): bound every stream explicitly.
WATCH_SERVER_TIMEOUT = 300
WATCH_CLIENT_TIMEOUT = 330
WATCH_INACTIVITY_TIMEOUT = 600
WATCH_CONNECT_TIMEOUT = 15


def load_policy(policy: str, checkpoint: str | None) -> tuple[Scheduler, str | None]:
    """(scheduler, warning): the named policy, or least-loaded plus a warning when its checkpoint is missing or
    corrupt (an operator that crash-loops schedules nothing; one that falls back keeps the workflows moving)."""
    from scale_scheduler.policy.registry import METHODS, make_scheduler
    from scale_scheduler.simulator.schedulers import HEURISTICS

    if policy in HEURISTICS:
        if checkpoint:
            raise typer.BadParameter(f"{policy!r} is a heuristic and takes no checkpoint", param_hint="--checkpoint")
        return make_scheduler(policy), None
    if policy not in METHODS and not checkpoint:
        raise typer.BadParameter(
            f"unknown policy {policy!r}; choose from {', '.join(METHODS)} (or name any trained run with --checkpoint)",
            param_hint="--policy",
        )
    try:
        scheduler = make_scheduler(policy, checkpoint)
    except Exception as error:  # torch.load and friends raise many types; any of them means "unusable checkpoint"
        where = checkpoint or f"the shipped {policy!r} checkpoint"
        warning = (
            f"policy {policy!r} could not be loaded from {where} ({type(error).__name__}: {error}); "
            f"placing with {FALLBACK_POLICY} instead. Fix or replace the checkpoint and restart the operator."
        )
        log.warning(warning)
        return make_scheduler(FALLBACK_POLICY), warning
    import torch

    # One small forward pass per decision: a second thread only fights the operator's own for the cores
    # (measured: 10 ms -> 1.7 ms per decision at N=48 on a busy 2-core machine).
    torch.set_num_threads(1)
    return scheduler, None


def load_kube_config(kubeconfig: Path | None) -> None:
    """--kubeconfig, else $KUBECONFIG, else the in-cluster ServiceAccount; kopf logs in with the same."""
    from kubernetes import config

    if kubeconfig is not None:
        if not kubeconfig.is_file():
            raise typer.BadParameter(f"{kubeconfig} does not exist", param_hint="--kubeconfig")
        os.environ["KUBECONFIG"] = str(kubeconfig)  # kopf's login reads it too
    if os.environ.get("KUBECONFIG"):
        config.load_kube_config(config_file=os.environ["KUBECONFIG"])  # its default path was read at import
        return
    try:
        config.load_incluster_config()
    except config.ConfigException as error:
        raise typer.BadParameter(
            f"no --kubeconfig, no $KUBECONFIG, and not running in a cluster ({error}); pass --kubeconfig PATH",
            param_hint="--kubeconfig",
        ) from None


def namespaces_option(names: list[str]) -> tuple[str, ...]:
    """The --namespace values, each a namespace name (kopf would read "*" or "!" as a pattern, which the chart's
    per-namespace Roles could not follow), in order and without repeats."""
    for name in names:
        if not NAMESPACE_NAME.fullmatch(name):
            raise typer.BadParameter(
                f"{name!r} is not a namespace name (lowercase letters, digits and '-', at most 63 characters)",
                param_hint="--namespace",
            )
    return tuple(dict.fromkeys(names))


def peering_priority() -> int:
    """Distinct per replica (from the pod name), as kopf peering requires: equal priorities freeze all."""
    identity = os.environ.get("POD_NAME") or socket.gethostname()
    return 1 + int(hashlib.sha256(identity.encode()).hexdigest()[:6], 16) % 1_000_000


async def post_own_pod_event(api: KubeApi, post_event: PostEvent, reason: str, message: str) -> None:
    """A Warning Event on the operator's own pod, when it knows which (the chart sets POD_NAME and POD_NAMESPACE).

    These come from the startup activity and from node events, not from a workflow's reconcile. An Event is a
    courtesy: a failure is only logged."""
    name, namespace = os.environ.get("POD_NAME"), os.environ.get("POD_NAMESPACE")
    if not (name and namespace):
        return
    try:
        pod = await api.read_pod(namespace, name)
    except Exception as error:  # never let a courtesy stop the operator
        log.warning("cannot read own pod %s/%s for the %s Event: %s", namespace, name, reason, error)
        return
    post_event(pod, "Pod", reason, message, True)


class UnmappedNodeReport:
    """What the live view calls once per node no label or rule maps: a counter, and a Warning Event on the
    operator's own pod naming the node and its fallback class (the view has already logged it)."""

    def __init__(self, api: KubeApi, post_event: PostEvent) -> None:
        self.api, self.post_event = api, post_event
        self._posting: set[asyncio.Task[None]] = set()  # strong references until each Event is posted

    def __call__(self, name: str, classification: Classification) -> None:
        from scale_scheduler.operator.core import metrics

        metrics.UNMAPPED_NODES.inc()
        message = (
            f"node {name} matches no node-class rule ({classification.source}): scheduled as the fallback class "
            f"{classification.node_class}; add a rule to the node profiles (the chart's nodeProfiles) or label it "
            "scale.dev/node-class"
        )
        try:
            loop = asyncio.get_running_loop()  # node events come in on the operator's loop
        except RuntimeError:
            return
        task = loop.create_task(post_own_pod_event(self.api, self.post_event, "UnmappedNode", message))
        self._posting.add(task)
        task.add_done_callback(self._posting.discard)


async def check_peering(api: KubeApi, name: str, namespaces: tuple[str, ...]) -> None:
    """kopf waits, silently and for good, for a peering object that does not exist: refuse to start instead.

    A cluster-wide operator peers through one ClusterKopfPeering; a namespaced one through a KopfPeering in each
    namespace it serves."""
    for namespace in namespaces or (None,):
        await _check_one_peering(api, name, namespace)


async def _check_one_peering(api: KubeApi, name: str, namespace: str | None) -> None:
    from kubernetes.client.exceptions import ApiException

    kind = "ClusterKopfPeering" if namespace is None else "KopfPeering"
    scope = "" if namespace is None else f"namespaces/{namespace}/"
    try:
        await api.request("GET", f"/apis/kopf.dev/v1/{scope}{kind.lower()}s/{name}")
    except ApiException as error:
        if error.status != 404:
            raise
        manifest = {
            "apiVersion": "kopf.dev/v1",
            "kind": kind,
            "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        }
        where = f" in namespace {namespace}" if namespace else ""
        raise typer.BadParameter(
            f"there is no {kind} {name!r}{where} (kopf.dev/v1), so kopf would pause this operator until one appears. "
            "The chart creates it with peering.enabled=true; by hand, apply the CRDs in "
            f"charts/scale-scheduler/crds/kopf-peerings.yaml, then: kubectl apply -f - <<< '{json.dumps(manifest)}'",
            param_hint="--peering",
        ) from None


async def serve(
    *,
    namespaces: tuple[str, ...],
    policy: str,
    checkpoint: str | None,
    time_scale: float,
    rule: PlacementRule,
    guard: float,
    health_port: int,
    metrics_port: int,
    extender_port: int,
    peering: str | None,
    mapping: NodeMapping,
    estimates_namespace: str | None,
) -> None:
    import kopf
    from scale_scheduler.operator.core import metrics
    from scale_scheduler.operator.core.controller import WorkflowController
    from scale_scheduler.operator.core.estimate_store import EstimateStore
    from scale_scheduler.operator.core.estimates import RunTimes
    from scale_scheduler.operator.core.events import EventPoster
    from scale_scheduler.operator.core.livestate import LiveCluster
    from scale_scheduler.operator.kube.api import COMPONENT, KubeApi, pooled_api_client
    from scale_scheduler.operator.serve.handlers import WorkflowDiffBase, build_registry

    scheduler, warning = load_policy(policy, checkpoint)
    scheduler.reset(seed=0)
    policy_name = FALLBACK_POLICY if warning else policy
    if guard:
        from scale_scheduler.simulator.guard import Guarded

        guarded = metrics.GUARDED_DECISIONS.labels(policy=policy_name)
        scheduler = Guarded(scheduler, guard, on_guard=guarded.inc)
    api = KubeApi(pooled_api_client())
    if peering:
        await check_peering(api, peering, namespaces)
    events = EventPoster(api)
    run_times, store = RunTimes(), None
    if estimates_namespace:
        store = EstimateStore(api, run_times, estimates_namespace)
        await store.load()
    live = LiveCluster(
        time_scale=time_scale,
        rule=rule,
        mapping=mapping,
        on_unmapped=UnmappedNodeReport(api, events.post),
        on_finished=run_times.observe,
    )
    if store is not None:  # learned run times take over from the static node model (docs/node-classes.md)
        live.set_speed_corrections(run_times.corrections())
        live.set_work_corrections(run_times.work_corrections())
        run_times.on_corrections = live.set_speed_corrections
        run_times.on_work_corrections = live.set_work_corrections
    log.info(
        "placing WorkflowDAG pods with policy %s under the %s placement rule (%s)",
        policy_name,
        rule.value,
        f"namespaces {', '.join(namespaces)}" if namespaces else "all namespaces",
    )
    controller = WorkflowController(
        api,
        live,
        scheduler,
        policy_name,
        time_scale,
        namespaces=namespaces,
        fallback_warning=warning,
        post_event=events.post,
    )

    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT
    settings.watching.inactivity_timeout = WATCH_INACTIVITY_TIMEOUT
    settings.watching.connect_timeout = WATCH_CONNECT_TIMEOUT
    # Our own Events (Placed, Scheduled, FailedScheduling ...; EventPoster) say what happened; kopf's only when it
    # goes wrong.
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = COMPONENT
    settings.posting.reporting_instance = events.instance
    # Handler progress goes in the WorkflowDAG's status.kopf (declared in the CRD); pods get nothing.
    settings.persistence.progress_storage = kopf.StatusProgressStorage(field="status.kopf.progress")
    settings.persistence.diffbase_storage = WorkflowDiffBase()
    if peering:
        settings.peering.name = peering

    metrics.start_metrics_server(metrics_port)
    extender = None
    if extender_port:
        from scale_scheduler.operator.serve.extender import start_extender

        # decide: filter keeps only the policy's node (what the chart's scheduler configuration assumes)
        extender = await start_extender(live, scheduler, extender_port, decide=True)
    on_startup = partial(post_own_pod_event, api, events.post, "PolicyFallback", warning) if warning else None
    saving = asyncio.create_task(store.keep()) if store is not None else None
    try:
        await kopf.operator(
            registry=build_registry(controller, on_startup=on_startup),
            settings=settings,
            clusterwide=not namespaces,
            namespaces=namespaces,
            standalone=peering is None,
            peering_name=peering,
            priority=peering_priority() if peering else None,
            liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz",
        )
    finally:
        if saving is not None and store is not None:
            saving.cancel()
            with contextlib.suppress(Exception):  # the last few seconds of learning; shutting down goes first
                await asyncio.wait_for(store.save(), timeout=5.0)
        if extender is not None:
            await extender.cleanup()


@operator_app.command("run")
def run(
    kubeconfig: Path | None = typer.Option(None, help="Kubeconfig file; default $KUBECONFIG, else in-cluster."),
    namespace: list[str] = typer.Option(
        [], help="Reconcile WorkflowDAGs of this namespace only; repeat it to serve several."
    ),
    all_namespaces: bool = typer.Option(False, "--all-namespaces", help="Reconcile every namespace (the default)."),
    policy: str = typer.Option(
        DEFAULT_CLUSTER_POLICY,
        help=f"{', '.join(CLUSTER_METHODS)} (learned ones from their "
        "shipped "
        "checkpoint), or a name given a --checkpoint.",
    ),
    checkpoint: str | None = typer.Option(None, help="Checkpoint (run directory) for a learned policy."),
    time_scale: float = typer.Option(
        1.0,
        min=0.001,
        help="Simulated seconds per wall-clock second: pods' durations are divided by it (KWOK clusters).",
    ),
    rule: str = typer.Option(DEFAULT_RULE.value, help=RULE_HELP),
    health_port: int = typer.Option(8080, help="Port of GET /healthz (liveness)."),
    metrics_port: int = typer.Option(9090, help="Port of GET /metrics (Prometheus); 0 = off."),
    extender_port: int = typer.Option(8888, help="Port of the kube-scheduler extender; 0 = off."),
    guard: float = typer.Option(
        0.0,
        min=0.0,
        help="Replace a choice estimated to finish more than GUARD times "
        "later than the best candidate's (counted in "
        "scale_sched_guarded_decisions_total); 0 = off.",
    ),
    node_profiles: Path | None = typer.Option(
        None,
        help="Node-class mapping: profiles and label rules added to the built-in ones (docs/node-classes.md); "
        "the chart mounts its nodeProfiles value here.",
    ),
    learn_estimates: bool = typer.Option(
        True,
        help="Correct the node model by the run times of finished pods (per kind and node class, after "
        "5 pods) and keep them in ConfigMap scale-scheduler-estimates; --no-learn-estimates: measure only "
        "(metrics), place by the static model.",
    ),
    estimates_namespace: str | None = typer.Option(
        None,
        help="Namespace of the scale-scheduler-estimates ConfigMap; default the operator's own (POD_NAMESPACE), "
        "else default.",
    ),
    log_level: LogLevel = typer.Option(LogLevel.info, case_sensitive=False, help="Log level."),
    log_format: LogFormat = typer.Option(
        LogFormat.text, case_sensitive=False, help="text, or json for log collectors (one object per line)."
    ),
    peering: str | None = typer.Option(
        None,
        help="kopf peering name for several replicas (needs kopf's peering "
        "CRDs and that peering object; the chart creates both); without "
        "it the operator runs standalone.",
    ),
) -> None:
    """Run the operator until SIGTERM/SIGINT."""
    if namespace and all_namespaces:
        raise typer.BadParameter("give --namespace or --all-namespaces, not both", param_hint="--namespace")
    namespaces = namespaces_option(namespace)
    placement_rule = rule_option(rule)
    guard_option(guard)
    from scale_scheduler.simulator.node_classes import BUILTIN_MAPPING, NodeMapping

    try:
        mapping = NodeMapping.load(node_profiles) if node_profiles else BUILTIN_MAPPING
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--node-profiles") from None
    if policy in LOOKAHEAD:
        raise typer.BadParameter(
            f"{policy!r} looks ahead in the simulator and cannot place pods on a live cluster; "
            "use heft or a learned policy",
            param_hint="--policy",
        )
    level = getattr(logging, log_level.value.upper())
    if log_format is LogFormat.json:
        import kopf

        kopf.configure(log_format=kopf.LogFormat.JSON, log_refkey="object", debug=level <= logging.DEBUG)
        logging.getLogger().setLevel(level)
    else:
        logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if level > logging.DEBUG:
        # kopf logs every successful watch-event handler and aiohttp every probe: thousands of lines an hour.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
        logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    load_kube_config(kubeconfig)
    asyncio.run(
        serve(
            namespaces=namespaces,
            policy=policy,
            checkpoint=checkpoint,
            time_scale=time_scale,
            guard=guard,
            rule=placement_rule,
            health_port=health_port,
            metrics_port=metrics_port,
            extender_port=extender_port,
            peering=peering,
            mapping=mapping,
            estimates_namespace=(estimates_namespace or os.environ.get("POD_NAMESPACE") or "default")
            if learn_estimates
            else None,
        )
    )


def register(app: typer.Typer, panel: str | None = None) -> None:
    app.add_typer(operator_app, name="operator", rich_help_panel=panel)
