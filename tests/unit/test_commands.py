"""Command validation and normalization, with the reference's causes and rules."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import Command
from temporalio.api.enums.v1 import CommandType, TaskQueueKind, WorkflowTaskFailedCause
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import TaskQueue

from tempyral.common.clock import duration, duration_ns, seconds
from tempyral.common.errors import InvalidArgument
from tempyral.history.commands import CommandProcessor, WorkflowTaskFailure, validate_command_sequence
from tempyral.history.mutable_state import MutableState
from tempyral.namespace.registry import Namespace
from tempyral.proto.internal_pb2 import ExecutionState, NamespaceRecord

C = CommandType
Cause = WorkflowTaskFailedCause
T0 = 1_700_000_000 * 1_000_000_000


def running(run_timeout_s: float = 0.0) -> MutableState:
    ms = MutableState(ExecutionState(namespace_id="ns", workflow_id="wf", run_id="r", next_event_id=1), T0)
    ms.begin(T0)
    attrs = history.WorkflowExecutionStartedEventAttributes(
        task_queue=TaskQueue(name="q", kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL)
    )
    attrs.workflow_task_timeout.CopyFrom(duration(seconds(10)))
    if run_timeout_s:
        attrs.workflow_run_timeout.CopyFrom(duration(seconds(run_timeout_s)))
    ms.add_workflow_execution_started(attrs)
    ms.start_workflow_task("r", "w")
    return ms


def process(ms: MutableState, *commands: Command, buffered: bool = False) -> object:
    namespace = Namespace(NamespaceRecord())
    return CommandProcessor(ms, namespace, 4, "w", buffered).process(list(commands))


def schedule(activity_id: str = "a", **timeouts: float) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK)
    a = cmd.schedule_activity_task_command_attributes
    a.activity_id = activity_id
    a.activity_type.name = "A"
    for name, value in timeouts.items():
        getattr(a, name).CopyFrom(duration(seconds(value)))
    return cmd


def cause_of(ms: MutableState, *commands: Command, buffered: bool = False) -> int:
    with pytest.raises(WorkflowTaskFailure) as info:
        process(ms, *commands, buffered=buffered)
    return info.value.cause


def test_close_command_must_be_last() -> None:
    complete = Command(command_type=C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION)
    with pytest.raises(InvalidArgument, match="must be the last command"):
        validate_command_sequence([complete, schedule()])
    validate_command_sequence([schedule(), complete])


def test_activity_without_timeouts_is_rejected_with_the_reference_message() -> None:
    with pytest.raises(WorkflowTaskFailure) as info:
        process(running(), schedule())
    assert info.value.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
    assert info.value.full_message().startswith(
        "BadScheduleActivityAttributes: a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set"
    )


@pytest.mark.parametrize(
    ("given", "run_timeout", "expected"),
    [
        # schedule-to-close alone fills the other two
        ({"schedule_to_close_timeout": 30}, 0, (30, 30, 30, 0)),
        # start-to-close alone leaves schedule-to-close unbounded (no run timeout)
        ({"start_to_close_timeout": 10}, 0, (0, 0, 10, 0)),
        # ... or bounded by the run timeout
        ({"start_to_close_timeout": 10}, 20, (20, 20, 10, 0)),
        # nothing exceeds schedule-to-close, heartbeat never exceeds start-to-close
        ({"schedule_to_close_timeout": 5, "start_to_close_timeout": 9, "heartbeat_timeout": 7}, 0, (5, 5, 5, 5)),
    ],
)
def test_activity_timeouts_are_normalized_like_the_reference(
    given: dict[str, float], run_timeout: float, expected: tuple[float, ...]
) -> None:
    ms = running(run_timeout)
    process(ms, schedule("a", **given))
    a = next(iter(ms.state.activities.values())).scheduled
    got = tuple(
        duration_ns(d) / 1e9
        for d in (
            a.schedule_to_close_timeout,
            a.schedule_to_start_timeout,
            a.start_to_close_timeout,
            a.heartbeat_timeout,
        )
    )
    assert got == expected
    assert a.retry_policy.initial_interval.seconds == 1 and a.retry_policy.backoff_coefficient == 2.0


def test_duplicate_activity_and_timer_ids() -> None:
    ms = running()
    process(ms, schedule("a", start_to_close_timeout=1))
    assert (
        cause_of(ms, schedule("a", start_to_close_timeout=1))
        == Cause.WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID
    )
    timer = Command(command_type=C.COMMAND_TYPE_START_TIMER)
    timer.start_timer_command_attributes.timer_id = "t"
    timer.start_timer_command_attributes.start_to_fire_timeout.CopyFrom(duration(seconds(1)))
    process(ms, timer)
    assert cause_of(ms, timer) == Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID


def test_cancel_of_an_unknown_timer_and_activity() -> None:
    cancel_timer = Command(command_type=C.COMMAND_TYPE_CANCEL_TIMER)
    cancel_timer.cancel_timer_command_attributes.timer_id = "nope"
    assert cause_of(running(), cancel_timer) == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES
    cancel_activity = Command(command_type=C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK)
    cancel_activity.request_cancel_activity_task_command_attributes.scheduled_event_id = 99
    assert (
        cause_of(running(), cancel_activity) == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES
    )


def test_completing_with_unseen_events_is_an_unhandled_command() -> None:
    complete = Command(command_type=C.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION)
    assert cause_of(running(), complete, buffered=True) == Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND


def test_cancel_before_start_cancels_at_once_and_eager_activities_are_reported() -> None:
    ms = running()
    eager = schedule("e", start_to_close_timeout=5)
    eager.schedule_activity_task_command_attributes.request_eager_execution = True
    result = process(ms, eager, schedule("b", start_to_close_timeout=5))
    assert [a.scheduled.activity_id for a in result.eager_activities] == ["e"]  # type: ignore[attr-defined]
    b = next(a for a in ms.state.activities.values() if a.scheduled.activity_id == "b")
    cancel = Command(command_type=C.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK)
    cancel.request_cancel_activity_task_command_attributes.scheduled_event_id = b.scheduled_event_id
    outcome = process(ms, cancel)
    assert outcome.activity_cancelled_before_start  # type: ignore[attr-defined]
    assert b.scheduled_event_id not in ms.state.activities
