"""BindingQueue: the operator's cross-workflow queue of waiting pods, in the engine's order (no API server)."""

from __future__ import annotations

from kube_objects import live_view, pod_object
from scale_scheduler.operator.core.binding import Arrival, BindingQueue
from scale_scheduler.simulator.placement import Waiting
from scale_scheduler.simulator.primitives import PrimitiveKind
from scale_scheduler.simulator.schedulers import HeftScheduler, ShortestRemainingScheduler
from scale_scheduler.simulator.workflow import Primitive

A, B, C = ("ns", "a"), ("ns", "b"), ("ns", "c")
NODE = "cpu-large-003"  # 64 cpu


def _arrival(
    pod: str,
    cpu: int = 1000,
    downstream: float = 0.0,
    mean: float = 1.0,
    planned: str = "",
    kind: PrimitiveKind = PrimitiveKind.TOOL_CALL,
    gpus: int = 0,
) -> Arrival:
    primitive = Primitive(pod, kind, cpu_millicores=cpu, gpus=gpus)
    return Arrival(("ns", pod), primitive, downstream, mean, planned)


def _state_with_free_cpu(millicores: int):  # noqa: ANN202 (ClusterState)
    """The SPEC view with ``NODE`` holding only ``millicores`` free cpu."""
    live = live_view()
    state = live.snapshot()
    used = int(state.alloc_cpu[state.index_of(NODE)]) - millicores
    live.apply_pod_event(None, pod_object("hog", node=NODE, phase="Running", cpu=f"{used}m"))
    return live.snapshot()


def test_pods_of_all_workflows_are_ordered_by_the_schedulers_priority_then_arrival() -> None:
    queue = BindingQueue(HeftScheduler().priority)  # upward rank first
    queue.sync(A, [_arrival("a1", downstream=1.0)], remaining_seconds=5.0)
    queue.sync(B, [_arrival("b1", downstream=9.0), _arrival("b2", downstream=1.0)], remaining_seconds=5.0)
    state = _state_with_free_cpu(1000)  # room for one of them
    # b1 (rank 9) is ahead of everything; among equal ranks, a1 came before b2
    assert queue.ahead_with_room(("ns", "a1"), state.index_of(NODE), state).pod == ("ns", "b1")
    assert queue.ahead_with_room(("ns", "b2"), state.index_of(NODE), state).pod == ("ns", "a1")
    assert queue.ahead_with_room(("ns", "b1"), state.index_of(NODE), state) is None


def test_a_pod_keeps_its_place_across_syncs_and_srpt_rekeys_as_work_starts() -> None:
    queue = BindingQueue(ShortestRemainingScheduler().priority)  # least remaining work first
    queue.sync(A, [_arrival("a1", mean=3.0), _arrival("a2", mean=3.0)], remaining_seconds=6.0)
    queue.sync(B, [_arrival("b1", mean=1.0)], remaining_seconds=5.0)
    state = _state_with_free_cpu(1000)
    node = state.index_of(NODE)
    assert queue.ahead_with_room(("ns", "a2"), node, state).pod == ("ns", "b1"), "b has less work left"
    queue.started(("ns", "a1"))  # a's remaining work drops to 3 s: now a2 is ahead of b1
    assert queue.ahead_with_room(("ns", "a2"), node, state) is None
    assert queue.ahead_with_room(("ns", "b1"), node, state).pod == ("ns", "a2")
    # B is reported again: b1 keeps its arrival order (sequence), it is not a newcomer
    before = queue.key(queue.sync(B, [_arrival("b1", mean=1.0)], remaining_seconds=5.0)[0])
    assert before[2] == 3


