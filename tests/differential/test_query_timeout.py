"""A query to a workflow no worker runs fails after the reference's 30 s, with its status and message, even
when the caller would wait longer."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from temporalio.api.workflowservice.v1 import QueryWorkflowRequest, StartWorkflowExecutionRequest, service_pb2_grpc

from tests.support.servers import ServerProcess

CALLER_DEADLINE_S = 100.0
REFERENCE_QUERY_TIMEOUT_S = 30.0


async def unanswered_query(address: str) -> tuple[grpc.StatusCode, str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = service_pb2_grpc.WorkflowServiceStub(channel)
        workflow_id = f"unanswered-{uuid.uuid4().hex}"
        await stub.StartWorkflowExecution(
            StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=workflow_id,
                workflow_type={"name": "Unpolled"},
                task_queue={"name": f"nobody-{workflow_id}"},
                request_id=str(uuid.uuid4()),
            ),
            timeout=30,
        )
        started = time.monotonic()
        query = QueryWorkflowRequest(
            namespace="default", execution={"workflow_id": workflow_id}, query={"query_type": "q"}
        )
        try:
            await stub.QueryWorkflow(query, timeout=CALLER_DEADLINE_S)
        except grpc.aio.AioRpcError as err:
            return err.code(), err.details() or "", time.monotonic() - started
        raise AssertionError("a query nobody can answer was answered")


async def test_an_unanswered_query_times_out_as_on_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    ours, theirs = await asyncio.gather(unanswered_query(server.address), unanswered_query(reference_server.address))
    assert (
        ours[:2]
        == theirs[:2]
        == (grpc.StatusCode.DEADLINE_EXCEEDED, "query timed out before a worker could process it")
    )
    # The server's own limit, not the caller's deadline, ended it: after 30 s, well before the 60 s long-poll cap.
    assert REFERENCE_QUERY_TIMEOUT_S - 1 <= ours[2] < 2 * REFERENCE_QUERY_TIMEOUT_S - 1
