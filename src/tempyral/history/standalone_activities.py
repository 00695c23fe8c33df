"""Standalone activities: activities a client starts with an id, outside any workflow, which workers run like any
activity (docs/DESIGN.md §5).

Each one is an execution row (its `ExecutionState` has `standalone_activity` set) keyed by the namespace and
`common.standalone.activity_key(activity id)`, holding its one `ActivityInfo` at key 1 of `activities`. So it goes
through `Executions.update` and `Shard.commit` (fenced, on the shard of its key) like a workflow run, and the
workers' side is the activity handler's: the dispatch task goes through matching, polls start it, completions,
failures, heartbeats, timeouts and retries change it. Where those would write an event, `MutableState.close_standalone`
records the outcome instead (the run writes no history). Its visibility row carries the reference's namespace
division, so workflow lists never show it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from google.protobuf.message import Message
from temporalio.api.activity.v1 import message_pb2 as activity_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import ActivityIdConflictPolicy as Conflict
from temporalio.api.enums.v1 import ActivityIdReusePolicy as Reuse
from temporalio.api.enums.v1 import PendingActivityState, TaskQueueKind
from temporalio.api.enums.v1 import WorkflowExecutionStatus as WS
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.clock import duration, duration_ns, timestamp, ts_ns
from tempyral.common.errors import (
    AlreadyExists,
    ConditionFailed,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    WorkflowNotFound,
)
from tempyral.common.retry import normalize_retry_policy
from tempyral.common.standalone import STATUS_NAMES, activity_key, not_found_message
from tempyral.history import task_generator as tg
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.reads import add_waiter, wait_change
from tempyral.namespace.registry import Namespace
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import ActivityInfo, ExecutionState, StandaloneActivity

KEY = 1  # the activity's key in `ExecutionState.activities` (its "scheduled event id")
RUNNING = WS.WORKFLOW_EXECUTION_STATUS_RUNNING
FAILED_STATUSES = frozenset(
    {
        Status.ACTIVITY_EXECUTION_STATUS_FAILED,
        Status.ACTIVITY_EXECUTION_STATUS_CANCELED,
        Status.ACTIVITY_EXECUTION_STATUS_TERMINATED,
        Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT,
    }
)
ALREADY_STARTED = "activity execution already started"


def not_found(activity_id: str) -> NotFound:
    return NotFound(not_found_message(activity_id))


class StandaloneActivities:
    def __init__(self, executions: Executions) -> None:
        self.executions = executions
        self._id_locks: dict[tuple[str, str], asyncio.Lock] = {}

    def _id_lock(self, namespace_id: str, key: str) -> asyncio.Lock:
        lock = self._id_locks.get((namespace_id, key))
        if lock is None:
            if len(self._id_locks) > 10_000:
                for k in [k for k, v in self._id_locks.items() if not v.locked()]:
                    del self._id_locks[k]
            lock = self._id_locks[(namespace_id, key)] = asyncio.Lock()
        return lock

    # ------------------------------------------------------------------ start
    async def start(self, ns: Namespace, req: ws.StartActivityExecutionRequest) -> ws.StartActivityExecutionResponse:
        """Start the activity, or answer with the current run by the request id and the id policies."""
        key = activity_key(req.activity_id)
        shard = self.executions.shard_for(ns.id, key)
        async with self._id_lock(ns.id, key):
            current_id = await self.executions.current_run_id(ns.id, key)
            if current_id is not None:
                async with self.executions.locked(ns.id, key, current_id) as (_, _, current):
                    if req.request_id and req.request_id in current.state.start_request_ids:
                        return _started(ns, req.activity_id, current_id, False)
                    if current.running:
                        if req.id_conflict_policy == Conflict.ACTIVITY_ID_CONFLICT_POLICY_USE_EXISTING:
                            return _started(ns, req.activity_id, current_id, False)
                        raise _already_started(current)
                    status = current.state.standalone_activity.status
                    if req.id_reuse_policy == Reuse.ACTIVITY_ID_REUSE_POLICY_REJECT_DUPLICATE or (
                        req.id_reuse_policy == Reuse.ACTIVITY_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
                        and status not in FAILED_STATUSES
                    ):
                        raise _already_started(current)
            now = time.time_ns()
            run_id = ids.new_run_id()
            ms = MutableState(
                ExecutionState(
                    namespace_id=ns.id,
                    workflow_id=key,
                    run_id=run_id,
                    next_event_id=1,
                    start_request_id=req.request_id,
                ),
                now,
            )
            self.executions.prepare(ms, now)
            _schedule(ms, req)
            async with self.executions.creating(shard, ms) as change:
                change.current.append(CurrentWrite(ns.id, key, run_id, RUNNING, req.request_id, current_id))
                try:
                    await change.commit()
                except ConditionFailed as err:
                    raise AlreadyExists(ALREADY_STARTED) from err
            return _started(ns, req.activity_id, run_id, True)

    # ------------------------------------------------------------------ reads
    async def describe(
        self, ns: Namespace, req: ws.DescribeActivityExecutionRequest, timeout: float
    ) -> ws.DescribeActivityExecutionResponse:
        """The activity's info; with a long-poll token, once its state has moved past the token's (or at the
        deadline, as it is then)."""
        seen = _token_transitions(req.long_poll_token)

        def ready(ms: MutableState) -> bool:
            return seen is None or ms.state.standalone_activity.state_transition_count != seen or not ms.running

        ms = await self._wait(ns, req.activity_id, req.run_id, ready, timeout if seen is not None else 0.0)
        s = ms.state
        info = execution_info(ms)
        if not req.include_heartbeat_details:  # only on request, as on the reference
            info.ClearField("heartbeat_details")
        if not req.include_last_failure:
            info.ClearField("last_failure")
        resp = ws.DescribeActivityExecutionResponse(run_id=s.run_id, info=info)
        ai = s.activities[KEY]
        if req.include_input and ai.scheduled.HasField("input"):
            resp.input.CopyFrom(ai.scheduled.input)
        if req.include_outcome and not ms.running:
            resp.outcome.CopyFrom(outcome(s.standalone_activity))
        resp.long_poll_token = _encode_token(s.standalone_activity.state_transition_count)
        return resp

    async def poll(
        self, ns: Namespace, req: ws.PollActivityExecutionRequest, timeout: float
    ) -> ws.PollActivityExecutionResponse:
        """The outcome once the activity has closed; empty at the deadline (the caller polls again)."""
        ms = await self._wait(ns, req.activity_id, req.run_id, lambda m: not m.running, timeout)
        resp = ws.PollActivityExecutionResponse(run_id=ms.state.run_id)
        if not ms.running:
            resp.outcome.CopyFrom(outcome(ms.state.standalone_activity))
        return resp

    async def _wait(
        self, ns: Namespace, activity_id: str, run_id: str, ready: Callable[[MutableState], bool], timeout: float
    ) -> MutableState:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        key = activity_key(activity_id)
        while True:
            try:
                async with self.executions.locked(ns.id, key, run_id) as (_, entry, ms):
                    if not ms.is_standalone_activity:
                        raise not_found(activity_id)
                    remaining = deadline - loop.time()
                    if ready(ms) or remaining <= 0:
                        return ms
                    run_id = ms.state.run_id  # wait for this run, not whichever becomes current
                    waiter = add_waiter(entry)
            except WorkflowNotFound:
                raise not_found(activity_id) from None
            await wait_change(entry, waiter, remaining)

    # ------------------------------------------------------------------ cancel, terminate, delete
    async def request_cancel(self, ns: Namespace, req: ws.RequestCancelActivityExecutionRequest) -> None:
        """A scheduled (or backing off) activity is canceled at once; a started one is asked to stop: its worker
        learns it from its next heartbeat and reports the cancellation."""
        async with self._update(ns, req.activity_id, req.run_id) as change:
            ms = change.ms
            sa = ms.state.standalone_activity
            ai = ms.state.activities[KEY]
            if req.request_id and req.request_id == sa.cancel_request_id:
                return  # the same request again
            if not ms.running:
                raise FailedPrecondition(f"activity is in terminal state {STATUS_NAMES.get(sa.status, '')}")
            if ai.cancel_requested:
                raise FailedPrecondition(f"cancellation already requested with request ID {sa.cancel_request_id}")
            sa.cancel_request_id = req.request_id
            sa.canceled_reason = req.reason
            sa.cancel_identity = req.identity
            if ai.started:
                ai.cancel_requested = True
                ms.standalone_step()
            else:
                details = common.Payloads(payloads=[_json(req.reason)]) if req.reason else None
                ms.add_activity_task_canceled(ai, details, req.identity)
            await change.commit()

    async def terminate(self, ns: Namespace, req: ws.TerminateActivityExecutionRequest) -> None:
        async with self._update(ns, req.activity_id, req.run_id) as change:
            ms = change.ms
            sa = ms.state.standalone_activity
            if req.request_id and req.request_id == sa.terminate_request_id:
                return
            if not ms.running:
                raise FailedPrecondition(f"invalid transition from {STATUS_NAMES.get(sa.status, '')}")
            sa.terminate_request_id = req.request_id
            failure = failure_pb.Failure(message=req.reason)
            failure.terminated_failure_info.SetInParent()
            failure.terminated_failure_info.identity = req.identity
            ms.close_standalone(ms.state.activities[KEY], Status.ACTIVITY_EXECUTION_STATUS_TERMINATED, failure=failure)
            await change.commit()

    async def delete(self, ns: Namespace, req: ws.DeleteActivityExecutionRequest) -> None:
        """Remove the activity (terminating it first if it runs), with its visibility row."""
        async with self._update(ns, req.activity_id, req.run_id) as change:
            ms = change.ms
            if ms.running:
                ms.retention_ns = 0
                failure = failure_pb.Failure(message="Delete activity execution")
                failure.terminated_failure_info.SetInParent()
                ms.close_standalone(
                    ms.state.activities[KEY], Status.ACTIVITY_EXECUTION_STATUS_TERMINATED, failure=failure
                )
                await change.commit()
            await change.shard.delete(change.entry)

    @asynccontextmanager
    async def _update(self, ns: Namespace, activity_id: str, run_id: str) -> AsyncIterator[Change]:
        """`Executions.update` of a standalone activity, with the reference's NotFound when there is none."""
        entered = False
        try:
            async with self.executions.update(ns.id, activity_key(activity_id), run_id) as change:
                entered = True
                if not change.ms.is_standalone_activity:
                    raise not_found(activity_id)
                yield change
        except WorkflowNotFound:
            if entered:
                raise
            raise not_found(activity_id) from None


