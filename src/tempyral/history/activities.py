"""Activity tasks: polls, completion, failure with retries, cancellation, heartbeats and timeouts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NamespaceNotActive,
    NotFound,
    ShardNotHere,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.common.limits import exceeds_blob_limit, payloads_size
from tempyral.common.retry import next_retry
from tempyral.common.standalone import STATUS_NAMES, activity_id_of, activity_key, is_activity_key, not_found_message
from tempyral.common.tokens import decode_task_token, encode_task_token
from tempyral.history.executions import Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.outbox import Outbox
from tempyral.history.remote_starts import RemoteStarts
from tempyral.history.task_generator import task_is_current
from tempyral.matching.service import ACTIVITY, Matching, QueueKey
from tempyral.namespace.registry import Namespace
from tempyral.proto.internal_pb2 import ActivityInfo, Task, TaskToken, TaskType

log = logging.getLogger(__name__)
TIMEOUT_NAMES: dict[int, str] = {
    TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE: "StartToClose",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START: "ScheduleToStart",
    TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE: "ScheduleToClose",
    TimeoutType.TIMEOUT_TYPE_HEARTBEAT: "Heartbeat",
}
ACTIVITY_NOT_FOUND = "invalid activityID or activity already timed out or invoking workflow is completed"
NO_TIME_FOR_RETRY = "Not enough time to schedule next retry before activity ScheduleToClose timeout, giving up retrying"


def activity_task_response(ns: Namespace, ms: MutableState, ai: ActivityInfo) -> ws.PollActivityTaskQueueResponse:
    a = ai.scheduled
    s = ms.state
    token = TaskToken(
        namespace_id=s.namespace_id,
        workflow_id=s.workflow_id,
        run_id=s.run_id,
        scheduled_event_id=ai.scheduled_event_id,
        attempt=ai.attempt,
        activity_id=a.activity_id,
        activity_type=a.activity_type.name,
    )
    resp = ws.PollActivityTaskQueueResponse(
        task_token=encode_task_token(token),
        workflow_namespace=ns.name,
        activity_type=a.activity_type,
        activity_id=a.activity_id,
        header=a.header,
        input=a.input,
        scheduled_time=ai.scheduled_time,
        current_attempt_scheduled_time=ai.current_attempt_scheduled_time,
        started_time=ai.started_time,
        attempt=ai.attempt,
        schedule_to_close_timeout=a.schedule_to_close_timeout,
        start_to_close_timeout=a.start_to_close_timeout,
        heartbeat_timeout=a.heartbeat_timeout,
        retry_policy=a.retry_policy,
        priority=a.priority,
    )
    if ms.is_standalone_activity:
        resp.activity_run_id = s.run_id  # no workflow: the reference names the activity's own run
    else:
        resp.workflow_type.CopyFrom(s.start.workflow_type)
        resp.workflow_execution.CopyFrom(common.WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id))
    if ai.HasField("heartbeat_details"):
        resp.heartbeat_details.CopyFrom(ai.heartbeat_details)
    return resp


def _server_failure(message: str) -> failure_pb.Failure:
    failure = failure_pb.Failure(message=message)
    failure.server_failure_info.non_retryable = True
    return failure


def timeout_failure(timeout_type: int, message: str | None = None) -> failure_pb.Failure:
    # Timeouts are the server's failures: the reference marks them with source "Server".
    f = failure_pb.Failure(message=message or f"activity {TIMEOUT_NAMES[timeout_type]} timeout", source="Server")
    f.timeout_failure_info.timeout_type = timeout_type  # type: ignore[assignment]
    return f


class ActivityHandler:
    def __init__(self, executions: Executions, matching: Matching, outbox: Outbox) -> None:
        self.executions = executions
        self.matching = matching
        self.outbox = outbox
        # With several nodes: tasks of workflows another node owns are started there (nodes/matching.py).
        self.remote: RemoteStarts | None = None

    def timer_handlers(self) -> dict[int, Callable[[MutableState, Task], bool]]:
        """The timer tasks this handler applies (see TaskExecutor.timer_handlers)."""
        return {
            TaskType.TASK_TYPE_ACTIVITY_TIMEOUT: self.on_timeout,
            TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER: self.on_retry_timer,
        }

    # ------------------------------------------------------------------ poll
    async def poll(
        self, ns: Namespace, req: ws.PollActivityTaskQueueRequest, timeout: float, sdk: tuple[str, str] = ("", "")
    ) -> ws.PollActivityTaskQueueResponse:
        """`sdk`: the poller's SDK name and version, which a standalone activity shows (as on the reference)."""
        key = QueueKey(ns.id, req.task_queue.name, ACTIVITY)
        self.matching.note_poller(key, req.identity, req.worker_version_capabilities.build_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return ws.PollActivityTaskQueueResponse()
            task = await self.matching.poll(key, remaining)
            if task is None:
                return ws.PollActivityTaskQueueResponse()
            if self.remote is not None and self.remote.elsewhere(task):
                resp = await asyncio.shield(self.remote.start_activity_task(task, req))
            else:
                resp = await asyncio.shield(self._record_started(ns, task, req.identity, sdk))
            if resp is not None:
                return resp

    async def _record_started(
        self, ns: Namespace, task: Task, identity: str, sdk: tuple[str, str] = ("", "")
    ) -> ws.PollActivityTaskQueueResponse | None:
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms = change.ms
                ai = ms.state.activities.get(task.event_id)
                if (
                    not ms.running
                    or ai is None
                    or ai.attempt != task.attempt
                    or ai.started
                    or not task_is_current(ms.state, task)
                ):
                    self.outbox.ack(task)
                    return None
                ms.start_activity(ai, ids.new_id(), identity)
                if ms.is_standalone_activity and sdk[0]:
                    ms.state.standalone_activity.sdk_name, ms.state.standalone_activity.sdk_version = sdk
                change.task_done(task)
                await change.commit()
                return activity_task_response(ns, ms, ai)
        except NotFound:
            self.outbox.ack(task)
            return None
        except NamespaceNotActive:
            self.executions.standby.park(task)  # failed over away: the new active dispatches it
            return None
        except ShardNotHere:
            return None  # the shard moved: its new owner dispatches the task again
        except Exception as err:
            self.outbox.failures.failure("could not start activity tasks", err)
            self.matching.add_front(QueueKey(task.namespace_id, task.task_queue.name, ACTIVITY), task)
            await asyncio.sleep(0.1)
            return None

    # ------------------------------------------------------------------ resolving the activity
    def _token(self, ns: Namespace, data: bytes) -> TaskToken:
        token = decode_task_token(data)
        if token.namespace_id != ns.id:
            raise InvalidArgument("Operation requested with a token from a different namespace.")
        return token

    @staticmethod
    def _by_token(ms: MutableState, token: TaskToken) -> ActivityInfo:
        if not ms.running:
            raise WorkflowCompleted()
        ai = ms.state.activities.get(token.scheduled_event_id)
        if ai is None or ai.attempt != token.attempt or not ai.started:
            raise NotFound(ACTIVITY_NOT_FOUND)
        return ai

    @staticmethod
    def _by_id(ms: MutableState, activity_id: str) -> ActivityInfo:
        if not ms.running:
            raise WorkflowCompleted()
        ai = ms.activity_by_id(activity_id)
        if ai is None:
            raise NotFound(
                f"cannot find pending activity with ActivityID {activity_id}, "
                "check workflow execution history for more details"
            )
        return ai

    async def _run(
        self, ns: Namespace, workflow_id: str, run_id: str, activity: TaskToken | str, action: str, req: object
    ) -> object:
        """Lock the run, find the activity (by token or id) and apply `action` to it."""
        standalone = is_activity_key(workflow_id)
        try:
            return await self._apply(ns, workflow_id, run_id, activity, action, req, standalone)
        except WorkflowNotFound:
            if standalone:
                raise NotFound(not_found_message(activity_id_of(workflow_id))) from None
            raise

    async def _apply(
        self,
        ns: Namespace,
        workflow_id: str,
        run_id: str,
        activity: TaskToken | str,
        action: str,
        req: object,
        standalone: bool,
    ) -> object:
        async with self.executions.update(ns.id, workflow_id, run_id) as change:
            ms = change.ms
            if standalone and not ms.running:
                # the reference's answers for a standalone activity that has closed: only a completion is told why
                if action != "_complete":
                    raise NotFound(not_found_message(activity_id_of(workflow_id)))
                status = STATUS_NAMES.get(ms.state.standalone_activity.status, "")
                raise FailedPrecondition(f"invalid transition from {status}")
            if isinstance(activity, TaskToken):
                ai = self._by_token(ms, activity)
            else:
                ai = self._by_id(ms, activity)
                if standalone and not ai.started and action != "_complete":
                    # as the reference: only a completion reaches a standalone activity no worker has started
                    raise NotFound(not_found_message(activity))
            result = getattr(self, action)(ms, ai, req)
            await change.commit(schedule_workflow_task=bool(ms.new_events))
            return result

    async def complete(self, ns: Namespace, req: ws.RespondActivityTaskCompletedRequest) -> None:
        token = self._token(ns, req.task_token)
        await self._run(ns, token.workflow_id, token.run_id, token, "_complete", req)

    async def complete_by_id(self, ns: Namespace, req: ws.RespondActivityTaskCompletedByIdRequest) -> None:
        await self._run(ns, *_by_id_key(req), req.activity_id, "_complete", req)

    async def fail(self, ns: Namespace, req: ws.RespondActivityTaskFailedRequest) -> None:
        token = self._token(ns, req.task_token)
        await self._run(ns, token.workflow_id, token.run_id, token, "_fail", req)

    async def fail_by_id(self, ns: Namespace, req: ws.RespondActivityTaskFailedByIdRequest) -> None:
        await self._run(ns, *_by_id_key(req), req.activity_id, "_fail", req)

    async def cancel(self, ns: Namespace, req: ws.RespondActivityTaskCanceledRequest) -> None:
        token = self._token(ns, req.task_token)
        await self._run(ns, token.workflow_id, token.run_id, token, "_cancel", req)

    async def cancel_by_id(self, ns: Namespace, req: ws.RespondActivityTaskCanceledByIdRequest) -> None:
        await self._run(ns, *_by_id_key(req), req.activity_id, "_cancel", req)

    async def heartbeat(self, ns: Namespace, req: ws.RecordActivityTaskHeartbeatRequest) -> bool:
        token = self._token(ns, req.task_token)
        return bool(await self._run(ns, token.workflow_id, token.run_id, token, "_heartbeat", req))

    async def heartbeat_by_id(self, ns: Namespace, req: ws.RecordActivityTaskHeartbeatByIdRequest) -> bool:
        return bool(await self._run(ns, *_by_id_key(req), req.activity_id, "_heartbeat", req))

    # ------------------------------------------------------------------ actions (run under the lock)
    def _complete(self, ms: MutableState, ai: ActivityInfo, req: ws.RespondActivityTaskCompletedRequest) -> None:
        _record_worker_version(ai, req)
        if exceeds_blob_limit(payloads_size(req.result)):
            # like the reference: the oversized result fails the activity instead of entering history
            self._apply_failure(ms, ai, _server_failure("Complete result exceeds size limit."), req.identity)
            return
        ms.add_activity_task_completed(ai, req.result if req.HasField("result") else None, req.identity)

    def _fail(self, ms: MutableState, ai: ActivityInfo, req: ws.RespondActivityTaskFailedRequest) -> None:
        _record_worker_version(ai, req)
        if req.HasField("last_heartbeat_details"):
            ai.heartbeat_details.CopyFrom(req.last_heartbeat_details)
        self._apply_failure(ms, ai, req.failure, req.identity)

    def _apply_failure(self, ms: MutableState, ai: ActivityInfo, failure: failure_pb.Failure, identity: str) -> None:
        if ai.cancel_requested:
            ms.add_activity_task_failed(ai, failure, RetryState.RETRY_STATE_CANCEL_REQUESTED, identity)
            return
        decision = next_retry(ai.scheduled.retry_policy, ai.attempt, failure, ms.now, ts_ns(ai.expiration_time))
        if decision.retry:
            ms.retry_activity(ai, failure, decision.backoff_ns)
        else:
            ms.add_activity_task_failed(ai, failure, decision.state, identity)

    def _cancel(self, ms: MutableState, ai: ActivityInfo, req: ws.RespondActivityTaskCanceledRequest) -> None:
        # The reference writes no build id when the worker reports a cancellation.
        ms.add_activity_task_canceled(ai, req.details if req.HasField("details") else None, req.identity)

    def _heartbeat(self, ms: MutableState, ai: ActivityInfo, req: ws.RecordActivityTaskHeartbeatRequest) -> bool:
        if exceeds_blob_limit(payloads_size(req.details)):
            # like the reference: the activity fails, and the worker is told to stop
            self._apply_failure(ms, ai, _server_failure("Heartbeat details exceed size limit."), req.identity)
            return True
        if req.HasField("details"):
            ai.heartbeat_details.CopyFrom(req.details)
        ai.last_heartbeat_time.CopyFrom(timestamp(ms.now))
        if ms.is_standalone_activity:
            ms.state.standalone_activity.total_heartbeat_count += 1
            ms.standalone_step()
        return ai.cancel_requested

    # ------------------------------------------------------------------ timers
    def on_timeout(self, ms: MutableState, task: Task) -> bool:
        """An activity timer fired. Returns whether the state changed."""
        ai = ms.state.activities.get(task.event_id)
        if ai is None:
            return False
        tt = task.timeout_type
        if tt == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
            pass  # spans every attempt
        elif ai.attempt != task.attempt:
            return False
        elif tt == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and ai.started:
            return False
        elif tt in (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_HEARTBEAT) and not ai.started:
            return False
        if tt == TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
            hb = duration_ns(ai.scheduled.heartbeat_timeout)
            last = max(ts_ns(ai.last_heartbeat_time), ts_ns(ai.started_time))
            if last + hb > ms.now:
                ms.schedule_heartbeat_timeout(ai)  # it heartbeated since: wait for the new deadline
                return True
        failure = timeout_failure(tt)
        if tt in (TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE):
            state = RetryState.RETRY_STATE_TIMEOUT
        elif ai.cancel_requested:
            state = RetryState.RETRY_STATE_CANCEL_REQUESTED
        else:
            decision = next_retry(ai.scheduled.retry_policy, ai.attempt, failure, ms.now, ts_ns(ai.expiration_time))
            if decision.retry:
                if ai.HasField("last_failure") and tt == TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
                    failure.cause.CopyFrom(ai.last_failure)
                ms.retry_activity(ai, failure, decision.backoff_ns)
                return True
            state = decision.state  # type: ignore[assignment]
            if state == RetryState.RETRY_STATE_TIMEOUT:
                failure = timeout_failure(TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, NO_TIME_FOR_RETRY)
        if ai.HasField("heartbeat_details"):
            failure.timeout_failure_info.last_heartbeat_details.CopyFrom(ai.heartbeat_details)
        if ai.HasField("last_failure") and not failure.HasField("cause"):
            failure.cause.CopyFrom(ai.last_failure)
        ms.add_activity_task_timed_out(ai, failure, state)
        return True

    def on_retry_timer(self, ms: MutableState, task: Task) -> bool:
        ai = ms.state.activities.get(task.event_id)
        if ai is None or ai.attempt != task.attempt or ai.started or not ai.HasField("next_attempt_schedule_time"):
            return False
        ms.dispatch_activity_retry(ai)
        return True


ByIdRequest = (
    ws.RespondActivityTaskCompletedByIdRequest
    | ws.RespondActivityTaskFailedByIdRequest
    | ws.RespondActivityTaskCanceledByIdRequest
    | ws.RecordActivityTaskHeartbeatByIdRequest
)


def _by_id_key(req: ByIdRequest) -> tuple[str, str]:
    """The run a by-id request names: a workflow's, or without a workflow id a standalone activity's."""
    if req.workflow_id:
        return req.workflow_id, req.run_id
    return activity_key(req.activity_id), req.run_id


def _record_worker_version(ai: ActivityInfo, req: object) -> None:
    """The build a worker reports when it completes or fails an activity goes on
    ActivityTaskStarted (written now), as on the reference; timeouts and cancellations get none."""
    stamp = getattr(req, "worker_version", None)
    if isinstance(stamp, common.WorkerVersionStamp) and stamp.build_id:
        ai.worker_version.CopyFrom(stamp)
