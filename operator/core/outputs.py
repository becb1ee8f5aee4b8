"""Data between primitives: a primitive's output is its container's termination message, handed to its children.

A step writes its result to ``/dev/termination-log`` (the kubelet's default ``terminationMessagePath``); the
operator records it in ``status.primitives.<name>.output`` (the record that outlives the pod and the operator)
and gives each child every parent's output twice: as the environment variable ``SCALE_INPUT_<PARENT>`` (the name
upper-cased, ``-`` as ``_``) and as the file ``/scale/inputs/<parent>``, from a ConfigMap per workflow that the
WorkflowDAG owns. Larger data travels by reference: the step writes a URL or an object key as its output.

On simulated (KWOK) nodes no container runs: a primitive's ``simulatedOutput`` becomes the pod annotation
``scale.dev/simulated-output``, which the local cluster's completion stage writes as the termination message.
"""

from __future__ import annotations

import hashlib
import logging
from typing import TYPE_CHECKING, Any, cast

import kopf
from kubernetes.client.exceptions import ApiException
from scale_scheduler.operator.kube import labels
from scale_scheduler.operator.kube.api import KubeApi

if TYPE_CHECKING:
    from scale_scheduler.operator.core.progress import WorkflowProgress
    from scale_scheduler.operator.core.reconcile_queue import Key
    from scale_scheduler.simulator.workflow import Primitive

log = logging.getLogger(__name__)

# Below the kubelet's own 4096-byte cap on a termination message, which it truncates silently: a truncated
# message is then always over this limit, and fails its primitive instead of passing on half a result. 500
# primitives' outputs at most this size also fit one ConfigMap (1 MiB).
OUTPUT_LIMIT_BYTES = 2048
INPUT_ENV_PREFIX = "SCALE_INPUT_"
INPUTS_DIR = "/scale/inputs"
INPUTS_VOLUME = "scale-inputs"
MAX_NAME = 253


def termination_message(pod: dict[str, Any], container: str) -> str | None:
    """What ``container`` of a finished pod wrote as its termination message (None if nothing)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            message = ((status.get("state") or {}).get("terminated") or {}).get("message")
            return str(message) if message else None
    return None


def oversize(output: str, primitive: str) -> str | None:
    """Why ``output`` cannot be passed on (over the limit), or None when it can."""
    size = len(output.encode())
    if size <= OUTPUT_LIMIT_BYTES:
        return None
    return (
        f"primitive {primitive!r} wrote a {size}-byte output (termination message), over the {OUTPUT_LIMIT_BYTES}-byte "
        "limit on status.primitives.<name>.output: write larger data elsewhere and output its URL or object key"
    )


def input_env_name(parent: str) -> str:
    """``SCALE_INPUT_<PARENT>``: primitive names are DNS labels, so this is a valid, collision-free variable name."""
    return INPUT_ENV_PREFIX + parent.upper().replace("-", "_")


def outputs_config_map_name(workflow: str) -> str:
    """``{workflow}-outputs``, bounded to a ConfigMap name's 253 characters (a long name keeps a prefix and a hash)."""
    plain = f"{workflow}-outputs"
    if len(plain) <= MAX_NAME:
        return plain
    digest = hashlib.sha256(workflow.encode()).hexdigest()[:8]
    return f"{workflow[: MAX_NAME - 17].rstrip('-.')}-{digest}-outputs"


def with_inputs(raw: dict[str, Any], workflow: str, primitive: Primitive, progress: WorkflowProgress) -> dict[str, Any]:
    """The primitive's spec entry with its parents' outputs as environment variables and files (a copy; a
    primitive without parents is returned as it is). The user's own variable of the same name wins; a parent with
    no output gives an empty variable and no file."""
    parents = list(dict.fromkeys(primitive.depends_on))
    if not parents:
        return raw
    env = [{"name": input_env_name(p), "value": progress.primitives[p].output or ""} for p in parents]
    own = {entry.get("name") for entry in raw.get("env") or []}
    volume = {
        "name": INPUTS_VOLUME,
        # optional: only outputs that exist are published, so a parent without one leaves its file out
        "configMap": {
            "name": outputs_config_map_name(workflow),
            "items": [{"key": p, "path": p} for p in parents],
            "optional": True,
        },
    }
    return {
        **raw,
        "env": [entry for entry in env if entry["name"] not in own] + list(raw.get("env") or []),
        "volumes": [*(raw.get("volumes") or []), volume],
        "volumeMounts": [
            *(raw.get("volumeMounts") or []),
            {"name": INPUTS_VOLUME, "mountPath": INPUTS_DIR, "readOnly": True},
        ],
    }


def handed_on(progress: WorkflowProgress, primitives: list[Primitive]) -> dict[str, str]:
    """The outputs some child reads: each non-empty output of a primitive that has children."""
    parents = {parent for p in primitives for parent in p.depends_on}
    return {name: entry.output for name, entry in progress.primitives.items() if name in parents and entry.output}


class OutputPublisher:
    """Keeps each workflow's outputs ConfigMap holding every output a child reads, written before any child's pod
    is created (the kubelet mounts what is there when the pod starts)."""

    def __init__(self, api: KubeApi) -> None:
        self.api = api
        self._published: dict[Key, dict[str, str]] = {}  # what this process last wrote (empty after a restart)

    async def publish(self, key: Key, body: dict[str, Any], outputs: dict[str, str]) -> None:
        if not outputs or self._published.get(key) == outputs:
            return
        meta = body["metadata"]
        name = outputs_config_map_name(meta["name"])
        try:
            await self.api.patch_config_map(meta["namespace"], name, outputs)
        except ApiException as error:
            if error.status != 404:
                raise
            await self.api.create_config_map(self._config_map(body, name, outputs))
        self._published[key] = dict(outputs)

    @staticmethod
    def _config_map(body: dict[str, Any], name: str, outputs: dict[str, str]) -> dict[str, Any]:
        meta = body["metadata"]
        config_map: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": name,
                "namespace": meta["namespace"],
                "labels": {labels.MANAGED_BY_LABEL: labels.MANAGED_BY_VALUE},
            },
            "data": dict(outputs),
        }
        # owned by the WorkflowDAG: the garbage collector removes it with the workflow
        owner = {"apiVersion": f"{labels.GROUP}/{labels.VERSION}", "kind": labels.KIND, "metadata": meta}
        kopf.append_owner_reference(config_map, owner=kopf.Body(cast("kopf.RawBody", owner)), controller=True)
        return config_map

    def forget(self, key: Key) -> None:
        self._published.pop(key, None)
