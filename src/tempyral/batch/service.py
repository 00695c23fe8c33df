"""Batch operations: StartBatchOperation, DescribeBatchOperation, ListBatchOperations and StopBatchOperation, and the
jobs they start.

A job is a row of the `batch_operations` table (`BatchRow`, holding a `BatchOperationRecord`), keyed by namespace and
job id, and belongs to the history shard of that key (`shard_id_for`): the node holding the shard runs it, and
every write of its record is fenced by the shard's range, so one node at a time does. The node routes the calls
that name a job there (nodes/routing.py). When a node takes a shard it resumes the shard's running jobs
(`shard_acquired`); when it gives one up it drops them (`shard_released`).

A job (`JobRunner`) lists its executions (pages of the visibility store, or the request's list), and applies its
operation to each through this node's own gRPC frontend (batch/apply.py), as the reference's batcher does through
its frontend: the same validation, routing to the shard's node, and engine paths as the single-workflow calls. After
each execution it writes its counts and where it is (a visibility page token just past that execution, or the
index of the next one) to its record; a restarted job goes on from there. The execution it was applying when the
process died is applied again, which each operation tolerates (batch/apply.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import BatchOperationState, ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.batch import validation
from tempyral.batch.apply import Applier, Outcome
from tempyral.common import gojson, ids
from tempyral.common.clock import INT64_MAX, timestamp, ts_ns
from tempyral.common.errors import (
    AlreadyExists,
    InvalidArgument,
    ResourceExhausted,
    ServiceError,
    ShardNotHere,
    ShardOwnershipLost,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.history.engine import HistoryEngine
from tempyral.history.executions import shard_id_for
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.machinery import TokenBucket
from tempyral.persistence.store import BatchRow, Store, VisibilityQueryFailed
from tempyral.proto.batch_pb2 import BatchOperationRecord
from tempyral.visibility.service import MAX_PAGE_SIZE, compile_filter, decode_page_token, encode_page_token

log = logging.getLogger(__name__)

RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING
COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
FAILED = BatchOperationState.BATCH_OPERATION_STATE_FAILED
DEFAULT_RPS = 50.0  # the reference's worker.batcherRPS, per job here, when the request sets no rate
MAX_CONCURRENT_JOBS = 1  # running jobs per namespace (the reference's frontend.MaxConcurrentBatchOperationPerNamespace)
PAGE_SIZE = 100  # executions listed at a time
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 10.0


class BatchOperations:
    def __init__(self, store: Store, engine: HistoryEngine, namespaces: NamespaceRegistry) -> None:
        self.store = store
        self.engine = engine
        self.namespaces = namespaces
        self.applier: Applier | None = None  # set by start(): jobs run only once the node serves gRPC
        self._runners: dict[tuple[str, str], JobRunner] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._waiting: set[int] = set()  # shards acquired before start()
        self._tasks: set[asyncio.Task[None]] = set()
        self.failures = ThrottledLog(log)
        engine.on_shard_acquired.append(self.shard_acquired)
        engine.on_shard_released.append(self.shard_released)

    # ------------------------------------------------------------------ lifecycle
    def start(self, applier: Applier) -> None:
        """The node serves its gRPC API at last: resume the running jobs of the shards it holds."""
        self.applier = applier
        waiting, self._waiting = self._waiting, set()
        for shard_id in sorted(waiting):
            self.shard_acquired(shard_id)

    async def stop(self) -> None:
        for key in list(self._runners):
            await self._halt(key)
        await cancel_and_wait(list(self._tasks))
        if self.applier is not None:
            await self.applier.close()

    def shard_acquired(self, shard_id: int) -> None:
        if self.applier is None:
            self._waiting.add(shard_id)
            return
        self._spawn(self._resume(shard_id))

    def shard_released(self, shard_id: int) -> None:
        self._waiting.discard(shard_id)
        for key, runner in list(self._runners.items()):
            if runner.shard_id == shard_id:
                self._runners.pop(key, None)
                runner.task.cancel()  # its next write would be fenced off anyway; the new owner resumes it

    def _spawn(self, coro: object) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _resume(self, shard_id: int) -> None:
        delay = RETRY_INITIAL_S
        while self.engine.shards[shard_id].owned:
            try:
                rows = await self.store.running_batches(shard_id)
                break
            except Exception as err:  # the database is away: try again while the shard is ours
                self.failures.failure("could not read the running batch operations", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
        else:
            return
        for row in rows:
            key = (row.namespace_id, row.job_id)
            async with self._lock(key):
                if key in self._runners or not self.engine.shards[shard_id].owned:
                    continue
                current = await self.store.get_batch(*key)
                if current is not None and current.running:
                    self._run(current, BatchOperationRecord.FromString(current.data))

    def _lock(self, key: tuple[str, str]) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def _run(self, row: BatchRow, record: BatchOperationRecord) -> None:
        if self.applier is None:  # a start before the node serves: resumed with its shard by start()
            self._waiting.add(row.shard_id)
            return
        key = (row.namespace_id, row.job_id)
        runner = JobRunner(self, row.shard_id, record, self.applier)
        self._runners[key] = runner
        runner.task = asyncio.get_running_loop().create_task(runner.run(), name=f"batch-{row.job_id}")
        runner.task.add_done_callback(lambda _: self._finished(key, runner))

    def _finished(self, key: tuple[str, str], runner: JobRunner) -> None:
        if self._runners.get(key) is runner:
            del self._runners[key]
        lock = self._locks.get(key)
        if lock is not None and not lock.locked():
            del self._locks[key]

    async def _halt(self, key: tuple[str, str]) -> BatchOperationRecord | None:
        """End the job's runner here, never in the middle of writing its record; its record as last written."""
        runner = self._runners.pop(key, None)
        if runner is None:
            return None
        async with runner.writing:
            runner.task.cancel()
        await asyncio.gather(runner.task, return_exceptions=True)
        return runner.record

    # ------------------------------------------------------------------ storage
    def held(self, shard_id: int) -> int:
        """The shard's range while this node holds it; ShardNotHere when it does not (the caller is routed again)."""
        shard = self.engine.shards[shard_id]
        if not shard.owned:
            raise ShardNotHere(shard_id)
        return shard.range_id

    async def save(self, shard_id: int, record: BatchOperationRecord, create: bool = False) -> None:
        closed = record.state != RUNNING
        row = BatchRow(
            namespace_id=record.namespace_id,
            job_id=record.request.job_id,
            shard_id=shard_id,
            running=not closed,
            start_time=ts_ns(record.start_time),
            close_time=ts_ns(record.close_time) if closed else INT64_MAX,
            data=record.SerializeToString(),
        )
        await self.store.save_batch(shard_id, self.held(shard_id), row, create)

    # ------------------------------------------------------------------ the API
    async def start_operation(
        self, ns: Namespace, req: ws.StartBatchOperationRequest
    ) -> ws.StartBatchOperationResponse:
        validation.validate_start(req)
        self.namespaces.check_active(ns)
        running = await self.store.running_batches(None, ns.id)
        if len(running) >= MAX_CONCURRENT_JOBS:
            raise ResourceExhausted(
                "Max concurrent batch operations is reached",
                errordetails.ResourceExhaustedFailure(
                    cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_CONCURRENT_LIMIT,
                    scope=ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE,
                ),
            )
        shard_id = shard_id_for(ns.id, req.job_id, len(self.engine.shards))
        self.held(shard_id)
        record = BatchOperationRecord(
            namespace_id=ns.id, state=RUNNING, run_id=ids.new_run_id(), request_id=str(uuid.uuid4())
        )
        record.request.CopyFrom(req)
        record.start_time.CopyFrom(timestamp(time.time_ns()))
        key = (ns.id, req.job_id)
        async with self._lock(key):
            try:
                await self.save(shard_id, record, create=True)
            except AlreadyExists:
                raise await self._duplicate(ns, req.job_id) from None
            except ShardOwnershipLost:
                raise ShardNotHere(shard_id) from None
            row = await self.store.get_batch(*key)
            assert row is not None
            self._run(row, record)
        return ws.StartBatchOperationResponse()

    async def _duplicate(self, ns: Namespace, job_id: str) -> ServiceError:
        """The reference's batch workflows take their job id as workflow id, with reuse policy REJECT_DUPLICATE."""
        row = await self.store.get_batch(ns.id, job_id)
        record = BatchOperationRecord.FromString(row.data) if row is not None else BatchOperationRecord()
        if record.state == RUNNING:
            message = f"Workflow execution is already running. WorkflowId: {job_id}, RunId: {record.run_id}."
        else:
            message = (
                f"Workflow execution already finished. WorkflowId: {job_id}, RunId: {record.run_id}. "
                "Workflow Id reuse policy: reject duplicate workflow Id."
            )
        error = WorkflowAlreadyStarted(message, record.request_id, record.run_id)
        error.details = errordetails.WorkflowExecutionAlreadyStartedFailure(
            start_request_id=record.request_id, run_id=record.run_id, first_execution_run_id=record.run_id
        )
        return error

    async def _record(self, ns: Namespace, job_id: str) -> tuple[BatchRow, BatchOperationRecord]:
        row = await self.store.get_batch(ns.id, job_id)
        if row is None:
            raise WorkflowNotFound.for_id(job_id)
        return row, BatchOperationRecord.FromString(row.data)

    async def describe(self, ns: Namespace, req: ws.DescribeBatchOperationRequest) -> ws.DescribeBatchOperationResponse:
        if not req.job_id:
            raise InvalidArgument("JobId is not set on request.")
        _, record = await self._record(ns, req.job_id)
        request = record.request
        resp = ws.DescribeBatchOperationResponse(
            operation_type=validation.OPERATION_TYPES.get(validation.operation_name(request), 0),  # type: ignore[arg-type]
            job_id=request.job_id,
            state=record.state,  # type: ignore[arg-type]
            identity=validation.identity(request),
            reason=request.reason,
            query=request.visibility_query,
            executions=validation.described_executions(request),
        )
        resp.start_time.CopyFrom(record.start_time)
        if record.state != RUNNING:
            resp.close_time.CopyFrom(record.close_time)
        # As the reference: a completed job counts what it did, a running one what it did so far of what it
        # expected, and a failed (or stopped) one nothing.
        if record.state == COMPLETED:
            resp.total_operation_count = record.complete_operation_count + record.failure_operation_count
        elif record.state == RUNNING and record.total_known:
            resp.total_operation_count = record.total_operation_count
        if record.state != FAILED:
            resp.complete_operation_count = record.complete_operation_count
            resp.failure_operation_count = record.failure_operation_count
        return resp

    async def list(self, ns: Namespace, req: ws.ListBatchOperationsRequest) -> ws.ListBatchOperationsResponse:
        page_size = req.page_size if 0 < req.page_size <= MAX_PAGE_SIZE else MAX_PAGE_SIZE
        rows = await self.store.list_batches(ns.id, _decode_list_token(req.next_page_token), page_size)
        resp = ws.ListBatchOperationsResponse()
        for row in rows:
            record = BatchOperationRecord.FromString(row.data)
            info = resp.operation_info.add(
                job_id=row.job_id,
                state=record.state,
                operation_type=validation.OPERATION_TYPES.get(validation.operation_name(record.request), 0),
            )
            # listed from visibility on the reference, which keeps microseconds
            info.start_time.CopyFrom(timestamp(_micros(ts_ns(record.start_time))))
            if record.state != RUNNING:
                info.close_time.CopyFrom(timestamp(_micros(ts_ns(record.close_time))))
        if rows and len(rows) == page_size:
            last = rows[-1]
            resp.next_page_token = json.dumps([last.close_time, last.start_time, last.job_id]).encode()
        return resp

    async def stop_operation(self, ns: Namespace, req: ws.StopBatchOperationRequest) -> ws.StopBatchOperationResponse:
        if not req.job_id:
            raise InvalidArgument("JobId is not set on request.")
        if not req.reason:
            raise InvalidArgument("Reason is not set on request.")
        self.namespaces.check_active(ns)
        key = (ns.id, req.job_id)
        async with self._lock(key):
            row, record = await self._record(ns, req.job_id)
            if record.state != RUNNING:
                raise WorkflowCompleted()
            self.held(row.shard_id)
            halted = await self._halt(key)
            if halted is not None:
                record = halted
            record.state = FAILED  # a stopped job is a terminated workflow on the reference, which it shows so
            record.close_time.CopyFrom(timestamp(time.time_ns()))
            record.failure = f"stopped: {req.reason}"
            try:
                await self.save(row.shard_id, record)
            except ShardOwnershipLost:
                raise ShardNotHere(row.shard_id) from None
        return ws.StopBatchOperationResponse()


