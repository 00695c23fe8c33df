"""Two nodes of one cluster with JWT authorization: a call checked on the node that takes it is passed to the node
owning its workflow with the caller's token, and the server's own calls (a batch job, on whichever node holds its
shard) use the credential every node of the cluster shares."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from temporalio.api.batch.v1 import message_pb2 as batch
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.client import WorkflowExecutionStatus as Status
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tempyral.history.executions import shard_id_for
from tests.conftest import within
from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support import batches
from tests.support.jwt_tokens import SigningKey, write_jwks
from tests.support.nodes import postgres, tempyral_node
from tests.support.waiting import until
from tests.support.workflows import HelloWorkflow, greet

pytestmark = pytest.mark.asyncio(loop_scope="function")
SHARDS = 8
KEY = SigningKey.ec("nodes")


async def connect(address: str, permissions: list[str]) -> Client:
    return await Client.connect(address, api_key=KEY.token(permissions), tls=False)


async def test_nodes_with_authorization(tmp_path: Path) -> None:
    jwks = tmp_path / "jwks.json"
    write_jwks(jwks, [KEY])
    with postgres() as pg:
        url = pg.create_database()
        nodes = [tempyral_node(url, name, ["--auth-jwks-path", str(jwks)], shards=SHARDS) for name in ("a1", "a2")]
        try:
            for node in nodes:
                node.start()
            database = url.rsplit("/", 1)[1]
            await wait_for(lambda: set(shard_owners(pg, database).values()) == {"a1", "a2"}, "shards spread", 30)
            owners = shard_owners(pg, database)
            writer = await connect(nodes[0].address, ["default:write"])
            namespace_id = (
                await writer.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
            ).namespace_info.id
            # Workflows on each node's shards, all started and worked through a1.
            per_node: dict[str, list[str]] = {"a1": [], "a2": []}
            while min(len(v) for v in per_node.values()) < 3:
                wid = f"wf-{uuid.uuid4().hex}"
                per_node[owners[shard_id_for(namespace_id, wid, SHARDS)]].append(wid)
            ids = per_node["a1"][:3] + per_node["a2"][:3]
            queue = f"tq-{uuid.uuid4().hex[:8]}"
            async with Worker(writer, task_queue=queue, workflows=[HelloWorkflow], activities=[greet]):
                handles = [await writer.start_workflow(HelloWorkflow.run, w, id=w, task_queue=queue) for w in ids]
                assert [await within(h.result()) for h in handles] == [f"Hello, {w}!" for w in ids]

            # A reader may describe a workflow a2 owns through a1, and may not signal it.
            reader = await connect(nodes[0].address, ["default:read"])
            other = per_node["a2"][0]
            assert (await reader.get_workflow_handle(other).describe()).status == Status.COMPLETED
            with pytest.raises(RPCError) as refused:
                await reader.get_workflow_handle(other).signal("nothing")
            assert refused.value.status == RPCStatusCode.PERMISSION_DENIED

            # A batch job started through a2 terminates idle workflows on both nodes' shards.
            idle_queue = f"idle-{uuid.uuid4().hex[:8]}"
            idle = await batches.start_idle(writer, 6, idle_queue)
            through_a2 = await connect(nodes[1].address, ["default:write"])
            job = await batches.start(
                through_a2,
                visibility_query=f"TaskQueue = '{idle_queue}'",
                termination_operation=batch.BatchOperationTermination(),
            )
            done = await batches.wait_closed(through_a2, job)
            assert done.complete_operation_count == len(idle), done
            for wid in idle:
                await until(
                    lambda wid=wid: _terminated(writer, wid), what=f"{wid} terminated by the batch job", timeout=30
                )
        finally:
            for node in nodes:
                node.stop()


async def _terminated(client: Client, workflow_id: str) -> bool:
    return (await client.get_workflow_handle(workflow_id).describe()).status == Status.TERMINATED
