"""Standalone Nexus operations: one operation started by a client through an endpoint, outside any workflow
(StartNexusOperationExecution and the other `...NexusOperationExecution` RPCs).

An operation is an execution row of its own id space: its namespace id is the namespace's id with
`OPERATIONS_SUFFIX` (`operations_namespace_id`), its workflow id the operation id, its run id the operation's
run. So it lives on the shard of that key, under the same lock, cache, commit, outbox and timer queue as a
workflow, and its visibility row is listed only by the operation RPCs. The row holds no events: the operation
is `nexus_operations[OPERATION_ID_KEY]` (the NexusOperationInfo the workflow caller uses) and
`standalone_nexus` (its payloads and outcome).

It reuses the caller machinery of operations in workflows: the same NEXUS_START / NEXUS_CANCEL transfer tasks
run through `NexusInvoker` (endpoint lookup, allow-list, rate limits, circuit breaker, retries with backoff),
which asks `StandaloneCaller` (a `CallerSide`) for the request and gives it the outcome; the NEXUS_BACKOFF /
NEXUS_TIMEOUT / NEXUS_CANCEL_BACKOFF timers come here through `timer_handler`. A handler that starts a
workflow gets a callback token marked `standalone`, and the completion of that workflow comes back through
`CallbackDelivery` to `StandaloneNexus.complete`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    NexusOperationCancellationState,
    NexusOperationExecutionStatus,
    NexusOperationIdConflictPolicy,
    NexusOperationIdReusePolicy,
    NexusOperationWaitStage,
    PendingNexusOperationState,
)
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_api
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.clock import timestamp, ts_ns
from tempyral.common.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ServiceError,
    WorkflowNotFound,
)
from tempyral.common.limits import check_blob_size, max_id_length
from tempyral.config import NexusLimits
from tempyral.history import task_generator as tg
from tempyral.history.commands import check_and_type_search_attributes
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus import outcomes
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.nexus.invoker import _Call
from tempyral.nexus.operations import NEXUS_TIMERS, apply_timer, cancel_due, retry_cancel, retry_start
from tempyral.nexus.outcomes import Kind, Outcome
from tempyral.persistence.store import CurrentWrite, VisibilityQuery, VisibilityQueryFailed, VisibilityRow
from tempyral.proto.internal_pb2 import (
    ExecutionState,
    NexusCallbackToken,
    NexusOperationInfo,
    Task,
)
from tempyral.visibility import query as vq
from tempyral.visibility.service import MAX_PAGE_SIZE, count_response, decode_page_token, encode_page_token

OPERATIONS_SUFFIX = "/nexus-operations"
# The key of the operation in its row's nexus_operations, and its "scheduled event id" in callback tokens.
OPERATION_ID_KEY = 1
State = PendingNexusOperationState
CancelState = NexusOperationCancellationState
Status = NexusOperationExecutionStatus
WfStatus = wf_enums.WorkflowExecutionStatus
WaitStage = NexusOperationWaitStage
RUNNING = WfStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
STARTED = State.PENDING_NEXUS_OPERATION_STATE_STARTED
CLOSED_STAGE = WaitStage.NEXUS_OPERATION_WAIT_STAGE_CLOSED
STARTED_STAGE = WaitStage.NEXUS_OPERATION_WAIT_STAGE_STARTED
EMPTY = common.Payload()  # the result of an operation that returned nothing
TimerHandler = Callable[[MutableState, Task], bool]
# The row's status is a workflow status (visibility filters and the current-run pointer read it as one).
WORKFLOW_STATUS = {
    Status.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING: RUNNING,
    Status.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED: WfStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    Status.NEXUS_OPERATION_EXECUTION_STATUS_FAILED: WfStatus.WORKFLOW_EXECUTION_STATUS_FAILED,
    Status.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED: WfStatus.WORKFLOW_EXECUTION_STATUS_CANCELED,
    Status.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED: WfStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    Status.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT: WfStatus.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}
OPERATION_STATUS = {v: k for k, v in WORKFLOW_STATUS.items()}
# Closed this way, a new operation may take the id under ALLOW_DUPLICATE_FAILED_ONLY.
UNSUCCESSFUL = frozenset(
    {
        Status.NEXUS_OPERATION_EXECUTION_STATUS_FAILED,
        Status.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED,
        Status.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED,
        Status.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT,
    }
)
MAX_NAME_LENGTH = 1000
ID_LOCKS = 256


def operations_namespace_id(namespace_id: str) -> str:
    """The namespace id of the rows of a namespace's standalone operations."""
    return namespace_id + OPERATIONS_SUFFIX


