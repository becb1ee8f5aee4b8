"""kube-scheduler extender: a stock kube-scheduler asks the SCALE policy to filter and score nodes for any pod.

Serving: ``runner = await start_extender(live, scheduler, port, prefix="", decide=True)`` starts an aiohttp
server in the running asyncio loop (the operator's, beside kopf) and returns its ``web.AppRunner``;
``await runner.cleanup()`` stops it. Routes: ``POST {prefix}/filter``, ``POST {prefix}/prioritize``
(kube-scheduler posts to ``urlPrefix + "/" + verb``; the chart's urlPrefix has no path, so prefix "")
and ``GET /healthz``. The policy runs inside the loop: a few milliseconds at most, no I/O.

Wire format (kube-scheduler's extender structs have no JSON tags, hence PascalCase): the request is
``{"Pod": ..., "NodeNames": [...]}`` with ``nodeCacheCapable: true`` (what the chart configures) or
``{"Pod": ..., "Nodes": {"items": [...]}}`` without; filter answers in the same form plus
``FailedNodes``/``FailedAndUnresolvableNodes`` (name -> reason) and ``Error``; prioritize answers
``[{"Host": name, "Score": 0..10}]``. No bind verb: kube-scheduler binds.

What the policy sees: the pod turned into a simulator ``Primitive`` (``primitive_from_pod``) and the
``LiveCluster`` observation, the same features as in training. filter keeps the nodes the placement rule
lets the policy pick (``Observation.candidates``: under late-binding those with the primitive's requests
free now; kube-scheduler's own filter has already dropped full nodes under either rule), narrowed by the pod's
own nodeSelector, node affinity and tolerations (``node_filter``, as for the operator's pods); nodes outside the
live view fail with a reason. With ``decide=True`` (the default, what the chart's configuration and
docs/extender.md assume) filter then keeps only the policy's choice among them (``placement.pick`` over
``Scheduler.scores``, as the engine and the controller pick), so the policy decides rather than advises:
kube-scheduler never calls prioritize when one node is left. With ``decide=False`` filter keeps them all
and prioritize maps the policy's scores over the candidates linearly onto 0..10 (best 10, worst 0),
which kube-scheduler weighs against its own plugins' scores.

Errors never crash the server: filter answers 200 with ``Error`` set (kube-scheduler fails that
scheduling attempt and retries); prioritize answers 500, which kube-scheduler ignores.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from aiohttp import web
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.core.metrics import EXTENDER_REQUESTS, record_decision
from scale_scheduler.operator.kube.labels import (
    DURATION_ANNOTATION,
    ESTIMATED_DURATION_ANNOTATION,
    PRIMITIVE_KIND_LABEL,
)
from scale_scheduler.operator.kube.node_filter import NodeConstraints
from scale_scheduler.operator.kube.objects import parse_go_duration, pod_key, pod_requests
from scale_scheduler.simulator.cluster import GPU_RESOURCE, PROFILES
from scale_scheduler.simulator.features import Observation
from scale_scheduler.simulator.node_model import LLM_OVERHEAD_SECONDS
from scale_scheduler.simulator.placement import pick
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.schedulers import Scheduler
from scale_scheduler.simulator.workflow import Primitive

log = logging.getLogger(__name__)

MAX_EXTENDER_SCORE = 10  # kube-scheduler's extender score range is 0..10
# An llm_generate pod's declared duration is read as decode time on the reference node for that kind.
_REFERENCE_DECODE_TPS = PROFILES["gpu-large"].decode_tokens_per_second


def primitive_from_pod(pod: dict[str, Any]) -> Primitive:
    """The simulator primitive a pod amounts to, for pods the operator did not create.

    Kind: the ``PRIMITIVE_KIND_LABEL`` label if it names a known kind; otherwise a pod requesting a GPU
    is taken for ``llm_generate`` and any other for ``code_exec`` (generic compute, which every node
    class runs). Requests: the pod's effective requests (0 where it states none). Work: the duration
    annotation, read as seconds on a reference node (speed 1.0); for ``llm_generate`` it becomes
    generated tokens at the reference GPU's decode rate. Without it, the kind's default work.
    """
    meta = pod.get("metadata") or {}
    labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
    requests = pod_requests(pod)
    gpus = int(requests.get(GPU_RESOURCE, 0))
    label = labels.get(PRIMITIVE_KIND_LABEL)
    if label in set(PrimitiveKind):
        kind = PrimitiveKind(label)
    else:
        kind = PrimitiveKind.LLM_GENERATE if gpus > 0 else PrimitiveKind.CODE_EXEC
    primitive = Primitive(
        name=meta.get("name", ""),
        kind=kind,
        cpu_millicores=int(round(requests.get("cpu", 0.0) * 1000)),
        memory_bytes=int(requests.get("memory", 0)),
        gpus=gpus,
    )
    declared = next(
        (annotations[key] for key in (ESTIMATED_DURATION_ANNOTATION, DURATION_ANNOTATION) if key in annotations), None
    )
    if declared is not None:
        seconds = parse_go_duration(str(declared))
        if kind is PrimitiveKind.LLM_GENERATE:
            primitive.output_tokens = max(int(round((seconds - LLM_OVERHEAD_SECONDS) * _REFERENCE_DECODE_TPS)), 0)
        else:
            primitive.work_seconds = seconds
    return primitive


def extender_scores(preference: np.ndarray) -> np.ndarray:
    """Map preferences of the candidate nodes onto kube-scheduler's 0..10 linearly (best 10, worst 0)."""
    finite = np.isfinite(preference)
    if not finite.any():
        return np.zeros(len(preference), dtype=np.int64)
    low, high = float(preference[finite].min()), float(preference[finite].max())
    if high == low:
        return np.where(finite, MAX_EXTENDER_SCORE, 0).astype(np.int64)
    scaled = (np.where(finite, preference, low) - low) / (high - low) * MAX_EXTENDER_SCORE
    return np.where(finite, np.rint(scaled), 0).astype(np.int64)


