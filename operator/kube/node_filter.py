"""Which nodes a pod's own constraints admit, as kube-scheduler's NodeAffinity and TaintToleration filters decide.

One implementation for the controller (``placer``), the extender and the WorkflowDAG validator: the live view
turns it into a per-pod mask that narrows ``Observation.mask``. Only the hard constraints are read (nodeSelector,
``requiredDuringSchedulingIgnoredDuringExecution`` node affinity, NoSchedule/NoExecute taints); preferences and
PreferNoSchedule taints do not filter in kube-scheduler either.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

BLOCKING_TAINT_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True)
class NodeConstraints:
    """A pod's hard node constraints in a hashable form (the live view caches one mask per distinct value)."""

    node_selector: tuple[tuple[str, str], ...] = ()
    tolerations: str = "[]"  # canonical JSON of spec.tolerations
    required_affinity: str = "null"  # canonical JSON of the required node affinity's nodeSelectorTerms

    @classmethod
    def of_pod(cls, pod: dict[str, Any]) -> NodeConstraints:
        spec = pod.get("spec") or {}
        affinity = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
        terms = None if affinity is None else affinity.get("nodeSelectorTerms") or []
        return cls(
            tuple(sorted((spec.get("nodeSelector") or {}).items())),
            json.dumps(spec.get("tolerations") or [], sort_keys=True),
            json.dumps(terms, sort_keys=True),
        )

    def rejection(self, node: dict[str, Any]) -> str | None:
        """Why kube-scheduler's filters would refuse ``node`` (a Node object) for the pod, or None if they admit it."""
        meta = node.get("metadata") or {}
        node_labels = meta.get("labels") or {}
        if any(node_labels.get(key) != value for key, value in self.node_selector):
            return "node(s) didn't match Pod's node affinity/selector"
        terms = json.loads(self.required_affinity)
        # No term at all (an empty list) matches nothing, as in kube-scheduler; a missing affinity matches all.
        if terms is not None and not any(_term_matches(term, meta.get("name", ""), node_labels) for term in terms):
            return "node(s) didn't match Pod's node affinity/selector"
        taint = untolerated_taint(json.loads(self.tolerations), (node.get("spec") or {}).get("taints") or [])
        if taint is not None:
            value = f"={taint['value']}" if taint.get("value") else ""
            return f"node(s) had untolerated taint {{{taint.get('key', '')}{value}:{taint.get('effect', '')}}}"
        return None


def tolerates(toleration: dict[str, Any], taint: dict[str, Any]) -> bool:
    """Whether one toleration covers one taint (core/v1 ``Toleration.ToleratesTaint``)."""
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True  # an empty key with Exists tolerates every taint
    return bool(key) and operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated_taint(tolerations: list[dict[str, Any]], taints: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The first NoSchedule/NoExecute taint no toleration covers, or None."""
    return next(
        (
            taint
            for taint in taints
            if taint.get("effect") in BLOCKING_TAINT_EFFECTS
            and not any(tolerates(toleration, taint) for toleration in tolerations)
        ),
        None,
    )


def _term_matches(term: dict[str, Any], node_name: str, node_labels: dict[str, str]) -> bool:
    """A nodeSelectorTerm: all its requirements hold; a term without any matches no node."""
    expressions = term.get("matchExpressions") or []
    fields = term.get("matchFields") or []
    if not expressions and not fields:
        return False
    return all(_requirement_holds(r, node_labels) for r in expressions) and all(
        _requirement_holds(r, {"metadata.name": node_name}) for r in fields
    )


def _requirement_holds(requirement: dict[str, Any], values: dict[str, str]) -> bool:
    key, operator, wanted = requirement.get("key", ""), requirement.get("operator"), requirement.get("values") or []
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            have, bound = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return have > bound if operator == "Gt" else have < bound
    return False
