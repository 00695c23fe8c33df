"""One applier per event type: how an event changes an execution's state.

Appliers are the only code that moves state forward from events. The active path (commands,
API calls, timers) and every passive path (rebuild, replication, reset) run through them,
so an execution's state is always what its history says (docs/DESIGN.md, invariant 1).
Bookkeeping that no event carries (attempts, heartbeats, stamps) is kept by the callers.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Final

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    CallbackState as CallbackStateEnum,
)
from temporalio.api.enums.v1 import (
    NexusOperationCancellationState,
    PendingNexusOperationState,
    TaskQueueKind,
    WorkflowTaskFailedCause,
)
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.history import events as ev
from tempyral.history import reset_points
from tempyral.proto.internal_pb2 import (
    ActivityInfo,
    CallbackState,
    ChildInfo,
    ExecutionState,
    ExternalRequestInfo,
    NexusOperationInfo,
    TimerInfo,
)

Status = wf_enums.WorkflowExecutionStatus
NexusState = PendingNexusOperationState
CancelState = NexusOperationCancellationState
Applier = Callable[[ExecutionState, history.HistoryEvent], None]


class NoApplierError(ValueError):
    """An event of a type the server does not know how to apply (it never writes one)."""


def apply(state: ExecutionState, event: history.HistoryEvent) -> None:
    fn = APPLIERS.get(event.event_type)
    if fn is None:
        raise NoApplierError(f"no applier for event type {ev.ET.Name(event.event_type)} (event {event.event_id})")
    fn(state, event)


def _no_state(s: ExecutionState, e: history.HistoryEvent) -> None:
    """The event changes no execution state (what it records is read from history)."""


# What the start event carries and the state does not keep a copy of: payloads can be megabytes, and the few
# readers (the next run of a retry or cron chain) read the event.
START_EVENT_ONLY: Final = (
    "input",
    "header",
    "memo",
    "search_attributes",
    "last_completion_result",
    "continued_failure",
)


def _workflow_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.workflow_execution_started_event_attributes
    s.start.CopyFrom(a)
    for name in START_EVENT_ONLY:
        s.start.ClearField(name)
    s.start_time.CopyFrom(e.event_time)
    start_ns = ts_ns(e.event_time)
    s.execution_time.CopyFrom(timestamp(start_ns + duration_ns(a.first_workflow_task_backoff)))
    s.status = Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    if duration_ns(a.workflow_run_timeout) > 0:
        s.run_expiration_time.CopyFrom(timestamp(start_ns + duration_ns(a.workflow_run_timeout)))
    if a.HasField("workflow_execution_expiration_time"):
        s.execution_expiration_time.CopyFrom(a.workflow_execution_expiration_time)
    if a.HasField("memo"):
        s.memo.CopyFrom(a.memo)
    if a.HasField("search_attributes"):
        s.search_attributes.CopyFrom(a.search_attributes)
    if a.HasField("header"):
        s.header.CopyFrom(a.header)
    if a.HasField("prev_auto_reset_points"):
        s.auto_reset_points.CopyFrom(a.prev_auto_reset_points)
    if e.HasField("user_metadata"):
        s.user_metadata.CopyFrom(e.user_metadata)


def reset_workflow_task(s: ExecutionState, next_attempt: int) -> None:
    """No workflow task is pending; the next one will be attempt `next_attempt`."""
    wt = s.workflow_task
    stamp = wt.stamp
    wt.Clear()
    wt.stamp = stamp
    wt.attempt = next_attempt


def clear_sticky(s: ExecutionState) -> None:
    """The run has no sticky queue any more: its next workflow task goes to the normal queue. A task already
    scheduled on the sticky queue and not started keeps its schedule-to-start timeout: that timeout armed the
    task's timer (which still moves it to the normal queue), and `task_generator.regenerate` must go on giving
    that timer while the task is pending, or the timer's row is one the run's state no longer explains."""
    s.ClearField("sticky_task_queue")
    wt = s.workflow_task
    if not (wt.scheduled and not wt.started_event_id and wt.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY):
        s.ClearField("sticky_schedule_to_start_timeout")


def fail_workflow_task(s: ExecutionState, increment_attempt: bool) -> None:
    """A workflow task failed or timed out. A sticky worker gets one fresh attempt on the normal
    queue before attempts count up (and later attempts become transient)."""
    attempt = s.workflow_task.attempt or 1
    if s.sticky_task_queue.name:
        increment_attempt = False
        s.ClearField("sticky_task_queue")
        s.ClearField("sticky_schedule_to_start_timeout")
    reset_workflow_task(s, attempt + 1 if increment_attempt else 1)


def _workflow_task_scheduled(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.workflow_task_scheduled_event_attributes
    wt = s.workflow_task
    stamp = wt.stamp
    wt.Clear()
    wt.stamp = stamp + 1
    wt.scheduled = True
    wt.scheduled_event_id = e.event_id
    wt.attempt = a.attempt or 1
    wt.task_queue.CopyFrom(a.task_queue)
    wt.start_to_close_timeout.CopyFrom(a.start_to_close_timeout)
    wt.scheduled_time.CopyFrom(e.event_time)
    wt.original_scheduled_time.CopyFrom(e.event_time)
    wt.version = e.version


def _workflow_task_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.workflow_task_started_event_attributes
    wt = s.workflow_task
    wt.started_event_id = e.event_id
    wt.started_time.CopyFrom(e.event_time)
    wt.request_id = a.request_id
    wt.identity = a.identity


def _workflow_task_completed(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.workflow_task_completed_event_attributes
    s.last_completed_wft_started_event_id = a.started_event_id
    s.last_workflow_task_completed_event_id = e.event_id
    reset_workflow_task(s, 1)
    record_build_id(s, a.worker_version if a.HasField("worker_version") else None)
    reset_points.record_completion(s, e)


UNVERSIONED = "unversioned"


def record_build_id(s: ExecutionState, stamp: common.WorkerVersionStamp | None) -> None:
    """The BuildIds search attribute after a workflow task completed, as the reference keeps it
    for workflows without worker versioning: "unversioned", then every build id that completed a
    task ("unversioned:<id>", or "versioned:<id>" for a worker that asked for versioning)."""
    fields = s.search_attributes.indexed_fields
    existing: list[str] = []
    if "BuildIds" in fields:
        try:
            existing = [str(v) for v in json.loads(fields["BuildIds"].data)]
        except (ValueError, TypeError):
            existing = []
    values = [] if stamp is not None and stamp.use_versioning else [UNVERSIONED]
    entry = ""
    if stamp is not None and stamp.build_id:
        entry = f"{'versioned' if stamp.use_versioning else UNVERSIONED}:{stamp.build_id}"
    values += [v for v in existing if v != UNVERSIONED and not v.startswith(("assigned:", "pinned:"))]
    if entry and entry not in values:
        values.append(entry)
    if values == existing:
        return
    payload = fields["BuildIds"]
    payload.metadata["encoding"] = b"json/plain"
    payload.metadata["type"] = b"KeywordList"
    payload.data = json.dumps(values, separators=(",", ":")).encode()


def _workflow_task_failed(s: ExecutionState, e: history.HistoryEvent) -> None:
    fail_workflow_task(s, increment_attempt=True)
    if (
        e.workflow_task_failed_event_attributes.cause
        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    ):
        # The run a reset made starts when the reset wrote this event, not when the base run did
        # (as the reference's rebuilt state does).
        s.start_time.CopyFrom(e.event_time)
        s.execution_time.CopyFrom(e.event_time)


def _workflow_task_timed_out(s: ExecutionState, e: history.HistoryEvent) -> None:
    schedule_to_start = e.workflow_task_timed_out_event_attributes.timeout_type == 2
    fail_workflow_task(s, increment_attempt=not schedule_to_start)


def _activity_scheduled(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.activity_task_scheduled_event_attributes
    ai = ActivityInfo(scheduled_event_id=e.event_id, attempt=1, version=e.version, has_retry_policy=True)
    ai.scheduled.CopyFrom(a)
    ai.scheduled_time.CopyFrom(e.event_time)
    ai.current_attempt_scheduled_time.CopyFrom(e.event_time)
    s2c = duration_ns(a.schedule_to_close_timeout)
    if s2c > 0:
        ai.expiration_time.CopyFrom(timestamp(ts_ns(e.event_time) + s2c))
    s.activities[e.event_id].CopyFrom(ai)
    s.activity_count += 1


def _activity_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    ai = s.activities.get(e.activity_task_started_event_attributes.scheduled_event_id)
    if ai is not None and e.event_id > 0:
        ai.started_event_id = e.event_id


def _activity_closed(s: ExecutionState, e: history.HistoryEvent) -> None:
    attrs = getattr(e, ev.ACTIVITY_CLOSE_ATTRS[e.event_type])
    s.activities.pop(attrs.scheduled_event_id, None)


def _activity_cancel_requested(s: ExecutionState, e: history.HistoryEvent) -> None:
    ai = s.activities.get(e.activity_task_cancel_requested_event_attributes.scheduled_event_id)
    if ai is not None:
        ai.cancel_requested = True
        ai.cancel_request_event_id = e.event_id


def _timer_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.timer_started_event_attributes
    info = TimerInfo(timer_id=a.timer_id, started_event_id=e.event_id, version=e.version)
    info.expiry_time.CopyFrom(timestamp(ts_ns(e.event_time) + duration_ns(a.start_to_fire_timeout)))
    s.timers[a.timer_id].CopyFrom(info)


def _timer_fired(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.timers.pop(e.timer_fired_event_attributes.timer_id, None)


def _timer_canceled(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.timers.pop(e.timer_canceled_event_attributes.timer_id, None)


def _child_initiated(s: ExecutionState, e: history.HistoryEvent) -> None:
    info = ChildInfo(initiated_event_id=e.event_id, version=e.version)
    info.initiated.CopyFrom(e.start_child_workflow_execution_initiated_event_attributes)
    # Deterministic, so that a retried start of this child is recognised as the same request.
    info.create_request_id = f"{s.run_id}:{e.event_id}"
    s.children[e.event_id].CopyFrom(info)


def _child_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.child_workflow_execution_started_event_attributes
    info = s.children.get(a.initiated_event_id)
    if info is not None:
        info.started_event_id = e.event_id
        info.started_run_id = a.workflow_execution.run_id


def _child_start_failed(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.children.pop(e.start_child_workflow_execution_failed_event_attributes.initiated_event_id, None)


def _child_closed(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.children.pop(getattr(e, ev.CHILD_CLOSE_ATTRS[e.event_type]).initiated_event_id, None)


def _external_initiated(target: str) -> Applier:
    def apply_initiated(s: ExecutionState, e: history.HistoryEvent) -> None:
        info = ExternalRequestInfo(
            initiated_event_id=e.event_id, request_id=f"{s.run_id}:{e.event_id}", version=e.version
        )
        info.initiated.CopyFrom(e)
        getattr(s, target)[e.event_id].CopyFrom(info)

    return apply_initiated


def _external_resolved(target: str, attr: str) -> Applier:
    def apply_resolved(s: ExecutionState, e: history.HistoryEvent) -> None:
        getattr(s, target).pop(getattr(e, attr).initiated_event_id, None)

    return apply_resolved


def _update_admitted(s: ExecutionState, e: history.HistoryEvent) -> None:
    update_id = e.workflow_execution_update_admitted_event_attributes.request.meta.update_id
    s.updates[update_id].update_id = update_id


def _update_accepted(s: ExecutionState, e: history.HistoryEvent) -> None:
    update_id = e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
    s.updates[update_id].update_id = update_id
    s.updates[update_id].accepted_event_id = e.event_id


def _update_completed(s: ExecutionState, e: history.HistoryEvent) -> None:
    update_id = e.workflow_execution_update_completed_event_attributes.meta.update_id
    s.updates[update_id].update_id = update_id
    s.updates[update_id].completed_event_id = e.event_id


def _nexus_scheduled(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.nexus_operation_scheduled_event_attributes
    info = NexusOperationInfo(
        scheduled_event_id=e.event_id,
        endpoint=a.endpoint,
        endpoint_id=a.endpoint_id,
        service=a.service,
        operation=a.operation,
        request_id=a.request_id,
        state=NexusState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED,
        version=e.version,
    )
    info.scheduled_time.CopyFrom(e.event_time)
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if a.HasField(name):
            getattr(info, name).CopyFrom(getattr(a, name))
    s.nexus_operations[e.event_id].CopyFrom(info)


def _nexus_started(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.nexus_operation_started_event_attributes
    info = s.nexus_operations.get(a.scheduled_event_id)
    if info is None:
        return
    info.state = NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED
    info.attempt += 1  # the attempt that started it
    info.operation_token = a.operation_token or a.operation_id
    info.started_time.CopyFrom(e.event_time)
    info.blocked_reason = ""
    info.ClearField("next_attempt_schedule_time")
    info.ClearField("last_attempt_failure")
    if (
        info.HasField("cancellation")
        and info.cancellation.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_UNSPECIFIED
    ):
        # a cancel requested before the start is sent now that there is an operation to cancel
        info.cancellation.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
        info.cancellation.requested_time.CopyFrom(e.event_time)


def _nexus_closed(attr: str) -> Applier:
    def close(s: ExecutionState, e: history.HistoryEvent) -> None:
        s.nexus_operations.pop(getattr(e, attr).scheduled_event_id, None)

    return close


def _nexus_cancel_requested(s: ExecutionState, e: history.HistoryEvent) -> None:
    a = e.nexus_operation_cancel_requested_event_attributes
    info = s.nexus_operations.get(a.scheduled_event_id)
    if info is None:
        return
    info.cancellation.requested_event_id = e.event_id
    if info.state == NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED:
        info.cancellation.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
        info.cancellation.requested_time.CopyFrom(e.event_time)


def _nexus_cancel_resolved(state: int) -> Applier:
    def resolve(s: ExecutionState, e: history.HistoryEvent) -> None:
        attrs = (
            e.nexus_operation_cancel_request_completed_event_attributes
            if e.HasField("nexus_operation_cancel_request_completed_event_attributes")
            else e.nexus_operation_cancel_request_failed_event_attributes
        )
        info = s.nexus_operations.get(attrs.scheduled_event_id)
        if info is not None:
            info.cancellation.state = state
            info.cancellation.last_attempt_complete_time.CopyFrom(e.event_time)
            if e.HasField("nexus_operation_cancel_request_failed_event_attributes"):
                failure = e.nexus_operation_cancel_request_failed_event_attributes.failure
                info.cancellation.last_attempt_failure.CopyFrom(failure)

    return resolve


def _signaled(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.signal_count += 1
    request_id = e.workflow_execution_signaled_event_attributes.request_id
    if request_id:
        s.signal_request_ids.append(request_id)  # a retried signal request is recognised by it


def _cancel_requested(s: ExecutionState, e: history.HistoryEvent) -> None:
    s.cancel_requested = True


def _closer(status: int, attr: str | None) -> Applier:
    def close(s: ExecutionState, e: history.HistoryEvent) -> None:
        s.status = status
        s.close_time.CopyFrom(e.event_time)
        s.completion_event_id = e.event_id
        if attr is not None:
            s.new_execution_run_id = getattr(e, attr).new_execution_run_id
        reset_workflow_task(s, 1)
        # The completion callbacks fire when the run's chain ends here; when a new run carries on
        # (continue-as-new, retry, cron) they move to it instead.
        continues = e.event_type == ev.WORKFLOW_EXECUTION_CONTINUED_AS_NEW or bool(s.new_execution_run_id)
        if not continues:
            for _ in s.start.completion_callbacks:
                s.callbacks.append(CallbackState(state=CallbackStateEnum.CALLBACK_STATE_SCHEDULED))

    return close


def _merge_payload_map(target: common.SearchAttributes | common.Memo, fields: dict[str, common.Payload]) -> None:
    dest = target.indexed_fields if isinstance(target, common.SearchAttributes) else target.fields
    for key, value in fields.items():
        if _is_unset(value):
            dest.pop(key, None)
        else:
            dest[key].CopyFrom(value)


def _is_unset(payload: common.Payload) -> bool:
    # The SDKs unset a search attribute or memo field by upserting an empty or null value.
    return payload.data in (b"", b"null", b"[]")


def _upsert_search_attributes(s: ExecutionState, e: history.HistoryEvent) -> None:
    fields = e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    _merge_payload_map(s.search_attributes, dict(fields))


def _properties_modified(s: ExecutionState, e: history.HistoryEvent) -> None:
    fields = e.workflow_properties_modified_event_attributes.upserted_memo.fields
    _merge_payload_map(s.memo, dict(fields))


APPLIERS: dict[int, Applier] = {
    ev.WORKFLOW_EXECUTION_STARTED: _workflow_started,
    ev.WORKFLOW_TASK_SCHEDULED: _workflow_task_scheduled,
    ev.WORKFLOW_TASK_STARTED: _workflow_task_started,
    ev.WORKFLOW_TASK_COMPLETED: _workflow_task_completed,
    ev.WORKFLOW_TASK_FAILED: _workflow_task_failed,
    ev.WORKFLOW_TASK_TIMED_OUT: _workflow_task_timed_out,
    ev.ACTIVITY_TASK_SCHEDULED: _activity_scheduled,
    ev.ACTIVITY_TASK_STARTED: _activity_started,
    ev.ACTIVITY_TASK_COMPLETED: _activity_closed,
    ev.ACTIVITY_TASK_FAILED: _activity_closed,
    ev.ACTIVITY_TASK_TIMED_OUT: _activity_closed,
    ev.ACTIVITY_TASK_CANCELED: _activity_closed,
    ev.ACTIVITY_TASK_CANCEL_REQUESTED: _activity_cancel_requested,
    ev.TIMER_STARTED: _timer_started,
    ev.TIMER_FIRED: _timer_fired,
    ev.TIMER_CANCELED: _timer_canceled,
    ev.MARKER_RECORDED: _no_state,
    # never written here (a rejected update leaves no trace), but a valid history may hold one
    ev.ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED: _no_state,
    ev.WORKFLOW_EXECUTION_SIGNALED: _signaled,
    ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED: _cancel_requested,
    ev.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: _upsert_search_attributes,
    ev.WORKFLOW_PROPERTIES_MODIFIED: _properties_modified,
    ev.START_CHILD_INITIATED: _child_initiated,
    ev.CHILD_STARTED: _child_started,
    ev.START_CHILD_FAILED: _child_start_failed,
    **{t: _child_closed for t in ev.CHILD_CLOSE_ATTRS},
    ev.SIGNAL_EXTERNAL_INITIATED: _external_initiated("external_signals"),
    ev.EXTERNAL_SIGNALED: _external_resolved(
        "external_signals", "external_workflow_execution_signaled_event_attributes"
    ),
    ev.SIGNAL_EXTERNAL_FAILED: _external_resolved(
        "external_signals", "signal_external_workflow_execution_failed_event_attributes"
    ),
    ev.CANCEL_EXTERNAL_INITIATED: _external_initiated("external_cancels"),
    ev.EXTERNAL_CANCEL_REQUESTED: _external_resolved(
        "external_cancels", "external_workflow_execution_cancel_requested_event_attributes"
    ),
    ev.CANCEL_EXTERNAL_FAILED: _external_resolved(
        "external_cancels", "request_cancel_external_workflow_execution_failed_event_attributes"
    ),
    ev.NEXUS_SCHEDULED: _nexus_scheduled,
    ev.NEXUS_STARTED: _nexus_started,
    **{t: _nexus_closed(attr) for t, attr in ev.NEXUS_CLOSE_ATTRS.items()},
    ev.NEXUS_CANCEL_REQUESTED: _nexus_cancel_requested,
    ev.NEXUS_CANCEL_REQUEST_COMPLETED: _nexus_cancel_resolved(CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED),
    ev.NEXUS_CANCEL_REQUEST_FAILED: _nexus_cancel_resolved(CancelState.NEXUS_OPERATION_CANCELLATION_STATE_FAILED),
    ev.UPDATE_ADMITTED: _update_admitted,
    ev.UPDATE_ACCEPTED: _update_accepted,
    ev.UPDATE_COMPLETED: _update_completed,
    ev.WORKFLOW_EXECUTION_COMPLETED: _closer(
        Status.WORKFLOW_EXECUTION_STATUS_COMPLETED, "workflow_execution_completed_event_attributes"
    ),
    ev.WORKFLOW_EXECUTION_FAILED: _closer(
        Status.WORKFLOW_EXECUTION_STATUS_FAILED, "workflow_execution_failed_event_attributes"
    ),
    ev.WORKFLOW_EXECUTION_TIMED_OUT: _closer(
        Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT, "workflow_execution_timed_out_event_attributes"
    ),
    ev.WORKFLOW_EXECUTION_CANCELED: _closer(Status.WORKFLOW_EXECUTION_STATUS_CANCELED, None),
    ev.WORKFLOW_EXECUTION_TERMINATED: _closer(Status.WORKFLOW_EXECUTION_STATUS_TERMINATED, None),
    ev.WORKFLOW_EXECUTION_CONTINUED_AS_NEW: _closer(
        Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW, "workflow_execution_continued_as_new_event_attributes"
    ),
}
