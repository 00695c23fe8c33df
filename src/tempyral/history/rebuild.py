"""An execution's state rebuilt from its events alone: what a standby cluster, a reset and the
replay tests do. The live path reaches the same state through the same appliers."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from temporalio.api.history.v1 import message_pb2 as history

from tempyral.history import appliers
from tempyral.proto.internal_pb2 import ExecutionState

# Fields of ExecutionState that no event carries: storage bookkeeping. A state rebuilt from events
# equals the live one once these are cleared on both (the replay tests compare the rest whole).
NOT_FROM_EVENTS: Final = (
    "db_version",
    "last_event_task_id",
    "history_size_bytes",
)


def replay(namespace_id: str, workflow_id: str, run_id: str, events: Iterable[history.HistoryEvent]) -> ExecutionState:
    """The state that `events` (a run's whole history, in order) leave behind."""
    state = ExecutionState(namespace_id=namespace_id, workflow_id=workflow_id, run_id=run_id, next_event_id=1)
    for event in events:
        appliers.apply(state, event)
        state.next_event_id = event.event_id + 1
    return state


def comparable(state: ExecutionState) -> ExecutionState:
    """A copy of `state` without the fields that no event carries."""
    copy = ExecutionState()
    copy.CopyFrom(state)
    for name in NOT_FROM_EVENTS:
        copy.ClearField(name)
    return copy
