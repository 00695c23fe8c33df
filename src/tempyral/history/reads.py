"""Read paths: history pages and long polls, describe, and queries."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import (
    CallbackState,
    HistoryEventFilterType,
    PendingActivityState,
    PendingWorkflowTaskState,
    QueryRejectCondition,
)
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history_pb
from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.clock import duration_ns, ts_ns
from tempyral.common.errors import InvalidArgument
from tempyral.common.tokens import decode_page_token, encode_page_token
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.queries import QueryRegistry
from tempyral.history.shard import ExecutionEntry
from tempyral.namespace.registry import Namespace
from tempyral.proto.internal_pb2 import ActivityInfo, ExecutionState, HistoryPageToken, NexusOperationInfo

Status = wf_enums.WorkflowExecutionStatus
DEFAULT_PAGE_SIZE = 1000
CLOSE_EVENT = HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT


async def get_history(
    executions: Executions,
    ns: Namespace,
    req: ws.GetWorkflowExecutionHistoryRequest,
    timeout: float,
    with_transient: bool = True,
) -> ws.GetWorkflowExecutionHistoryResponse:
    token = decode_page_token(req.next_page_token)
    ex = req.execution
    run_id = ex.run_id or (token.run_id if token else "")
    if token and ex.run_id and token.run_id and token.run_id != ex.run_id:
        raise InvalidArgument("Invalid NextPageToken.")
    page_size = req.maximum_page_size if req.maximum_page_size > 0 else DEFAULT_PAGE_SIZE
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        async with executions.update(ns.id, ex.workflow_id, run_id) as change:
            ms, entry = change.ms, change.entry
            run_id = ms.run_id
            if req.history_event_filter_type == CLOSE_EVENT:
                if not ms.running:
                    events = await change.events(ms.state.completion_event_id, ms.state.completion_event_id + 1)
                    return ws.GetWorkflowExecutionHistoryResponse(history=history_pb.History(events=events))
                if not req.wait_new_event:
                    return ws.GetWorkflowExecutionHistoryResponse()
                waiter = add_waiter(entry)
            else:
                start = token.next_event_id if token else 1
                end = ms.state.next_event_id
                if start < end or not req.wait_new_event or not ms.running:
                    return await _page(change, start, end, page_size, req.wait_new_event, with_transient)
                waiter = add_waiter(entry)
        remaining = deadline - loop.time()
        await wait_change(entry, waiter, remaining)
        if remaining <= 0:
            # nothing yet: hand back a token so that the caller keeps waiting
            page = HistoryPageToken(run_id=run_id, next_event_id=token.next_event_id if token else 1)
            return ws.GetWorkflowExecutionHistoryResponse(next_page_token=encode_page_token(page))


async def get_history_reverse(
    executions: Executions, ns: Namespace, req: ws.GetWorkflowExecutionHistoryReverseRequest
) -> ws.GetWorkflowExecutionHistoryReverseResponse:
    """The run's events newest first, a page at a time (the Web UI's default history view)."""
    token = decode_page_token(req.next_page_token)
    ex = req.execution
    run_id = ex.run_id or (token.run_id if token else "")
    page_size = req.maximum_page_size if req.maximum_page_size > 0 else DEFAULT_PAGE_SIZE
    async with executions.update(ns.id, ex.workflow_id, run_id) as change:
        ms = change.ms
        end = token.next_event_id if token else ms.state.next_event_id  # exclusive
        start = max(1, end - page_size)
        events = await change.events(start, end)
        resp = ws.GetWorkflowExecutionHistoryReverseResponse()
        resp.history.events.extend(reversed(events))
        if start > 1:
            resp.next_page_token = encode_page_token(HistoryPageToken(run_id=ms.run_id, next_event_id=start))
        return resp


def add_waiter(entry: ExecutionEntry) -> asyncio.Future[None]:
    """A future the run's next commit resolves (`Shard.commit` wakes `entry.waiters`); wait on it with
    `wait_change`."""
    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    entry.waiters.append(fut)
    return fut


async def wait_change(entry: ExecutionEntry, waiter: asyncio.Future[None], timeout: float) -> None:
    """Wait at most `timeout` seconds (none when it is not positive) for the change `waiter` stands for. Either way
    the waiter is gone after: a poll that timed out or went away leaves nothing behind (waiters keep the run in the
    cache)."""
    try:
        if timeout > 0:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
    except TimeoutError:
        pass
    finally:
        if waiter in entry.waiters:
            entry.waiters.remove(waiter)


async def _page(
    change: Change,
    start: int,
    end: int,
    page_size: int,
    following: bool,
    with_transient: bool,
) -> ws.GetWorkflowExecutionHistoryResponse:
    ms = change.ms
    stop = min(end, start + page_size)
    events = await change.events(start, stop)
    resp = ws.GetWorkflowExecutionHistoryResponse()
    resp.history.events.extend(events)
    if stop == end and with_transient and ms.running and not following:
        # like the reference, SDK clients also see the events of a transient workflow task
        resp.history.events.extend(ms.transient_workflow_task_events(ms.state.workflow_task.identity))
    if stop < end or (following and ms.running):
        resp.next_page_token = encode_page_token(HistoryPageToken(run_id=ms.run_id, next_event_id=stop))
    return resp


def describe(ns: Namespace, ms: MutableState, matching_backlog: int = 0) -> ws.DescribeWorkflowExecutionResponse:
    s = ms.state
    st = s.start
    resp = ws.DescribeWorkflowExecutionResponse()
    cfg = resp.execution_config
    cfg.task_queue.CopyFrom(st.task_queue)
    # unset when the workflow has none, as the reference shows it
    for name in ("workflow_execution_timeout", "workflow_run_timeout"):
        if duration_ns(getattr(st, name)):
            getattr(cfg, name).CopyFrom(getattr(st, name))
    cfg.default_workflow_task_timeout.CopyFrom(st.workflow_task_timeout)
    if s.HasField("user_metadata"):
        cfg.user_metadata.CopyFrom(s.user_metadata)
    info = resp.workflow_execution_info
    info.execution.workflow_id = s.workflow_id
    info.execution.run_id = s.run_id
    info.type.CopyFrom(st.workflow_type)
    info.start_time.CopyFrom(s.start_time)
    info.execution_time.CopyFrom(s.execution_time)
    if ts_ns(s.close_time):
        info.close_time.CopyFrom(s.close_time)
        info.execution_duration.FromNanoseconds(max(ts_ns(s.close_time) - ts_ns(s.execution_time), 0))
    info.status = s.status  # type: ignore[assignment]
    info.history_length = s.next_event_id - 1
    info.history_size_bytes = s.history_size_bytes
    info.task_queue = st.task_queue.name
    info.memo.CopyFrom(s.memo)
    info.search_attributes.CopyFrom(s.search_attributes)
    info.state_transition_count = s.db_version
    info.first_run_id = st.first_execution_run_id
    if st.HasField("parent_workflow_execution"):
        info.parent_execution.CopyFrom(st.parent_workflow_execution)
        info.parent_namespace_id = st.parent_workflow_namespace_id
    info.root_execution.workflow_id = st.root_workflow_execution.workflow_id or s.workflow_id
    info.root_execution.run_id = st.root_workflow_execution.run_id or s.run_id
    if s.auto_reset_points.points:
        info.auto_reset_points.CopyFrom(s.auto_reset_points)
    extended = resp.workflow_extended_info
    if ts_ns(s.execution_expiration_time):
        extended.execution_expiration_time.CopyFrom(s.execution_expiration_time)
    if ts_ns(s.run_expiration_time):
        extended.run_expiration_time.CopyFrom(s.run_expiration_time)
    extended.original_start_time.CopyFrom(s.start_time)
    extended.cancel_requested = s.cancel_requested
    extended.reset_run_id = s.reset_run_id
    if st.original_execution_run_id and st.original_execution_run_id != s.run_id:
        extended.last_reset_time.CopyFrom(s.start_time)  # a run made by a reset
    for ai in sorted(s.activities.values(), key=lambda a: a.scheduled_event_id):
        resp.pending_activities.append(pending_activity(ai))
    for child in sorted(s.children.values(), key=lambda c: c.initiated_event_id):
        resp.pending_children.append(
            workflow_pb.PendingChildExecutionInfo(
                workflow_id=child.initiated.workflow_id,
                run_id=child.started_run_id,
                workflow_type_name=child.initiated.workflow_type.name,
                initiated_id=child.initiated_event_id,
                parent_close_policy=child.initiated.parent_close_policy,
            )
        )
    if s.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
        for op in sorted(s.nexus_operations.values(), key=lambda o: o.scheduled_event_id):
            resp.pending_nexus_operations.append(pending_nexus_operation(op))
    _add_callbacks(resp, s)
    wt = s.workflow_task
    if wt.scheduled and s.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING:
        pw = resp.pending_workflow_task
        pw.state = (
            PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
            if wt.started_event_id
            else PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED
        )
        pw.scheduled_time.CopyFrom(wt.scheduled_time)
        pw.original_scheduled_time.CopyFrom(wt.original_scheduled_time)
        if wt.started_event_id:
            pw.started_time.CopyFrom(wt.started_time)
        pw.attempt = wt.attempt
    return resp


def pending_nexus_operation(op: NexusOperationInfo) -> workflow_pb.PendingNexusOperationInfo:
    """A Nexus operation as describe shows it: where its start (and cancel) requests stand."""
    out = workflow_pb.PendingNexusOperationInfo(
        endpoint=op.endpoint,
        service=op.service,
        operation=op.operation,
        operation_id=op.operation_token,
        operation_token=op.operation_token,
        scheduled_event_id=op.scheduled_event_id,
        state=op.state,  # type: ignore[arg-type]
        attempt=op.attempt,
        blocked_reason=op.blocked_reason,
    )
    out.scheduled_time.CopyFrom(op.scheduled_time)
    for name in (
        "schedule_to_close_timeout",
        "schedule_to_start_timeout",
        "start_to_close_timeout",
        "last_attempt_complete_time",
        "last_attempt_failure",
        "next_attempt_schedule_time",
    ):
        if op.HasField(name):
            getattr(out, name).CopyFrom(getattr(op, name))
    if op.cancellation.requested_event_id:
        c = op.cancellation
        info = out.cancellation_info
        info.state = c.state  # type: ignore[assignment]
        info.attempt = c.attempt
        info.blocked_reason = c.blocked_reason
        for name in (
            "requested_time",
            "last_attempt_complete_time",
            "last_attempt_failure",
            "next_attempt_schedule_time",
        ):
            if c.HasField(name):
                getattr(info, name).CopyFrom(getattr(c, name))
    return out


def _add_callbacks(resp: ws.DescribeWorkflowExecutionResponse, s: ExecutionState) -> None:
    """The run's completion callbacks: on standby until it closes, then their delivery state."""
    for index, callback in enumerate(s.start.completion_callbacks):
        info = resp.callbacks.add(callback=callback, state=CallbackState.CALLBACK_STATE_STANDBY)
        info.trigger.workflow_closed.SetInParent()
        info.registration_time.CopyFrom(s.start_time)
        if index < len(s.callbacks):
            st = s.callbacks[index]
            info.state = st.state  # type: ignore[assignment]
            info.attempt = st.attempt
            for name in ("last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time"):
                if st.HasField(name):
                    getattr(info, name).CopyFrom(getattr(st, name))


