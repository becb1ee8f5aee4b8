"""The pod manifest builder and naming: pure functions, no cluster."""

from __future__ import annotations

import json

import pytest
from scale_scheduler.operator.core.pod_template import effective_primitives
from scale_scheduler.operator.core.workflow_pods import (
    avoiding_nodes,
    go_duration,
    label_value,
    pod_manifest,
    pod_name,
    run_seconds,
)
from scale_scheduler.operator.kube import labels
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.node_model import estimated_duration
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.workflow import Primitive, WorkflowValidationError

WORKFLOW = {"metadata": {"name": "wf", "namespace": "team-a", "uid": "1234-uid"}}


def test_pod_name_is_plain_when_short_and_unique_and_bounded_when_long() -> None:
    assert pod_name("wf", "plan", 0) == "wf-plan-0"
    long_workflow, long_primitive = "w" * 60, "p" * 63
    names = {pod_name(long_workflow, long_primitive, attempt) for attempt in range(3)}
    assert len(names) == 3
    assert all(len(name) <= 63 and name[0].isalnum() and name[-1].isalnum() for name in names)
    # two different primitives that share a long prefix still get different pod names
    assert pod_name(long_workflow, "a" * 62 + "x", 0) != pod_name(long_workflow, "a" * 62 + "y", 0)


def test_label_value_keeps_short_names_and_bounds_long_ones() -> None:
    assert label_value("wf") == "wf"
    long = label_value("x" * 200)
    assert len(long) <= 63 and long != label_value("x" * 199 + "y")


def test_pod_manifest_carries_owner_labels_requests_scheduler_and_duration() -> None:
    primitive = Primitive("plan", PrimitiveKind.LLM_GENERATE, input_tokens=100, output_tokens=50)
    pod = pod_manifest(
        workflow=WORKFLOW,
        primitive=primitive,
        raw_primitive={"image": "busybox:1.36", "command": ["run", "it"]},
        attempt=1,
        policy="heft",
    )
    meta, spec = pod["metadata"], pod["spec"]
    assert meta["name"] == "wf-plan-1" and meta["namespace"] == "team-a"
    assert meta["labels"][labels.WORKFLOW_LABEL] == "wf"
    assert meta["labels"][labels.PRIMITIVE_LABEL] == "plan"
    assert meta["labels"][labels.ATTEMPT_LABEL] == "1"
    assert meta["annotations"] == {labels.POLICY_ANNOTATION: "heft"}  # placement annotations come with the node
    owner = meta["ownerReferences"][0]
    assert owner["uid"] == "1234-uid" and owner["controller"] and owner["blockOwnerDeletion"]
    assert owner["kind"] == labels.KIND
    assert spec["schedulerName"] == labels.SCHEDULER_NAME and spec["restartPolicy"] == "Never"
    assert "nodeName" not in spec  # the operator binds through the Binding subresource
    container = spec["containers"][0]
    assert container["image"] == "busybox:1.36" and container["command"] == ["run", "it"]
    requests = container["resources"]["requests"]
    assert requests == {"cpu": "2000m", "memory": str(16 * 1024**3), "nvidia.com/gpu": "1"}
    assert container["resources"]["limits"] == requests


def test_pod_manifest_uses_the_given_image_and_no_gpu_for_cpu_kinds() -> None:
    primitive = Primitive("exec", PrimitiveKind.CODE_EXEC)
    pod = pod_manifest(
        workflow=WORKFLOW, primitive=primitive, raw_primitive={"image": "python:3.12"}, attempt=0, policy="scale"
    )
    container = pod["spec"]["containers"][0]
    assert container["image"] == "python:3.12" and "command" not in container
    assert "nvidia.com/gpu" not in container["resources"]["requests"]


def test_run_seconds_is_reproducible_per_attempt_and_centred_on_the_node_model() -> None:
    node = heterogeneous(16, seed=0).nodes[0]
    primitive = Primitive("plan", PrimitiveKind.LLM_GENERATE, input_tokens=1000, output_tokens=300)
    first = run_seconds(primitive, node, "uid-a", 0, setup_seconds=2.0)
    assert first == run_seconds(primitive, node, "uid-a", 0, setup_seconds=2.0)  # a restarted operator agrees
    assert first != run_seconds(primitive, node, "uid-a", 1, setup_seconds=2.0)  # a retry draws again
    draws = [run_seconds(primitive, node, f"uid-{i}", 0, setup_seconds=0.0) for i in range(400)]
    mean = sum(draws) / len(draws)
    assert abs(mean / estimated_duration(primitive, node) - 1.0) < 0.1  # mean-one lognormal factor


def test_go_duration_format() -> None:
    assert go_duration(12.3456) == "12.346s"
    assert go_duration(0.0) == "0.001s"  # never zero: kwok needs a delay


