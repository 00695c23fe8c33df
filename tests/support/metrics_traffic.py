"""A small known traffic for the metrics tests: workflows that complete (running an activity), fail, are terminated,
cancelled and time out, and a request that fails with NOT_FOUND. The workflows are at module top level: the SDK's
sandbox re-imports this module."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker


@activity.defn
async def metrics_greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class MetricsOk:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(metrics_greet, "x", start_to_close_timeout=timedelta(seconds=30))


@workflow.defn
class MetricsFail:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("boom", non_retryable=True)


@workflow.defn
class MetricsWait:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@dataclass
class Traffic:
    task_queue: str
    completed: int
    starts: int  # StartWorkflowExecution calls made
    failed: int = 1
    terminated: int = 1
    cancelled: int = 1
    timed_out: int = 1
    not_found: int = 1  # DescribeWorkflowExecution of a workflow that does not exist


async def drive(client: Client, completed: int = 3) -> Traffic:
    task_queue = f"metrics-{uuid.uuid4().hex[:8]}"
    worker = Worker(
        client,
        task_queue=task_queue,
        workflows=[MetricsOk, MetricsFail, MetricsWait],
        activities=[metrics_greet],
    )
    async with worker:
        for _ in range(completed):
            await client.execute_workflow(MetricsOk.run, id=f"ok-{uuid.uuid4()}", task_queue=task_queue)
        try:
            await client.execute_workflow(MetricsFail.run, id=f"fail-{uuid.uuid4()}", task_queue=task_queue)
        except WorkflowFailureError:
            pass
        handle = await client.start_workflow(MetricsWait.run, id=f"term-{uuid.uuid4()}", task_queue=task_queue)
        await handle.terminate("metrics test")
        handle = await client.start_workflow(MetricsWait.run, id=f"cancel-{uuid.uuid4()}", task_queue=task_queue)
        await handle.cancel()
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        handle = await client.start_workflow(
            MetricsWait.run,
            id=f"timeout-{uuid.uuid4()}",
            task_queue=task_queue,
            execution_timeout=timedelta(seconds=1),
        )
        try:
            await handle.result()
        except WorkflowFailureError:
            pass
        try:
            await client.get_workflow_handle(f"missing-{uuid.uuid4()}").describe()
            raise AssertionError("a workflow that was never started was found")
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
    return Traffic(task_queue, completed, starts=completed + 4)
