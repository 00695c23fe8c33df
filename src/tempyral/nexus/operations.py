"""A caller's Nexus operations, the history side of outbound Nexus calls: recording what the start
and cancel requests came to, the timers of retries and timeouts, and completions that arrive by
callback.

Every entry point locks the caller's run and checks that the operation is still in the state
the outcome belongs to, so a late, repeated or stale outcome changes nothing: each operation
completes once, however often its callback is delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import NexusOperationCancellationState, PendingNexusOperationState, TimeoutType
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from tempyral.common.errors import NotFound
from tempyral.config import NexusLimits
from tempyral.history import events as ev
from tempyral.history.executions import Executions
from tempyral.history.mutable_state import MutableState
from tempyral.nexus import outcomes
from tempyral.nexus.machinery import backoff_s
from tempyral.nexus.outcomes import Kind, Outcome
from tempyral.proto.internal_pb2 import NexusCallbackToken, NexusOperationInfo, Task, TaskType

log = logging.getLogger(__name__)
State = PendingNexusOperationState
CancelState = NexusOperationCancellationState
SCHEDULED = State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
STARTED = State.PENDING_NEXUS_OPERATION_STATE_STARTED
BLOCKED = State.PENDING_NEXUS_OPERATION_STATE_BLOCKED
NEXUS_TIMERS = frozenset(
    {
        TaskType.TASK_TYPE_NEXUS_BACKOFF,
        TaskType.TASK_TYPE_NEXUS_TIMEOUT,
        TaskType.TASK_TYPE_NEXUS_CANCEL_BACKOFF,
    }
)


class OperationNotFound(NotFound):
    pass


# NexusOperations.complete, or a stand-in that passes the completion to the node owning the caller's shard
# (nodes/routed_ops.py): (token, operation_token, start_links, start_time_ns, result, failure, canceled).
CompleteOperation = Callable[
    [
        NexusCallbackToken,
        str,
        list[common.Link],
        int,
        common.Payload | None,
        failure_pb.Failure | None,
        bool,
    ],
    Awaitable[None],
]


class NexusOperations:
    def __init__(self, executions: Executions, limits: NexusLimits) -> None:
        self.executions = executions
        self.limits = limits
        # Completions whose token names a standalone operation go here (nexus/standalone.py, set by the server).
        self.standalone_complete: CompleteOperation | None = None

    def timer_handlers(self) -> dict[int, Callable[[MutableState, Task], bool]]:
        """The timer tasks of Nexus operations (see TaskExecutor.timer_handlers)."""
        return {task_type: self.on_timer for task_type in NEXUS_TIMERS}

    # ------------------------------------------------------------------ start requests
    async def record_start(self, task: Task, outcome: Outcome) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = start_due(ms, task)
            if info is None:
                return  # settled meanwhile (callback, timeout, cancel) or a stale task
            self._apply_start(ms, info, outcome)
            await change.commit(schedule_workflow_task=bool(ms.new_events))

    def _apply_start(self, ms: MutableState, info: NexusOperationInfo, outcome: Outcome) -> None:
        sid = info.scheduled_event_id
        if outcome.kind == Kind.SUCCEEDED:
            ms.add_nexus_completed(sid, outcome.result, outcome.links)
        elif outcome.kind == Kind.STARTED:
            ms.add_nexus_started(sid, outcome.token, outcome.links)
        elif outcome.kind in (Kind.FAILED, Kind.CANCELED):
            assert outcome.failure is not None
            _close_unsuccessfully(ms, info, outcome.failure, canceled=outcome.kind == Kind.CANCELED)
        else:
            assert outcome.failure is not None
            retry_start(ms, info, outcome.failure, self.limits)

    async def record_blocked(self, task: Task, reason: str, delay_s: float) -> None:
        """The request was held back (circuit breaker, rate limit): the same attempt goes later."""
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = start_due(ms, task)
            if info is None:
                return
            ms.nexus_blocked(info, reason, ms.now + int(delay_s * 1e9))
            await change.commit()

    async def record_timeout(self, task: Task, timeout_type: int) -> None:
        """No time left for another request before the operation's timeout."""
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = start_due(ms, task)
            if info is None:
                return
            self._time_out(ms, info, timeout_type)
            await change.commit(schedule_workflow_task=True)

    @staticmethod
    def _time_out(ms: MutableState, info: NexusOperationInfo, timeout_type: int) -> None:
        failure = outcomes.operation_failure(info, outcomes.timeout_failure(timeout_type))
        ms.add_nexus_closed_unsuccessfully(ev.NEXUS_TIMED_OUT, info.scheduled_event_id, failure)

    # ------------------------------------------------------------------ cancel requests
    async def record_cancel(self, task: Task, outcome: Outcome) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = ms.state.nexus_operations.get(task.event_id)
            if not ms.running or info is None or not cancel_due(info, task):
                return
            if outcome.kind == Kind.SUCCEEDED:
                ms.add_nexus_cancel_request_result(info.scheduled_event_id)
            elif outcome.kind == Kind.RETRY:
                assert outcome.failure is not None
                retry_cancel(ms, info, outcome.failure, self.limits)
            else:
                assert outcome.failure is not None
                ms.add_nexus_cancel_request_result(info.scheduled_event_id, outcome.failure)
            await change.commit(schedule_workflow_task=bool(ms.new_events))

    # ------------------------------------------------------------------ timers
    def on_timer(self, ms: MutableState, task: Task) -> bool:
        return apply_timer(ms, task, self._time_out)

    # ------------------------------------------------------------------ completions by callback
    async def complete(
        self,
        token: NexusCallbackToken,
        operation_token: str,
        start_links: list[common.Link],
        start_time_ns: int,
        result: common.Payload | None,
        failure: failure_pb.Failure | None,
        canceled: bool,
    ) -> None:
        """The handler's operation closed. Raises OperationNotFound if the caller is gone or the
        operation is already settled (a repeated delivery).

        A reset replaces the caller's run, and with it the run the token names: the operation is
        then looked up, by its request id, in the workflow's current run."""
        if token.standalone:
            if self.standalone_complete is None:
                raise OperationNotFound("operation not found")
            complete = self.standalone_complete
            await complete(token, operation_token, start_links, start_time_ns, result, failure, canceled)
            return
        for run_id in (token.run_id, ""):
            try:
                async with self.executions.update(token.namespace_id, token.workflow_id, run_id) as change:
                    ms = change.ms
                    info = ms.state.nexus_operations.get(token.scheduled_event_id)
                    if not ms.running or info is None or info.request_id != token.request_id:
                        continue
                    sid = info.scheduled_event_id
                    if info.state != STARTED:
                        # the completion overtook the start response: record the start first
                        ms.add_nexus_started(sid, operation_token, start_links, event_time=start_time_ns)
                    if failure is None:
                        ms.add_nexus_completed(sid, result, [])
                    else:
                        _close_unsuccessfully(ms, info, failure, canceled)
                    await change.commit(schedule_workflow_task=True)
                    return
            except NotFound:
                continue
        raise OperationNotFound("operation not found")


