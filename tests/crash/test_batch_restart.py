"""SIGKILL the server while a slow batch operation (one execution per second) runs, restart it on the same database:
the job goes on from where it was and completes, every workflow is handled exactly once, and the counts are right."""

from __future__ import annotations

import uuid

from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.client import Client

from tests.crash.test_sigkill import restart, retrying
from tests.support.batches import describe, signal_op, signals, start, start_idle, status, until
from tests.support.servers import ServerProcess

COUNT = 10
RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING
COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED


async def _killed_mid_job(server: ServerProcess, client: Client, job: str) -> None:
    """Kill the server once the job has handled some executions and not all, then start it again."""

    async def partly_done() -> bool:
        found = await describe(client, job)
        assert found.state == RUNNING, "the job ended before the server could be killed"
        return 3 <= found.complete_operation_count

    await until(partly_done, "the job to be under way")
    restart(server)


async def _completed(server: ServerProcess, job: str) -> tuple[Client, int, int, int]:
    client = await retrying(lambda: Client.connect(server.address), "connect")

    async def closed() -> object:
        found = await retrying(lambda: describe(client, job), "describe")
        return None if found.state == RUNNING else found

    done = await until(closed, "the job to complete after the restart", timeout=90)
    return client, done.state, done.complete_operation_count, done.total_operation_count


async def test_signal_batch_resumes_after_sigkill_and_signals_each_workflow_once(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    tq = f"crash-batch-{uuid.uuid4().hex[:8]}"
    ids = await start_idle(client, COUNT, tq)
    job = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", max_operations_per_second=1, signal_operation=signal_op()
    )
    await _killed_mid_job(crashable, client, job)
    client, state, complete, total = await _completed(crashable, job)
    assert (state, complete, total) == (COMPLETED, COUNT, COUNT)
    assert [len(await signals(client, w)) for w in ids] == [1] * COUNT


async def test_terminate_batch_resumes_after_sigkill_and_terminates_all(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    tq = f"crash-batch-{uuid.uuid4().hex[:8]}"
    ids = await start_idle(client, COUNT, tq)
    job = await start(
        client,
        visibility_query=f"TaskQueue = '{tq}'",
        max_operations_per_second=1,
        termination_operation=batch.BatchOperationTermination(),
    )
    await _killed_mid_job(crashable, client, job)
    client, state, complete, total = await _completed(crashable, job)
    assert (state, complete, total) == (COMPLETED, COUNT, COUNT)
    assert [await status(client, w) for w in ids] == [Status.WORKFLOW_EXECUTION_STATUS_TERMINATED] * COUNT
    for workflow_id in ids:  # terminated once: one close event, the last
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        assert sum(1 for e in history.events if e.HasField("workflow_execution_terminated_event_attributes")) == 1