def test_only_pods_of_other_workflows_with_room_on_that_node_are_ahead() -> None:
    queue = BindingQueue(HeftScheduler().priority)
    queue.sync(
        A,
        [
            _arrival("a-gpu", downstream=9.0, kind=PrimitiveKind.LLM_GENERATE, gpus=1),
            _arrival("a-big", downstream=8.0, cpu=4000),
        ],
        remaining_seconds=1.0,
    )
    queue.sync(B, [_arrival("b-own", downstream=7.0), _arrival("b1", downstream=0.0)], remaining_seconds=1.0)
    state = _state_with_free_cpu(2000)
    # a-gpu cannot run on a CPU node, a-big needs more room than is free, b-own is b's own pod
    assert queue.ahead_with_room(("ns", "b1"), state.index_of(NODE), state) is None
    assert queue.ahead_with_room(("ns", "b1"), state.index_of(NODE), _state_with_free_cpu(4000)).pod == ("ns", "a-big")


def test_a_node_queue_admits_pods_head_first_and_the_head_blocks_the_rest() -> None:
    queue = BindingQueue(HeftScheduler().priority)
    queue.sync(A, [_arrival("a-head", cpu=3000, downstream=9.0, planned=NODE)], remaining_seconds=1.0)
    queue.sync(B, [_arrival("b-small", cpu=1000, downstream=1.0, planned=NODE)], remaining_seconds=1.0)
    queue.sync(C, [_arrival("c-elsewhere", cpu=500, planned="cpu-small-005")], remaining_seconds=1.0)
    node = _state_with_free_cpu(0).index_of(NODE)
    assert queue.admitted(node, _state_with_free_cpu(2000)) == [], "b-small fits, but the head keeps its place"
    assert [e.pod[1] for e in queue.admitted(node, _state_with_free_cpu(3500))] == ["a-head"]
    assert [e.pod[1] for e in queue.admitted(node, _state_with_free_cpu(4000))] == ["a-head", "b-small"]
    assert queue.ahead_on_node(("ns", "b-small")) == 1 and queue.ahead_on_node(("ns", "c-elsewhere")) == 0


def test_entries_go_when_their_pod_starts_or_is_deleted_or_their_workflow_is_forgotten() -> None:
    queue = BindingQueue(lambda waiting: 0.0)
    queue.sync(A, [_arrival("a1"), _arrival("a2")], remaining_seconds=2.0)
    queue.sync(B, [_arrival("b1")], remaining_seconds=1.0)
    queue.started(("ns", "a1"))
    queue.discard(("ns", "b1"))
    assert len(queue) == 1 and set(queue._by_workflow) == {A}
    queue.sync(A, [], remaining_seconds=0.0)  # reconciled with nothing waiting
    assert len(queue) == 0
    queue.sync(C, [_arrival("c1")], remaining_seconds=1.0)
    queue.forget(C)
    assert len(queue) == 0 and not queue._remaining and not queue._keys and not queue._by_workflow


def test_the_queue_key_is_the_engines() -> None:
    """Same (priority, upward rank, arrival) key as placement.queue_key over the engine's Waiting."""
    scheduler = ShortestRemainingScheduler()
    queue = BindingQueue(scheduler.priority)
    (entry,) = queue.sync(A, [_arrival("a1", downstream=4.0)], remaining_seconds=7.0)
    assert queue.key(entry) == (
        -scheduler.priority(Waiting(entry.primitive, 4.0, 7.0, entry.sequence)),
        -4.0,
        entry.sequence,
    )


def test_a_pod_yields_only_room_that_the_pods_ahead_of_it_need() -> None:
    """Pods ahead of it take their share of the node first; it yields only when too little is left for it, and
    pods ahead that have room on other nodes too are not short of room."""
    queue = BindingQueue(HeftScheduler().priority)
    queue.sync(A, [_arrival("a1", downstream=9.0), _arrival("a2", downstream=9.0)], remaining_seconds=1.0)
    queue.sync(B, [_arrival("b1", downstream=0.0)], remaining_seconds=1.0)
    node = _state_with_free_cpu(3000).index_of(NODE)
    assert queue.ahead_with_room(("ns", "b1"), node, _state_with_free_cpu(3000)) is None, "room for all three"
    assert queue.ahead_with_room(("ns", "b1"), node, _state_with_free_cpu(2000)).pod == ("ns", "a1")
    anywhere = _state_with_free_cpu(2000)
    assert queue.ahead_with_room(("ns", "b1"), node, anywhere, room_elsewhere=lambda _: True) is None