@dataclass
class ExtenderCall:
    """One request kube-scheduler made, as logged in ``Extender.calls`` (newest last)."""

    verb: str
    pod: str
    candidates: list[str]
    passed: list[str] = field(default_factory=list)
    scores: dict[str, int] = field(default_factory=dict)
    error: str = ""


class Extender:
    """The extender's logic, separate from HTTP so it can be called and tested directly."""

    def __init__(self, live: LiveCluster, scheduler: Scheduler, *, decide: bool = True, history: int = 256):
        self.live, self.scheduler, self.decide = live, scheduler, decide
        self.calls: deque[ExtenderCall] = deque(maxlen=history)

    def filter(self, args: dict[str, Any]) -> dict[str, Any]:
        """ExtenderArgs -> ExtenderFilterResult; never raises (errors go in ``Error``)."""
        call = ExtenderCall("filter", "", [])
        self.calls.append(call)
        try:
            pod, names, by_names = _unpack(args)
            call.pod, call.candidates = pod_key(pod), names
            passed, failed, unresolvable = self._filter(pod, names, call)
        except Exception as error:  # any failure must reach kube-scheduler as Error, not as a 500
            log.exception("extender filter failed for pod %s", call.pod)
            call.error = f"SCALE extender filter failed for pod {call.pod}: {error}"
            EXTENDER_REQUESTS.labels(verb="filter", outcome="error").inc()
            return {
                "Nodes": None,
                "NodeNames": None,
                "FailedNodes": {},
                "FailedAndUnresolvableNodes": {},
                "Error": call.error,
            }
        call.passed = passed
        EXTENDER_REQUESTS.labels(verb="filter", outcome="ok").inc()
        result: dict[str, Any] = {"FailedNodes": failed, "FailedAndUnresolvableNodes": unresolvable, "Error": ""}
        if by_names:
            result.update(NodeNames=passed, Nodes=None)
        else:
            kept = set(passed)
            items = [n for n in (args.get("Nodes") or {}).get("items") or [] if n["metadata"]["name"] in kept]
            result.update(Nodes={"apiVersion": "v1", "kind": "NodeList", "items": items}, NodeNames=None)
        return result

    def prioritize(self, args: dict[str, Any]) -> list[dict[str, Any]]:
        """ExtenderArgs -> HostPriorityList; raises on bad input (the server answers 500)."""
        call = ExtenderCall("prioritize", "", [])
        self.calls.append(call)
        try:
            pod, names, _ = _unpack(args)
            call.pod, call.candidates = pod_key(pod), names
            started = time.perf_counter()
            observation = self._observation(pod)
            preference = self._candidate_preference(observation, names)
            record_decision(self.scheduler.name, "extender", time.perf_counter() - started)
        except Exception as error:
            call.error = str(error)
            EXTENDER_REQUESTS.labels(verb="prioritize", outcome="error").inc()
            raise
        scores = extender_scores(preference)
        call.scores = {name: int(score) for name, score in zip(names, scores, strict=True)}
        EXTENDER_REQUESTS.labels(verb="prioritize", outcome="ok").inc()
        return [{"Host": name, "Score": score} for name, score in call.scores.items()]

    # -- internals -------------------------------------------------------------------------------
    def _observation(self, pod: dict[str, Any]) -> Observation:
        return self.live.observation(
            primitive_from_pod(pod), [], now=time.time(), constraints=NodeConstraints.of_pod(pod)
        )

    def _candidate_preference(self, observation: Observation, names: list[str]) -> np.ndarray:
        """The policy's scores for each node in ``names`` (-inf where the placement rule does not let it pick)."""
        preference = np.where(observation.candidates, self.scheduler.scores(observation), -np.inf)
        index = {name: i for i, name in enumerate(node.name for node in observation.state.spec.nodes)}
        return np.array([preference[index[name]] if name in index else -np.inf for name in names])

    def _filter(
        self, pod: dict[str, Any], names: list[str], call: ExtenderCall
    ) -> tuple[list[str], dict[str, str], dict[str, str]]:
        started = time.perf_counter()
        observation = self._observation(pod)
        p = observation.primitive
        index = {name: i for i, name in enumerate(node.name for node in observation.state.spec.nodes)}
        passed: list[str] = []
        failed: dict[str, str] = {}
        unresolvable: dict[str, str] = {}
        for name in names:
            i = index.get(name)
            if i is None:
                failed[name] = "not in SCALE's live view (unknown node class, unschedulable or NotReady)"
            elif observation.allowed is not None and not observation.allowed[i]:
                unresolvable[name] = (
                    self.live.rejection(NodeConstraints.of_pod(pod), name)
                    or "node(s) didn't match Pod's node constraints"
                )
            elif not observation.mask[i]:
                unresolvable[name] = f"node cannot run a {p.kind.value} primitive with these requests"
            elif not observation.candidates[i]:
                failed[name] = "not enough free cpu, memory or nvidia.com/gpu now"
            else:
                passed.append(name)
        if self.decide and passed:
            # the engine's pick (placement.pick: ties to the lowest node index) among the nodes that passed
            allowed = np.zeros(observation.state.num_nodes, dtype=bool)
            allowed[[index[name] for name in passed]] = True
            chosen = observation.state.spec.nodes[pick(self.scheduler.scores(observation), allowed)].name
            record_decision(self.scheduler.name, "extender", time.perf_counter() - started)
            call.scores = {chosen: MAX_EXTENDER_SCORE}
            for name in passed:
                if name != chosen:
                    failed[name] = f"SCALE policy {self.scheduler.name} placed the pod on {chosen}"
            passed = [chosen]
        return passed, failed, unresolvable


