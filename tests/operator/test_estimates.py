"""Observed run times against the estimates pods were placed with: the running statistics, the live view
reporting each of its pods that Succeeds once, with its node's class, and the learned ratios taking over from the
static node model once enough pods finished, through to the policy's choice."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
from kube_objects import SPEC, live_view, node_object, pod_object
from scale_scheduler.operator.core.estimates import (
    MAX_TEMPLATE_STATISTICS,
    MAX_TEMPLATES,
    MIN_SAMPLES,
    QUANTILE,
    TEMPLATE_RATIO_LIMIT,
    Corrections,
    RatioStatistics,
    RunTimes,
    WorkCorrections,
)
from scale_scheduler.operator.core.livestate import LiveCluster
from scale_scheduler.operator.kube.labels import PRIMITIVE_LABEL, TEMPLATE_ANNOTATION
from scale_scheduler.policy.registry import make_scheduler
from scale_scheduler.simulator.cluster import PROFILES, corrected
from scale_scheduler.simulator.node_model import LLM_OVERHEAD_SECONDS, estimated_duration
from scale_scheduler.simulator.primitives import KIND_INDEX, PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive


def test_the_mean_follows_a_2x_slower_class_and_shrugs_off_one_outlier() -> None:
    statistics = RatioStatistics()
    for _ in range(30):
        statistics.add(2.0)
    assert statistics.mean == pytest.approx(2.0)
    statistics.add(100.0)  # one pod stuck on a sick node
    assert statistics.mean < 2.0 * 1.35
    assert statistics.samples == 31


def test_the_quantile_settles_at_the_quantile_of_the_ratios() -> None:
    rng = np.random.default_rng(7)
    log_ratios = rng.normal(math.log(1.5), 0.3, size=4000)
    statistics = RatioStatistics()
    tail = []
    for value in log_ratios:
        statistics.add(math.exp(value))
        tail.append(statistics.log_quantile)
    expected = float(np.quantile(log_ratios, QUANTILE))
    assert np.mean(tail[-2000:]) == pytest.approx(expected, abs=0.05)
    assert statistics.mean == pytest.approx(1.5, rel=0.2)


def test_run_times_keep_one_statistic_per_kind_and_class_and_skip_empty_samples() -> None:
    run_times = RunTimes()
    run_times.observe("llm_generate", "h100", 10.0, 5.0, 5.0)
    run_times.observe("llm_generate", "l4", 5.0, 2.5, 5.0)  # learned against the prior, not the estimate used
    run_times.observe("llm_generate", "l4", 0.0, 5.0, 5.0)  # finished within its start second: says nothing
    h100, l4 = run_times.statistics("llm_generate", "h100"), run_times.statistics("llm_generate", "l4")
    assert h100 is not None and l4 is not None
    assert (h100.samples, h100.mean, l4.samples, l4.mean) == (1, pytest.approx(2.0), 1, pytest.approx(1.0))
    assert run_times.statistics("tool_call", "h100") is None


def _succeeded(pod: dict[str, Any], started: str, finished: str) -> dict[str, Any]:
    terminated = {"exitCode": 0, "startedAt": started, "finishedAt": finished}
    status = {
        **pod["status"],
        "phase": "Succeeded",
        "containerStatuses": [{"name": "main", "state": {"terminated": terminated}}],
    }
    return {**pod, "status": status}


def test_the_view_reports_each_of_its_pods_that_succeeds_once_in_simulated_seconds() -> None:
    finished: list[tuple[str, str, float, float, float, str, str]] = []
    live = LiveCluster(time_scale=20.0, on_finished=lambda *report: finished.append(report))
    for node in SPEC.nodes:
        live.apply_node_event("ADDED", node_object(node.name))
    placed = {"kind": "llm_generate", "gpus": 1, "estimate": "1.500s", "duration": "2.000s"}
    pod = pod_object("p", **placed)
    live.apply_pod_event("ADDED", pod)
    live.assume(pod, "gpu-large-000")
    # long ago: the view's own sightings lie outside those seconds, so the whole seconds stand
    done = _succeeded(pod_object("p", node="gpu-large-000", **placed), "2025-01-01T00:00:00Z", "2025-01-01T00:00:03Z")
    done["metadata"]["annotations"][TEMPLATE_ANNOTATION] = "nightly-report"
    done["metadata"]["labels"][PRIMITIVE_LABEL] = "summarise"
    live.apply_pod_event("MODIFIED", done)
    live.apply_pod_event("MODIFIED", done)  # a repeated terminal event
    # no prior annotation: the estimate
    assert finished == [("llm_generate", "gpu-large", 60.0, 30.0, 30.0, "nightly-report", "summarise")]
    # a relisting after a restart shows finished pods the view never saw run: nothing to report
    live.apply_pod_event(
        None,
        _succeeded(
            pod_object("q", node="gpu-large-000", kind="llm_generate", estimate="1s"),
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:09Z",
        ),
    )
    # neither a failed pod nor one placed without an estimate
    for name, estimate, phase in (("r", "1s", "Failed"), ("s", None, "Succeeded")):
        other = pod_object(name, kind="tool_call", estimate=estimate)
        live.apply_pod_event("ADDED", other)
        live.assume(other, "cpu-large-003")
        ended = _succeeded(
            pod_object(name, node="cpu-large-003", kind="tool_call", estimate=estimate),
            "2025-01-01T00:00:00Z",
            "2025-01-01T00:00:02Z",
        )
        ended["status"]["phase"] = phase
        live.apply_pod_event("MODIFIED", ended)
    assert len(finished) == 1


def test_a_class_takes_its_learned_ratio_after_min_samples_pods_and_a_right_prior_stands() -> None:
    heard: list[Corrections] = []
    run_times = RunTimes(on_corrections=heard.append)
    for _ in range(MIN_SAMPLES - 1):
        run_times.observe("code_exec", "cpu-large", 20.0, 10.0, 10.0)
        run_times.observe("code_exec", "cpu-small", 9.6, 10.0, 10.0)  # a mean-one lognormal's geometric mean
    assert run_times.corrections() == {} and heard == []
    run_times.observe("code_exec", "cpu-large", 20.0, 10.0, 10.0)
    run_times.observe("code_exec", "cpu-small", 9.6, 10.0, 10.0)
    assert run_times.corrections() == {"cpu-large": {PrimitiveKind.CODE_EXEC: pytest.approx(2.0)}}
    assert heard == [run_times.corrections()]
    # once corrected, pods run as estimated but still twice the prior: the ratio in effect stays put
    for _ in range(10):
        run_times.observe("code_exec", "cpu-large", 20.0, 20.0, 20.0 / 2)
    assert len(heard) == 1


def test_statistics_survive_a_dump_and_load_and_bad_content_changes_nothing() -> None:
    run_times = RunTimes()
    for observed in (18.0, 20.0, 22.0, 20.0, 21.0, 19.0):
        run_times.observe("retrieve", "mem-optimised", observed, 10.0, 10.0)
    run_times.observe("llm_generate", "h100", 3.0, 2.0, 2.0)
    heard: list[Corrections] = []
    restarted = RunTimes(on_corrections=heard.append)
    assert restarted.load(run_times.dump()) == 2
    for key in (("retrieve", "mem-optimised"), ("llm_generate", "h100")):
        assert restarted.statistics(*key) == run_times.statistics(*key)
    retrieve = run_times.statistics("retrieve", "mem-optimised")
    assert retrieve is not None  # the mean as it stands now, not the one in effect before the restart
    assert heard == [{"mem-optimised": {PrimitiveKind.RETRIEVE: pytest.approx(retrieve.mean)}}]
    for text in ("not json", '{"version": 3, "statistics": []}', '{"statistics": [{"kind": "teleport"}]}'):
        with pytest.raises(ValueError, match="not run-time statistics"):
            restarted.load(text)
    assert restarted.corrections() == heard[0]


def test_a_correction_divides_the_speed_of_its_kind_and_an_llm_ones_token_rates() -> None:
    node = SPEC.nodes[0]
    slower = corrected(node, {PrimitiveKind.RETRIEVE: 2.0, PrimitiveKind.LLM_GENERATE: 4.0})
    retrieve = Primitive("r", PrimitiveKind.RETRIEVE, work_seconds=3.0)
    generate = Primitive("g", PrimitiveKind.LLM_GENERATE, input_tokens=600, output_tokens=60)
    assert estimated_duration(retrieve, slower) == pytest.approx(2 * estimated_duration(retrieve, node))
    overhead = LLM_OVERHEAD_SECONDS
    assert estimated_duration(generate, slower) - overhead == pytest.approx(
        4 * (estimated_duration(generate, node) - overhead)
    )
    assert slower.speed[PrimitiveKind.TOOL_CALL] == node.speed[PrimitiveKind.TOOL_CALL]
    assert corrected(PROFILES["cpu-large"], {}) is PROFILES["cpu-large"]


def test_a_class_found_twice_as_slow_as_its_prior_loses_the_work_it_would_otherwise_get() -> None:
    live = live_view()
    run_times = RunTimes(on_corrections=live.set_speed_corrections)
    heft = make_scheduler("heft")
    heft.reset(seed=0)
    code = Primitive("c", PrimitiveKind.CODE_EXEC, work_seconds=10.0)
    names = live.node_names()

    def chosen_class() -> str:
        return live.snapshot().spec.nodes[heft.choose(live.observation(code, [], now=0.0))].node_class

    assert chosen_class() == "cpu-large"  # the fastest code_exec class of the static model (1.5)
    prior = live.prior_spec(next(name for name in names if name.startswith("cpu-large")))
    assert prior is not None
    for _ in range(MIN_SAMPLES):
        run_times.observe("code_exec", "cpu-large", 2 * 6.7, 6.7, 6.7)
    assert chosen_class() == "gpu-large"  # cpu-large now runs code at 0.75: the next fastest, 1.2, wins
    # the static model is still there for what is measured against it
    assert live.prior_spec(prior.name) == prior
    assert live.snapshot().speed[names.index(prior.name), KIND_INDEX[PrimitiveKind.CODE_EXEC]] == pytest.approx(
        prior.speed[PrimitiveKind.CODE_EXEC] / 2
    )


def _template_pods(run_times: RunTimes, template: str, primitive: str, ratio: float, pods: int) -> None:
    for _ in range(pods):
        run_times.observe("tool_call", "cpu-large", 10.0 * ratio, 10.0, 10.0, template, primitive)


def test_a_template_primitive_takes_its_learned_work_after_min_samples_pods() -> None:
    heard: list[WorkCorrections] = []
    run_times = RunTimes(on_work_corrections=heard.append)
    # the class is right for the other template: the 2x is the nightly template's own
    for _ in range(20):
        run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0, "other", "step")
    _template_pods(run_times, "nightly", "fetch", 2.0, MIN_SAMPLES - 1)
    assert run_times.work_corrections() == {} and heard == []
    _template_pods(run_times, "nightly", "fetch", 2.0, 1)
    (ratio,) = run_times.work_corrections()["nightly"].values()
    assert heard == [{"nightly": {"fetch": ratio}}] and 1.8 < ratio < 2.0  # the class mean took a little of it
    assert run_times.corrections() == {}  # 1.08: within the deadband
    # converged on the additive model: with the other template's pods in between, the class's mean times each
    # template's is what that template's pods take (how a shared part splits is not theirs to say)
    for _ in range(5):
        for _ in range(4):
            run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0, "other", "step")
        _template_pods(run_times, "nightly", "fetch", 2.0, 2)
    cpu_large = run_times.statistics("tool_call", "cpu-large")
    fetch, step = run_times.template_statistics("nightly", "fetch"), run_times.template_statistics("other", "step")
    assert cpu_large is not None and fetch is not None and step is not None
    assert cpu_large.mean * fetch.mean == pytest.approx(2.0, rel=0.02)
    assert cpu_large.mean * step.mean == pytest.approx(1.0, rel=0.02)
    assert run_times.work_corrections()["nightly"]["fetch"] == pytest.approx(2.0, rel=0.1)
    # the class that misjudges everything on it is the class's, not each template's
    slow = RunTimes()
    for _ in range(30):
        slow.observe("code_exec", "cpu-small", 20.0, 10.0, 10.0, "nightly", "compile")
    assert slow.corrections() == {"cpu-small": {PrimitiveKind.CODE_EXEC: pytest.approx(2.0)}}
    assert slow.work_corrections() == {}


def test_a_template_ratio_is_clipped_and_pods_without_a_template_teach_only_the_class() -> None:
    run_times = RunTimes()
    run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0)  # the class has a mean to divide out
    _template_pods(run_times, "stuck", "wait", 100.0, 40)
    assert run_times.work_corrections()["stuck"]["wait"] == TEMPLATE_RATIO_LIMIT
    before = run_times.templates()
    run_times.observe("tool_call", "cpu-large", 20.0, 10.0, 10.0, "", "wait")
    run_times.observe("tool_call", "cpu-large", 20.0, 10.0, 10.0, "stuck", "")
    assert run_times.templates() == before and run_times.template_statistics("stuck", "wait").samples == 40  # type: ignore[union-attr]


def test_templates_are_bounded_and_the_least_recently_seen_goes_first() -> None:
    heard: list[WorkCorrections] = []
    run_times = RunTimes(on_work_corrections=heard.append)
    run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0)
    _template_pods(run_times, "first", "fetch", 3.0, MIN_SAMPLES)
    _template_pods(run_times, "kept", "fetch", 3.0, MIN_SAMPLES)
    for number in range(MAX_TEMPLATES - 2):
        _template_pods(run_times, f"one-off-{number}", "fetch", 1.0, 1)
    _template_pods(run_times, "first", "fetch", 3.0, 1)  # seen again: now the most recent
    assert len(run_times.templates()) == MAX_TEMPLATES and run_times.templates()[0] == "kept"
    _template_pods(run_times, "newcomer", "fetch", 1.0, 1)
    assert len(run_times.templates()) == MAX_TEMPLATES and "kept" not in run_times.templates()
    assert set(run_times.work_corrections()) == {"first"} and set(heard[-1]) == {"first"}  # its ratio went with it
    # the bound on statistics over all templates: one template of many primitives pushes the others out
    for number in range(MAX_TEMPLATE_STATISTICS):
        run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0, "huge", f"step-{number}")
    assert run_times.templates() == ["huge"]


def test_templates_survive_a_dump_and_load_in_order_and_an_old_configmap_reads_as_none() -> None:
    run_times = RunTimes()
    run_times.observe("tool_call", "cpu-large", 10.0, 10.0, 10.0)
    _template_pods(run_times, "nightly", "fetch", 2.0, MIN_SAMPLES + 10)
    _template_pods(run_times, "hourly", "fetch", 1.0, 2)
    heard: list[WorkCorrections] = []
    restarted = RunTimes(on_work_corrections=heard.append)
    assert restarted.load(run_times.dump()) == 1 + 2
    assert restarted.templates() == ["nightly", "hourly"]
    assert restarted.template_statistics("nightly", "fetch") == run_times.template_statistics("nightly", "fetch")
    nightly = run_times.template_statistics("nightly", "fetch")
    assert nightly is not None  # the mean as it stands now, not the one in effect before the restart
    assert heard == [{"nightly": {"fetch": pytest.approx(nightly.mean)}}]
    # what an operator before templates wrote (version 1, no templates section): its classes, no template
    old = json.loads(run_times.dump())
    old["version"] = 1
    del old["templates"]
    assert restarted.load(json.dumps(old)) == 1
    assert restarted.templates() == [] and restarted.work_corrections() == {} and heard[-1] == {}
    assert restarted.statistics("tool_call", "cpu-large") == run_times.statistics("tool_call", "cpu-large")