# ---------------------------------------------------------------------- building the state
def _schedule(ms: MutableState, req: ws.StartActivityExecutionRequest) -> None:
    """The new activity's state and its first tasks: dispatch now, or after the start delay."""
    s = ms.state
    now = ms.now
    sa = StandaloneActivity(activity_id=req.activity_id, identity=req.identity, state_transition_count=1)
    delay = duration_ns(req.start_delay)
    if delay > 0:
        sa.start_delay.CopyFrom(req.start_delay)
    s.standalone_activity.CopyFrom(sa)
    s.status = RUNNING
    s.start_time.CopyFrom(timestamp(now))
    s.execution_time.CopyFrom(timestamp(now + delay))
    s.start_request_ids.append(req.request_id)
    if req.HasField("search_attributes"):
        s.search_attributes.CopyFrom(req.search_attributes)
    if req.HasField("user_metadata"):
        s.user_metadata.CopyFrom(req.user_metadata)
    attrs = history.ActivityTaskScheduledEventAttributes(
        activity_id=req.activity_id,
        activity_type=req.activity_type,
        header=req.header,
        schedule_to_close_timeout=req.schedule_to_close_timeout,
        schedule_to_start_timeout=req.schedule_to_start_timeout,
        start_to_close_timeout=req.start_to_close_timeout,
        heartbeat_timeout=req.heartbeat_timeout,
        retry_policy=req.retry_policy,
    )
    attrs.task_queue.CopyFrom(req.task_queue)
    if not attrs.task_queue.kind:
        attrs.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    if req.HasField("input"):
        attrs.input.CopyFrom(req.input)
    if req.HasField("priority"):
        attrs.priority.CopyFrom(req.priority)
    ai = s.activities[KEY]
    ai.CopyFrom(
        ActivityInfo(
            scheduled_event_id=KEY,
            scheduled=attrs,
            attempt=1,
            version=s.version,
            has_retry_policy=True,
        )
    )
    ai.scheduled_time.CopyFrom(timestamp(now))
    ai.current_attempt_scheduled_time.CopyFrom(timestamp(now + delay))
    s2c = duration_ns(attrs.schedule_to_close_timeout)
    if s2c > 0:
        ai.expiration_time.CopyFrom(timestamp(now + delay + s2c))
    ms.visibility_dirty = True
    if delay > 0:
        # the first attempt waits out the delay as a retry's backoff would (the activity retry timer dispatches it)
        ai.next_attempt_schedule_time.CopyFrom(timestamp(now + delay))
        ms.new_tasks.extend(tg.activity_retry_timer(s, ai))
    else:
        ms.new_tasks.extend(tg.activity_dispatch(s, ai, now))
    ms.new_tasks.extend(tg.activity_schedule_to_close(s, ai))


