"""Batch operations on tempyral and on the reference, the same calls on both: describe output (without ids and
times), list entries and errors must match.

Not compared: how fast a job runs (the reference applies its namespace's 50 per second whatever the request asks,
tempyral the request's rate), and a stopped job's describe (the reference's jobs end before a test could stop them)."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client

from tests.support.batches import (
    error_of,
    normalised,
    signal_op,
    start,
    start_idle,
    status,
    until,
    wait_closed,
    wait_list_closed,
)
from tests.support.servers import ServerProcess


@pytest_asyncio.fixture
async def clients(server: ServerProcess, reference_server: ServerProcess) -> AsyncIterator[tuple[Client, Client]]:
    yield await Client.connect(server.address), await Client.connect(reference_server.address)


async def _both(clients: tuple[Client, Client], scenario: Any) -> tuple[Any, Any]:
    tempyral, reference = clients
    return await scenario(tempyral), await scenario(reference)


async def test_each_operation_describes_alike(clients: tuple[Client, Client]) -> None:
    async def scenario(client: Client) -> list[dict[str, Any]]:
        tq = f"diff-batch-{uuid.uuid4().hex[:8]}"
        ids = await start_idle(client, 3, tq)
        names = {tq: "<tq>", ids[0]: "<w0>"}
        query = f"TaskQueue = '{tq}'"
        results = []
        job = await start(client, visibility_query=query, signal_operation=signal_op())
        results.append(normalised(await wait_closed(client, job), names))
        job = await start(
            client,
            executions=[common.WorkflowExecution(workflow_id=ids[0]), common.WorkflowExecution(workflow_id="gone")],
            reason="one and a missing one",
            termination_operation=batch.BatchOperationTermination(identity="ops"),
        )
        results.append(normalised(await wait_closed(client, job), names))
        job = await start(client, visibility_query=query, cancellation_operation=batch.BatchOperationCancellation())
        results.append(normalised(await wait_closed(client, job), names))
        job = await start(
            client, visibility_query="NoSuchAttribute = 'x'", deletion_operation=batch.BatchOperationDeletion()
        )
        results.append(normalised(await wait_closed(client, job), names))
        job = await start(client, visibility_query=query, deletion_operation=batch.BatchOperationDeletion(identity="d"))
        results.append(normalised(await wait_closed(client, job), names))

        async def gone() -> bool:  # the reference deletes a closed workflow a moment later
            return [await status(client, w) for w in ids] == [None, None, None]

        await until(gone, "the deleted workflows to be gone")
        return results

    ours, theirs = await _both(clients, scenario)
    assert ours == theirs


async def test_list_entries_alike(clients: tuple[Client, Client]) -> None:
    async def scenario(client: Client) -> list[tuple[str, str, bool, bool]]:
        tq = f"diff-batch-{uuid.uuid4().hex[:8]}"
        await start_idle(client, 1, tq)
        jobs = []
        for op in ({"signal_operation": signal_op()}, {"termination_operation": batch.BatchOperationTermination()}):
            job = await start(client, visibility_query=f"TaskQueue = '{tq}'", **op)
            await wait_closed(client, job)
            await wait_list_closed(client, job)
            jobs.append(job)
        found: list[tuple[str, str, bool, bool]] = []
        token = b""
        while True:
            page = await client.workflow_service.list_batch_operations(
                ws.ListBatchOperationsRequest(namespace=client.namespace, page_size=50, next_page_token=token)
            )
            for info in page.operation_info:
                if info.job_id in jobs:
                    name = f"job{jobs.index(info.job_id)}"
                    found.append(
                        (
                            name,
                            f"{info.state}/{info.operation_type}",
                            info.HasField("close_time"),
                            info.start_time.ToNanoseconds() % 1000 == 0,
                        )
                    )
            token = page.next_page_token
            if not token or len(found) == len(jobs):
                break
        return found

    ours, theirs = await _both(clients, scenario)
    assert ours == theirs
    assert [name for name, *_ in ours] == ["job1", "job0"]


async def test_errors_alike(clients: tuple[Client, Client]) -> None:
    term = batch.BatchOperationTermination()

    async def scenario(client: Client) -> list[tuple[str, str, list[str]]]:
        svc = client.workflow_service
        ns = client.namespace

        def req(**fields: Any) -> ws.StartBatchOperationRequest:
            fields.setdefault("namespace", ns)
            fields.setdefault("job_id", "diff-" + uuid.uuid4().hex[:6])
            fields.setdefault("reason", "r")
            return ws.StartBatchOperationRequest(**fields)

        found = []
        for request in [
            req(termination_operation=term),
            req(visibility_query="a='b'"),
            req(visibility_query="a='b'", reason="", termination_operation=term),
            req(visibility_query="a='b'", job_id="", termination_operation=term),
            req(
                visibility_query="a='b'",
                executions=[common.WorkflowExecution(workflow_id="w")],
                termination_operation=term,
            ),
            req(visibility_query="a='b'", signal_operation=batch.BatchOperationSignal()),
            req(visibility_query="a='b'", reset_operation=batch.BatchOperationReset()),
            req(
                visibility_query="a='b'",
                reset_operation=batch.BatchOperationReset(options=common.ResetOptions()),
            ),
            req(visibility_query="bad query ((", termination_operation=term),
            req(visibility_query="(", termination_operation=term),
            req(namespace="no-such-namespace", visibility_query="a='b'", termination_operation=term),
        ]:
            found.append(await error_of(svc.start_batch_operation(request)))
        found.append(
            await error_of(svc.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace=ns, job_id="nope")))
        )
        found.append(await error_of(svc.describe_batch_operation(ws.DescribeBatchOperationRequest(namespace=ns))))
        found.append(
            await error_of(
                svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id="nope", reason="r"))
            )
        )
        found.append(
            await error_of(svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id="nope")))
        )
        found.append(await error_of(svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, reason="r"))))
        # a closed job: stopping it, and starting another with its id
        tq = f"diff-batch-{uuid.uuid4().hex[:8]}"
        await start_idle(client, 1, tq)
        job = await start(client, visibility_query=f"TaskQueue = '{tq}'", signal_operation=signal_op())
        await wait_closed(client, job)
        await wait_list_closed(client, job)  # else the reference may still count it as running
        found.append(
            await error_of(svc.stop_batch_operation(ws.StopBatchOperationRequest(namespace=ns, job_id=job, reason="r")))
        )
        code, message, details = await error_of(
            svc.start_batch_operation(req(job_id=job, visibility_query="a='b'", termination_operation=term))
        )
        found.append((code, re.sub(r"RunId: [0-9a-f-]+", "RunId: <run>", message.replace(job, "<job>")), details))
        return found

    ours, theirs = await _both(clients, scenario)
    assert ours == theirs
