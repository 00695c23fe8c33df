"""The start of the next run in a chain: retry, continue-as-new or cron.

Each builds the WorkflowExecutionStarted attributes of the new run from the closing one; the
engine creates the run in the same transaction that closes the old one.
"""

from __future__ import annotations

from typing import Final

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ContinueAsNewInitiator
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration, duration_ns, ts_ns
from tempyral.proto.internal_pb2 import ExecutionState

Initiator = ContinueAsNewInitiator
MIN_RUN_INTERVAL_NS = 1_000_000_000


def _base(
    prev: ExecutionState, new_run_id: str, initiator: int, backoff_ns: int | None
) -> history.WorkflowExecutionStartedEventAttributes:
    """`backoff_ns` None leaves first_workflow_task_backoff unset (not zero), as the reference does."""
    attrs = history.WorkflowExecutionStartedEventAttributes(
        continued_execution_run_id=prev.run_id,
        initiator=initiator,  # type: ignore[arg-type]
        original_execution_run_id=new_run_id,
        first_execution_run_id=prev.start.first_execution_run_id,
        workflow_id=prev.workflow_id,
    )
    if backoff_ns is not None:
        attrs.first_workflow_task_backoff.CopyFrom(duration(backoff_ns))
    # what every run of a chain shares: its parent, its root, the whole execution's deadline
    attrs.parent_workflow_namespace = prev.start.parent_workflow_namespace
    attrs.parent_workflow_namespace_id = prev.start.parent_workflow_namespace_id
    attrs.parent_initiated_event_id = prev.start.parent_initiated_event_id
    for field in (
        "parent_workflow_execution",
        "root_workflow_execution",
        "workflow_execution_expiration_time",
        "workflow_execution_timeout",
        "priority",
    ):
        if prev.start.HasField(field):
            getattr(attrs, field).CopyFrom(getattr(prev.start, field))
    attrs.completion_callbacks.extend(prev.start.completion_callbacks)
    return attrs


def _min_interval(prev: ExecutionState, backoff_ns: int | None, now_ns: int) -> int | None:
    """Like the reference, a run that ends sooner than the minimal interval after it became due
    starts the next one (retry, cron or continue-as-new) only once the interval is up: no tight loops."""
    lifetime = now_ns - ts_ns(prev.execution_time)
    if lifetime + (backoff_ns or 0) < MIN_RUN_INTERVAL_NS:
        return MIN_RUN_INTERVAL_NS - lifetime
    return backoff_ns


def _same_run_settings(prev: ExecutionState, attrs: history.WorkflowExecutionStartedEventAttributes) -> None:
    s = prev.start
    attrs.workflow_type.CopyFrom(s.workflow_type)
    attrs.task_queue.CopyFrom(s.task_queue)
    attrs.workflow_task_timeout.CopyFrom(s.workflow_task_timeout)
    attrs.cron_schedule = s.cron_schedule
    for field in ("retry_policy", "workflow_run_timeout"):
        if s.HasField(field):
            getattr(attrs, field).CopyFrom(getattr(s, field))
    # The payloads come from the closing run's start event: see inherit_payloads.


INHERITING = (Initiator.CONTINUE_AS_NEW_INITIATOR_RETRY, Initiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE)
INHERITED_PAYLOADS: Final = ("input", "header", "memo", "search_attributes")


def inherit_payloads(
    started: history.WorkflowExecutionStartedEventAttributes, attrs: history.WorkflowExecutionStartedEventAttributes
) -> None:
    """A retry or cron run starts with what the run it follows was started with (memo and search attributes too,
    not what that run upserted since), as the reference does; a cron run whose predecessor left no result keeps
    the one before. `started` is the closing run's start event: the state does not keep these payloads."""
    if attrs.initiator not in INHERITING:
        return
    for field in INHERITED_PAYLOADS:
        if started.HasField(field):
            getattr(attrs, field).CopyFrom(getattr(started, field))
    cron = attrs.initiator == Initiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
    if cron and not attrs.HasField("last_completion_result") and started.HasField("last_completion_result"):
        attrs.last_completion_result.CopyFrom(started.last_completion_result)


def retry(
    prev: ExecutionState, new_run_id: str, backoff_ns: int, failure: failure_pb.Failure | None, now_ns: int
) -> history.WorkflowExecutionStartedEventAttributes:
    backoff = _min_interval(prev, backoff_ns, now_ns)
    attrs = _base(prev, new_run_id, Initiator.CONTINUE_AS_NEW_INITIATOR_RETRY, backoff)
    attrs.identity = prev.start.identity
    _same_run_settings(prev, attrs)
    attrs.attempt = prev.start.attempt + 1
    if failure is not None:
        attrs.continued_failure.CopyFrom(failure)
    return attrs


def cron(
    prev: ExecutionState,
    new_run_id: str,
    backoff_ns: int,
    result: common.Payloads | None,
    failure: failure_pb.Failure | None,
    now_ns: int,
) -> history.WorkflowExecutionStartedEventAttributes:
    backoff = _min_interval(prev, backoff_ns, now_ns)
    attrs = _base(prev, new_run_id, Initiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE, backoff)
    _same_run_settings(prev, attrs)
    attrs.attempt = 1
    if result is not None:
        attrs.last_completion_result.CopyFrom(result)
    if failure is not None:
        attrs.continued_failure.CopyFrom(failure)
    return attrs


def continue_as_new(
    prev: ExecutionState,
    new_run_id: str,
    command: command_pb.ContinueAsNewWorkflowExecutionCommandAttributes,
    now_ns: int,
) -> history.WorkflowExecutionStartedEventAttributes:
    """Like the reference, only what the command carries moves on (the SDK fills in memo and
    search attributes when the workflow does not set them)."""
    # The reference passes the command's interval on as it is: absent when the command has none.
    backoff = duration_ns(command.backoff_start_interval) if command.HasField("backoff_start_interval") else None
    attrs = _base(prev, new_run_id, Initiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW, _min_interval(prev, backoff, now_ns))
    attrs.workflow_type.CopyFrom(command.workflow_type)
    attrs.task_queue.CopyFrom(command.task_queue)
    attrs.workflow_run_timeout.CopyFrom(command.workflow_run_timeout)
    attrs.workflow_task_timeout.CopyFrom(command.workflow_task_timeout)
    attrs.cron_schedule = command.cron_schedule
    attrs.attempt = 1
    for field in ("input", "header", "retry_policy", "memo", "search_attributes", "last_completion_result"):
        if command.HasField(field):
            getattr(attrs, field).CopyFrom(getattr(command, field))
    if command.HasField("failure"):
        attrs.continued_failure.CopyFrom(command.failure)
    return attrs
