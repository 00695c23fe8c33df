"""Cluster and namespace RPCs, visibility basics, unimplemented RPCs, and clean shutdown."""

from __future__ import annotations

import asyncio
import signal
import uuid
from pathlib import Path

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.namespace.v1 import UpdateNamespaceInfo
from temporalio.api.namespace.v1.message_pb2 import NamespaceConfig
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetClusterInfoRequest,
    GetSystemInfoRequest,
    ListNamespacesRequest,
    ListWorkflowRulesRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.servers import tempyral
from tests.support.workflows import HelloWorkflow, SleepWorkflow, greet


async def test_system_and_cluster_info(client: Client) -> None:
    info = await client.workflow_service.get_system_info(GetSystemInfoRequest())
    assert info.server_version == "1.32.0"
    assert info.capabilities.sdk_metadata and info.capabilities.upsert_memo
    assert info.capabilities.nexus  # as on the reference; the Web UI hides its Nexus pages without it
    cluster = await client.workflow_service.get_cluster_info(GetClusterInfoRequest())
    assert cluster.cluster_name == "active"
    assert cluster.persistence_store == "sqlite"
    assert cluster.initial_failover_version == 1 and cluster.failover_version_increment == 10
    assert cluster.history_shard_count >= 1 and cluster.cluster_id


async def test_namespace_register_update_list(client: Client) -> None:
    ws = client.workflow_service
    name = f"ns-{uuid.uuid4().hex[:10]}"
    await ws.register_namespace(
        RegisterNamespaceRequest(
            namespace=name,
            description="first",
            owner_email="a@example.com",
            workflow_execution_retention_period=Duration(seconds=3 * 86400),
            data={"team": "payments"},
        )
    )
    desc = await ws.describe_namespace(DescribeNamespaceRequest(namespace=name))
    assert desc.namespace_info.description == "first"
    assert desc.namespace_info.data["team"] == "payments"
    assert desc.config.workflow_execution_retention_ttl.seconds == 3 * 86400
    assert desc.namespace_info.limits.blob_size_limit_error == 2 * 1024 * 1024
    assert (
        await ws.describe_namespace(DescribeNamespaceRequest(id=desc.namespace_info.id))
    ).namespace_info.name == name

    updated = await ws.update_namespace(
        UpdateNamespaceRequest(
            namespace=name,
            update_info=UpdateNamespaceInfo(description="second", owner_email="b@example.com", data={"tier": "1"}),
            config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=86400)),
        )
    )
    assert updated.namespace_info.description == "second"
    assert updated.namespace_info.owner_email == "b@example.com"
    assert dict(updated.namespace_info.data) == {"team": "payments", "tier": "1"}
    assert updated.config.workflow_execution_retention_ttl.seconds == 86400

    seen: list[str] = []
    token = b""
    for _ in range(100):
        page = await ws.list_namespaces(ListNamespacesRequest(page_size=1, next_page_token=token))
        assert len(page.namespaces) <= 1
        seen += [n.namespace_info.name for n in page.namespaces]
        token = page.next_page_token
        if not token:
            break
    assert name in seen and "default" in seen and len(seen) == len(set(seen))


async def test_unimplemented_rpcs_answer_unimplemented(client: Client) -> None:
    with pytest.raises(RPCError) as info:
        await client.workflow_service.list_workflow_rules(ListWorkflowRulesRequest(namespace="default"))
    assert info.value.status == RPCStatusCode.UNIMPLEMENTED
    # and the server is fine afterwards
    await client.workflow_service.get_system_info(GetSystemInfoRequest())


async def test_list_and_count_by_type_and_id(client: Client, task_queue: str) -> None:
    wid = new_id("listed")
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        await within(client.execute_workflow(HelloWorkflow.run, "l", id=wid, task_queue=task_queue))
    running = await client.start_workflow(SleepWorkflow.run, 60.0, id=new_id("listed"), task_queue=task_queue)
    listed = [w async for w in client.list_workflows(f"WorkflowId = '{wid}'")]
    assert [w.id for w in listed] == [wid]
    assert listed[0].workflow_type == "HelloWorkflow" and listed[0].status == WorkflowExecutionStatus.COMPLETED
    by_queue = [w.id async for w in client.list_workflows(f"TaskQueue = '{task_queue}'")]
    assert sorted(by_queue) == sorted([wid, running.id])
    assert by_queue[0] == running.id  # open executions first, like the reference
    count = await client.count_workflows(f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'")
    assert count.count == 1
    await running.terminate("done")


async def test_sigterm_stops_cleanly_and_data_survives(tmp_path: Path) -> None:
    db = tmp_path / "clean.db"
    proc = tempyral(str(db)).start()
    try:
        client = await Client.connect(proc.address)
        handle = await client.start_workflow(SleepWorkflow.run, 60.0, id=new_id(), task_queue="nobody")
        assert proc.proc is not None
        proc.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.proc.wait, 30)
        assert code == 0, proc.log_tail()
        proc.start()
        client = await Client.connect(proc.address)
        desc = await client.get_workflow_handle(handle.id).describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
    finally:
        proc.stop()