def test_pod_template_merges_into_each_primitive_and_the_primitive_wins() -> None:
    spec = {
        "podTemplate": {
            "image": "busybox:1.36",
            "env": [{"name": "A", "value": "t"}, {"name": "B", "value": "t"}],
            "envFrom": [{"secretRef": {"name": "keys"}}],
            "volumes": [{"name": "data", "emptyDir": {}}],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "nodeSelector": {"pool": "a", "zone": "z1"},
            "tolerations": [{"key": "t1", "operator": "Exists"}],
            "resources": {"cpu": "1", "ephemeral-storage": "1Gi"},
            "securityContext": {"readOnlyRootFilesystem": True},
        },
        "primitives": [
            {
                "name": "p",
                "kind": "tool_call",
                "env": [{"name": "B", "value": "own"}],
                "nodeSelector": {"pool": "b"},
                "tolerations": [{"key": "t2", "operator": "Exists"}],
                "resources": {"cpu": "2"},
            },
            {"name": "q", "kind": "tool_call", "image": "python:3.12-slim"},
        ],
    }
    p, q = effective_primitives(spec)
    assert p["image"] == "busybox:1.36" and q["image"] == "python:3.12-slim"
    assert p["env"] == [{"name": "A", "value": "t"}, {"name": "B", "value": "own"}]
    assert p["nodeSelector"] == {"pool": "b", "zone": "z1"}
    assert [t["key"] for t in p["tolerations"]] == ["t1", "t2"]
    assert p["resources"] == {"cpu": "2", "ephemeral-storage": "1Gi"}
    assert q["volumes"] == [{"name": "data", "emptyDir": {}}] and q["envFrom"] == [{"secretRef": {"name": "keys"}}]
    primitive = Primitive("p", PrimitiveKind.TOOL_CALL, cpu_millicores=2000, memory_bytes=1024**3)
    pod = pod_manifest(workflow=WORKFLOW, primitive=primitive, raw_primitive=p, attempt=0, policy="heft")
    container, pod_spec = pod["spec"]["containers"][0], pod["spec"]
    assert container["resources"]["requests"] == {"cpu": "2000m", "memory": str(1024**3), "ephemeral-storage": "1Gi"}
    assert container["env"] == p["env"] and container["envFrom"] == p["envFrom"]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data"}]
    assert pod_spec["volumes"] == [{"name": "data", "emptyDir": {}}] and pod_spec["nodeSelector"] == p["nodeSelector"]
    assert [t["key"] for t in pod_spec["tolerations"]] == ["kwok.x-k8s.io/node", "t1", "t2"]
    # restricted Pod Security by default, the user's keys on top
    assert pod_spec["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 65534,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }


def test_a_field_the_operator_would_not_pass_through_is_refused_by_name() -> None:
    with pytest.raises(WorkflowValidationError, match=r"spec\.podTemplate\.hostNetwork") as refused:
        effective_primitives({"podTemplate": {"hostNetwork": True}, "primitives": [{"name": "a", "kind": "tool_call"}]})
    assert refused.value.reason == "UnknownField"
    with pytest.raises(WorkflowValidationError, match=r"spec\.primitives\[a\]\.workSecond ") as refused:
        effective_primitives({"primitives": [{"name": "a", "kind": "tool_call", "workSecond": 2}]})
    assert refused.value.primitive == "a"


def test_a_primitive_with_no_image_anywhere_is_refused_naming_both_places() -> None:
    spec = {
        "primitives": [{"name": "a", "kind": "tool_call", "image": "busybox:1.36"}, {"name": "b", "kind": "tool_call"}]
    }
    with pytest.raises(
        WorkflowValidationError, match=r"spec\.primitives\[b\]\.image .* spec\.podTemplate\.image"
    ) as refused:
        effective_primitives(spec)
    assert refused.value.reason == "MissingImage" and refused.value.primitive == "b"
    spec["podTemplate"] = {"image": "python:3.12-slim"}
    assert [entry["image"] for entry in effective_primitives(spec)] == ["busybox:1.36", "python:3.12-slim"]


def test_avoiding_nodes_adds_the_exclusion_to_every_term() -> None:
    assert avoiding_nodes(None, ["n1"])["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"] == {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}]}]
    }
    own = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": "a", "operator": "Exists"}]},
                    {"matchExpressions": [{"key": "b", "operator": "Exists"}]},
                ]
            }
        }
    }
    terms = avoiding_nodes(own, ["n1"])["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert all(term["matchFields"][0]["values"] == ["n1"] for term in terms["nodeSelectorTerms"])
    assert (
        "matchFields"
        not in own["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    ), "the primitive's own affinity is left as it was"


def test_a_primitives_own_retries_win_over_the_templates_retry_limit() -> None:
    spec = {
        "podTemplate": {"image": "busybox:1.36", "retryStrategy": {"limit": 5}},
        "primitives": [
            {"name": "own", "kind": "tool_call", "retries": 1},
            {"name": "inherits", "kind": "tool_call"},
            {"name": "own-strategy", "kind": "tool_call", "retries": 1, "retryStrategy": {"limit": 3}},
        ],
    }
    retries = {entry["name"]: entry.get("retries") for entry in effective_primitives(spec)}
    assert retries == {"own": 1, "inherits": 5, "own-strategy": 3}


def test_a_simulated_output_becomes_the_annotation_the_kwok_stage_reports_and_nothing_else() -> None:
    primitive = Primitive("plan", PrimitiveKind.TOOL_CALL)
    raw = {"image": "busybox:1.36", "simulatedOutput": "tools: search"}
    pod = pod_manifest(workflow=WORKFLOW, primitive=primitive, raw_primitive=raw, attempt=0, policy="heft")
    assert pod["metadata"]["annotations"][labels.SIMULATED_OUTPUT_ANNOTATION] == "tools: search"
    assert "simulatedOutput" not in json.dumps(pod["spec"])
    plain = pod_manifest(
        workflow=WORKFLOW, primitive=primitive, raw_primitive={"image": "busybox:1.36"}, attempt=0, policy="heft"
    )
    assert labels.SIMULATED_OUTPUT_ANNOTATION not in plain["metadata"]["annotations"]
