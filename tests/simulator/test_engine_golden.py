"""Fixed-seed episodes give bit for bit what the engine gave before its speed work (engine-speed-2).

``engine_golden.json`` was written by main at 81e558e (``python tests/simulator/test_engine_golden.py``) before
any of that work: every heuristic under both rules at three sizes (each primitive's node, ready, start and
finish time; every workflow's response time), the features of the first decisions of an episode, and a short
rollout-heft episode (forks with sampled futures). Regenerate it only for a change meant to alter results.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from scale_scheduler.simulator.cluster import heterogeneous
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.generators import generate_workload
from scale_scheduler.simulator.placement import PlacementRule
from scale_scheduler.simulator.rollout import RolloutHeftScheduler
from scale_scheduler.simulator.schedulers import HEURISTICS, Scheduler, make_heuristic

GOLDEN = Path(__file__).with_name("engine_golden.json")
SIZES = (8, 48, 300)
SEED = 7


def _digest(values: object) -> str:
    """sha256 of a repr in which every float is written exactly (float.hex)."""
    return hashlib.sha256(repr(values).encode()).hexdigest()


def _exact(value: float) -> str:
    return float(value).hex()


def episode_fingerprint(scheduler: Scheduler, nodes: int, workflows: int, rule: PlacementRule) -> dict[str, str]:
    cluster = heterogeneous(nodes, seed=SEED)
    workload = generate_workload(cluster, workflows, load=0.8, seed=SEED)
    scheduler.reset(SEED)
    engine = Engine(cluster, copy.deepcopy(workload), SEED, priority=scheduler.priority, rule=rule)
    decisions, rewards = [], []
    while (observation := engine.next_decision()) is not None:
        node = scheduler.choose(observation)
        decisions.append(node)
        engine.apply(node)
        rewards.append(_exact(engine.reward_since_last()))
    result = engine.result()
    placements = [
        (p.workflow, p.primitive, p.node, _exact(p.ready), _exact(p.start), _exact(p.finish)) for p in result.placements
    ]
    summary = {
        key: value
        if isinstance(value, int)
        else _exact(value)
        if isinstance(value, float)
        else [_exact(v) for v in value]
        for key, value in result.to_dict().items()
    }
    return {
        "decisions": _digest(decisions),
        "rewards": _digest(rewards),
        "placements": _digest(placements),
        "response_times": _digest(sorted((k, _exact(v)) for k, v in engine._response.items())),
        "summary": _digest(summary),
        "avg_response_time": _exact(result.avg_response_time),
    }


def features_fingerprint(rule: PlacementRule) -> dict[str, str]:
    """The features of the first 40 decisions of a HEFT episode (what the learned policies see)."""
    cluster = heterogeneous(16, seed=SEED)
    workload = generate_workload(cluster, 30, load=0.9, seed=SEED)
    scheduler = make_heuristic("heft")
    engine = Engine(cluster, workload, SEED, priority=scheduler.priority, rule=rule)
    arrays = []
    for _ in range(40):
        if (observation := engine.next_decision()) is None:
            break
        arrays += [
            observation.primitive_features,
            observation.node_features,
            observation.candidates,
            observation.estimated_finish,
            observation.fits_now,
        ]
        engine.apply(scheduler.choose(observation))
    return {"features": hashlib.sha256(b"".join(np.ascontiguousarray(a).tobytes() for a in arrays)).hexdigest()}


def cases() -> dict[str, dict[str, str]]:
    found = {}
    for rule in PlacementRule:
        for method in HEURISTICS:
            for nodes in SIZES:
                found[f"{method}/{rule.value}/{nodes}"] = episode_fingerprint(
                    make_heuristic(method), nodes, max(nodes, 40), rule
                )
        found[f"features/{rule.value}"] = features_fingerprint(rule)
        found[f"rollout-heft/{rule.value}/8"] = episode_fingerprint(
            RolloutHeftScheduler(samples=2, horizon=8), 8, 12, rule
        )
    return found


@pytest.fixture(scope="module")
def golden() -> dict[str, dict[str, str]]:
    return json.loads(GOLDEN.read_text())


@pytest.mark.parametrize("rule", list(PlacementRule))
@pytest.mark.parametrize("method", list(HEURISTICS))
@pytest.mark.parametrize("nodes", SIZES)
def test_a_fixed_seed_episode_matches_main_bit_for_bit(
    golden: dict, method: str, rule: PlacementRule, nodes: int
) -> None:
    assert (
        episode_fingerprint(make_heuristic(method), nodes, max(nodes, 40), rule)
        == golden[f"{method}/{rule.value}/{nodes}"]
    )


@pytest.mark.parametrize("rule", list(PlacementRule))
def test_features_and_rollouts_match_main_bit_for_bit(golden: dict, rule: PlacementRule) -> None:
    assert features_fingerprint(rule) == golden[f"features/{rule.value}"]
    assert (
        episode_fingerprint(RolloutHeftScheduler(samples=2, horizon=8), 8, 12, rule)
        == golden[f"rollout-heft/{rule.value}/8"]
    )


if __name__ == "__main__":
    GOLDEN.write_text(json.dumps(cases(), indent=1, sort_keys=True) + "\n")