def is_operations_namespace_id(namespace_id: str) -> bool:
    return namespace_id.endswith(OPERATIONS_SUFFIX)


def is_standalone_task(task: Task) -> bool:
    return is_operations_namespace_id(task.namespace_id)


def _not_found(operation_id: str) -> NotFound:
    return NotFound(f"operation not found for ID: {operation_id}")


class _Compiler(vq.Compiler):
    """List filters over the operations' own fields, stored in the columns a workflow's would use: OperationId
    (WorkflowId), Endpoint (TaskQueue), Operation (WorkflowType), Service (ParentWorkflowId). The reference's
    operation visibility takes no ORDER BY."""

    ALIASES = {
        "OperationId": "WorkflowId",
        "Endpoint": "TaskQueue",
        "Operation": "WorkflowType",
        "Service": "ParentWorkflowId",
    }

    def resolve(self, name: str) -> tuple[str, str]:
        if name in self.ALIASES:
            return self.ALIASES[name], "Keyword"
        return super().resolve(name)

    def compile(self, query: str) -> VisibilityQuery:
        compiled = super().compile(query)
        if compiled.order_by:
            raise vq.QueryError(f"{vq.NOT_SUPPORTED}: 'ORDER BY' clause")
        return compiled


def compile_operations_query(query: str, custom: dict[str, int]) -> VisibilityQuery:
    try:
        return _Compiler(custom).compile(query)
    except vq.QueryError as err:
        raise InvalidArgument(f"invalid query: {err}") from None


