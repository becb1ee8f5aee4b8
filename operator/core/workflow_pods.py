"""The pod the operator creates for one attempt of one primitive: its name, labels and manifest.

Names are deterministic (workflow, primitive, attempt) so a restarted operator finds the pods its
previous incarnation made, and a second create of the same attempt is a harmless 409.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import kopf
import numpy as np
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.labels import KWOK_TOLERATION
from scale_scheduler.simulator.cluster import GPU_RESOURCE, NodeSpec
from scale_scheduler.simulator.node_model import sample_duration
from scale_scheduler.simulator.workflow import Primitive

CONTAINER_NAME = "primitive"
MAX_NAME = 63


def _short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:8]


def label_value(name: str) -> str:
    """A workflow name as a label value (at most 63 characters; longer names keep a prefix plus a hash)."""
    if len(name) <= MAX_NAME:
        return name
    return f"{name[: MAX_NAME - 9].rstrip('-.')}-{_short_hash(name)}"


def pod_name(workflow: str, primitive: str, attempt: int) -> str:
    """``{workflow}-{primitive}-{attempt}``, or a hashed form of it when that would exceed 63 characters."""
    plain = f"{workflow}-{primitive}-{attempt}"
    if len(plain) <= MAX_NAME:
        return plain
    suffix = f"-{_short_hash(workflow, primitive)}-{attempt}"
    budget = MAX_NAME - len(suffix)
    head = f"{workflow[: budget // 2]}-{primitive}"[:budget].rstrip("-.")
    return f"{head}{suffix}"


def duration_rng(workflow_uid: str, primitive: str, attempt: int) -> np.random.Generator:
    """Seeded by the workflow's uid, the primitive and the attempt, so a restarted operator draws the same."""
    digest = hashlib.sha256(f"{workflow_uid}/{primitive}/{attempt}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def run_seconds(primitive: Primitive, node: NodeSpec, workflow_uid: str, attempt: int, setup_seconds: float) -> float:
    """Simulated seconds the pod occupies its node: transfer + cold start (``setup_seconds``, estimated by the
    shared feature builder) plus the node model's sampled run time, exactly what the simulator charges; the run
    time divided by the node's ``SIMULATED_SPEED_LABEL`` where it has a positive one (else it stands)."""
    run = sample_duration(primitive, node, duration_rng(workflow_uid, primitive.name, attempt))
    try:
        speed = float(node.labels.get(labels.SIMULATED_SPEED_LABEL, "1"))
    except ValueError:
        speed = 1.0
    return setup_seconds + run / (speed if speed > 0 else 1.0)


def go_duration(seconds: float) -> str:
    """A Go duration string (kwok parses the annotation with time.ParseDuration)."""
    return f"{max(seconds, 0.001):.3f}s"


# Pod Security "restricted" out of the box; what a user sets in podSecurityContext/securityContext wins key by key.
RESTRICTED_POD_SECURITY: dict[str, Any] = {
    # runAsNonRoot alone fails on images whose user is root (busybox, python): run them as "nobody" unless told
    "runAsNonRoot": True,
    "runAsUser": 65534,
    "seccompProfile": {"type": "RuntimeDefault"},
}
RESTRICTED_CONTAINER_SECURITY: dict[str, Any] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# Container fields copied as they are from the primitive (podTemplate merged in: pod_template.py).
_CONTAINER_PASSTHROUGH = ("imagePullPolicy", "command", "args", "workingDir", "env", "envFrom", "volumeMounts")
_POD_PASSTHROUGH = (
    "volumes",
    "serviceAccountName",
    "imagePullSecrets",
    "nodeSelector",
    "affinity",
    "priorityClassName",
    "activeDeadlineSeconds",
)


def resource_quantities(primitive: Primitive, raw_primitive: dict[str, Any] | None = None) -> dict[str, str]:
    """Requests (= limits): cpu, memory and GPUs as the policy counted them, plus any other resource the
    primitive names (ephemeral-storage, extended resources), passed through."""
    resources = {name: str(value) for name, value in ((raw_primitive or {}).get("resources") or {}).items()}
    resources.update({"cpu": f"{primitive.cpu_millicores}m", "memory": str(primitive.memory_bytes)})
    resources.pop(GPU_RESOURCE, None)
    if primitive.gpus > 0:
        resources[GPU_RESOURCE] = str(primitive.gpus)
    return resources


def scheduling_fields(raw_primitive: dict[str, Any]) -> dict[str, Any]:
    """The pod spec's node constraints for a primitive: its nodeSelector and affinity, and its tolerations
    beside the one every pod carries for KWOK's nodes (what ``node_filter.NodeConstraints`` reads)."""
    fields: dict[str, Any] = {"tolerations": [dict(KWOK_TOLERATION), *(raw_primitive.get("tolerations") or [])]}
    fields.update({key: raw_primitive[key] for key in ("nodeSelector", "affinity") if raw_primitive.get(key)})
    return fields


def avoiding_nodes(affinity: dict[str, Any] | None, nodes: list[str]) -> dict[str, Any]:
    """``affinity`` whose required node affinity also keeps the pod off ``nodes`` (every nodeSelectorTerm gets a
    ``metadata.name NotIn`` field requirement: terms are ORed, so each must exclude them)."""
    affinity = dict(affinity or {})
    node_affinity = dict(affinity.get("nodeAffinity") or {})
    required = dict(node_affinity.get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    excluded = {"key": "metadata.name", "operator": "NotIn", "values": list(nodes)}
    terms = required.get("nodeSelectorTerms") or [{}]
    required["nodeSelectorTerms"] = [
        {**term, "matchFields": [*(term.get("matchFields") or []), excluded]} for term in terms
    ]
    node_affinity["requiredDuringSchedulingIgnoredDuringExecution"] = required
    affinity["nodeAffinity"] = node_affinity
    return affinity


def pod_manifest(
    *, workflow: dict[str, Any], primitive: Primitive, raw_primitive: dict[str, Any], attempt: int, policy: str
) -> dict[str, Any]:
    """The Pod for one attempt, unbound (no nodeName: the operator binds it through the Binding subresource, after
    adding the planned node and its drawn duration as annotations).

    ``workflow`` is the WorkflowDAG object (metadata name/namespace/uid are used), ``raw_primitive`` its
    spec entry with the workflow's podTemplate merged in (``pod_template.effective_primitives``).
    """
    meta = workflow["metadata"]
    resources = resource_quantities(primitive, raw_primitive)
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": raw_primitive["image"],
        # Guaranteed QoS: what the policy counted is what the node reserves.
        "resources": {"requests": resources, "limits": dict(resources)},
        "securityContext": {**RESTRICTED_CONTAINER_SECURITY, **(raw_primitive.get("securityContext") or {})},
    }
    container.update({key: raw_primitive[key] for key in _CONTAINER_PASSTHROUGH if raw_primitive.get(key)})
    pod: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name(meta["name"], primitive.name, attempt),
            "namespace": meta["namespace"],
            "labels": {
                labels.MANAGED_BY_LABEL: labels.MANAGED_BY_VALUE,
                labels.WORKFLOW_LABEL: label_value(meta["name"]),
                labels.PRIMITIVE_LABEL: primitive.name,
                labels.PRIMITIVE_KIND_LABEL: primitive.kind.value,
                labels.ATTEMPT_LABEL: str(attempt),
            },
            "annotations": {
                labels.POLICY_ANNOTATION: policy,
                **(
                    {labels.SIMULATED_OUTPUT_ANNOTATION: str(raw_primitive["simulatedOutput"])}
                    if "simulatedOutput" in raw_primitive
                    else {}
                ),
            },
        },
        "spec": {
            "schedulerName": labels.SCHEDULER_NAME,
            "restartPolicy": "Never",
            "automountServiceAccountToken": bool(raw_primitive.get("automountServiceAccountToken", False)),
            "terminationGracePeriodSeconds": 0,
            "securityContext": {**RESTRICTED_POD_SECURITY, **(raw_primitive.get("podSecurityContext") or {})},
            "containers": [container],
            **scheduling_fields(raw_primitive),
            **{key: raw_primitive[key] for key in _POD_PASSTHROUGH if raw_primitive.get(key)},
        },
    }
    # Owned by the WorkflowDAG (the garbage collector removes the pod with it); the identity is spelled out
    # because kopf reads it from the owner and a listed object carries no apiVersion or kind.
    owner = {"apiVersion": f"{labels.GROUP}/{labels.VERSION}", "kind": labels.KIND, "metadata": meta}
    kopf.append_owner_reference(
        pod, owner=kopf.Body(cast("kopf.RawBody", owner)), controller=True, block_owner_deletion=True
    )
    return pod
