"""kube-scheduler's TaintToleration and NodeAffinity filters, as ``node_filter`` reads them: pure functions."""

from __future__ import annotations

from typing import Any

import pytest
from scale_scheduler.operator.kube.node_filter import NodeConstraints, tolerates, untolerated_taint

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "expected"),
    [
        ({"key": "nvidia.com/gpu", "operator": "Exists"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}, True),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, False),
        ({"key": "nvidia.com/gpu", "value": "present"}, True),  # operator defaults to Equal
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "absent"}, False),
        ({"operator": "Exists"}, True),  # an empty key with Exists tolerates everything
        ({"key": "other", "operator": "Exists"}, False),
    ],
)
def test_toleration_matches_taint_as_core_v1_does(toleration: dict[str, Any], expected: bool) -> None:
    assert tolerates(toleration, GPU_TAINT) is expected


def test_only_no_schedule_and_no_execute_taints_filter() -> None:
    soft = {"key": "spot", "effect": "PreferNoSchedule"}
    assert untolerated_taint([], [soft]) is None
    assert untolerated_taint([], [soft, GPU_TAINT]) == GPU_TAINT


def _node(labels: dict[str, str], taints: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "n1", "labels": labels}, "spec": {"taints": taints or []}}


def test_rejection_names_the_filter_that_refuses() -> None:
    plain = NodeConstraints.of_pod({"spec": {}})
    assert plain.rejection(_node({})) is None
    refused = plain.rejection(_node({}, [GPU_TAINT]))
    assert refused == "node(s) had untolerated taint {nvidia.com/gpu=present:NoSchedule}"
    selector = NodeConstraints.of_pod({"spec": {"nodeSelector": {"pool": "a"}}})
    assert selector.rejection(_node({"pool": "b"})) == "node(s) didn't match Pod's node affinity/selector"
    assert selector.rejection(_node({"pool": "a"})) is None


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ({"key": "gen", "operator": "Gt", "values": ["3"]}, True),
        ({"key": "gen", "operator": "Lt", "values": ["3"]}, False),
        ({"key": "gen", "operator": "Gt", "values": ["x"]}, False),
        ({"key": "zone", "operator": "DoesNotExist"}, True),
        ({"key": "gen", "operator": "Exists"}, True),
    ],
)
def test_required_affinity_operators(expression: dict[str, Any], expected: bool) -> None:
    pod = {
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                    }
                }
            }
        }
    }
    assert (NodeConstraints.of_pod(pod).rejection(_node({"gen": "4"})) is None) is expected


def test_terms_are_ored_and_an_empty_term_matches_nothing() -> None:
    def with_terms(terms: list[dict[str, Any]]) -> NodeConstraints:
        return NodeConstraints.of_pod(
            {
                "spec": {
                    "affinity": {
                        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
                    }
                }
            }
        )

    miss = {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["b"]}]}
    hit = {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["a"]}]}
    assert with_terms([miss, hit]).rejection(_node({"pool": "a"})) is None
    assert with_terms([{}]).rejection(_node({"pool": "a"})) is not None
    assert with_terms([]).rejection(_node({"pool": "a"})) is not None