def apply_timer(
    ms: MutableState, task: Task, time_out: Callable[[MutableState, NexusOperationInfo, int], None]
) -> bool:
    """A retry, cancel-retry or timeout timer of an operation, for both kinds of caller (a workflow's operations
    and standalone ones): whether it was still due, and so changed the operation. `time_out` closes the
    operation the caller's way."""
    info = ms.state.nexus_operations.get(task.event_id)
    if info is None:
        return False
    if task.type == TaskType.TASK_TYPE_NEXUS_BACKOFF:
        if info.state not in (State.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF, BLOCKED) or info.attempt != task.attempt:
            return False
        ms.nexus_rescheduled(info)
        return True
    if task.type == TaskType.TASK_TYPE_NEXUS_CANCEL_BACKOFF:
        c = info.cancellation
        if c.state != CancelState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF or c.attempt != task.attempt:
            return False
        ms.nexus_cancel_rescheduled(info)
        return True
    if task.type == TaskType.TASK_TYPE_NEXUS_TIMEOUT:
        if task.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and info.state == STARTED:
            return False
        time_out(ms, info, task.timeout_type)
        return True
    return False


def retry_start(ms: MutableState, info: NexusOperationInfo, failure: failure_pb.Failure, limits: NexusLimits) -> None:
    """A start request failed in a way worth retrying: the next attempt goes after its backoff."""
    info.attempt += 1
    ms.nexus_attempt_failed(info, failure, ms.now + int(backoff_s(limits, info.attempt) * 1e9))


def retry_cancel(ms: MutableState, info: NexusOperationInfo, failure: failure_pb.Failure, limits: NexusLimits) -> None:
    """A cancel request failed in a way worth retrying: the next attempt goes after its backoff."""
    delay = backoff_s(limits, info.cancellation.attempt + 1)
    ms.nexus_cancel_attempt_failed(info, failure, ms.now + int(delay * 1e9))


def start_due(ms: MutableState, task: Task) -> NexusOperationInfo | None:
    """The operation a start-request task belongs to, if it still waits for that very attempt."""
    info = ms.state.nexus_operations.get(task.event_id)
    if not ms.running or info is None or info.state != SCHEDULED or info.attempt != task.attempt:
        return None
    return info


def _close_unsuccessfully(
    ms: MutableState, info: NexusOperationInfo, cause: failure_pb.Failure, canceled: bool
) -> None:
    """Failed or canceled, with `cause` inside the reference's operation failure."""
    if canceled and not cause.HasField("canceled_failure_info"):
        cause = _as_canceled(cause)
    event_type = ev.NEXUS_CANCELED if canceled else ev.NEXUS_FAILED
    ms.add_nexus_closed_unsuccessfully(event_type, info.scheduled_event_id, outcomes.operation_failure(info, cause))


def cancel_due(info: NexusOperationInfo, task: Task) -> bool:
    c = info.cancellation
    return (
        info.state == STARTED
        and c.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
        and c.attempt + 1 == task.attempt
    )


def _as_canceled(failure: failure_pb.Failure) -> failure_pb.Failure:
    out = failure_pb.Failure(message=failure.message, stack_trace=failure.stack_trace)
    out.canceled_failure_info.SetInParent()
    if failure.HasField("cause"):
        out.cause.CopyFrom(failure.cause)
    return out