class StandaloneNexus:
    """The standalone operations of every namespace: the RPCs, the caller side of their requests, their timers
    and the completions of their async handlers."""

    def __init__(
        self,
        executions: Executions,
        namespaces: NamespaceRegistry,
        endpoints: EndpointRegistry,
        limits: NexusLimits,
    ) -> None:
        self.executions = executions
        self.namespaces = namespaces
        self.endpoints = endpoints
        self.limits = limits
        self._id_locks = [asyncio.Lock() for _ in range(ID_LOCKS)]
        # Long polls (Poll, Describe with a token) wait for the next change of an operation.
        self._watchers = Watchers()

    # ------------------------------------------------------------------ helpers
    def _notify(self, namespace_id: str, operation_id: str) -> None:
        self._watchers.notify((namespace_id, operation_id))

    async def _commit(self, change: Change) -> None:
        ms = change.ms
        ms.state.standalone_nexus.state_transition_count += 1
        await change.commit()
        self._notify(ms.namespace_id, ms.workflow_id)

    def _prepare(self, ms: MutableState, ns: Namespace | None) -> None:
        # The row's namespace id is not a namespace's: its retention comes from the namespace itself.
        if ns is not None:
            ms.retention_ns = ns.retention_ns

    def _namespace_of(self, ms: MutableState) -> Namespace | None:
        return self.namespaces.find_by_id(ms.namespace_id.removesuffix(OPERATIONS_SUFFIX))

    def _close(
        self,
        ms: MutableState,
        status: int,
        result: common.Payload | None = None,
        failure: failure_pb.Failure | None = None,
    ) -> None:
        s = ms.state
        sn = s.standalone_nexus
        sn.status = status
        s.status = WORKFLOW_STATUS[status]  # type: ignore[index]
        s.close_time.CopyFrom(timestamp(ms.now))
        if result is not None:
            sn.result.CopyFrom(result)
        if failure is not None:
            sn.failure.CopyFrom(failure)
        ms.visibility_dirty = True
        self._prepare(ms, self._namespace_of(ms))
        ms.new_tasks.extend(tg.delete_history(s, ms.retention_ns))

    # ------------------------------------------------------------------ start
    async def start(
        self, ns: Namespace, req: ws.StartNexusOperationExecutionRequest
    ) -> ws.StartNexusOperationExecutionResponse:
        _validate_start(ns, req)
        endpoint = await self.endpoints.find_by_name_fresh(req.endpoint)
        if endpoint is None:
            raise NotFound(f"could not find Nexus endpoint by name: {req.endpoint}")
        request_id = req.request_id or str(uuid.uuid4())
        key = operations_namespace_id(ns.id)
        # Starts of one id are serialized (the check of the current run and the write of a new one), by a lock
        # from a fixed set: memory does not grow with the ids, and unrelated ids rarely wait for each other.
        async with self._id_locks[hash((key, req.operation_id)) % len(self._id_locks)]:
            return await self._start_locked(ns, key, req, request_id, endpoint.id)

    async def _start_locked(
        self, ns: Namespace, key: str, req: ws.StartNexusOperationExecutionRequest, request_id: str, endpoint_id: str
    ) -> ws.StartNexusOperationExecutionResponse:
        previous = await self.executions.current_run_id(key, req.operation_id)
        if previous is not None:
            async with self.executions.locked(key, req.operation_id, previous) as (_, _, current):
                s = current.state
                sn = s.standalone_nexus
                if request_id in sn.start_request_ids:
                    return ws.StartNexusOperationExecutionResponse(run_id=s.run_id)  # a retried start
                conflict = req.id_conflict_policy
                if current.running:
                    if conflict == NexusOperationIdConflictPolicy.NEXUS_OPERATION_ID_CONFLICT_POLICY_USE_EXISTING:
                        return ws.StartNexusOperationExecutionResponse(run_id=s.run_id)
                    raise _already_started(s)
                reuse = req.id_reuse_policy
                if reuse == NexusOperationIdReusePolicy.NEXUS_OPERATION_ID_REUSE_POLICY_REJECT_DUPLICATE or (
                    reuse == NexusOperationIdReusePolicy.NEXUS_OPERATION_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY
                    and sn.status not in UNSUCCESSFUL
                ):
                    raise _already_started(s)
        now = time.time_ns()
        run_id = ids.new_run_id()
        state = ExecutionState(
            namespace_id=key,
            workflow_id=req.operation_id,
            run_id=run_id,
            next_event_id=1,
            start_request_id=request_id,
            status=RUNNING,
        )
        state.start_time.CopyFrom(timestamp(now))
        state.execution_time.CopyFrom(timestamp(now))
        # the visibility columns the operation's list filters use (_Compiler)
        state.start.workflow_type.name = req.operation
        state.start.task_queue.name = req.endpoint
        state.start.parent_workflow_execution.workflow_id = req.service
        if req.HasField("search_attributes"):
            state.search_attributes.CopyFrom(req.search_attributes)
        sn = state.standalone_nexus
        sn.namespace = ns.name
        sn.identity = req.identity
        sn.status = Status.NEXUS_OPERATION_EXECUTION_STATUS_RUNNING
        sn.start_request_ids.append(request_id)
        if req.HasField("input"):
            sn.input.CopyFrom(req.input)
        sn.nexus_header.update(req.nexus_header)
        if req.HasField("user_metadata"):
            sn.user_metadata.CopyFrom(req.user_metadata)
        info = state.nexus_operations[OPERATION_ID_KEY]
        info.scheduled_event_id = OPERATION_ID_KEY
        info.endpoint = req.endpoint
        info.endpoint_id = endpoint_id
        info.service = req.service
        info.operation = req.operation
        info.request_id = request_id
        info.scheduled_time.CopyFrom(timestamp(now))
        for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
            if req.HasField(name):
                getattr(info, name).CopyFrom(getattr(req, name))
        info.state = State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
        info.attempt = 1
        ms = MutableState(state, now)
        self.executions.prepare(ms, now)
        self._prepare(ms, ns)
        ms.visibility_dirty = True
        ms.new_tasks.extend(tg.nexus_start(state, info))
        ms.new_tasks.extend(tg.nexus_timeouts(state, info))
        shard = self.executions.shard_for(key, req.operation_id)
        async with self.executions.creating(shard, ms) as change:
            change.current.append(CurrentWrite(key, req.operation_id, run_id, RUNNING, request_id, previous))
            sn.state_transition_count = 1
            await change.commit()
        self._notify(key, req.operation_id)
        return ws.StartNexusOperationExecutionResponse(run_id=run_id, started=True)

    # ------------------------------------------------------------------ reads
    async def _read(self, ns: Namespace, operation_id: str, run_id: str) -> ExecutionState:
        key = operations_namespace_id(ns.id)
        try:
            async with self.executions.locked(key, operation_id, run_id) as (_, _, ms):
                copy = ExecutionState()
                copy.CopyFrom(ms.state)
                return copy
        except WorkflowNotFound:
            raise _not_found(operation_id) from None

    async def describe(
        self, ns: Namespace, req: ws.DescribeNexusOperationExecutionRequest, timeout_s: float
    ) -> ws.DescribeNexusOperationExecutionResponse:
        _require_id(req.operation_id)
        key = operations_namespace_id(ns.id)
        deadline = time.monotonic() + timeout_s
        while True:
            with self._watchers.watch((key, req.operation_id)) as changed:
                s = await self._read(ns, req.operation_id, req.run_id)
                token = _poll_token(s)
                if not req.long_poll_token or req.long_poll_token != token or s.status != RUNNING:
                    break
                if not await _wait(changed, deadline):
                    break
        resp = ws.DescribeNexusOperationExecutionResponse(run_id=s.run_id, long_poll_token=token)
        resp.info.CopyFrom(execution_info(s, time.time_ns()))
        sn = s.standalone_nexus
        if req.include_input and sn.HasField("input"):
            resp.input.CopyFrom(sn.input)
        if req.include_outcome:
            if sn.HasField("result"):
                resp.result.CopyFrom(sn.result)
            elif sn.HasField("failure"):
                resp.failure.CopyFrom(sn.failure)
        return resp

    async def poll(
        self, ns: Namespace, req: ws.PollNexusOperationExecutionRequest, timeout_s: float
    ) -> ws.PollNexusOperationExecutionResponse:
        _require_id(req.operation_id)
        key = operations_namespace_id(ns.id)
        stage = req.wait_stage or WaitStage.NEXUS_OPERATION_WAIT_STAGE_CLOSED
        deadline = time.monotonic() + timeout_s
        while True:
            with self._watchers.watch((key, req.operation_id)) as changed:
                s = await self._read(ns, req.operation_id, req.run_id)
                info = s.nexus_operations[OPERATION_ID_KEY]
                closed = s.status != RUNNING
                started = closed or info.state == State.PENDING_NEXUS_OPERATION_STATE_STARTED
                if closed or (stage == WaitStage.NEXUS_OPERATION_WAIT_STAGE_STARTED and started):
                    break
                if not await _wait(changed, deadline):
                    return ws.PollNexusOperationExecutionResponse()  # nothing yet: the caller polls again
        resp = ws.PollNexusOperationExecutionResponse(
            run_id=s.run_id,
            wait_stage=CLOSED_STAGE if closed else STARTED_STAGE,
            operation_token=info.operation_token,
        )
        sn = s.standalone_nexus
        if closed:
            if sn.HasField("result"):
                resp.result.CopyFrom(sn.result)
            elif sn.HasField("failure"):
                resp.failure.CopyFrom(sn.failure)
        return resp

    # ------------------------------------------------------------------ cancel, terminate, delete
    @asynccontextmanager
    async def _updating(self, ns: Namespace, operation_id: str, run_id: str) -> AsyncIterator[Change]:
        """The operation's row, locked for a change by a client's request; NotFound as the reference words it."""
        _require_id(operation_id)
        try:
            async with self.executions.update(operations_namespace_id(ns.id), operation_id, run_id) as change:
                yield change
        except WorkflowNotFound:
            raise _not_found(operation_id) from None

    async def request_cancel(self, ns: Namespace, req: ws.RequestCancelNexusOperationExecutionRequest) -> None:
        async with self._updating(ns, req.operation_id, req.run_id) as change:
            ms = change.ms
            sn = ms.state.standalone_nexus
            info = ms.state.nexus_operations[OPERATION_ID_KEY]
            if not ms.running:
                raise FailedPrecondition("operation already completed")
            c = info.cancellation
            if c.HasField("requested_time"):
                if req.request_id and req.request_id == sn.cancel_request_id:
                    return
                raise FailedPrecondition(f"cancellation already requested with request ID {sn.cancel_request_id}")
            c.requested_time.CopyFrom(timestamp(ms.now))
            c.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
            sn.cancel_request_id = req.request_id
            sn.cancel_reason = req.reason
            if info.state == State.PENDING_NEXUS_OPERATION_STATE_STARTED:
                ms.new_tasks.extend(tg.nexus_cancel(ms.state, info))
            # else: sent once the handler has started the operation (record_start), as the reference does
            await self._commit(change)

    async def terminate(self, ns: Namespace, req: ws.TerminateNexusOperationExecutionRequest) -> None:
        async with self._updating(ns, req.operation_id, req.run_id) as change:
            ms = change.ms
            sn = ms.state.standalone_nexus
            if not ms.running:
                if sn.status == Status.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED:
                    if req.request_id and req.request_id == sn.cancel_request_id:
                        return
                    raise FailedPrecondition(f"already terminated with request ID {sn.cancel_request_id}")
                raise FailedPrecondition("operation already completed")
            failure = failure_pb.Failure(message=req.reason)
            failure.terminated_failure_info.SetInParent()
            # the terminating request's id is kept where a cancel's is: a closed operation takes no cancel
            sn.cancel_request_id = req.request_id
            self._close(ms, Status.NEXUS_OPERATION_EXECUTION_STATUS_TERMINATED, failure=failure)
            await self._commit(change)

    async def delete(self, ns: Namespace, req: ws.DeleteNexusOperationExecutionRequest) -> None:
        async with self._updating(ns, req.operation_id, req.run_id) as change:
            await change.shard.delete(change.entry)
        self._notify(operations_namespace_id(ns.id), req.operation_id)

    # ------------------------------------------------------------------ list, count
    async def list_operations(
        self, ns: Namespace, req: ws.ListNexusOperationExecutionsRequest
    ) -> ws.ListNexusOperationExecutionsResponse:
        compiled = compile_operations_query(req.query, dict(ns.record.search_attributes))
        compiled.page_size = req.page_size if 0 < req.page_size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE
        compiled.cursor = decode_page_token(req.next_page_token)
        try:
            rows = await self.executions.store.list_visibility(operations_namespace_id(ns.id), compiled)
        except VisibilityQueryFailed as err:
            raise InvalidArgument(f"invalid query: {err}") from err
        resp = ws.ListNexusOperationExecutionsResponse()
        for row in rows:
            resp.operations.append(list_info(row))
        if rows and len(rows) == compiled.page_size:
            resp.next_page_token = encode_page_token(rows[-1])
        return resp

    async def count_operations(
        self, ns: Namespace, req: ws.CountNexusOperationExecutionsRequest
    ) -> ws.CountNexusOperationExecutionsResponse:
        compiled = compile_operations_query(req.query, dict(ns.record.search_attributes))
        try:
            rows = await self.executions.store.count_visibility(operations_namespace_id(ns.id), compiled)
        except VisibilityQueryFailed as err:
            raise InvalidArgument(f"invalid query: {err}") from err
        return count_response(ws.CountNexusOperationExecutionsResponse(), rows, compiled.group_by)

    # ------------------------------------------------------------------ the caller side of the invoker
    async def load(self, task: Task, for_cancel: bool) -> _Call | None:
        try:
            async with self.executions.locked(task.namespace_id, task.workflow_id, task.run_id) as (_, _, ms):
                info = _due(ms, task, for_cancel)
                if info is None:
                    return None
                copy = NexusOperationInfo()
                copy.CopyFrom(info)
                sn = ms.state.standalone_nexus
                payload = common.Payload()
                payload.CopyFrom(sn.input)
                header = dict(sn.nexus_header)
                namespace = sn.namespace
        except NotFound:
            return None
        token = NexusCallbackToken(
            namespace_id=task.namespace_id.removesuffix(OPERATIONS_SUFFIX),
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            scheduled_event_id=OPERATION_ID_KEY,
            request_id=copy.request_id,
            standalone=True,
        )
        return _Call(copy, namespace, payload, header, token, None)

    async def record_start(self, task: Task, outcome: Outcome) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = _due(ms, task, for_cancel=False)
            if info is None:
                return
            sn = ms.state.standalone_nexus
            if outcome.kind == Kind.SUCCEEDED:
                sn.links.extend(outcome.links)
                self._close(ms, Status.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED, result=outcome.result or EMPTY)
            elif outcome.kind == Kind.STARTED:
                sn.links.extend(outcome.links)
                self._started(ms, info, outcome.token)
            elif outcome.kind in (Kind.FAILED, Kind.CANCELED):
                assert outcome.failure is not None
                info.last_attempt_complete_time.CopyFrom(timestamp(ms.now))
                info.last_attempt_failure.CopyFrom(outcome.failure)
                status = (
                    Status.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED
                    if outcome.kind == Kind.CANCELED
                    else Status.NEXUS_OPERATION_EXECUTION_STATUS_FAILED
                )
                self._close(ms, status, failure=outcome.failure)
            else:
                assert outcome.failure is not None
                retry_start(ms, info, outcome.failure, self.limits)
            await self._commit(change)

    def _started(self, ms: MutableState, info: NexusOperationInfo, operation_token: str) -> None:
        info.state = State.PENDING_NEXUS_OPERATION_STATE_STARTED
        info.operation_token = operation_token
        info.started_time.CopyFrom(timestamp(ms.now))
        info.last_attempt_complete_time.CopyFrom(timestamp(ms.now))
        info.ClearField("last_attempt_failure")
        info.ClearField("next_attempt_schedule_time")
        ms.new_tasks.extend(tg.nexus_start_to_close(ms.state, info))
        if info.cancellation.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED:
            ms.new_tasks.extend(tg.nexus_cancel(ms.state, info))

    async def record_blocked(self, task: Task, reason: str, delay_s: float) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = _due(ms, task, for_cancel=False)
            if info is None:
                return
            ms.nexus_blocked(info, reason, ms.now + int(delay_s * 1e9))
            await self._commit(change)

    async def record_timeout(self, task: Task, timeout_type: int) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = _due(ms, task, for_cancel=False)
            if info is None:
                return
            self._time_out(ms, info, timeout_type)
            await self._commit(change)

    def _time_out(self, ms: MutableState, info: NexusOperationInfo, timeout_type: int) -> None:
        failure = outcomes.timeout_failure(timeout_type)
        # the reference counts the timeout as the attempt's end
        info.attempt += 1
        info.last_attempt_complete_time.CopyFrom(timestamp(ms.now))
        info.last_attempt_failure.CopyFrom(failure)
        self._close(ms, Status.NEXUS_OPERATION_EXECUTION_STATUS_TIMED_OUT, failure=failure)

    async def record_cancel(self, task: Task, outcome: Outcome) -> None:
        async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
            ms = change.ms
            info = _due(ms, task, for_cancel=True)
            if info is None:
                return
            c = info.cancellation
            if outcome.kind == Kind.RETRY:
                assert outcome.failure is not None
                retry_cancel(ms, info, outcome.failure, self.limits)
            else:
                c.attempt += 1
                c.last_attempt_complete_time.CopyFrom(timestamp(ms.now))
                if outcome.kind == Kind.SUCCEEDED:
                    c.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
                else:
                    c.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_FAILED
                    if outcome.failure is not None:
                        c.last_attempt_failure.CopyFrom(outcome.failure)
            await self._commit(change)

    # ------------------------------------------------------------------ timers
    def timer_handler(self, workflows: TimerHandler) -> TimerHandler:
        """The Nexus timer handler for both kinds of caller: `workflows` for a workflow's operations."""

        def handle(ms: MutableState, task: Task) -> bool:
            if not ms.state.HasField("standalone_nexus"):
                return workflows(ms, task)
            changed = apply_timer(ms, task, self._time_out)
            if changed:
                ms.state.standalone_nexus.state_transition_count += 1
                # the timer queue commits the change; long polls look again right after
                asyncio.get_running_loop().call_soon(self._notify, ms.namespace_id, ms.workflow_id)
            return changed

        return handle

    def timer_handlers(self, workflows: TimerHandler) -> dict[int, TimerHandler]:
        handle = self.timer_handler(workflows)
        return {task_type: handle for task_type in NEXUS_TIMERS}

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
        """The async handler's operation closed (see NexusOperations.complete, which passes standalone tokens
        here). Raises OperationNotFound when the operation is gone or already closed."""
        from tempyral.nexus.operations import OperationNotFound

        key = operations_namespace_id(token.namespace_id)
        try:
            async with self.executions.update(key, token.workflow_id, token.run_id) as change:
                ms = change.ms
                info = ms.state.nexus_operations.get(OPERATION_ID_KEY)
                if not ms.running or info is None or info.request_id != token.request_id:
                    raise OperationNotFound("operation not found")
                if info.state != State.PENDING_NEXUS_OPERATION_STATE_STARTED:
                    # the completion overtook the start response
                    ms.state.standalone_nexus.links.extend(start_links)
                    now = ms.now
                    ms.now = start_time_ns or now
                    self._started(ms, info, operation_token)
                    ms.now = now
                if failure is None:
                    self._close(ms, Status.NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED, result=result or EMPTY)
                else:
                    status = (
                        Status.NEXUS_OPERATION_EXECUTION_STATUS_CANCELED
                        if canceled
                        else Status.NEXUS_OPERATION_EXECUTION_STATUS_FAILED
                    )
                    self._close(ms, status, failure=failure)
                await self._commit(change)
        except WorkflowNotFound:
            raise OperationNotFound("operation not found") from None