def normalize_start(req: ws.StartActivityExecutionRequest) -> None:
    """Check the request's options and fill their defaults in place, with the reference's messages."""
    if not req.activity_id:
        raise InvalidArgument("activityId is not set")
    if not req.activity_type.name:
        raise InvalidArgument("activityType is not set")
    if not req.HasField("task_queue"):
        raise InvalidArgument("taskQueue is not set")
    if not req.task_queue.name:
        raise InvalidArgument("missing task queue name")
    if req.id_conflict_policy not in (
        Conflict.ACTIVITY_ID_CONFLICT_POLICY_UNSPECIFIED,
        Conflict.ACTIVITY_ID_CONFLICT_POLICY_FAIL,
        Conflict.ACTIVITY_ID_CONFLICT_POLICY_USE_EXISTING,
    ):
        raise InvalidArgument(f"unsupported ID conflict policy: {int(req.id_conflict_policy)}")
    if req.id_reuse_policy not in Reuse.values():
        raise InvalidArgument(f"unsupported ID reuse policy: {int(req.id_reuse_policy)}")
    for name, value in (
        ("ScheduleToCloseTimeout", req.schedule_to_close_timeout),
        ("ScheduleToStartTimeout", req.schedule_to_start_timeout),
        ("StartToCloseTimeout", req.start_to_close_timeout),
        ("HeartbeatTimeout", req.heartbeat_timeout),
    ):
        if duration_ns(value) < 0:
            raise InvalidArgument(f"invalid {name}: negative duration")
    if duration_ns(req.start_delay) < 0:
        raise InvalidArgument("invalid StartDelay: negative duration")
    s2c = duration_ns(req.schedule_to_close_timeout)
    s2s = duration_ns(req.schedule_to_start_timeout)
    stc = duration_ns(req.start_to_close_timeout)
    hb = duration_ns(req.heartbeat_timeout)
    # the rules of an activity a workflow schedules, with no run timeout to bound them
    if s2c > 0:
        s2s = min(s2s, s2c) if s2s > 0 else s2c
        stc = min(stc, s2c) if stc > 0 else s2c
    elif stc <= 0:
        raise InvalidArgument(
            "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
            f"ActivityId={req.activity_id} ActivityType={req.activity_type.name}"
        )
    hb = min(hb, stc)
    req.schedule_to_close_timeout.CopyFrom(duration(s2c))
    req.schedule_to_start_timeout.CopyFrom(duration(s2s))
    req.start_to_close_timeout.CopyFrom(duration(stc))
    req.heartbeat_timeout.CopyFrom(duration(hb))
    normalize_retry_policy(req.retry_policy)
    if req.id_conflict_policy == Conflict.ACTIVITY_ID_CONFLICT_POLICY_UNSPECIFIED:
        req.id_conflict_policy = Conflict.ACTIVITY_ID_CONFLICT_POLICY_FAIL
    if req.id_reuse_policy == Reuse.ACTIVITY_ID_REUSE_POLICY_UNSPECIFIED:
        req.id_reuse_policy = Reuse.ACTIVITY_ID_REUSE_POLICY_ALLOW_DUPLICATE


