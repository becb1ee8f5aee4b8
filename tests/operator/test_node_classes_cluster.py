"""Nodes labelled as real clusters label them, on the real control plane: the operator reads an H100 node and an
L4 node (NVIDIA GPU feature discovery's labels, no project label) as their profiles, places an LLM call on the
faster one, and reports a node no rule maps once (a Warning Event and a metric) while scheduling it as the
fallback class. The finished pod's observed run time is measured against its estimate, under its class."""

from __future__ import annotations

import json
import urllib.request
import uuid
from typing import Any

import pytest
import yaml
from operator_harness import (
    apply,
    events_for,
    install_crd,
    new_namespace,
    wait_for,
    wait_for_phase,
    workflow,
    workflow_pods,
)
from scale_scheduler.operator.dev.localcluster import kwok
from scale_scheduler.operator.dev.localcluster.nodes import node_list
from scale_scheduler.operator.dev.operator_process import running_operator
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.objects import parse_go_duration
from scale_scheduler.simulator.cluster import ClusterSpec
from scale_scheduler.simulator.node_model import estimated_duration
from scale_scheduler.simulator.primitives import COLD_START_SECONDS, PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive

TIME_SCALE = 20.0


def _metric(port: int, name: str) -> float:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    values = [float(line.split()[-1]) for line in text.splitlines() if line.startswith(name + " ")]
    return values[0] if values else 0.0


def test_gpu_labelled_nodes_get_their_profiles_and_an_unmapped_one_is_reported_once(local_cluster: Any) -> None:
    info = local_cluster()
    install_crd(info)
    namespace = new_namespace(info, "nodeclass")
    pool = f"pool-{uuid.uuid4().hex[:6]}"  # only this test's nodes carry it: its primitive may go nowhere else
    h100, l4, odd = f"h100-{pool}", f"l4-{pool}", f"odd-{pool}"
    gfd_h100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "8"}
    gfd_l4 = {"nvidia.com/gpu.product": "NVIDIA-L4", "nvidia.com/gpu.count": "1"}
    nodes = [
        {"name": h100, "gpus": 8, "labels": {"scale.dev/test-pool": pool, **gfd_h100}},
        {"name": l4, "gpus": 1, "labels": {"scale.dev/test-pool": pool, **gfd_l4}},
        {"name": odd, "gpus": 2, "labels": {"scale.dev/test-pool": f"other-{pool}", "vendor.example/gpu": "x9"}},
    ]
    spec = ClusterSpec.from_yaml(yaml.safe_dump({"nodes": nodes}))
    assert [n.node_class for n in spec.nodes] == ["h100", "l4", "gpu-small"]
    assert not any("scale.dev/node-class" in n.labels for n in spec.nodes), "the operator must infer, not read"
    kwok.kubectl(info, "apply", "-f", "-", stdin=json.dumps(node_list(spec)))
    try:
        wait_for(
            "the new nodes to be Ready",
            lambda: all(
                kwok.kubectl(
                    info, "get", "node", name, "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")].status}'
                )
                == "True"
                for name in (h100, l4, odd)
            ),
            120,
        )
        llm = {
            "name": "answer",
            "kind": "llm_generate",
            "resources": {"cpu": "2", "memory": "16Gi", "nvidia.com/gpu": 1},
            "inputTokens": 2000,
            "outputTokens": 500,
            "nodeSelector": {"scale.dev/test-pool": pool},
        }
        # The operator's own pod, as the chart runs it (the Event goes there); nobody schedules this stand-in.
        env = {"POD_NAME": "scale-sched-operator", "POD_NAMESPACE": namespace}
        stand_in = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": env["POD_NAME"]},
            "spec": {"schedulerName": "nobody", "containers": [{"name": "operator", "image": "scale-sched"}]},
        }
        apply(info, namespace, stand_in)
        with running_operator(
            info.kubeconfig, namespace, policy="heft", time_scale=TIME_SCALE, metrics=True, env=env
        ) as operator:
            apply(info, namespace, workflow("ask", [llm]))
            status = wait_for_phase(info, namespace, "ask", {"Succeeded", "Failed"}, 120, operator)["status"]
            assert status["phase"] == "Succeeded", status
            # the H100 decodes ~11x faster than the L4: earliest finish picks it
            assert status["primitives"]["answer"]["node"] == h100
            (pod,) = workflow_pods(info, namespace, "ask")
            estimate = parse_go_duration(pod["metadata"]["annotations"][labels.ESTIMATED_DURATION_ANNOTATION])
            primitive = Primitive(name="answer", kind=PrimitiveKind.LLM_GENERATE, input_tokens=2000, output_tokens=500)
            expected = COLD_START_SECONDS[PrimitiveKind.LLM_GENERATE] + estimated_duration(primitive, spec.nodes[0])
            # the annotation is wall-clock seconds to the millisecond
            assert estimate * TIME_SCALE == pytest.approx(expected, abs=TIME_SCALE * 0.001), "estimated as an H100"

            reports = wait_for(
                "the UnmappedNode Event",
                lambda: [e for e in events_for(info, namespace, env["POD_NAME"]) if e["reason"] == "UnmappedNode"],
                30,
                describe=operator.log,
            )
            assert len(reports) == 1 and reports[0]["count"] == 1 and reports[0]["type"] == "Warning"
            assert odd in reports[0]["message"] and "gpu-small" in reports[0]["message"]
            assert _metric(operator.metrics_port, "scale_sched_unmapped_nodes_total") == 1.0
            # the finished pod's run time against its estimate, under the class it ran on
            port = operator.metrics_port
            wait_for(
                "the finished pod's run time in the metrics",
                lambda: _metric(port, 'scale_sched_estimate_error_ratio_count{kind="llm_generate"}') == 1.0,
                30,
                describe=operator.log,
            )
            ratio = 'scale_sched_run_time_ratio{kind="llm_generate",node_class="h100",statistic="mean"}'
            assert _metric(port, ratio) > 0
    finally:
        kwok.kubectl(info, "delete", "node", h100, l4, odd, "--ignore-not-found")