class Watchers:
    """Long polls waiting for an operation's next change: one event per watched operation, set (and dropped) by
    `notify`, and dropped when its last watcher leaves, so that nothing stays for operations nobody watches."""

    def __init__(self) -> None:
        self._events: dict[tuple[str, str], tuple[asyncio.Event, int]] = {}

    @contextmanager
    def watch(self, key: tuple[str, str]) -> Iterator[asyncio.Event]:
        event, count = self._events.get(key, (asyncio.Event(), 0))
        self._events[key] = (event, count + 1)
        try:
            yield event
        finally:
            current = self._events.get(key)
            if current is not None and current[0] is event:
                if current[1] <= 1:
                    del self._events[key]
                else:
                    self._events[key] = (event, current[1] - 1)

    def notify(self, key: tuple[str, str]) -> None:
        entry = self._events.pop(key, None)
        if entry is not None:
            entry[0].set()

    def __len__(self) -> int:
        return len(self._events)


def _due(ms: MutableState, task: Task, for_cancel: bool) -> NexusOperationInfo | None:
    """The operation a start (or cancel) request task belongs to, if it still waits for that very attempt."""
    info = ms.state.nexus_operations.get(task.event_id)
    if not ms.running or info is None or not ms.state.HasField("standalone_nexus"):
        return None
    if for_cancel:
        return info if cancel_due(info, task) else None
    if info.state != State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED or info.attempt != task.attempt:
        return None
    return info


