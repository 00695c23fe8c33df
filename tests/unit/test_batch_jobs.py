"""Batch jobs (batch/service.py) over the in-memory store, with an applier that records what it is asked to do: a job
resumed with an execution in flight applies it again and counts it once; stop halts a job between executions; a
job whose shard moved stops writing; the request checks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.batch import validation
from tempyral.batch.apply import Applier, Outcome
from tempyral.batch.service import BatchOperations
from tempyral.common.errors import InvalidArgument, Unimplemented
from tempyral.history.executions import shard_id_for
from tempyral.namespace.registry import Namespace
from tempyral.proto.batch_pb2 import BatchOperationRecord
from tests.support.batches import until
from tests.support.history_harness import Harness, open_harness

pytestmark = pytest.mark.asyncio(loop_scope="function")
RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING
COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
FAILED = BatchOperationState.BATCH_OPERATION_STATE_FAILED


class RecordingApplier(Applier):
    """Applies nothing: records each execution; `gate`, when set, holds every call until it opens."""

    def __init__(self) -> None:
        self.applied: list[str] = []
        self.gate: asyncio.Event | None = None
        self.failing: set[str] = set()

    async def close(self) -> None:
        return None

    async def apply(
        self, ns: Namespace, request: ws.StartBatchOperationRequest, execution: common.WorkflowExecution
    ) -> Outcome:
        if self.gate is not None:
            await self.gate.wait()
        self.applied.append(execution.workflow_id)
        return Outcome.FAILED if execution.workflow_id in self.failing else Outcome.DONE


@pytest_asyncio.fixture(loop_scope="function")
async def harness() -> AsyncIterator[Harness]:
    async with open_harness(num_shards=2) as h:
        yield h


def _request(ns: Namespace, job_id: str, ids: list[str], rps: float = 1000.0) -> ws.StartBatchOperationRequest:
    return ws.StartBatchOperationRequest(
        namespace=ns.name,
        job_id=job_id,
        reason="unit",
        executions=[common.WorkflowExecution(workflow_id=w) for w in ids],
        max_operations_per_second=rps,
        signal_operation=batch.BatchOperationSignal(signal="s"),
    )


async def _record(h: Harness, job_id: str) -> BatchOperationRecord:
    row = await h.store.get_batch(h.ns.id, job_id)
    assert row is not None
    return BatchOperationRecord.FromString(row.data)


async def _closed(h: Harness, job_id: str) -> BatchOperationRecord:
    async def closed() -> BatchOperationRecord | None:
        record = await _record(h, job_id)
        return record if record.state != RUNNING else None

    result: BatchOperationRecord = await until(closed, f"{job_id} to close", timeout=10)
    return result


async def test_a_resumed_job_applies_its_inflight_execution_again_and_counts_it_once(harness: Harness) -> None:
    h = harness
    ops = BatchOperations(h.store, h.engine, h.namespaces)
    applier = RecordingApplier()
    ops.start(applier)
    # as a job left it when the process died: w0 counted, w1 written as in flight, its count not yet
    record = BatchOperationRecord(namespace_id=h.ns.id, state=RUNNING, total_known=True, total_operation_count=3)
    record.request.CopyFrom(_request(h.ns, "job", ["w0", "w1", "w2"]))
    record.complete_operation_count = 1
    record.next_index = 2
    record.inflight.workflow_id = "w1"
    shard_id = shard_id_for(h.ns.id, "job", len(h.engine.shards))
    await ops.save(shard_id, record, create=True)
    ops.shard_acquired(shard_id)  # the node takes the shard over
    done = await _closed(h, "job")
    assert applier.applied == ["w1", "w2"]
    assert (done.state, done.complete_operation_count, done.failure_operation_count) == (COMPLETED, 3, 0)
    assert not done.HasField("inflight")
    await ops.stop()


async def test_counts_failures_and_describes_as_the_reference(harness: Harness) -> None:
    h = harness
    ops = BatchOperations(h.store, h.engine, h.namespaces)
    applier = RecordingApplier()
    applier.failing = {"w1"}
    ops.start(applier)
    await ops.start_operation(h.ns, _request(h.ns, "job", ["w0", "w1", "w2"]))
    await _closed(h, "job")
    described = await ops.describe(h.ns, ws.DescribeBatchOperationRequest(namespace=h.ns.name, job_id="job"))
    assert (described.state, described.total_operation_count) == (COMPLETED, 3)
    assert (described.complete_operation_count, described.failure_operation_count) == (2, 1)
    assert [e.business_id for e in described.executions] == ["w0", "w1", "w2"]
    await ops.stop()


async def test_stop_halts_the_job_between_executions(harness: Harness) -> None:
    h = harness
    ops = BatchOperations(h.store, h.engine, h.namespaces)
    applier = RecordingApplier()
    ops.start(applier)
    await ops.start_operation(h.ns, _request(h.ns, "job", ["w0", "w1", "w2"], rps=1))

    async def first_counted() -> bool:
        return (await _record(h, "job")).complete_operation_count == 1

    await until(first_counted, "the first execution", timeout=10)
    await ops.stop_operation(h.ns, ws.StopBatchOperationRequest(namespace=h.ns.name, job_id="job", reason="enough"))
    stopped = await _record(h, "job")
    assert stopped.state == FAILED and stopped.HasField("close_time")
    assert applier.applied in (["w0"], ["w0", "w1"])  # w1 may have been applied as the stop came
    applied = list(applier.applied)
    await asyncio.sleep(0)  # nothing runs on: the runner is gone
    assert applier.applied == applied and not ops._runners
    await ops.stop()


async def test_a_job_whose_shard_moved_stops_and_writes_nothing_more(harness: Harness) -> None:
    h = harness
    ops = BatchOperations(h.store, h.engine, h.namespaces)
    applier = RecordingApplier()
    applier.gate = asyncio.Event()
    ops.start(applier)
    await ops.start_operation(h.ns, _request(h.ns, "job", ["w0", "w1"]))
    shard_id = shard_id_for(h.ns.id, "job", len(h.engine.shards))
    before = await _record(h, "job")
    h.store.steal_shard(shard_id)  # another node took it: this one's next write is fenced off
    applier.gate.set()

    async def gone() -> bool:
        return not ops._runners

    await until(gone, "the runner to end", timeout=10)
    after = await _record(h, "job")
    assert after.state == RUNNING and after.complete_operation_count == before.complete_operation_count
    await ops.stop()


async def test_request_checks() -> None:
    ok = ws.StartBatchOperationRequest(
        namespace="default", job_id="j", reason="r", visibility_query="WorkflowType = 'x'"
    )
    ok.termination_operation.SetInParent()
    validation.validate_start(ok)
    assert validation.listed_query(ok) == "(WorkflowType = 'x') AND (ExecutionStatus='Running')"
    deletion = ws.StartBatchOperationRequest(namespace="default", job_id="j", reason="r", visibility_query="a = 'b'")
    deletion.deletion_operation.SetInParent()
    assert validation.listed_query(deletion) == "a = 'b'"
    unpause = ws.StartBatchOperationRequest(namespace="default", job_id="j", reason="r", visibility_query="a = 'b'")
    unpause.unpause_activities_operation.match_all = True
    with pytest.raises(Unimplemented):
        validation.validate_start(unpause)
    bad = ws.StartBatchOperationRequest(namespace="default", job_id="j", reason="r", visibility_query="a = 'b'")
    bad.reset_operation.reset_type = 7  # type: ignore[assignment]
    with pytest.raises(InvalidArgument, match="unknown batch reset type 7"):
        validation.validate_start(bad)
    typed = ws.StartBatchOperationRequest(namespace="default", job_id="j", reason="r")
    typed.target_executions.add(business_id="w")  # no type: not a workflow
    typed.termination_operation.SetInParent()
    with pytest.raises(InvalidArgument, match=r"target_executions\[0\] has type EXECUTION_TYPE_UNSPECIFIED"):
        validation.validate_start(typed)