def pending_activity(ai: ActivityInfo) -> workflow_pb.PendingActivityInfo:
    a = ai.scheduled
    p = workflow_pb.PendingActivityInfo(
        activity_id=a.activity_id,
        activity_type=a.activity_type,
        attempt=ai.attempt,
        maximum_attempts=a.retry_policy.maximum_attempts,
        last_worker_identity=ai.last_worker_identity,
    )
    if ai.cancel_requested:
        p.state = PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    elif ai.started:
        p.state = PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    else:
        p.state = PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    if ai.HasField("heartbeat_details"):
        p.heartbeat_details.CopyFrom(ai.heartbeat_details)
    if ts_ns(ai.last_heartbeat_time):
        p.last_heartbeat_time.CopyFrom(ai.last_heartbeat_time)
    if ai.started:
        p.last_started_time.CopyFrom(ai.started_time)
    if ai.HasField("last_failure"):
        p.last_failure.CopyFrom(ai.last_failure)
    p.scheduled_time.CopyFrom(ai.current_attempt_scheduled_time)
    if ai.HasField("next_attempt_schedule_time"):
        p.next_attempt_schedule_time.CopyFrom(ai.next_attempt_schedule_time)
    if ts_ns(ai.expiration_time):
        p.expiration_time.CopyFrom(ai.expiration_time)
    p.current_retry_interval.SetInParent()
    if ai.HasField("next_attempt_schedule_time"):
        p.current_retry_interval.FromNanoseconds(
            max(ts_ns(ai.next_attempt_schedule_time) - ts_ns(ai.current_attempt_scheduled_time), 0)
        )
    p.activity_options.task_queue.CopyFrom(a.task_queue)
    p.activity_options.schedule_to_close_timeout.CopyFrom(a.schedule_to_close_timeout)
    p.activity_options.schedule_to_start_timeout.CopyFrom(a.schedule_to_start_timeout)
    p.activity_options.start_to_close_timeout.CopyFrom(a.start_to_close_timeout)
    p.activity_options.heartbeat_timeout.CopyFrom(a.heartbeat_timeout)
    p.activity_options.retry_policy.CopyFrom(a.retry_policy)
    return p