def _micros(ns: int) -> int:
    return ns - ns % 1000


def _decode_list_token(token: bytes) -> tuple[int, int, str] | None:
    if not token:
        return None
    try:
        close, start, job = gojson.loads(token.decode())
        if isinstance(close, int) and isinstance(start, int) and isinstance(job, str):
            return close, start, job
    except (ValueError, TypeError, UnicodeDecodeError):
        pass
    raise InvalidArgument("invalid next page token")


@dataclass
class Page:
    executions: list[tuple[common.WorkflowExecution, bytes]]  # each with the cursor just past it
    last: bool


class JobRunner:
    """One job on the node holding its shard: list, apply, write progress after each execution, finish."""

    def __init__(self, owner: BatchOperations, shard_id: int, record: BatchOperationRecord, applier: Applier) -> None:
        self.owner = owner
        self.shard_id = shard_id
        self.record = record
        self.applier = applier
        self.writing = asyncio.Lock()  # held while the record is written: a stop waits for it
        self.task: asyncio.Task[None]
        rate = record.request.max_operations_per_second
        self.bucket = TokenBucket(float(rate) if rate > 0 else DEFAULT_RPS)

    @property
    def job_id(self) -> str:
        return self.record.request.job_id

    async def run(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            try:
                await self._run()
                return
            except asyncio.CancelledError:
                raise
            except (ShardOwnershipLost, ShardNotHere):
                return  # the shard moved: its new owner resumes the job
            except Exception as err:  # anything else: log it and go on from the last record written
                self.owner.failures.failure(f"batch operation {self.job_id} failed for now", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _save(self) -> None:
        delay = RETRY_INITIAL_S
        while True:
            try:
                async with self.writing:
                    await self.owner.save(self.shard_id, self.record)
                return
            except (ShardOwnershipLost, ShardNotHere):
                raise
            except ServiceError as err:  # the database is away (UNAVAILABLE): the record waits for it
                self.owner.failures.failure(f"could not write batch operation {self.job_id}", err)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    def _namespace(self) -> Namespace:
        ns = self.owner.namespaces.find_by_id(self.record.namespace_id)
        if ns is None:
            raise InvalidArgument(f"namespace {self.record.namespace_id} is gone")
        return ns

    async def _fail(self, why: str) -> None:
        log.warning("batch operation %s failed: %s", self.job_id, why)
        self.record.state = FAILED
        self.record.failure = why
        self.record.close_time.CopyFrom(timestamp(time.time_ns()))
        await self._save()

    async def _run(self) -> None:
        ns = self._namespace()
        request = self.record.request
        query = validation.listed_query(request)
        if not self.record.total_known:
            if query:
                try:
                    total = (await self.owner_visibility_count(ns, query)).count
                except (InvalidArgument, VisibilityQueryFailed) as err:
                    await self._fail(str(err))
                    return
            else:
                total = len(validation.targets(request))
            self.record.total_operation_count = total
            self.record.total_known = True
            await self._save()
        if self.record.HasField("inflight"):
            await self._apply_inflight(ns)  # the process stopped while applying it: apply it again
        while True:
            try:
                page = await self._next_page(ns, query)
            except (InvalidArgument, VisibilityQueryFailed) as err:
                await self._fail(str(err))
                return
            for execution, cursor in page.executions:
                await self._take_token()
                self.record.inflight.CopyFrom(execution)
                if query:
                    self.record.cursor = cursor
                else:
                    self.record.next_index += 1
                await self._save()
                await self._apply_inflight(ns)
            if page.last:
                break
        self.record.state = COMPLETED
        self.record.close_time.CopyFrom(timestamp(time.time_ns()))
        await self._save()
        log.info(
            "batch operation %s completed: %d done, %d failed",
            self.job_id,
            self.record.complete_operation_count,
            self.record.failure_operation_count,
        )

    async def _apply_inflight(self, ns: Namespace) -> None:
        outcome = await self.applier.apply(ns, self.record.request, self.record.inflight)
        if outcome is Outcome.FAILED:
            self.record.failure_operation_count += 1
        else:
            self.record.complete_operation_count += 1
        self.record.ClearField("inflight")
        await self._save()

    async def owner_visibility_count(self, ns: Namespace, query: str) -> ws.CountWorkflowExecutionsResponse:
        compiled = await compile_filter(query, dict(ns.record.search_attributes))
        rows = await self.owner.store.count_visibility(ns.id, compiled)
        return ws.CountWorkflowExecutionsResponse(count=rows[0][0] if rows else 0)

    async def _take_token(self) -> None:
        while True:
            wait = self.bucket.reserve()
            if wait <= 0:
                return
            await asyncio.sleep(wait)

    async def _next_page(self, ns: Namespace, query: str) -> Page:
        if not query:
            targets = validation.targets(self.record.request)
            start = int(self.record.next_index)
            chunk = targets[start : start + PAGE_SIZE]
            return Page([(e, b"") for e in chunk], start + len(chunk) >= len(targets))
        compiled = await compile_filter(query, dict(ns.record.search_attributes))
        compiled.page_size = PAGE_SIZE
        ordered = bool(compiled.order_by)
        compiled.cursor = decode_page_token(self.record.cursor, len(compiled.order_by))
        rows = await self.owner.store.list_visibility(ns.id, compiled)
        executions = [
            (common.WorkflowExecution(workflow_id=r.workflow_id, run_id=r.run_id), encode_page_token(r, ordered))
            for r in rows
        ]
        return Page(executions, len(rows) < PAGE_SIZE)
