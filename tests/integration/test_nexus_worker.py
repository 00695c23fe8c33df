"""A worker that hosts Nexus services runs on tempyral: it polls for Nexus tasks beside its
workflows and activities, and shows in DescribeTaskQueue. (Nexus calls themselves: issue 4.)"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

import nexusrpc
import nexusrpc.handler
import pytest
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeTaskQueueRequest,
    PollNexusTaskQueueRequest,
    RespondNexusTaskCompletedRequest,
    RespondNexusTaskFailedRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.workflows import HelloWorkflow, greet

WORKER_IDENTITY = "nexus-host@127.0.0.1"


@dataclass
class Ping:
    text: str


@nexusrpc.service
class PingService:
    ping: nexusrpc.Operation[Ping, Ping]


@nexusrpc.handler.service_handler(service=PingService)
class PingHandler:
    @nexusrpc.handler.sync_operation
    async def ping(self, ctx: nexusrpc.handler.StartOperationContext, inp: Ping) -> Ping:
        return Ping(inp.text)


async def _nexus_pollers(client: Client, task_queue: str) -> list[str]:
    resp = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_NEXUS,
        )
    )
    return [p.identity for p in resp.pollers]


async def test_a_worker_with_nexus_services_runs_its_workflows(client: Client, task_queue: str) -> None:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[HelloWorkflow],
        activities=[greet],
        nexus_service_handlers=[PingHandler()],
        identity=WORKER_IDENTITY,
    ):
        result = await within(
            client.execute_workflow(HelloWorkflow.run, "nexus host", id=new_id("nx"), task_queue=task_queue)
        )
        assert result == "Hello, nexus host!"
        for _ in range(100):
            if await _nexus_pollers(client, task_queue) == [WORKER_IDENTITY]:
                break
            await asyncio.sleep(0.1)
        assert await _nexus_pollers(client, task_queue) == [WORKER_IDENTITY]


async def test_nexus_polls_are_checked_and_wait(client: Client, task_queue: str) -> None:
    service = client.workflow_service
    with pytest.raises(RPCError) as err:
        await service.poll_nexus_task_queue(PollNexusTaskQueueRequest(namespace="default", task_queue=TaskQueue()))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    with pytest.raises(RPCError) as err:
        await service.poll_nexus_task_queue(
            PollNexusTaskQueueRequest(namespace="no-such-namespace", task_queue=TaskQueue(name=task_queue))
        )
    assert err.value.status == RPCStatusCode.NOT_FOUND
    # A poll with nothing to do waits for its deadline and comes back empty.
    empty = await service.poll_nexus_task_queue(
        PollNexusTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="p"),
        timeout=timedelta(seconds=1.5),
    )
    assert not empty.task_token
    for bad in (b"", b"not a token"):
        with pytest.raises(RPCError) as err:
            await service.respond_nexus_task_completed(
                RespondNexusTaskCompletedRequest(namespace="default", task_token=bad)
            )
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        with pytest.raises(RPCError) as err:
            await service.respond_nexus_task_failed(RespondNexusTaskFailedRequest(namespace="default", task_token=bad))
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
