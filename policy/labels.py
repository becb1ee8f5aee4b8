"""Labels for learning from a teacher: a scheduler that looks ahead in the simulator (rollout-heft by default) run
over episodes, recording at each decision what the policy network sees and the node the teacher chose.

One episode is one unit of work, so labels fan out over Ray workers like evaluation cells (``workers``), and the
teacher is built inside each worker from its name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from scale_scheduler.simulator.engine import Engine
from scale_scheduler.simulator.placement import DEFAULT_RULE, PlacementRule
from scale_scheduler.simulator.schedulers import Scheduler

from .episodes import EpisodeSpec
from .parallel import IN_PROCESS, Workers, run_units
from .registry import make_scheduler

DEFAULT_TEACHER = "rollout-heft"


@dataclass
class Labels:
    """One episode's decisions: the network's inputs (as ``Trajectory`` holds them) and the teacher's node."""

    primitive: list[np.ndarray] = field(default_factory=list)  # [P] each
    nodes: list[np.ndarray] = field(default_factory=list)  # [N, F] each
    mask: list[np.ndarray] = field(default_factory=list)  # [N] bool each
    action: list[int] = field(default_factory=list)


def label_episode(rule: PlacementRule, teacher: Scheduler, episode: EpisodeSpec) -> Labels:
    """The teacher schedules the whole episode (its choices, not a student's, decide what comes next)."""
    teacher.reset(episode.duration_seed)
    engine = Engine(
        episode.cluster,
        copy.deepcopy(episode.workflows),
        seed=episode.duration_seed,
        priority=teacher.priority,
        rule=rule,
    )
    labels = Labels()
    while (observation := engine.next_decision()) is not None:
        node = teacher.choose(observation)
        labels.primitive.append(observation.primitive_features)
        labels.nodes.append(observation.node_features)
        labels.mask.append(np.ascontiguousarray(observation.candidates))
        labels.action.append(node)
        engine.apply(node)
    return labels


def generate_labels(
    episodes: Sequence[EpisodeSpec],
    teacher: str = DEFAULT_TEACHER,
    rule: PlacementRule = DEFAULT_RULE,
    workers: Workers = IN_PROCESS,
    on_episode: Callable[[Labels], None] | None = None,
) -> list[Labels]:
    """``teacher``'s labels for every episode, in episode order."""
    return run_units(
        partial(make_scheduler, teacher), partial(label_episode, rule), list(episodes), workers, on_episode
    )
