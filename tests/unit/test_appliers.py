"""Appliers: every event type the server writes has one, an unknown type is an error, and the state that
events carry (signal request ids, completion callbacks, versions of pending entities) is set by them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    NexusOperationCancellationState,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration, seconds, timestamp, ts_ns
from tempyral.history import appliers, mutable_state, rebuild
from tempyral.history import events as ev
from tempyral.history.mutable_state import MutableState
from tempyral.proto.internal_pb2 import ExecutionState, TaskType
from tests.support.started import start_attributes

T0 = 1_700_000_000 * 1_000_000_000


def test_every_event_type_the_server_writes_has_an_applier() -> None:
    missing = [EventType.Name(t) for t in ev.WRITTEN if t not in appliers.APPLIERS]
    assert missing == []


def test_written_lists_every_event_type_mutable_state_writes() -> None:
    """The event types MutableState passes to `_event` (by name, or through the close-attribute tables
    for the types it passes as a variable) are all in events.WRITTEN."""
    source = Path(mutable_state.__file__).read_text()
    named = set(re.findall(r"self\._event\(\s*ev\.([A-Z_]+)", source))
    assert named, "the source scan found no _event calls"
    written_names = {name for name in dir(ev) if isinstance(getattr(ev, name), int) and getattr(ev, name) in ev.WRITTEN}
    assert named - written_names == set()
    variable = re.findall(r"self\._event\(\s*([a-z_]+)\s*,", source)
    assert set(variable) <= {"event_type"}  # add_nexus_closed_unsuccessfully: a key of NEXUS_CLOSE_ATTRS
    assert set(ev.NEXUS_CLOSE_ATTRS) <= ev.WRITTEN


@pytest.mark.parametrize(
    "event_type",
    [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_OPTIONS_UPDATED,
        EventType.EVENT_TYPE_ACTIVITY_PROPERTIES_MODIFIED_EXTERNALLY,
        EventType.EVENT_TYPE_UNSPECIFIED,
    ],
)
def test_an_event_type_without_applier_is_an_error_that_names_it(event_type: int) -> None:
    event = history.HistoryEvent(event_id=7, event_type=event_type)  # type: ignore[arg-type]
    with pytest.raises(appliers.NoApplierError, match=EventType.Name(event_type)):  # type: ignore[arg-type]
        appliers.apply(ExecutionState(), event)


@pytest.mark.parametrize(
    "event_type", [EventType.EVENT_TYPE_MARKER_RECORDED, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED]
)
def test_events_that_change_no_state_have_an_explicit_no_op(event_type: int) -> None:
    state = ExecutionState(run_id="r", next_event_id=5)
    before = state.SerializeToString()
    appliers.apply(state, history.HistoryEvent(event_id=5, event_type=event_type))  # type: ignore[arg-type]
    assert state.SerializeToString() == before


# ------------------------------------------------------------------ state from events
def started(callbacks: int = 0) -> MutableState:
    ms = MutableState(ExecutionState(namespace_id="ns", workflow_id="wf", run_id="run", next_event_id=1), T0)
    ms.begin(T0)
    ms.add_workflow_execution_started(start_attributes(callbacks=callbacks))
    return ms


def replayed(ms: MutableState, events: list[history.HistoryEvent]) -> ExecutionState:
    return rebuild.replay("ns", "wf", "run", events)


def test_signal_request_ids_come_from_the_signaled_event() -> None:
    ms = started()
    ms.add_signaled("s", None, "client", None, "req-1")
    ms.add_signaled("s", None, "client", None, "")
    assert list(ms.state.signal_request_ids) == ["req-1"]
    assert list(replayed(ms, ms.new_events).signal_request_ids) == ["req-1"]


def close_with(ms: MutableState, how: str) -> None:
    ms.start_workflow_task("r1", "worker")
    done = ms.add_workflow_task_completed("worker", None, None, None).event_id
    if how == "completed":
        ms.add_completed(done, None)
    elif how == "retried":
        ms.add_failed(done, failure_pb.Failure(message="x"), 0, new_run_id="next")
    elif how == "continued":
        attrs = history.WorkflowExecutionContinuedAsNewEventAttributes(
            new_execution_run_id="next", workflow_task_completed_event_id=done
        )
        ms.add_continued_as_new(attrs)
    elif how == "terminated":
        ms.add_terminated("stop", None, "me")


@pytest.mark.parametrize(
    ("how", "fire"), [("completed", True), ("terminated", True), ("retried", False), ("continued", False)]
)
def test_completion_callbacks_are_scheduled_by_the_close_event_unless_a_new_run_carries_on(
    how: str, fire: bool
) -> None:
    ms = started(callbacks=2)
    close_with(ms, how)
    expected = [CallbackState.CALLBACK_STATE_SCHEDULED] * 2 if fire else []
    assert [c.state for c in ms.state.callbacks] == expected
    assert [c.state for c in replayed(ms, ms.new_events).callbacks] == expected
    callback_tasks = [t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_CALLBACK]
    assert [(t.callback_index, t.attempt) for t in callback_tasks] == ([(0, 1), (1, 1)] if fire else [])


def test_a_reset_run_starts_when_the_reset_wrote_its_failed_task() -> None:
    ms = started()
    ms.start_workflow_task("r1", "worker")
    ms.begin(T0 + seconds(100))
    ms.add_workflow_task_failed(
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW, None, "history-service", "base", "new"
    )
    assert ts_ns(ms.state.start_time) == ts_ns(ms.state.execution_time) == T0 + seconds(100)


def test_versions_of_pending_entities_come_from_their_events() -> None:
    ms = started()
    ms.start_workflow_task("r1", "worker")
    ms.state.version = 4
    done = ms.add_workflow_task_completed("worker", None, None, None).event_id
    signal = history.SignalExternalWorkflowExecutionInitiatedEventAttributes(signal_name="s")
    signal.workflow_execution.workflow_id = "other"
    ms.add_signal_external_initiated(signal)
    cancel = history.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes()
    cancel.workflow_execution.workflow_id = "other"
    ms.add_cancel_external_initiated(cancel)
    ms.add_timer_started("t", duration(seconds(5)), done)
    ms.schedule_workflow_task()
    state = ms.state
    versions = [
        *(i.version for i in state.external_signals.values()),
        *(i.version for i in state.external_cancels.values()),
        state.timers["t"].version,
        state.workflow_task.version,
    ]
    assert versions == [4, 4, 4, 4]
    again = rebuild.replay("ns", "wf", "run", ms.new_events)
    assert rebuild.comparable(again) == rebuild.comparable(state)


def test_a_failed_nexus_cancel_request_keeps_its_failure_from_the_event() -> None:
    ms = started()
    ms.start_workflow_task("r1", "worker")
    done = ms.add_workflow_task_completed("worker", None, None, None).event_id
    attrs = history.NexusOperationScheduledEventAttributes(
        endpoint="e", service="s", operation="o", request_id="rq", endpoint_id="eid"
    )
    info = ms.add_nexus_scheduled(attrs)
    sid = info.scheduled_event_id
    ms.add_nexus_started(sid, "token", [])
    ms.add_nexus_cancel_requested(sid, done)
    ms.add_nexus_cancel_request_result(sid, failure_pb.Failure(message="no"))
    cancellation = ms.state.nexus_operations[sid].cancellation
    assert cancellation.state == NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_FAILED
    assert cancellation.last_attempt_failure.message == "no"
    again = rebuild.replay("ns", "wf", "run", ms.new_events).nexus_operations[sid].cancellation
    assert again.last_attempt_failure.message == "no"


def test_signaled_without_request_id_still_counts() -> None:
    state = ExecutionState()
    event = history.HistoryEvent(event_id=3, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    event.event_time.CopyFrom(timestamp(T0))
    event.workflow_execution_signaled_event_attributes.input.CopyFrom(common.Payloads())
    appliers.apply(state, event)
    assert state.signal_count == 1 and not state.signal_request_ids
