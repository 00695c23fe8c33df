"""Operations on executions: delete, retention, and custom search attributes managed by operators."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.servers import ServerProcess
from tests.support.workflows import HelloWorkflow, SleepWorkflow, greet


async def _gone(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        return err.status == RPCStatusCode.NOT_FOUND
    return False


async def test_delete_running_and_closed_workflows(client: Client, task_queue: str) -> None:
    running = await client.start_workflow(SleepWorkflow.run, 60.0, id=new_id("del"), task_queue=task_queue)
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        closed = await client.start_workflow(HelloWorkflow.run, "x", id=new_id("del"), task_queue=task_queue)
        await within(closed.result())
    for handle in (running, closed):
        await client.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace="default", workflow_execution=WorkflowExecution(workflow_id=handle.id)
            )
        )
        assert await _gone(client, handle.id)
        with pytest.raises(RPCError) as info:
            await handle.fetch_history()
        assert info.value.status == RPCStatusCode.NOT_FOUND
    listed = [w.id async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert listed == []
    # the id can be used again
    again = await client.start_workflow(SleepWorkflow.run, 60.0, id=running.id, task_queue=task_queue)
    await again.terminate("done")


async def test_closed_runs_are_deleted_after_the_retention_period(server: ServerProcess) -> None:
    first = await Client.connect(server.address)
    name = f"short-{uuid.uuid4().hex[:8]}"
    await first.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=2))
    )
    client = await Client.connect(server.address, namespace=name)
    queue = f"tq-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=queue, workflows=[HelloWorkflow], activities=[greet]):
        handle = await client.start_workflow(HelloWorkflow.run, "short", id=new_id(), task_queue=queue)
        await within(handle.result())
    running = await client.start_workflow(SleepWorkflow.run, 60.0, id=new_id(), task_queue=queue)
    assert not await _gone(client, handle.id)
    for _ in range(100):
        if await _gone(client, handle.id):
            break
        await asyncio.sleep(0.1)
    assert await _gone(client, handle.id)
    assert not await _gone(client, running.id)  # open runs are kept
    await running.terminate("done")


async def test_search_attributes_added_listed_used_and_removed(client: Client, task_queue: str) -> None:
    name = f"Attr{uuid.uuid4().hex[:8]}"
    ops = client.operator_service
    await ops.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        )
    )
    listed = await ops.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    assert listed.custom_attributes[name] == IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    assert "WorkflowId" in listed.system_attributes
    key = SearchAttributeKey.for_keyword(name)
    handle = await client.start_workflow(
        SleepWorkflow.run,
        60.0,
        id=new_id(),
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(key, "blue")]),
    )
    found = [w.id async for w in client.list_workflows(f"{name} = 'blue'")]
    assert found == [handle.id]
    await handle.terminate("done")
    # adding an existing attribute with another type is refused
    with pytest.raises(RPCError) as info:
        await ops.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="default", search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_INT}
            )
        )
    assert info.value.status == RPCStatusCode.ALREADY_EXISTS
    await ops.remove_search_attributes(RemoveSearchAttributesRequest(namespace="default", search_attributes=[name]))
    listed = await ops.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    assert name not in listed.custom_attributes
    with pytest.raises(RPCError) as info:
        await ops.remove_search_attributes(RemoveSearchAttributesRequest(namespace="default", search_attributes=[name]))
    assert info.value.status == RPCStatusCode.NOT_FOUND
