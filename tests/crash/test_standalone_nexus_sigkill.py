"""SIGKILL the server while a standalone Nexus operation (nexus/standalone.py) waits for its async handler's
workflow; restart it on the same database: the handler workflow's completion callback reaches the operation,
which records the result once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from temporalio.api.enums.v1 import CallbackState
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client
from temporalio.common import NexusOperationExecutionStatus
from temporalio.common import PendingNexusOperationExecutionState as PendingState
from temporalio.worker import Worker

from tests.crash.test_sigkill import retrying
from tests.support.nexus_services import Greeter, GreeterHandler, GreeterWorkflow, Req, Resp
from tests.support.servers import ServerProcess

STARTED = PendingState.STARTED


async def _connect(server: ServerProcess) -> Client:
    return await retrying(lambda: Client.connect(server.address), "connect")


def _worker(client: Client, task_queue: str) -> Worker:
    return Worker(client, task_queue=task_queue, workflows=[GreeterWorkflow], nexus_service_handlers=[GreeterHandler()])


async def test_sigkill_with_an_async_operation_pending_records_its_completion_after_restart(
    crashable: ServerProcess,
) -> None:
    client = await _connect(crashable)
    task_queue = f"h-{uuid.uuid4().hex[:8]}"
    spec = EndpointSpec(
        name=f"ep-{uuid.uuid4().hex[:8]}",
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue)),
    )
    await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    nexus = client.create_nexus_client(endpoint=spec.name, service=Greeter)
    name = f"crash-{uuid.uuid4().hex[:8]}"
    async with _worker(client, task_queue):
        handle = await nexus.start_operation(Greeter.hello, Req(name, "slow"), id=f"op-{name}")

        async def started() -> Any:
            return (await handle.describe()).state == STARTED

        for _ in range(300):
            if await started():
                break
            await asyncio.sleep(0.1)
        assert await started()
    # The handler's worker is gone: its workflow cannot complete before the kill.
    desc = await handle.describe()
    assert desc.status == NexusOperationExecutionStatus.RUNNING
    crashable.kill()
    crashable.start()
    client = await _connect(crashable)
    async with _worker(client, task_queue):
        again = client.get_nexus_operation_handle(handle.operation_id, result_type=Resp)
        result = await retrying(lambda: asyncio.wait_for(again.result(), 60), "result")
    assert result == Resp(f"Hello, {name}!")
    desc = await retrying(again.describe, "describe")
    assert desc.status == NexusOperationExecutionStatus.COMPLETED
    assert desc.run_id == handle.run_id
    # one handler workflow, whose one callback was delivered
    handler_wf = await retrying(client.get_workflow_handle(f"greeter-{name}").describe, "describe handler")
    assert [c.state for c in handler_wf.raw_description.callbacks] == [CallbackState.CALLBACK_STATE_SUCCEEDED]
    runs = [r async for r in client.list_workflows(f"WorkflowId = 'greeter-{name}'")]
    assert len(runs) == 1
