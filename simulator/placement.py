"""The one placement pipeline of the simulator, the trainer and the operator: filter, score, pick.

A placement *rule* says which nodes a ready primitive may be given now:

- ``late-binding`` (the default): ready primitives wait in one cluster-wide queue ordered by the
  scheduler's priority; a primitive is placed only on a node that has its requests free now
  (kube-scheduler's filter), so nothing is ever bound to a full node.
- ``node-queues``: the policy may pick a busy node; the primitive is then planned for that node
  and waits in the node's own queue until room frees there (reservation).

The engine dispatches and the operator binds by the same rule through the functions below.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple, TypeVar

import numpy as np

if TYPE_CHECKING:  # the Observation imports this module
    from .state import ClusterState
    from .workflow import Primitive


class PlacementRule(StrEnum):
    LATE_BINDING = "late-binding"
    NODE_QUEUES = "node-queues"


DEFAULT_RULE = PlacementRule.LATE_BINDING
# the help text of every command's --rule (simulate, evaluate, train, operator run)
RULE_HELP = (
    "Placement rule: late-binding (wait in the cluster-wide queue, placed only where there is room "
    "now) or node-queues (may be planned for a busy node and wait in its queue). Simulator, trainer "
    "and operator implement both identically."
)


def parse_rule(name: str | PlacementRule) -> PlacementRule:
    """The rule of that name; ValueError listing the valid names otherwise."""
    try:
        return PlacementRule(name)
    except ValueError:
        valid = ", ".join(rule.value for rule in PlacementRule)
        raise ValueError(f"unknown placement rule {name!r}; choose from {valid}") from None


def room_now(primitive: Primitive, state: ClusterState) -> np.ndarray:
    """[N] nodes whose free allocatable holds the primitive's requests right now (the fit-now predicate)."""
    return (
        (primitive.cpu_millicores <= state.free_cpu)
        & (primitive.memory_bytes <= state.free_memory)
        & (primitive.gpus <= state.free_gpus)
    )


def request_fits(request: tuple[float, float, float], free: tuple[float, float, float]) -> bool:
    """``room_now`` for one node: a (cpu, memory, gpus) request against that node's free (cpu, memory, gpus)."""
    return request[0] <= free[0] and request[1] <= free[1] and request[2] <= free[2]


def candidates(
    primitive: Primitive, state: ClusterState, feasible: np.ndarray, rule: PlacementRule, room: np.ndarray | None = None
) -> np.ndarray:
    """[N] the nodes the primitive may be given under ``rule`` (``feasible``: those that can ever run it;
    ``room``: ``room_now(primitive, state)`` where the caller has it already)."""
    if rule is PlacementRule.NODE_QUEUES:
        return feasible
    allowed: np.ndarray = feasible & (room_now(primitive, state) if room is None else room)
    return allowed


def pick(scores: np.ndarray, allowed: np.ndarray) -> int:
    """The allowed node with the highest score; ties go to the lowest index (deterministic)."""
    return int(np.where(allowed, scores, -np.inf).argmax())


class Waiting(NamedTuple):
    """A ready primitive in the cluster-wide queue, as a scheduler's ``priority`` sees it (a tuple: the engine
    makes one per queued primitive whenever its key may change, and a frozen dataclass costs 3x as much)."""

    primitive: Primitive
    downstream_seconds: float  # longest chain of estimated work after it (HEFT's upward rank minus itself)
    workflow_remaining_seconds: float  # mean estimated work of its workflow's primitives not started yet
    sequence: int  # order of arrival in the queue: first come, first served among equals


_Priority = TypeVar("_Priority", bound=Callable[..., float])
_FIXED = "_reads_only_the_primitive"


def fixed_priority(priority: _Priority) -> _Priority:
    """Mark a priority that reads only the waiting primitive's own fields (its rank, its requests), never its
    workflow's work not started: its queue key never changes while it waits, so the engine need not re-key a
    workflow's waiting primitives each time a sibling starts (a wide fan-out's 48 keys per start). Unmarked
    priorities are re-keyed, which is always correct."""
    setattr(priority, _FIXED, True)
    return priority


def is_fixed(priority: Callable[..., float]) -> bool:
    """Whether ``priority`` (a function or a bound method) was marked by ``fixed_priority``."""
    return getattr(priority, _FIXED, False)


@fixed_priority
def upward_rank(waiting: Waiting) -> float:
    """HEFT's order: the longest chain of estimated work after the primitive first (the engine's default)."""
    return waiting.downstream_seconds


def queue_key(priority: Callable[[Waiting], float], waiting: Waiting) -> tuple[float, float, int]:
    """Sort key of the queue (smallest first): the scheduler's priority, then upward rank, then arrival."""
    return (-priority(waiting), -waiting.downstream_seconds, waiting.sequence)
