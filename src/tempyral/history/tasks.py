"""Executes outbox tasks. Each handler re-reads the execution and does nothing if the task is stale
(docs/DESIGN.md, invariant 4); a task's row is deleted in the transaction that acts on it, or, for a
stale task, in the next batch of acknowledgements."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    CancelExternalWorkflowExecutionFailedCause as CancelFailed,
)
from temporalio.api.enums.v1 import (
    ParentClosePolicy,
    RetryState,
    TimeoutType,
)
from temporalio.api.enums.v1 import (
    SignalExternalWorkflowExecutionFailedCause as SignalFailed,
)
from temporalio.api.enums.v1 import (
    StartChildWorkflowExecutionFailedCause as ChildStartFailed,
)
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy as ConflictPolicy
from temporalio.api.enums.v1 import WorkflowIdReusePolicy as ReusePolicy
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import cron, ids
from tempyral.common.clock import duration_ns, ts_ns
from tempyral.common.errors import NamespaceNotActive, NotFound, ShardNotHere, WorkflowAlreadyStarted
from tempyral.common.retry import next_retry
from tempyral.common.tasks import cancel_and_wait
from tempyral.history import events as ev
from tempyral.history import next_run
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.outbox import Outbox
from tempyral.history.queries import QueryRegistry
from tempyral.history.starts import ParentInfo, StartResult
from tempyral.history.task_generator import task_is_current
from tempyral.history.updates import UpdateHandler
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.internal_pb2 import ChildInfo, ExternalRequestInfo, Task, TaskCategory, TaskType

if TYPE_CHECKING:
    from tempyral.metrics.tasks import TaskMetrics

log = logging.getLogger(__name__)
TIMER = TaskCategory.TASK_CATEGORY_TIMER
CHILD_NAMESPACE_NOT_FOUND = ChildStartFailed.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
CHILD_ALREADY_EXISTS = ChildStartFailed.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS
SIGNAL_NAMESPACE_NOT_FOUND = SignalFailed.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
SIGNAL_TARGET_NOT_FOUND = (
    SignalFailed.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
)
CANCEL_NAMESPACE_NOT_FOUND = CancelFailed.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
CANCEL_TARGET_NOT_FOUND = (
    CancelFailed.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
)
TRANSFER_RETRY_FIRST_S = 0.2
TRANSFER_RETRY_MAX_S = 10.0


class WorkflowOps(Protocol):
    """The client-facing operations that transfer tasks perform on other workflows."""

    async def start_workflow(
        self, ns: Namespace, req: ws.StartWorkflowExecutionRequest, *, parent: ParentInfo | None = None
    ) -> StartResult: ...

    async def signal(
        self,
        ns: Namespace,
        req: ws.SignalWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        child_of: common.WorkflowExecution | None = None,
    ) -> None: ...

    async def request_cancel(
        self,
        ns: Namespace,
        req: ws.RequestCancelWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        external_initiated_event_id: int = 0,
        child_of: common.WorkflowExecution | None = None,
    ) -> None: ...

    async def terminate(self, ns: Namespace, req: ws.TerminateWorkflowExecutionRequest) -> None: ...

    async def schedule_first_task(self, namespace_id: str, workflow_id: str, run_id: str) -> None: ...

    async def record_child_closed(
        self,
        parent_namespace_id: str,
        parent: common.WorkflowExecution,
        initiated_event_id: int,
        first_execution_run_id: str,
        run_id: str,
        close: history.HistoryEvent,
    ) -> None: ...


# A timer task handled by another component (activities, Nexus operations): True if it changed the run.
TimerHandler = Callable[[MutableState, Task], bool]


class TaskExecutor:
    def __init__(
        self,
        executions: Executions,
        namespaces: NamespaceRegistry,
        outbox: Outbox,
        queries: QueryRegistry,
        workflows: WorkflowOps,
    ) -> None:
        self.executions = executions
        self.namespaces = namespaces
        self.outbox = outbox
        self.queries = queries
        self.workflows = workflows
        self.timer_handlers: dict[int, TimerHandler] = {}
        # Transfer tasks run outside history (Nexus requests, completion callbacks), registered by the server.
        self.outbound: dict[int, Callable[[Task], Awaitable[None]]] = {}
        self._running: set[asyncio.Task[None]] = set()
        # task_* metrics and workflow outcomes (metrics/tasks.py); set by the server.
        self.metrics: TaskMetrics | None = None

    def ack(self, task: Task) -> None:
        self.outbox.ack(task)

    async def stop(self) -> None:
        await cancel_and_wait(list(self._running))

    def submit_transfer(self, task: Task) -> None:
        """Run a transfer task in the background until it succeeds (it is idempotent)."""
        runner = asyncio.get_running_loop().create_task(self._run_transfer(task))
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)

    async def _run_transfer(self, task: Task) -> None:
        delay = TRANSFER_RETRY_FIRST_S
        started = time.perf_counter()
        while True:
            try:
                await self._measured_transfer(task)
                if self.metrics is not None:
                    self.metrics.done(task, started)
                return
            except NamespaceNotActive:
                self.executions.standby.park(task)  # failed over away: the new active does this work
                return
            except asyncio.CancelledError:
                raise
            except ShardNotHere:
                if not self.executions.shards[task.shard_id].owned:
                    return  # the task's shard moved: its new owner loaded the row and does this work
                await asyncio.sleep(delay)  # a workflow of a shard that is moving between other nodes
                delay = min(delay * 2, TRANSFER_RETRY_MAX_S)
            except Exception as err:
                self.outbox.failures.failure("transfer tasks failed; retrying with backoff", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, TRANSFER_RETRY_MAX_S)

    async def _measured_transfer(self, task: Task) -> None:
        if self.metrics is None:
            return await self._transfer(task)
        started = time.perf_counter()
        ok = False
        try:
            await self._transfer(task)
            ok = True
        finally:
            self.metrics.attempt(task, started, ok)

    async def _transfer(self, task: Task) -> None:
        if not await self._current(task):
            self.ack(task)  # written under a version this run has moved past
            return
        handler = {
            TaskType.TASK_TYPE_START_CHILD: self._start_child,
            TaskType.TASK_TYPE_SIGNAL_EXTERNAL: self._signal_external,
            TaskType.TASK_TYPE_CANCEL_EXTERNAL: self._cancel_external,
            TaskType.TASK_TYPE_CLOSE_EXECUTION: self._close_execution,
        }.get(task.type) or self.outbound.get(task.type)
        if handler is not None:
            await handler(task)
        self.ack(task)

    async def _current(self, task: Task) -> bool:
        """Whether the task still matches the version of what it serves (a gone run: let the handler see)."""
        try:
            async with self.executions.locked(task.namespace_id, task.workflow_id, task.run_id) as (_, _, ms):
                return task_is_current(ms.state, task)
        except NotFound:
            return True

    # ------------------------------------------------------------------ children
    async def _start_child(self, task: Task) -> None:
        """Create the child, record it as started in the parent, then give the child its first task.

        Each step checks whether it already happened, so a retried task repeats nothing.
        """
        try:
            async with self.executions.locked(task.namespace_id, task.workflow_id, task.run_id) as (_, _, parent):
                info = parent.state.children.get(task.event_id)
                if not parent.running or info is None:
                    return
                child = ChildInfo()
                child.CopyFrom(info)
                root = common.WorkflowExecution()
                root.CopyFrom(parent.state.start.root_workflow_execution)
                if not root.workflow_id:
                    root.workflow_id, root.run_id = parent.workflow_id, parent.run_id
                parent_namespace = self.namespaces.get_by_id(parent.namespace_id).name
        except NotFound:
            return
        init = child.initiated
        target = self.namespaces.find_by_id(init.namespace_id)
        run_id = child.started_run_id
        if not run_id:
            if target is None:
                await self._record_child_start_failed(
                    task, ChildStartFailed.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_NAMESPACE_NOT_FOUND
                )
                return
            parent_info = ParentInfo(
                parent_namespace, task.namespace_id, task.workflow_id, task.run_id, task.event_id, root
            )
            try:
                result = await self.workflows.start_workflow(target, _child_start_request(child), parent=parent_info)
            except WorkflowAlreadyStarted:
                await self._record_child_start_failed(task, CHILD_ALREADY_EXISTS)
                return
            run_id = result.run_id
            await self._record_child_started(task, run_id)
        if target is not None:
            await self.workflows.schedule_first_task(target.id, init.workflow_id, run_id)

    async def _record_child_started(self, task: Task, run_id: str) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = ms.state.children.get(task.event_id)
            if not ms.running or info is None or info.started_run_id:
                return
            ms.add_child_started(task.event_id, run_id)
            await change.commit(schedule_workflow_task=True)

    async def _record_child_start_failed(self, task: Task, cause: int) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = ms.state.children.get(task.event_id)
            if not ms.running or info is None or info.started_run_id:
                return
            ms.add_start_child_failed(task.event_id, cause)
            await change.commit(schedule_workflow_task=True)

    async def schedule_first_task(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        """Give a child its first workflow task (a no-op when it has one, or a start backoff gives it)."""
        try:
            async with self.executions.update(namespace_id, workflow_id, run_id) as change:
                ms = change.ms
                s = ms.state
                delayed = duration_ns(s.start.first_workflow_task_backoff) > 0  # its backoff timer does it
                never_scheduled = s.workflow_task.stamp == 0
                if ms.running and never_scheduled and not ms.wft_pending and not delayed:
                    await change.commit(schedule_workflow_task=True)
        except NotFound:
            return

    # ------------------------------------------------------------------ signals and cancels to other workflows
    async def _external(self, task: Task, target: str) -> tuple[ExternalRequestInfo, common.WorkflowExecution] | None:
        try:
            async with self.executions.locked(task.namespace_id, task.workflow_id, task.run_id) as (_, _, ms):
                info = getattr(ms.state, target).get(task.event_id)
                if not ms.running or info is None:
                    return None
                copy = ExternalRequestInfo()
                copy.CopyFrom(info)
                return copy, common.WorkflowExecution(workflow_id=ms.workflow_id, run_id=ms.run_id)
        except NotFound:
            return None

    async def _signal_external(self, task: Task) -> None:
        found = await self._external(task, "external_signals")
        if found is None:
            return
        info, source = found
        init = info.initiated.signal_external_workflow_execution_initiated_event_attributes
        target = self.namespaces.find(init.namespace)
        cause = 0
        if target is None:
            cause = SIGNAL_NAMESPACE_NOT_FOUND
        else:
            req = ws.SignalWorkflowExecutionRequest(
                namespace=target.name,
                workflow_execution=init.workflow_execution,
                signal_name=init.signal_name,
                header=init.header,
                request_id=info.request_id,
                identity="history-service",  # the reference's identity for server-made requests
            )
            if init.HasField("input"):
                req.input.CopyFrom(init.input)
            try:
                await self.workflows.signal(
                    target, req, external=source, child_of=source if init.child_workflow_only else None
                )
            except NotFound:
                cause = (
                    SignalFailed.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
                )
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            if not ms.running or task.event_id not in ms.state.external_signals:
                return
            ms.add_external_signal_result(task.event_id, cause)
            await change.commit(schedule_workflow_task=True)

    async def _cancel_external(self, task: Task) -> None:
        found = await self._external(task, "external_cancels")
        if found is None:
            return
        info, source = found
        init = info.initiated.request_cancel_external_workflow_execution_initiated_event_attributes
        target = self.namespaces.find(init.namespace)
        cause = 0
        if target is None:
            cause = CANCEL_NAMESPACE_NOT_FOUND
        else:
            req = ws.RequestCancelWorkflowExecutionRequest(
                namespace=target.name,
                workflow_execution=init.workflow_execution,
                request_id=info.request_id,
                reason=init.reason,
                identity="history-service",
            )
            try:
                await self.workflows.request_cancel(
                    target,
                    req,
                    external=source,
                    external_initiated_event_id=task.event_id,
                    child_of=source if init.child_workflow_only else None,
                )
            except NotFound:
                cause = (
                    CancelFailed.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
                )
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            if not ms.running or task.event_id not in ms.state.external_cancels:
                return
            ms.add_external_cancel_result(task.event_id, cause)
            await change.commit(schedule_workflow_task=True)

    # ------------------------------------------------------------------ closed runs
    async def _close_execution(self, task: Task) -> None:
        """A run closed: tell its parent, and apply its children's parent-close policies."""
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                s = change.ms.state
                close_events = await change.events(s.completion_event_id, s.completion_event_id + 1)
                start = history.WorkflowExecutionStartedEventAttributes()
                start.CopyFrom(s.start)
                children = [ChildInfo().FromString(c.SerializeToString()) for c in s.children.values()]
        except NotFound:
            return
        close = close_events[0] if close_events else None
        if close is not None and start.HasField("parent_workflow_execution") and not _continues(close):
            await self._notify_parent(start, task.run_id, close)
        parent = common.WorkflowExecution(workflow_id=task.workflow_id, run_id=task.run_id)
        for child in children:
            await self._apply_parent_close_policy(child, parent)

    async def _notify_parent(
        self, start: history.WorkflowExecutionStartedEventAttributes, run_id: str, close: history.HistoryEvent
    ) -> None:
        await self.workflows.record_child_closed(
            start.parent_workflow_namespace_id,
            start.parent_workflow_execution,
            start.parent_initiated_event_id,
            start.first_execution_run_id,
            run_id,
            close,
        )

    async def record_child_closed(
        self,
        parent_namespace_id: str,
        parent: common.WorkflowExecution,
        initiated_event_id: int,
        first_execution_run_id: str,
        run_id: str,
        close: history.HistoryEvent,
    ) -> None:
        """Record in the parent that its child closed (nothing if the parent is gone or closed)."""
        try:
            async with self.executions.update(parent_namespace_id, parent.workflow_id, parent.run_id) as change:
                ms = change.ms
                info = ms.state.children.get(initiated_event_id)
                if not ms.running or info is None:
                    return
                if not info.started_run_id:
                    ms.add_child_started(initiated_event_id, first_execution_run_id)
                ms.add_child_closed(initiated_event_id, run_id, close)
                await change.commit(schedule_workflow_task=True)
        except NotFound:
            return

    async def _apply_parent_close_policy(self, child: ChildInfo, parent: common.WorkflowExecution) -> None:
        init = child.initiated
        target = self.namespaces.find_by_id(init.namespace_id)
        if target is None or not child.started_run_id:
            return
        execution = common.WorkflowExecution(workflow_id=init.workflow_id)
        try:
            if init.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE:
                await self.workflows.terminate(
                    target,
                    ws.TerminateWorkflowExecutionRequest(
                        namespace=target.name,
                        workflow_execution=execution,
                        reason="by parent close policy",
                        identity="history-service",
                        first_execution_run_id=child.started_run_id,
                    ),
                )
            elif init.parent_close_policy == ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL:
                await self.workflows.request_cancel(
                    target,
                    ws.RequestCancelWorkflowExecutionRequest(
                        namespace=target.name,
                        workflow_execution=execution,
                        identity="history-service",
                        first_execution_run_id=child.started_run_id,
                    ),
                    external=parent,
                )
        except NotFound:
            return

    # ------------------------------------------------------------------ timers
    async def execute_timer(self, task: Task) -> None:
        if self.metrics is None:
            return await self._execute_timer(task)
        started = time.perf_counter()
        ok = False
        try:
            await self._execute_timer(task)
            ok = True
        finally:
            self.metrics.attempt(task, started, ok)
            if ok:
                self.metrics.done(task, started)

    async def _execute_timer(self, task: Task) -> None:
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms = change.ms
                if not task_is_current(ms.state, task):
                    self.ack(task)  # written under a version this run has moved past
                    return
                if task.type == TaskType.TASK_TYPE_DELETE_HISTORY:
                    if not ms.running:  # the retention period of a closed run is over
                        await change.shard.delete(change.entry)
                        # on a standby, the run's parked tasks go with it
                        for parked in self.executions.standby.forget_run(
                            task.namespace_id, task.workflow_id, task.run_id
                        ):
                            self.ack(parked)
                    self.ack(task)
                    return
                if task.type == TaskType.TASK_TYPE_CALLBACK_BACKOFF:
                    # completion callbacks belong to closed runs
                    if ms.callback_rescheduled(task.callback_index, task.attempt):
                        change.task_done(task)
                        await change.commit()
                    else:
                        self.ack(task)
                    return
                if not ms.running:
                    self.ack(task)
                    return
                next_runs: list[history.WorkflowExecutionStartedEventAttributes] = []
                if not self._apply_timer(change, task, next_runs):
                    self.ack(task)
                    return
                for attrs in next_runs:
                    await change.next_run(attrs)
                change.task_done(task)
                await change.commit(schedule_workflow_task=bool(ms.new_events))
                if not ms.wft_pending:
                    self.queries.redirect_buffered(change.entry, ms.current_task_queue().name)
        except NotFound:
            self.ack(task)

    def _apply_timer(
        self, change: Change, task: Task, next_runs: list[history.WorkflowExecutionStartedEventAttributes]
    ) -> bool:
        """Apply a fired timer; a run that times out into a next one (retry, cron) adds its start to `next_runs`."""
        ms = change.ms
        t = task.type
        if t == TaskType.TASK_TYPE_USER_TIMER:
            info = ms.state.timers.get(task.timer_id)
            if info is None or info.started_event_id != task.event_id:
                return False
            ms.add_timer_fired(task.timer_id)
            return True
        if t == TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT:
            return self._workflow_task_timeout(change, task)
        if t == TaskType.TASK_TYPE_WORKFLOW_BACKOFF_TIMER:
            if ms.wft_pending or ms.state.last_completed_wft_started_event_id:
                return False
            ms.schedule_workflow_task()
            return True
        handler = self.timer_handlers.get(t)
        if handler is not None:
            return handler(ms, task)
        if t == TaskType.TASK_TYPE_WORKFLOW_RUN_TIMEOUT:
            return self._workflow_timeout(ms, retryable=True, next_runs=next_runs)
        if t == TaskType.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT:
            return self._workflow_timeout(ms, retryable=False, next_runs=next_runs)
        log.warning("unknown timer task type %d", t)
        return False

    def _workflow_task_timeout(self, change: Change, task: Task) -> bool:
        ms = change.ms
        wt = ms.state.workflow_task
        if not wt.scheduled or wt.stamp != task.stamp:
            return False
        schedule_to_start = task.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
        if schedule_to_start == bool(wt.started_event_id):
            return False
        ms.add_workflow_task_timed_out(task.timeout_type)
        ms.flush_buffered_events()
        ms.schedule_workflow_task()
        self.queries.requeue_inflight(change.entry)
        UpdateHandler.resend_after_failure(change.entry)
        return True

    def _workflow_timeout(
        self, ms: MutableState, retryable: bool, next_runs: list[history.WorkflowExecutionStartedEventAttributes]
    ) -> bool:
        s = ms.state
        failure = failure_pb.Failure(message="workflow timeout", source="Server")
        failure.timeout_failure_info.timeout_type = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
        state = RetryState.RETRY_STATE_TIMEOUT
        expiration = s.execution_expiration_time.seconds * 1_000_000_000 + s.execution_expiration_time.nanos
        # A run that times out at the end of the whole execution's time is not retried.
        retryable = retryable and (not expiration or expiration > ms.now)
        attrs = None
        if retryable and not s.start.HasField("retry_policy"):
            state = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
        elif retryable:
            decision = next_retry(s.start.retry_policy, s.start.attempt, failure, ms.now, expiration)
            state = decision.state  # type: ignore[assignment]
            if decision.retry:
                attrs = next_run.retry(s, ids.new_run_id(), decision.backoff_ns, failure, ms.now)
        if attrs is None and retryable and s.start.cron_schedule:
            backoff = cron.backoff_ns(s.start.cron_schedule, ts_ns(s.execution_time), ms.now)
            attrs = next_run.cron(s, ids.new_run_id(), backoff, None, failure, ms.now)
        ms.add_timed_out(state, attrs.original_execution_run_id if attrs else "")
        if attrs is not None:
            next_runs.append(attrs)
        return True


def _continues(close: history.HistoryEvent) -> bool:
    """The run closed into a new one of the same chain (continue-as-new, retry, cron)."""
    if close.event_type == ev.WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return True
    attr = close.WhichOneof("attributes")
    return bool(attr and getattr(getattr(close, attr), "new_execution_run_id", ""))


def _child_start_request(child: ChildInfo) -> ws.StartWorkflowExecutionRequest:
    init = child.initiated
    req = ws.StartWorkflowExecutionRequest(
        namespace=init.namespace,
        workflow_id=init.workflow_id,
        workflow_type=init.workflow_type,
        task_queue=init.task_queue,
        request_id=child.create_request_id,
        workflow_id_reuse_policy=init.workflow_id_reuse_policy or ReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
        workflow_id_conflict_policy=ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
        cron_schedule=init.cron_schedule,
    )
    for descriptor, value in init.ListFields():
        if descriptor.name in (
            "input",
            "retry_policy",
            "memo",
            "search_attributes",
            "header",
            "priority",
            "workflow_execution_timeout",
            "workflow_run_timeout",
            "workflow_task_timeout",
        ):
            getattr(req, descriptor.name).CopyFrom(value)
    return req
