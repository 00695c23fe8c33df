"""Batch operations on tempyral, through the SDK's raw service calls and the `temporal` CLI: each operation over a
query and over a list, progress counts, the rate limit, stop, list, and the errors.

Jobs run one at a time in a namespace (as on the reference), so every test waits for its jobs to close."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from google.protobuf.empty_pb2 import Empty
from temporalio import workflow
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import BatchOperationState, BatchOperationType, EventType, ResetType
from temporalio.api.enums.v1 import WorkflowExecutionStatus as Status
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.support.batches import (
    describe,
    error_of,
    signal_op,
    signals,
    start,
    start_idle,
    status,
    until,
    wait_closed,
    wait_listed,
)
from tests.support.servers import ServerProcess, reference_binary

COMPLETED = BatchOperationState.BATCH_OPERATION_STATE_COMPLETED
FAILED = BatchOperationState.BATCH_OPERATION_STATE_FAILED
RUNNING = BatchOperationState.BATCH_OPERATION_STATE_RUNNING


@workflow.defn
class Resettable:
    """Completes a workflow task, then waits for `finish`."""

    def __init__(self) -> None:
        self.finished = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.finished)
        return "done"

    @workflow.signal
    def finish(self) -> None:
        self.finished = True


@pytest_asyncio.fixture
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    """A namespace of the test's own: jobs run one at a time per namespace, and lists show only this test's."""
    base = await Client.connect(server.address)
    name = f"batch-{uuid.uuid4().hex[:8]}"
    await base.workflow_service.register_namespace(
        ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
    )
    yield await Client.connect(server.address, namespace=name)


def _tq() -> str:
    return f"batch-tq-{uuid.uuid4().hex[:8]}"


async def test_signal_over_a_query_at_one_per_second_shows_its_progress(client: Client) -> None:
    tq = _tq()
    ids = await start_idle(client, 5, tq)
    job = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", max_operations_per_second=1, signal_operation=signal_op()
    )

    async def partial() -> ws.DescribeBatchOperationResponse | None:
        found = await describe(client, job)
        return found if found.state == RUNNING and 0 < found.complete_operation_count < 5 else None

    seen = await until(partial, "a running job that has signalled some of its workflows")
    assert seen.total_operation_count == 5
    done = await wait_closed(client, job)
    assert done.state == COMPLETED
    assert (done.total_operation_count, done.complete_operation_count, done.failure_operation_count) == (5, 5, 0)
    assert done.operation_type == BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW
    assert (done.identity, done.reason, done.query) == ("batch-tester", "batch test", f"TaskQueue = '{tq}'")
    assert done.close_time.ToNanoseconds() >= done.start_time.ToNanoseconds()
    for workflow_id in ids:
        got = await signals(client, workflow_id)
        assert len(got) == 1, workflow_id
        attrs = got[0].workflow_execution_signaled_event_attributes
        assert (attrs.signal_name, attrs.identity, attrs.input.payloads[0].data) == (
            "batch-signal",
            "batch-tester",
            b'"hello"',
        )


async def test_terminate_a_list_counts_a_missing_workflow_as_done(client: Client) -> None:
    ids = await start_idle(client, 2, _tq())
    executions = [common.WorkflowExecution(workflow_id=ids[0]), common.WorkflowExecution(workflow_id="never-started")]
    job = await start(
        client,
        executions=executions,
        reason="cleanup",
        termination_operation=batch.BatchOperationTermination(identity="ops"),
    )
    done = await wait_closed(client, job)
    assert (done.state, done.total_operation_count, done.complete_operation_count) == (COMPLETED, 2, 2)
    assert [(e.business_id, e.run_id) for e in done.executions] == [(ids[0], ""), ("never-started", "")]
    assert not done.query
    assert await status(client, ids[0]) == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert await status(client, ids[1]) == Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    history = await client.get_workflow_handle(ids[0]).fetch_history()
    terminated = history.events[-1].workflow_execution_terminated_event_attributes
    assert (terminated.reason, terminated.identity) == ("cleanup", "ops")


async def test_cancel_and_terminate_over_a_query_take_running_workflows_only(client: Client) -> None:
    tq = _tq()
    ids = await start_idle(client, 3, tq)
    await client.get_workflow_handle(ids[0]).terminate("before the batch")
    await wait_listed(client, f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'", 2)
    job = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", cancellation_operation=batch.BatchOperationCancellation()
    )
    done = await wait_closed(client, job)
    assert (done.state, done.total_operation_count, done.complete_operation_count) == (COMPLETED, 2, 2)
    for workflow_id in ids[1:]:
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        kinds = [e.event_type for e in history.events]
        assert kinds.count(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED) == 1
    job = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", termination_operation=batch.BatchOperationTermination()
    )
    done = await wait_closed(client, job)
    assert (done.state, done.total_operation_count, done.complete_operation_count) == (COMPLETED, 2, 2)
    assert [await status(client, w) for w in ids] == [Status.WORKFLOW_EXECUTION_STATUS_TERMINATED] * 3


async def test_delete_over_a_query_takes_closed_workflows_too(client: Client) -> None:
    tq = _tq()
    ids = await start_idle(client, 3, tq)
    await client.get_workflow_handle(ids[0]).terminate("closed before")
    job = await start(client, visibility_query=f"TaskQueue = '{tq}'", deletion_operation=batch.BatchOperationDeletion())
    done = await wait_closed(client, job)
    assert (done.state, done.total_operation_count, done.complete_operation_count) == (COMPLETED, 3, 3)
    assert done.operation_type == BatchOperationType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW
    assert [await status(client, w) for w in ids] == [None, None, None]


async def test_reset_to_the_first_and_the_last_workflow_task(client: Client) -> None:
    tq = _tq()
    async with Worker(client, task_queue=tq, workflows=[Resettable], workflow_runner=UnsandboxedWorkflowRunner()):
        handles = [
            await client.start_workflow(Resettable.run, id=f"reset-{uuid.uuid4().hex[:8]}", task_queue=tq)
            for _ in range(2)
        ]

        async def settled() -> bool:
            for handle in handles:
                history = await handle.fetch_history()
                if history.events[-1].event_type != EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    return False
            return True

        await until(settled, "the first workflow tasks to complete")
        first_runs = [(await h.describe()).run_id for h in handles]
        await wait_listed(client, f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'", 2)
        job = await start(
            client,
            visibility_query=f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'",
            reset_operation=batch.BatchOperationReset(
                reset_type=ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK, identity="resetter"
            ),
        )
        done = await wait_closed(client, job)
        assert (done.state, done.total_operation_count, done.complete_operation_count) == (COMPLETED, 2, 2)
        for handle, first_run in zip(handles, first_runs, strict=True):
            now = await handle.describe()
            assert now.run_id != first_run
            old = await client.get_workflow_handle(handle.id, run_id=first_run).describe()
            assert old.status is not None and old.status.name == "TERMINATED"
            history = await handle.fetch_history()
            failed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
            assert failed and failed[0].workflow_task_failed_event_attributes.base_run_id == first_run
        # the reset runs again, through options, over a list: each once more
        second_runs = [(await h.describe()).run_id for h in handles]
        options = common.ResetOptions(last_workflow_task=Empty())
        job = await start(
            client,
            executions=[
                common.WorkflowExecution(workflow_id=h.id, run_id=r) for h, r in zip(handles, second_runs, strict=True)
            ],
            reset_operation=batch.BatchOperationReset(options=options),
        )
        done = await wait_closed(client, job)
        assert (done.state, done.complete_operation_count, done.failure_operation_count) == (COMPLETED, 2, 0)
        for handle, second_run in zip(handles, second_runs, strict=True):
            assert (await handle.describe()).run_id not in (second_run, "")
            await handle.signal(Resettable.finish)
            assert await asyncio.wait_for(client.get_workflow_handle(handle.id).result(), 60) == "done"


async def test_stop_ends_a_job_as_failed(client: Client) -> None:
    tq = _tq()
    ids = await start_idle(client, 5, tq)
    job = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", max_operations_per_second=1, signal_operation=signal_op()
    )

    async def started() -> bool:
        return (await describe(client, job)).complete_operation_count >= 1

    await until(started, "the job's first signal")
    await client.workflow_service.stop_batch_operation(
        ws.StopBatchOperationRequest(namespace=client.namespace, job_id=job, reason="enough", identity="stopper")
    )
    stopped = await describe(client, job)
    assert stopped.state == FAILED
    assert stopped.HasField("close_time")
    # a stopped job reports no counts, as on the reference (its batch workflow is terminated)
    assert (stopped.total_operation_count, stopped.complete_operation_count) == (0, 0)
    signalled = sum([len(await signals(client, w)) for w in ids])
    assert 1 <= signalled < 5
    assert await error_of(
        client.workflow_service.stop_batch_operation(
            ws.StopBatchOperationRequest(namespace=client.namespace, job_id=job, reason="again")
        )
    ) == ("NOT_FOUND", "workflow execution already completed", ["NotFoundFailure"])
    # the namespace may run another job now
    second = await start(client, visibility_query=f"TaskQueue = '{tq}'", signal_operation=signal_op())
    assert (await wait_closed(client, second)).complete_operation_count == 5


async def test_list_gives_every_job_newest_first_in_pages(client: Client) -> None:
    tq = _tq()
    await start_idle(client, 1, tq)
    jobs = []
    for op in ("signal", "cancel", "terminate"):
        if op == "signal":
            job = await start(client, visibility_query=f"TaskQueue = '{tq}'", signal_operation=signal_op())
        elif op == "cancel":
            job = await start(
                client,
                visibility_query=f"TaskQueue = '{tq}'",
                cancellation_operation=batch.BatchOperationCancellation(),
            )
        else:
            job = await start(
                client, visibility_query=f"TaskQueue = '{tq}'", termination_operation=batch.BatchOperationTermination()
            )
        await wait_closed(client, job)
        jobs.append(job)
    listed = await client.workflow_service.list_batch_operations(
        ws.ListBatchOperationsRequest(namespace=client.namespace)
    )
    assert [i.job_id for i in listed.operation_info] == jobs[::-1]
    assert [i.operation_type for i in listed.operation_info] == [
        BatchOperationType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW,
        BatchOperationType.BATCH_OPERATION_TYPE_CANCEL_WORKFLOW,
        BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW,
    ]
    assert all(i.state == COMPLETED and i.start_time.ToNanoseconds() % 1000 == 0 for i in listed.operation_info)
    paged: list[str] = []
    token = b""
    while True:
        page = await client.workflow_service.list_batch_operations(
            ws.ListBatchOperationsRequest(namespace=client.namespace, page_size=2, next_page_token=token)
        )
        paged.extend(i.job_id for i in page.operation_info)
        token = page.next_page_token
        if not token:
            break
    assert paged == jobs[::-1]


async def test_errors(client: Client) -> None:
    svc = client.workflow_service
    ns = client.namespace
    tq = _tq()
    term = batch.BatchOperationTermination()

    def req(**fields: object) -> ws.StartBatchOperationRequest:
        fields.setdefault("namespace", ns)
        fields.setdefault("job_id", "j-" + uuid.uuid4().hex[:6])
        fields.setdefault("reason", "r")
        return ws.StartBatchOperationRequest(**fields)  # type: ignore[arg-type]

    required = (
        "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR "
        "TargetExecutions)"
    )
    cases = [
        (req(termination_operation=term), ("INVALID_ARGUMENT", required, [])),
        (req(visibility_query="a='b'"), ("INVALID_ARGUMENT", required, [])),
        (req(visibility_query="a='b'", reason="", termination_operation=term), ("INVALID_ARGUMENT", required, [])),
        (
            req(visibility_query="a='b'", job_id="", termination_operation=term),
            ("INVALID_ARGUMENT", "JobId is not set on request.", []),
        ),
        (
            req(
                visibility_query="a='b'",
                executions=[common.WorkflowExecution(workflow_id="w")],
                termination_operation=term,
            ),
            ("INVALID_ARGUMENT", "visibility query, executions, and target executions are mutually exclusive", []),
        ),
        (
            req(visibility_query="a='b'", signal_operation=batch.BatchOperationSignal()),
            ("INVALID_ARGUMENT", "must provide signal name", []),
        ),
        (
            req(visibility_query="a='b'", reset_operation=batch.BatchOperationReset()),
            ("INVALID_ARGUMENT", "unknown batch reset type Unspecified", []),
        ),
        (
            req(visibility_query="bad query ((", termination_operation=term),
            ("INVALID_ARGUMENT", "invalid visibility query: syntax error at position 36 near 'query'", []),
        ),
        (
            req(namespace="no-such-ns", visibility_query="a='b'", termination_operation=term),
            ("NOT_FOUND", "Namespace no-such-ns is not found.", ["NamespaceNotFoundFailure"]),
        ),
    ]
    for request, expected in cases:
        assert await error_of(svc.start_batch_operation(request)) == expected, request
    not_found = ("NOT_FOUND", "workflow not found for ID: nope", ["NotFoundFailure"])
    assert (
        await error_of(svc.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace=ns, job_id="nope")))
        == not_found
    )
    assert await error_of(svc.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace=ns))) == (
        "INVALID_ARGUMENT",
        "JobId is not set on request.",
        [],
    )
    assert (
        await error_of(svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id="nope", reason="r")))
        == not_found
    )
    assert await error_of(svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id="nope"))) == (
        "INVALID_ARGUMENT",
        "Reason is not set on request.",
        [],
    )
    # an unknown attribute passes the syntax check and fails the job
    job = await start(client, visibility_query="NoSuchAttribute = 'x'", termination_operation=term)
    failed = await wait_closed(client, job)
    assert (failed.state, failed.total_operation_count, failed.query) == (FAILED, 0, "NoSuchAttribute = 'x'")
    # one job at a time per namespace; a job id is never used twice
    await start_idle(client, 3, tq)
    slow = await start(
        client, visibility_query=f"TaskQueue = '{tq}'", max_operations_per_second=1, signal_operation=signal_op()
    )
    assert await error_of(svc.start_batch_operation(req(visibility_query="a='b'", termination_operation=term))) == (
        "RESOURCE_EXHAUSTED",
        "Max concurrent batch operations is reached",
        ["ResourceExhaustedFailure"],
    )
    await wait_closed(client, slow)
    status_name, message, details = await error_of(
        svc.start_batch_operation(req(job_id=slow, visibility_query="a='b'", termination_operation=term))
    )
    assert (status_name, details) == ("ALREADY_EXISTS", ["WorkflowExecutionAlreadyStartedFailure"])
    assert message.startswith(f"Workflow execution already finished. WorkflowId: {slow}, RunId: ")
    assert message.endswith(". Workflow Id reuse policy: reject duplicate workflow Id.")


async def _cli(server: ServerProcess, namespace: str, *args: str, ok: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        reference_binary(),
        *args,
        "--address",
        server.address,
        "--namespace",
        namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"TEMPORAL_CLI_SHOW_STACKS": "", "NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    text = out.decode()
    assert (proc.returncode == 0) == ok, f"temporal {' '.join(args)}:\n{text}"
    return text


def _job_id(output: str) -> str:
    prefix = "Started batch for job ID: "
    line = next(line for line in output.splitlines() if line.startswith(prefix))
    return line.removeprefix(prefix).strip()


async def test_cli_batches(client: Client, server: ServerProcess) -> None:
    ns = client.namespace
    tq = _tq()
    ids = await start_idle(client, 3, tq)
    query = f"TaskQueue = '{tq}'"
    out = await _cli(
        server,
        ns,
        "workflow",
        "signal",
        "--query",
        query,
        "--name",
        "ping",
        "--input",
        '"x"',
        "--reason",
        "ping all",
        "--yes",
    )
    signalled = _job_id(out)
    done = await wait_closed(client, signalled)
    assert (done.state, done.complete_operation_count, done.reason) == (COMPLETED, 3, "ping all")
    assert [len(await signals(client, w)) for w in ids] == [1, 1, 1]

    described = json.loads(await _cli(server, ns, "batch", "describe", "--job-id", signalled, "--output", "json"))
    assert (described["state"], described["operationType"], described["completeOperationCount"]) == (
        "BATCH_OPERATION_STATE_COMPLETED",
        "BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW",
        "3",
    )
    text = await _cli(server, ns, "batch", "describe", "--job-id", signalled)
    assert "Completed" in text and "SignalWorkflow" in text and "3/3" in text

    # a slow terminate (one per second), stopped with `batch terminate`
    out = await _cli(server, ns, "workflow", "terminate", "--query", query, "--reason", "slowly", "--rps", "1", "--yes")
    slow = _job_id(out)

    async def some_terminated() -> bool:
        return (await describe(client, slow)).complete_operation_count >= 1

    await until(some_terminated, "the first termination")
    await _cli(server, ns, "batch", "terminate", "--job-id", slow, "--reason", "changed my mind")
    assert (await describe(client, slow)).state == FAILED
    out = await _cli(server, ns, "batch", "terminate", "--job-id", slow, "--reason", "again", ok=False)
    assert f"could not find Batch Job '{slow}'" in out

    listed = json.loads(await _cli(server, ns, "batch", "list", "--output", "json"))
    assert [(e["jobId"], e["state"]) for e in listed] == [
        (slow, "BATCH_OPERATION_STATE_FAILED"),
        (signalled, "BATCH_OPERATION_STATE_COMPLETED"),
    ]
    out = await _cli(server, ns, "workflow", "cancel", "--query", query, "--reason", "c", "--yes")
    await wait_closed(client, _job_id(out))
    out = await _cli(server, ns, "workflow", "delete", "--query", query, "--reason", "gone", "--yes")
    deleted = await wait_closed(client, _job_id(out))
    assert (deleted.state, deleted.complete_operation_count) == (COMPLETED, 3)
    assert [await status(client, w) for w in ids] == [None, None, None]


async def test_cli_reset_over_a_query(client: Client, server: ServerProcess) -> None:
    tq = _tq()
    async with Worker(client, task_queue=tq, workflows=[Resettable], workflow_runner=UnsandboxedWorkflowRunner()):
        handle = await client.start_workflow(Resettable.run, id=f"cli-reset-{uuid.uuid4().hex[:8]}", task_queue=tq)

        async def settled() -> bool:
            history = await handle.fetch_history()
            return history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED

        await until(settled, "the first workflow task")
        first_run = (await handle.describe()).run_id
        await wait_listed(client, f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'", 1)
        out = await _cli(
            server,
            client.namespace,
            "workflow",
            "reset",
            "--query",
            f"TaskQueue = '{tq}' AND ExecutionStatus = 'Running'",
            "--type",
            "LastWorkflowTask",
            "--reason",
            "redo",
            "--yes",
        )
        done = await wait_closed(client, _job_id(out))
        assert (done.state, done.complete_operation_count, done.operation_type) == (
            COMPLETED,
            1,
            BatchOperationType.BATCH_OPERATION_TYPE_RESET_WORKFLOW,
        )
        assert (await handle.describe()).run_id != first_run
        await handle.signal(Resettable.finish)
        assert await asyncio.wait_for(client.get_workflow_handle(handle.id).result(), 60) == "done"
