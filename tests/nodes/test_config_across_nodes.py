"""Configuration made on one node of a cluster is seen by the others within a second or two (cluster/config_watch.py):
namespaces, their search attributes and Nexus endpoints, through the public API of two nodes sharing a PostgreSQL."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    CreateNexusEndpointRequest,
    DeleteNexusEndpointRequest,
    GetNexusEndpointRequest,
    ListNexusEndpointsRequest,
    ListSearchAttributesRequest,
    UpdateNexusEndpointRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
SEEN_WITHIN_S = 2.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


async def seen_within(check: Callable[[], Awaitable[bool]], what: str, timeout: float = SEEN_WITHIN_S) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except RPCError:
            pass  # not there yet (NotFound)
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not seen within {timeout} s")
        await asyncio.sleep(0.05)


async def test_namespaces_search_attributes_and_endpoints_made_on_one_node_are_seen_on_the_other(
    pg: PostgresServer,
) -> None:
    url = pg.create_database()
    with running_nodes(url, ["n1", "n2"]) as (n1, n2):
        one, two = await Client.connect(n1.address), await Client.connect(n2.address)
        name = f"orders-{uuid.uuid4().hex[:8]}"
        await one.workflow_service.register_namespace(
            RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=86400))
        )

        async def described() -> bool:
            response = await two.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=name))
            return response.namespace_info.name == name

        await seen_within(described, "a namespace registered on n1, on n2")

        await two.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=name, search_attributes={"CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
            )
        )

        async def attribute() -> bool:
            listed = await one.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=name))
            return "CustomerId" in listed.custom_attributes

        await seen_within(attribute, "a search attribute added on n2, on n1")

        spec = EndpointSpec(
            name="billing", target=EndpointTarget(worker=EndpointTarget.Worker(namespace=name, task_queue="q"))
        )
        created = (await one.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))).endpoint

        async def endpoint_there() -> bool:
            got = await two.operator_service.get_nexus_endpoint(GetNexusEndpointRequest(id=created.id))
            return got.endpoint.spec.name == "billing"

        await seen_within(endpoint_there, "an endpoint created on n1, on n2")
        spec.target.worker.task_queue = "q2"
        updated = await two.operator_service.update_nexus_endpoint(
            UpdateNexusEndpointRequest(id=created.id, version=created.version, spec=spec)
        )

        async def endpoint_updated() -> bool:
            got = await one.operator_service.get_nexus_endpoint(GetNexusEndpointRequest(id=created.id))
            return got.endpoint.version == updated.endpoint.version

        await seen_within(endpoint_updated, "an endpoint updated on n2, on n1")
        await one.operator_service.delete_nexus_endpoint(
            DeleteNexusEndpointRequest(id=created.id, version=updated.endpoint.version)
        )

        async def endpoint_gone() -> bool:
            listed = await two.operator_service.list_nexus_endpoints(ListNexusEndpointsRequest())
            return all(e.id != created.id for e in listed.endpoints)

        await seen_within(endpoint_gone, "an endpoint deleted on n1, on n2")
