"""Standalone Nexus operations (nexus/standalone.py) on two nodes of one PostgreSQL: started through one node,
whatever node owns their shard; their handler worker on the other node; async handlers' completion callbacks
reach the node owning the operation; every node describes, polls and lists them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.common import NexusOperationExecutionStatus
from temporalio.worker import Worker

from tempyral.history.executions import shard_id_for
from tempyral.nexus.standalone import operations_namespace_id
from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support.nexus_services import Greeter, GreeterHandler, GreeterWorkflow, Req, Resp
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
COUNT = 12


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


async def test_operations_started_and_completed_across_nodes(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["n1", "n2"]) as (n1, n2):
        await wait_for(lambda: set(shard_owners(pg, database).values()) == {"n1", "n2"}, "shards spread", 30)
        starter = await Client.connect(n1.address)
        handler_client = await Client.connect(n2.address)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        spec = EndpointSpec(
            name=f"ep-{uuid.uuid4().hex[:8]}",
            target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=queue)),
        )
        await starter.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
        names = [f"op-{i}-{uuid.uuid4().hex[:8]}" for i in range(COUNT)]
        async with Worker(
            handler_client, task_queue=queue, workflows=[GreeterWorkflow], nexus_service_handlers=[GreeterHandler()]
        ):
            # the endpoint, made on n1, is found at once by n2 when a start passed there names it
            nexus = starter.create_nexus_client(endpoint=spec.name, service=Greeter)
            handles = []
            for i, name in enumerate(names):
                op = Greeter.hello if i % 2 else Greeter.echo
                handles.append(await nexus.start_operation(op, Req(name), id=name))
            results = await asyncio.wait_for(
                asyncio.gather(
                    *(
                        handler_client.get_nexus_operation_handle(h.operation_id, result_type=Resp).result()
                        for h in handles
                    )
                ),
                120,
            )
        # the operations' shards are on both nodes: some were started through a node that does not own them
        ns = await starter.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        key = operations_namespace_id(ns.namespace_info.id)
        owners = shard_owners(pg, database)
        assert {owners[shard_id_for(key, name, 8)] for name in names} == {"n1", "n2"}
        assert results == [Resp(f"Hello, {n}!" if i % 2 else f"echo {n}") for i, n in enumerate(names)]
        for client in (starter, handler_client):
            for handle in handles:
                desc = await client.get_nexus_operation_handle(handle.operation_id).describe()
                assert desc.status == NexusOperationExecutionStatus.COMPLETED
                assert desc.run_id == handle.run_id
            count = await client.count_nexus_operations(f"Endpoint = '{spec.name}'")
            assert count.count == COUNT
