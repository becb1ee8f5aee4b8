"""Labels for learning from a teacher: a scheduler that looks ahead in the simulator (rollout-heft by default) run
over episodes, recording at each decision what the policy network sees and the node the teacher chose.

Who drives the episode is a separate choice: the teacher itself (behaviour cloning), or a student policy whose
greedy choices decide what comes next while the teacher only labels the states it meets (DAgger: the student
learns what to do in the situations its own mistakes lead to). One episode is one unit of work, so labels fan out
over Ray workers like evaluation cells (``workers``); teacher and student are built inside each worker, from a
name and a weight snapshot.
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
from .learned import LearnedScheduler
from .parallel import IN_PROCESS, Workers, run_units
from .registry import make_scheduler
from .snapshot import PolicySnapshot

DEFAULT_TEACHER = "rollout-heft"


@dataclass
class Labels:
    """One episode's decisions: the network's inputs (as ``Trajectory`` holds them) and the teacher's node."""

    primitive: list[np.ndarray] = field(default_factory=list)  # [P] each
    nodes: list[np.ndarray] = field(default_factory=list)  # [N, F] each
    mask: list[np.ndarray] = field(default_factory=list)  # [N] bool each
    action: list[int] = field(default_factory=list)
    response_time: float = float("nan")  # the episode's average response time under its driver


def label_episode(rule: PlacementRule, schedulers: tuple[Scheduler, Scheduler | None], episode: EpisodeSpec) -> Labels:
    """The teacher's choice at every decision of the episode; ``schedulers`` is (teacher, driver): the driver's
    choices decide what comes next, the teacher's when there is no driver. The queue order is the driver's."""
    teacher, driver = schedulers
    driver = driver or teacher
    teacher.reset(episode.duration_seed)
    driver.reset(episode.duration_seed)
    engine = Engine(
        episode.cluster,
        copy.deepcopy(episode.workflows),
        seed=episode.duration_seed,
        priority=driver.priority,
        rule=rule,
    )
    labels = Labels()
    while (observation := engine.next_decision()) is not None:
        node = teacher.choose(observation)
        labels.primitive.append(observation.primitive_features)
        labels.nodes.append(observation.node_features)
        labels.mask.append(np.ascontiguousarray(observation.candidates))
        labels.action.append(node)
        engine.apply(node if driver is teacher else driver.choose(observation))
    labels.response_time = engine.result().avg_response_time
    return labels


def _teacher_and_driver(teacher: str, student: PolicySnapshot | None) -> tuple[Scheduler, Scheduler | None]:
    return make_scheduler(teacher), None if student is None else LearnedScheduler("student", student.build())


def generate_labels(
    episodes: Sequence[EpisodeSpec],
    teacher: str = DEFAULT_TEACHER,
    rule: PlacementRule = DEFAULT_RULE,
    workers: Workers = IN_PROCESS,
    on_episode: Callable[[Labels], None] | None = None,
    student: PolicySnapshot | None = None,
) -> list[Labels]:
    """``teacher``'s labels for every episode, in episode order, on the states ``student`` (greedy) leads to, or
    the teacher itself without one."""
    return run_units(
        partial(_teacher_and_driver, teacher, student),
        partial(label_episode, rule),
        list(episodes),
        workers,
        on_episode,
    )