def _unpack(args: dict[str, Any]) -> tuple[dict[str, Any], list[str], bool]:
    """(pod, candidate node names, whether they came as NodeNames) from ExtenderArgs."""
    pod = args.get("Pod")
    if not isinstance(pod, dict):
        raise ValueError("ExtenderArgs without a Pod: is this kube-scheduler's extender request?")
    if args.get("NodeNames") is not None:
        return pod, list(args["NodeNames"]), True
    items = (args.get("Nodes") or {}).get("items") or []
    return pod, [item["metadata"]["name"] for item in items], False


EXTENDER_KEY = web.AppKey("extender", Extender)


def make_app(extender: Extender, prefix: str = "") -> web.Application:
    """The aiohttp application serving ``extender`` under ``prefix`` ("" or like "/scale")."""
    prefix = prefix.rstrip("/")

    async def filter_handler(request: web.Request) -> web.Response:
        try:
            args = await request.json()
        except ValueError as error:
            EXTENDER_REQUESTS.labels(verb="filter", outcome="error").inc()
            return web.json_response({"Error": f"SCALE extender: request body is not JSON: {error}"})
        if not isinstance(args, dict):
            return web.json_response({"Error": "SCALE extender: expected ExtenderArgs (a JSON object)"})
        return web.json_response(extender.filter(args))

    async def prioritize_handler(request: web.Request) -> web.Response:
        try:
            args = await request.json()
            return web.json_response(extender.prioritize(args))
        except Exception as error:  # kube-scheduler ignores a failed prioritize: say why in its log
            log.warning("extender prioritize failed: %s", error)
            return web.Response(status=500, text=f"SCALE extender prioritize failed: {error}")

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post(f"{prefix}/filter", filter_handler)
    app.router.add_post(f"{prefix}/prioritize", prioritize_handler)
    app.router.add_get("/healthz", healthz)
    return app


async def start_extender(
    live: LiveCluster, scheduler: Scheduler, port: int, host: str = "0.0.0.0", *, prefix: str = "", decide: bool = True
) -> web.AppRunner:
    """Serve the extender on ``host:port`` in the running loop; ``await runner.cleanup()`` stops it.

    The ``Extender`` (its ``calls`` log) is at ``runner.app[EXTENDER_KEY]``.
    """
    extender = Extender(live, scheduler, decide=decide)
    app = make_app(extender, prefix)
    app[EXTENDER_KEY] = extender
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError as error:
        await runner.cleanup()
        raise OSError(
            f"cannot serve the scheduler extender on {host}:{port}: {error}; choose another --extender-port"
        ) from error
    log.info(
        "scheduler extender on http://%s:%d%s/{filter,prioritize} (policy %s, %s)",
        host,
        port,
        prefix,
        scheduler.name,
        "decides" if decide else "advises",
    )
    return runner