async def query(
    executions: Executions,
    queries: QueryRegistry,
    ns: Namespace,
    req: ws.QueryWorkflowRequest,
    timeout: float,
    standby: bool = False,
) -> ws.QueryWorkflowResponse:
    """`standby`: the namespace is standby here, so no workflow task will run here and history only changes by
    replication: a query goes to a worker as a query task at once (the reference's queryDirectlyThroughMatching),
    once the workflow has completed a workflow task (before that, a worker could not answer it)."""
    ex = req.execution
    async with executions.locked(ns.id, ex.workflow_id, ex.run_id) as (_, entry, ms):
        status = ms.state.status
        rejected = _rejected(req.query_reject_condition, status)
        if rejected:
            return ws.QueryWorkflowResponse(query_rejected=query_pb.QueryRejected(status=status))  # type: ignore[arg-type]
        direct = standby and ms.state.last_completed_wft_started_event_id > 0
        if ms.running and ms.wft_pending and not direct:
            query_id = queries.buffer(entry, req.query)
        elif ms.running and ms.state.sticky_task_queue.name:
            query_id = queries.dispatch(entry, req.query, ms.state.sticky_task_queue.name, ms.normal_task_queue.name)
        else:
            query_id = queries.dispatch(entry, req.query, ms.normal_task_queue.name)
    try:
        result = await queries.wait(query_id, timeout)
    finally:
        queries.forget(entry, query_id)
    return ws.QueryWorkflowResponse(query_result=result.answer)


def _rejected(condition: int, status: int) -> bool:
    if condition == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN:
        return status != Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    if condition == QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY:
        return status not in (Status.WORKFLOW_EXECUTION_STATUS_RUNNING, Status.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    return False