# ---------------------------------------------------------------------- answers
def execution_info(ms: MutableState) -> activity_pb.ActivityExecutionInfo:
    """DescribeActivityExecution's info, field by field as the reference fills it."""
    s = ms.state
    sa = s.standalone_activity
    ai = s.activities[KEY]
    a = ai.scheduled
    info = activity_pb.ActivityExecutionInfo(
        activity_id=sa.activity_id,
        run_id=s.run_id,
        activity_type=a.activity_type,
        status=sa.status if not ms.running else Status.ACTIVITY_EXECUTION_STATUS_RUNNING,  # type: ignore[arg-type]
        task_queue=a.task_queue.name,
        schedule_to_close_timeout=a.schedule_to_close_timeout,
        schedule_to_start_timeout=a.schedule_to_start_timeout,
        start_to_close_timeout=a.start_to_close_timeout,
        heartbeat_timeout=a.heartbeat_timeout,
        retry_policy=a.retry_policy,
        attempt=ai.attempt,
        state_transition_count=sa.state_transition_count,
        state_size_bytes=s.ByteSize(),
        search_attributes=s.search_attributes,
        last_worker_identity=ai.last_worker_identity,
        canceled_reason=sa.canceled_reason,
        total_heartbeat_count=sa.total_heartbeat_count,
        sdk_name=sa.sdk_name,
        sdk_version=sa.sdk_version,
    )
    if a.header.fields:
        info.header.CopyFrom(a.header)
    info.schedule_time.CopyFrom(ai.scheduled_time)
    info.execution_time.CopyFrom(s.execution_time)
    _copy_set(info, a, "priority")
    _copy_set(info, s, "user_metadata")
    _copy_set(info, sa, "start_delay", "last_started_time", "last_attempt_complete_time")
    _copy_set(info, ai, "expiration_time", "heartbeat_details", "last_heartbeat_time", "last_failure")
    if ms.running:
        info.run_state = _run_state(ai)  # type: ignore[assignment]
        if ai.HasField("next_attempt_schedule_time"):  # a retry's backoff, or the start delay
            info.next_attempt_schedule_time.CopyFrom(ai.next_attempt_schedule_time)
            if ai.attempt > 1 and sa.HasField("last_attempt_complete_time"):
                interval = ts_ns(ai.next_attempt_schedule_time) - ts_ns(sa.last_attempt_complete_time)
                info.current_retry_interval.CopyFrom(duration(interval))
    else:
        info.close_time.CopyFrom(s.close_time)
        info.execution_duration.CopyFrom(duration(max(ts_ns(s.close_time) - ts_ns(ai.scheduled_time), 0)))
    return info