async def _wait(event: asyncio.Event, deadline: float) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    try:
        await asyncio.wait_for(event.wait(), remaining)
    except TimeoutError:
        return False
    return True


def _poll_token(s: ExecutionState) -> bytes:
    return f"{s.run_id}:{s.standalone_nexus.state_transition_count}".encode()


def _require_id(operation_id: str) -> None:
    if not operation_id:
        raise InvalidArgument("operation_id is required")


def _validate_start(ns: Namespace, req: ws.StartNexusOperationExecutionRequest) -> None:
    """The reference's checks and messages, in its order."""
    _require_id(req.operation_id)
    fields = (
        ("operation_id", req.operation_id),
        ("endpoint", req.endpoint),
        ("service", req.service),
        ("operation", req.operation),
    )
    for name, value in fields:
        if not value:
            raise InvalidArgument(f"{name} is required")
        limit = max_id_length() if name == "operation_id" else MAX_NAME_LENGTH
        if len(value) > limit:
            raise InvalidArgument(f"{name} exceeds length limit. Length={len(value)} Limit={limit}")
    if len(req.request_id) > max_id_length():
        raise InvalidArgument(f"request_id exceeds length limit. Length={len(req.request_id)} Limit={max_id_length()}")
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if getattr(req, name).ToNanoseconds() < 0:
            raise InvalidArgument(f"{name} is invalid")
    if req.HasField("input"):
        check_blob_size(common.Payloads(payloads=[req.input]))
    if req.HasField("search_attributes"):
        check_and_type_search_attributes(ns, req.search_attributes)


