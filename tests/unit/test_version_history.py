"""Version histories (history/version_history.py): one item per contiguous run of one failover version,
what an old state without them gets, and that MutableState records every event when it gets its id."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import EventType

from tempyral.history import rebuild, version_history
from tempyral.history.mutable_state import MutableState
from tempyral.history.version_history import VersionHistoryError
from tempyral.proto.internal_pb2 import ExecutionState, VersionHistoryItem
from tests.support.started import start_attributes

T0 = 1_700_000_000 * 1_000_000_000


def items(state: ExecutionState) -> list[tuple[int, int]]:
    return [(i.event_id, i.version) for i in version_history.current(state).items]


def fresh() -> ExecutionState:
    return ExecutionState(namespace_id="ns", workflow_id="wf", run_id="run-1", next_event_id=1)


def test_ensure_creates_the_first_branch_without_items_for_a_new_run() -> None:
    state = fresh()
    histories = version_history.ensure(state)
    assert len(histories.histories) == 1 and histories.current_index == 0
    first = histories.histories[0]
    assert first.branch.branch_id == "run-1" and not first.branch.ancestors
    assert not first.items


def test_ensure_covers_the_events_of_an_old_state_at_version_0() -> None:
    state = fresh()
    state.next_event_id = 8  # seven events written before version histories existed
    version_history.ensure(state)
    assert items(state) == [(7, 0)]
    version_history.record(state, 8, 0)
    assert items(state) == [(8, 0)]


def test_ensure_leaves_existing_histories_alone() -> None:
    state = fresh()
    version_history.record(state, 1, 3)
    state.next_event_id = 2
    version_history.ensure(state)
    assert items(state) == [(1, 3)]
    assert len(state.version_histories.histories) == 1


def test_current_does_not_change_a_state_without_histories() -> None:
    state = fresh()
    state.next_event_id = 4
    assert [(i.event_id, i.version) for i in version_history.current(state).items] == [(3, 0)]
    assert not state.HasField("version_histories")
    assert version_history.last_version(state) == 0
    assert version_history.version_at(state, 2) == 0
    assert not state.HasField("version_histories")


def test_record_extends_the_last_item_for_the_same_version() -> None:
    state = fresh()
    for event_id in (1, 2, 3):
        version_history.record(state, event_id, 0)
    assert items(state) == [(3, 0)]


def test_record_adds_an_item_for_a_higher_version() -> None:
    state = fresh()
    version_history.record(state, 1, 0)
    version_history.record(state, 2, 0)
    version_history.record(state, 3, 10)
    version_history.record(state, 4, 10)
    version_history.record(state, 5, 21)
    assert items(state) == [(2, 0), (4, 10), (5, 21)]
    assert version_history.last_version(state) == 21
    assert version_history.last_event_id(state) == 5


def test_record_refuses_a_lower_version() -> None:
    state = fresh()
    version_history.record(state, 1, 10)
    with pytest.raises(VersionHistoryError, match="lower"):
        version_history.record(state, 2, 9)
    assert items(state) == [(1, 10)]


@pytest.mark.parametrize("event_id", [3, 2, 0, -123])
def test_record_refuses_an_event_id_not_after_the_last(event_id: int) -> None:
    state = fresh()
    version_history.record(state, 1, 0)
    version_history.record(state, 3, 0)
    with pytest.raises(VersionHistoryError):
        version_history.record(state, event_id, 0)


def test_last_version_before_any_event_is_0() -> None:
    assert version_history.last_version(fresh()) == 0


def test_version_at_reads_the_item_that_covers_the_event() -> None:
    state = fresh()
    state.version_histories.histories.add().items.extend(
        [VersionHistoryItem(event_id=2, version=0), VersionHistoryItem(event_id=5, version=10)]
    )
    assert [version_history.version_at(state, i) for i in range(1, 6)] == [0, 0, 10, 10, 10]
    for outside in (0, 6):
        with pytest.raises(VersionHistoryError):
            version_history.version_at(state, outside)


# ------------------------------------------------------------------ MutableState records every event
def started(version: int = 0) -> MutableState:
    ms = MutableState(fresh(), T0)
    ms.begin(T0)
    ms.state.version = version
    ms.add_workflow_execution_started(start_attributes())
    return ms


def test_events_carry_the_state_version_and_are_recorded() -> None:
    ms = started(version=1)
    assert [e.version for e in ms.new_events] == [1, 1]
    assert items(ms.state) == [(2, 1)]
    ms.start_workflow_task("r1", "worker")
    ms.state.version = 5  # a failover
    ms.add_workflow_task_completed("worker", None, None, None)
    assert items(ms.state) == [(3, 1), (4, 5)]


def test_buffered_events_are_recorded_when_flushed() -> None:
    ms = started()
    ms.start_workflow_task("r1", "worker")
    ms.add_signaled("s", None, "client", None, "")
    assert ms.state.buffered_events and items(ms.state) == [(3, 0)]  # not before it has an id
    ms.add_workflow_task_completed("worker", None, None, None)
    ms.flush_buffered_events()
    assert items(ms.state) == [(5, 0)]
    assert ms.new_events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED


def test_replay_records_the_same_version_history() -> None:
    ms = started(version=2)
    written = list(ms.new_events)
    ms.begin(T0 + 1)
    ms.state.version = 7
    ms.start_workflow_task("r1", "worker")
    ms.add_workflow_task_completed("worker", None, None, None)
    written += ms.new_events
    replayed = rebuild.replay("ns", "wf", "run-1", written)
    assert replayed.version_histories == ms.state.version_histories
    assert items(replayed) == [(2, 2), (4, 7)]
    assert replayed.version == 7