def _copy_set(dst: Message, src: Message, *names: str) -> None:
    """Copy each named message field that is set in `src` to the field of the same name in `dst` (unset ones stay
    unset, as the reference leaves them)."""
    for name in names:
        if src.HasField(name):
            getattr(dst, name).CopyFrom(getattr(src, name))


def _run_state(ai: ActivityInfo) -> int:
    if ai.cancel_requested:
        return PendingActivityState.PENDING_ACTIVITY_STATE_CANCEL_REQUESTED
    if ai.started:
        return PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    return PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED


def outcome(sa: StandaloneActivity) -> activity_pb.ActivityExecutionOutcome:
    out = activity_pb.ActivityExecutionOutcome()
    if sa.status == Status.ACTIVITY_EXECUTION_STATUS_COMPLETED:
        out.result.CopyFrom(sa.result)
    else:
        out.failure.CopyFrom(sa.failure)
        out.retry_state = sa.retry_state  # type: ignore[assignment]
    return out


def _started(ns: Namespace, activity_id: str, run_id: str, started: bool) -> ws.StartActivityExecutionResponse:
    resp = ws.StartActivityExecutionResponse(run_id=run_id, started=started)
    link = resp.link.activity
    link.namespace = ns.name
    link.activity_id = activity_id
    link.run_id = run_id
    return resp


def _already_started(current: MutableState) -> AlreadyExists:
    s = current.state
    err = AlreadyExists(ALREADY_STARTED)
    err.details = errordetails.ActivityExecutionAlreadyStartedFailure(
        start_request_id=s.start_request_id, run_id=s.run_id
    )
    return err


def _json(text: str) -> common.Payload:
    return common.Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def _encode_token(transitions: int) -> bytes:
    return b"sa1:%d" % transitions


def _token_transitions(token: bytes) -> int | None:
    if not token:
        return None
    try:
        prefix, count = token.split(b":", 1)
        if prefix != b"sa1":
            raise ValueError(token)
        return int(count)
    except ValueError:
        raise InvalidArgument("invalid long poll token") from None
