"""A WorkflowDAG's ``spec.podTemplate`` merged into each primitive: what every primitive's pod is made of.

The fields a user may set on the template and on each primitive (``TEMPLATE_FIELDS``) are the pod and container
fields the operator passes through and its own per-attempt rules (deadlines, retryStrategy); any other field is
refused (``UnknownField``), never silently dropped (the CRD keeps unknown fields so that this check sees them).
The primitive's value wins: whole for scalars, command, args and affinity; by name for env, volumes and
imagePullSecrets; by mountPath for volumeMounts; key by key for nodeSelector, resources, retryStrategy and the
two security contexts; envFrom and tolerations add up. A ``retryStrategy.limit`` becomes the primitive's
``retries``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from scale_scheduler.simulator.workflow import WorkflowValidationError

# The estimates the simulator and the policy read, and the DAG itself; not passed to the pod's spec.
PRIMITIVE_ONLY_FIELDS = frozenset(
    {
        "name",
        "kind",
        "dependsOn",
        "inputTokens",
        "outputTokens",
        "workSeconds",
        "outputMegabytes",
        "retries",
        "simulatedOutput",  # the output a simulated (KWOK) node reports for it: outputs.py
    }
)


def _by(key: str) -> Callable[[list[Any], list[Any]], list[Any]]:
    def merge(template: list[Any], own: list[Any]) -> list[Any]:
        own_keys = {item.get(key) for item in own}
        return [item for item in template if item.get(key) not in own_keys] + list(own)

    return merge


def _replace(template: Any, own: Any) -> Any:
    return own


def _concatenate(template: list[Any], own: list[Any]) -> list[Any]:
    return list(template) + [item for item in own if item not in template]


def _keywise(template: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    return {**template, **own}


# field -> how a primitive's value combines with the template's
TEMPLATE_FIELDS: dict[str, Callable[[Any, Any], Any]] = {
    "image": _replace,
    "imagePullPolicy": _replace,
    "command": _replace,
    "args": _replace,
    "workingDir": _replace,
    "env": _by("name"),
    "envFrom": _concatenate,
    "volumeMounts": _by("mountPath"),
    "volumes": _by("name"),
    "serviceAccountName": _replace,
    "automountServiceAccountToken": _replace,
    "imagePullSecrets": _by("name"),
    "securityContext": _keywise,
    "podSecurityContext": _keywise,
    "resources": _keywise,
    "nodeSelector": _keywise,
    "tolerations": _concatenate,
    "affinity": _replace,
    "priorityClassName": _replace,
    "activeDeadlineSeconds": _replace,
    "pendingTimeoutSeconds": _replace,
    "retryStrategy": _keywise,
}


def _refuse_unknown(
    entry: dict[str, Any], allowed: frozenset[str] | dict[str, Any], where: str, primitive: str
) -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise WorkflowValidationError(
            "UnknownField",
            primitive,
            f"{where}.{unknown[0]} is not a field the operator passes to the pod (it would be dropped); "
            f"known fields: {', '.join(sorted(allowed))}",
        )


def effective_primitives(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Each primitive's spec entry with ``spec.podTemplate`` merged in; UnknownField names a field neither knows,
    MissingImage a primitive that neither gives an image (the CRD refuses both at apply; this catches objects
    created under an older CRD)."""
    template = spec.get("podTemplate") or {}
    _refuse_unknown(template, TEMPLATE_FIELDS, "spec.podTemplate", "")
    merged = []
    for raw in spec.get("primitives") or []:
        name = raw.get("name", "")
        _refuse_unknown(raw, PRIMITIVE_ONLY_FIELDS | TEMPLATE_FIELDS.keys(), f"spec.primitives[{name}]", name)
        entry = dict(raw)
        for field, value in template.items():
            entry[field] = TEMPLATE_FIELDS[field](value, raw[field]) if field in raw else value
        # retries is the shorthand of retryStrategy.limit; the primitive's own value wins over the template's
        own_limit = "limit" in (raw.get("retryStrategy") or {})
        if "limit" in (entry.get("retryStrategy") or {}) and (own_limit or "retries" not in raw):
            entry["retries"] = entry["retryStrategy"]["limit"]
        if not entry.get("image"):
            # As a Job or an Argo step would: a default image could only guess, and one that never exits (pause)
            # left the workflow Running for good on real nodes.
            raise WorkflowValidationError(
                "MissingImage",
                name,
                f"spec.primitives[{name}].image is not set, nor spec.podTemplate.image: "
                "name the container image the primitive runs",
            )
        merged.append(entry)
    return merged
