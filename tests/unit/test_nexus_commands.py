"""The Nexus commands and the operation's state as its events and outcomes move it along:
validation as the reference does it, the tasks each step leaves, and stale outcomes ignored."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import Command
from temporalio.api.enums.v1 import (
    CommandType,
    NexusOperationCancellationState,
    PendingNexusOperationState,
    WorkflowTaskFailedCause,
)
from temporalio.api.failure.v1 import Failure

from tempyral.common.clock import duration, seconds
from tempyral.history import events as ev
from tempyral.history.commands import CommandProcessor, WorkflowTaskFailure
from tempyral.history.mutable_state import MutableState
from tempyral.namespace.registry import Namespace
from tempyral.nexus import outcomes
from tempyral.proto.internal_pb2 import NamespaceRecord, TaskType
from tests.unit.test_commands import running

State = PendingNexusOperationState
Cause = WorkflowTaskFailedCause


def process(ms: MutableState, *commands: Command, buffered: bool = False, max_pending: int = 30) -> None:
    CommandProcessor(
        ms,
        Namespace(NamespaceRecord()),
        4,
        "w",
        buffered,
        find_endpoint=lambda name: "ep-id" if name == "ep" else None,
        max_pending_nexus=max_pending,
    ).process(list(commands))


def schedule(endpoint: str = "ep", **fields: object) -> Command:
    cmd = Command(command_type=CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION)
    a = cmd.schedule_nexus_operation_command_attributes
    a.endpoint, a.service, a.operation = endpoint, "Svc", "op"
    a.input.data = b'"hi"'
    for name, value in fields.items():
        if name.endswith("timeout"):
            assert isinstance(value, int | float)
            getattr(a, name).CopyFrom(duration(seconds(float(value))))
        elif name == "nexus_header":
            assert isinstance(value, dict)
            a.nexus_header.update(value)
        else:
            setattr(a, name, value)
    return cmd


def cancel(scheduled_event_id: int) -> Command:
    cmd = Command(command_type=CommandType.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION)
    cmd.request_cancel_nexus_operation_command_attributes.scheduled_event_id = scheduled_event_id
    return cmd


def failure_of(ms: MutableState, *commands: Command, **kwargs: object) -> WorkflowTaskFailure:
    with pytest.raises(WorkflowTaskFailure) as info:
        process(ms, *commands, **kwargs)  # type: ignore[arg-type]
    return info.value


def test_schedule_writes_the_event_and_a_start_task() -> None:
    ms = running()
    process(ms, schedule(nexus_header={"X-Custom": "v"}))
    event = ms.new_events[-1]
    assert event.event_type == ev.NEXUS_SCHEDULED
    a = event.nexus_operation_scheduled_event_attributes
    assert (a.endpoint, a.endpoint_id, a.service, a.operation) == ("ep", "ep-id", "Svc", "op")
    assert a.request_id and a.workflow_task_completed_event_id == 4
    assert dict(a.nexus_header) == {"x-custom": "v"}  # keys lowered, as the reference stores them
    assert not a.HasField("schedule_to_close_timeout")
    op = ms.state.nexus_operations[event.event_id]
    assert op.state == State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED and op.attempt == 0
    assert [t.type for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_NEXUS_START] == [
        TaskType.TASK_TYPE_NEXUS_START
    ]


def test_timeouts_are_capped_by_the_run_timeout_and_each_other() -> None:
    ms = running(run_timeout_s=60)
    process(ms, schedule(schedule_to_start_timeout=120, start_to_close_timeout=30))
    a = ms.new_events[-1].nexus_operation_scheduled_event_attributes
    assert a.schedule_to_close_timeout.seconds == 60
    assert a.schedule_to_start_timeout.seconds == 60
    assert a.start_to_close_timeout.seconds == 30
    timers = [t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_NEXUS_TIMEOUT]
    assert len(timers) == 2  # schedule-to-close and schedule-to-start


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (schedule("nope"), 'endpoint "nope" not found'),
        (schedule(service="s" * 1001), "ScheduleNexusOperationCommandAttributes.Service exceeds length limit of 1000"),
        (schedule(nexus_header={"Request-Timeout": "1s"}), "disallowed header key"),
    ],
)
def test_bad_schedule_commands_fail_the_workflow_task(command: Command, message: str) -> None:
    failure = failure_of(running(), command)
    assert failure.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
    assert message in failure.message


def test_oversized_input_terminates_the_workflow() -> None:
    cmd = schedule()
    cmd.schedule_nexus_operation_command_attributes.input.data = b"x" * (2 * 1024 * 1024 + 1)
    failure = failure_of(running(), cmd)
    assert failure.terminate
    assert failure.full_message() == (
        "BadScheduleNexusOperationAttributes: ScheduleNexusOperationCommandAttributes.Input exceeds size limit"
    )


def test_pending_operation_limit() -> None:
    failure = failure_of(running(), schedule(), schedule(), max_pending=1)
    assert failure.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_NEXUS_OPERATIONS_LIMIT_EXCEEDED


def test_cancel_of_an_unknown_operation_and_a_second_cancel() -> None:
    failure = failure_of(running(), cancel(99))
    assert failure.cause == Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_NEXUS_OPERATION_ATTRIBUTES
    ms = running()
    process(ms, schedule())
    sid = ms.new_events[-1].event_id
    failure = failure_of(ms, cancel(sid), cancel(sid))
    assert "cancelation was already requested" in failure.message


def test_cancel_before_start_waits_for_the_start() -> None:
    ms = running()
    process(ms, schedule())
    sid = ms.new_events[-1].event_id
    ms.new_tasks.clear()
    process(ms, cancel(sid))
    op = ms.state.nexus_operations[sid]
    assert op.cancellation.state == NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_UNSPECIFIED
    assert not [t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_NEXUS_CANCEL]
    ms.add_nexus_started(sid, "token", [])
    # started: the pending cancel request goes out now
    assert op.cancellation.state == NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
    assert [t.type for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_NEXUS_CANCEL]


def test_attempt_failures_back_off_and_reschedule_the_same_attempt_count() -> None:
    ms = running()
    process(ms, schedule())
    sid = ms.new_events[-1].event_id
    op = ms.state.nexus_operations[sid]
    op.attempt += 1
    ms.nexus_attempt_failed(op, outcomes.handler_error("UPSTREAM_TIMEOUT", "upstream timeout"), ms.now + 10**9)
    assert op.state == State.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF and op.attempt == 1
    assert op.last_attempt_failure.message == "upstream timeout" and op.HasField("next_attempt_schedule_time")
    ms.nexus_rescheduled(op)
    assert op.state == State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED and op.attempt == 1
    assert not op.HasField("next_attempt_schedule_time")
    start_tasks = [t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_NEXUS_START]
    assert start_tasks[-1].attempt == 1


def test_operation_failure_wraps_the_cause_like_the_reference() -> None:
    ms = running()
    process(ms, schedule())
    op = ms.state.nexus_operations[ms.new_events[-1].event_id]
    wrapped = outcomes.operation_failure(op, Failure(message="boom"))
    assert wrapped.message == "nexus operation completed unsuccessfully"
    info = wrapped.nexus_operation_execution_failure_info
    assert (info.endpoint, info.service, info.operation) == ("ep", "Svc", "op")
    assert info.scheduled_event_id == op.scheduled_event_id and wrapped.cause.message == "boom"
