"""A query to a workflow no worker runs fails after the reference's 30 s, with its status and message, even
when the caller would wait longer."""

from __future__ import annotations

import asyncio
import time
import uuid

import grpc
from temporalio.api.common.v1 import WorkflowExecution, WorkflowType
from temporalio.api.query.v1 import WorkflowQuery
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    QueryWorkflowRequest,
    QueryWorkflowResponse,
    StartWorkflowExecutionRequest,
    StartWorkflowExecutionResponse,
)

from tests.support.servers import ServerProcess

CALLER_DEADLINE_S = 100.0
REFERENCE_QUERY_TIMEOUT_S = 30.0
SERVICE = "/temporal.api.workflowservice.v1.WorkflowService"


async def unanswered_query(address: str) -> tuple[grpc.StatusCode, str, float]:
    async with grpc.aio.insecure_channel(address) as channel:
        # The calls the generated WorkflowServiceStub makes, which is typed for synchronous channels only.
        start_workflow: grpc.aio.UnaryUnaryMultiCallable[
            StartWorkflowExecutionRequest, StartWorkflowExecutionResponse
        ] = channel.unary_unary(
            f"{SERVICE}/StartWorkflowExecution",
            request_serializer=StartWorkflowExecutionRequest.SerializeToString,
            response_deserializer=StartWorkflowExecutionResponse.FromString,
        )
        query_workflow: grpc.aio.UnaryUnaryMultiCallable[QueryWorkflowRequest, QueryWorkflowResponse] = (
            channel.unary_unary(
                f"{SERVICE}/QueryWorkflow",
                request_serializer=QueryWorkflowRequest.SerializeToString,
                response_deserializer=QueryWorkflowResponse.FromString,
            )
        )
        workflow_id = f"unanswered-{uuid.uuid4().hex}"
        await start_workflow(
            StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=workflow_id,
                workflow_type=WorkflowType(name="Unpolled"),
                task_queue=TaskQueue(name=f"nobody-{workflow_id}"),
                request_id=str(uuid.uuid4()),
            ),
            timeout=30,
        )
        started = time.monotonic()
        query = QueryWorkflowRequest(
            namespace="default",
            execution=WorkflowExecution(workflow_id=workflow_id),
            query=WorkflowQuery(query_type="q"),
        )
        try:
            await query_workflow(query, timeout=CALLER_DEADLINE_S)
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