def _already_started(s: ExecutionState) -> ServiceError:
    return AlreadyExists(
        f"nexus operation execution already started: request_id={s.start_request_id}, run_id={s.run_id}",
        errordetails.NexusOperationExecutionAlreadyStartedFailure(start_request_id=s.start_request_id, run_id=s.run_id),
    )


def execution_info(s: ExecutionState, now: int) -> nexus_api.NexusOperationExecutionInfo:
    """DescribeNexusOperationExecution's info, as the reference fills it."""
    sn = s.standalone_nexus
    info = s.nexus_operations[OPERATION_ID_KEY]
    running = s.status == RUNNING
    out = nexus_api.NexusOperationExecutionInfo(
        operation_id=s.workflow_id,
        run_id=s.run_id,
        endpoint=info.endpoint,
        service=info.service,
        operation=info.operation,
        status=sn.status,  # type: ignore[arg-type]
        attempt=info.attempt,
        blocked_reason=info.blocked_reason,
        request_id=info.request_id,
        operation_token=info.operation_token,
        state_transition_count=sn.state_transition_count,
        identity=sn.identity,
        state_size_bytes=s.ByteSize(),
    )
    if running:
        out.state = info.state  # type: ignore[assignment]
    for name in ("schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout"):
        if info.HasField(name):
            getattr(out, name).CopyFrom(getattr(info, name))
    out.schedule_time.CopyFrom(info.scheduled_time)
    s2c = info.schedule_to_close_timeout.ToNanoseconds()
    if s2c:
        out.expiration_time.CopyFrom(timestamp(ts_ns(info.scheduled_time) + s2c))
    end = now
    if not running:
        out.close_time.CopyFrom(s.close_time)
        end = ts_ns(s.close_time)
    out.execution_duration.FromNanoseconds(max(end - ts_ns(info.scheduled_time), 0))
    for name in ("last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time"):
        if info.HasField(name):
            getattr(out, name).CopyFrom(getattr(info, name))
    c = info.cancellation
    if c.HasField("requested_time"):
        # As the reference shows it: no requested time, and no state while the cancel waits for the operation
        # to start (it is sent once the handler has started it).
        ci = out.cancellation_info
        if not (c.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED and info.state != STARTED):
            ci.state = c.state  # type: ignore[assignment]
        ci.attempt = c.attempt
        ci.reason = sn.cancel_reason
        ci.blocked_reason = c.blocked_reason
        for name in ("last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time"):
            if c.HasField(name):
                getattr(ci, name).CopyFrom(getattr(c, name))
    out.search_attributes.CopyFrom(s.search_attributes)
    out.nexus_header.update(sn.nexus_header)
    if sn.HasField("user_metadata"):
        out.user_metadata.CopyFrom(sn.user_metadata)
    out.links.extend(sn.links)
    return out


def list_info(row: VisibilityRow) -> nexus_api.NexusOperationExecutionListInfo:
    out = nexus_api.NexusOperationExecutionListInfo(
        operation_id=row.workflow_id,
        run_id=row.run_id,
        endpoint=row.task_queue,
        service=row.parent_workflow_id,
        operation=row.workflow_type,
        status=OPERATION_STATUS.get(row.status, Status.NEXUS_OPERATION_EXECUTION_STATUS_UNSPECIFIED),  # type: ignore[call-overload]
        search_attributes=common.SearchAttributes.FromString(row.search_attributes),
        state_transition_count=row.state_transition_count,
    )
    out.schedule_time.CopyFrom(timestamp(row.start_time))
    if row.close_time:
        out.close_time.CopyFrom(timestamp(row.close_time))
        out.execution_duration.FromNanoseconds(max(row.close_time - row.start_time, 0))
    return out
