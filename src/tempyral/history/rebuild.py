"""An execution's state rebuilt from its events alone: what a standby cluster, a reset and the
replay tests do. The live path reaches the same state through the same appliers.

What no event carries is listed here, field by field with the reason, so that a replayed state
can be compared with a live one (`comparable`) and the rest compared whole.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from temporalio.api.enums.v1 import NexusOperationCancellationState, PendingNexusOperationState
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import timestamp
from tempyral.history import appliers, version_history
from tempyral.proto.internal_pb2 import ExecutionState, NexusOperationInfo

NexusState = PendingNexusOperationState
CancelState = NexusOperationCancellationState

# Fields of ExecutionState that no event carries.
NOT_FROM_EVENTS: Final = (
    "db_version",  # storage: the snapshot's optimistic-lock version
    "last_event_task_id",  # storage: the task id of the last history write
    "history_size_bytes",  # storage: the serialized size of the written history
    "version",  # the namespace's failover version, set by the engine before each mutation
    "start_request_id",  # the start request's id: API bookkeeping (the start event has none)
    "start_request_ids",  # ids of start / signal-with-start requests that reached the run
    "cancel_request_id",  # WorkflowExecutionCancelRequested carries no request id
    "sticky_task_queue",  # from the worker's completion request, not an event
    "sticky_schedule_to_start_timeout",  # likewise
    "speculative_workflow_task",  # a speculative task is in memory until it is written
    "reset_run_id",  # set on the run a reset replaced, which gets no event for it
    "reapplied_events",  # losing events of another branch already re-applied (history/reapply.py)
    "zombie",  # decided by comparing with the workflow's current run, not by this run's events
    "schedule",  # a scheduler run's schedule and progress (schedules/runner.py): it has no events after its start
)

# The workflow task's stamp is bumped by every (re)scheduling, transient ones included, so stale
# dispatch and timeout tasks are recognised; no event carries it. A transient or speculative task
# is not in history at all: `comparable` keeps only a written, pending task.
WORKFLOW_TASK_NOT_FROM_EVENTS: Final = ("stamp",)

# An activity's attempts are bookkeeping: ActivityTaskStarted is written only when an attempt closes
# (with the attempt's number, but the activity is gone then), and retries write no events.
ACTIVITY_NOT_FROM_EVENTS: Final = (
    "attempt",
    "stamp",
    "started",
    "started_time",
    "started_identity",
    "request_id",
    "heartbeat_details",
    "last_heartbeat_time",
    "last_failure",
    "last_worker_identity",
    "next_attempt_schedule_time",
    "current_attempt_scheduled_time",  # reset to the rebuild time by reset_bookkeeping_for_rebuild
    "worker_version",  # the build of the worker that closes the attempt
)

# The attempts of a Nexus operation's start request, and why the last one failed or was held back.
# Its state is SCHEDULED or STARTED by the events; BACKING_OFF and BLOCKED are bookkeeping over
# SCHEDULED (`comparable` maps them to it).
NEXUS_NOT_FROM_EVENTS: Final = (
    "attempt",
    "last_attempt_complete_time",
    "last_attempt_failure",
    "next_attempt_schedule_time",
    "blocked_reason",
)

# The attempts of a Nexus cancel request. Its state is SCHEDULED, SUCCEEDED or FAILED by the events;
# BACKING_OFF is bookkeeping over SCHEDULED.
NEXUS_CANCELLATION_NOT_FROM_EVENTS: Final = (
    "attempt",
    "last_attempt_complete_time",
    "last_attempt_failure",
    "next_attempt_schedule_time",
    "blocked_reason",
)

# A completion callback's entry comes from the close event; its delivery state does not.
CALLBACK_NOT_FROM_EVENTS: Final = (
    "state",
    "attempt",
    "last_attempt_complete_time",
    "last_attempt_failure",
    "next_attempt_schedule_time",
)


def apply_events(state: ExecutionState, events: Iterable[history.HistoryEvent]) -> None:
    """Apply `events` (the run's next ones, in order) to `state`: each is applied, recorded in the
    version history, and moves `next_event_id` past it."""
    for event in events:
        version_history.record(state, event.event_id, event.version)
        appliers.apply(state, event)
        state.next_event_id = event.event_id + 1


def replay(
    namespace_id: str,
    workflow_id: str,
    run_id: str,
    events: Iterable[history.HistoryEvent],
    buffered: Iterable[history.HistoryEvent] = (),
) -> ExecutionState:
    """The state that `events` (a run's whole history, in order) leave behind, and then `buffered`: events that
    arrived while a workflow task ran. Those are applied when they arrive, as on the reference, and enter history
    (with their ids) only when the task ends, so a run's state is its history plus its buffered events."""
    state = ExecutionState(namespace_id=namespace_id, workflow_id=workflow_id, run_id=run_id, next_event_id=1)
    apply_events(state, events)
    for event in buffered:
        state.buffered_events.append(event)
        appliers.apply(state, event)
    state.version = version_history.last_version(state)
    return state


def reset_bookkeeping_for_rebuild(state: ExecutionState, now: int) -> None:
    """Bookkeeping of a state rebuilt from events, as of `now`: the current attempt of every
    activity was scheduled now, and requests that were backing off go again now."""
    for ai in state.activities.values():
        ai.current_attempt_scheduled_time.CopyFrom(timestamp(now))
    for op in state.nexus_operations.values():
        if op.state != NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED:
            # the start request goes again; the handler recognises it by its request id
            op.state = NexusState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
            op.blocked_reason = ""
            op.ClearField("next_attempt_schedule_time")
        elif op.cancellation.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF:
            op.cancellation.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
            op.cancellation.ClearField("next_attempt_schedule_time")


def comparable(state: ExecutionState) -> ExecutionState:
    """A copy of `state` without what no event carries: equal for a live state and the state its
    written history replays to. (A live state with buffered events is ahead of its history.)"""
    copy = ExecutionState()
    copy.CopyFrom(state)
    for name in NOT_FROM_EVENTS:
        copy.ClearField(name)
    # Only the current branch's history is in the events; other branches (conflict resolution) and where the
    # branch's rows are stored are not.
    current = version_history.current(state)
    copy.ClearField("version_histories")
    copy.version_histories.histories.add().items.extend(current.items)
    wt = copy.workflow_task
    if wt.scheduled and not wt.transient:
        for name in WORKFLOW_TASK_NOT_FROM_EVENTS:
            wt.ClearField(name)
    else:  # no written task pending: the attempt count of failing transient tasks is bookkeeping
        copy.ClearField("workflow_task")
    for ai in copy.activities.values():
        for name in ACTIVITY_NOT_FROM_EVENTS:
            ai.ClearField(name)
    for op in copy.nexus_operations.values():
        _comparable_nexus(op)
    for cb in copy.callbacks:
        for name in CALLBACK_NOT_FROM_EVENTS:
            cb.ClearField(name)
    return copy


def _comparable_nexus(op: NexusOperationInfo) -> None:
    for name in NEXUS_NOT_FROM_EVENTS:
        op.ClearField(name)
    if op.state != NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED:
        op.state = NexusState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
    if op.HasField("cancellation"):
        c = op.cancellation
        for name in NEXUS_CANCELLATION_NOT_FROM_EVENTS:
            c.ClearField(name)
        if c.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF:
            c.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
