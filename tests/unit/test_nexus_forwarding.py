"""Nexus HTTP requests of a namespace that is standby here (nexus/http_api.py, nexus/forwarding.py): forwarded
to the active cluster's HTTP API as they came, or refused as the reference refuses them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.config import NexusLimits
from tempyral.matching.service import Matching
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.dispatch import NexusDispatcher
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.nexus.http_api import NexusHttpApi
from tempyral.nexus.invoker import CALLBACK_TOKEN_HEADER, encode_callback_token
from tempyral.nexus.machinery import Machinery
from tempyral.nexus.metrics import NexusMetrics
from tempyral.proto.internal_pb2 import NexusCallbackToken
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Remote:
    """Cluster b's HTTP API: records what reached it, answers like a handler that completed synchronously."""

    seen: list[Seen] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.seen.append(
            Seen(request.method, request.raw_path.split("?")[0], dict(request.query), dict(request.headers), body)
        )
        response = web.Response(status=200, body=b"from b", headers={"Nexus-Operation-State": "succeeded"})
        response.headers.add("Nexus-Link", "<temporal:///b>; type=x")
        return response


@dataclass
class Setup:
    remote: Remote
    client: TestClient[web.Request, web.Application]
    api: NexusHttpApi
    clusters: ClusterMetadata
    endpoint_id: str
    namespace_id: str


@pytest_asyncio.fixture(loop_scope="session")
async def standby() -> AsyncIterator[Setup]:
    remote = Remote()
    remote_app = web.Application()
    remote_app.router.add_route("*", "/{tail:.*}", remote.handle)
    remote_server = TestServer(remote_app)
    await remote_server.start_server()

    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity("a", 1, 10), 4, "a.db")
    await clusters.upsert(
        ClusterMetadataRecord(
            cluster_name="b",
            initial_failover_version=2,
            failover_version_increment=10,
            is_connection_enabled=True,
            cluster_address="127.0.0.1:1",
            http_address=f"127.0.0.1:{remote_server.port}",
        )
    )
    namespaces = NamespaceRegistry(store, clusters)
    record = namespaces.new_record("g")
    record.is_global_namespace = True
    record.replication_config.active_cluster_name = "b"
    record.replication_config.clusters.add(cluster_name="b")
    ns = await namespaces.create(record)
    endpoints = EndpointRegistry(store, namespaces)
    endpoint = await endpoints.create(
        EndpointSpec(name="ep", target=EndpointTarget(worker=EndpointTarget.Worker(namespace="g", task_queue="tq")))
    )
    api = NexusHttpApi(
        cast(Any, None),  # never reached: nothing is answered here
        namespaces,
        endpoints,
        NexusDispatcher(Matching()),
        Machinery(NexusLimits()),
        NexusMetrics(),
    )
    client: TestClient[web.Request, web.Application] = TestClient(TestServer(api.app()))
    await client.start_server()
    try:
        yield Setup(remote, client, api, clusters, endpoint.id, ns.id)
    finally:
        await client.close()
        await remote_server.close()


async def test_a_start_by_task_queue_goes_to_the_active_cluster_as_it_came(standby: Setup) -> None:
    standby.remote.seen.clear()
    resp = await standby.client.post(
        "/namespaces/g/task-queues/tq/nexus-services/svc/op%20x?callback=http%3A%2F%2Fcaller",
        data=b'{"in":1}',
        headers={"Content-Type": "application/json", "Nexus-Request-Id": "r1", "Request-Timeout": "2s"},
    )
    assert resp.status == 200
    assert await resp.read() == b"from b"
    assert resp.headers["Nexus-Operation-State"] == "succeeded"
    assert resp.headers["Nexus-Link"] == "<temporal:///b>; type=x"
    [seen] = standby.remote.seen
    assert (seen.method, seen.path) == ("POST", "/namespaces/g/task-queues/tq/nexus-services/svc/op%20x")
    assert seen.query == {"callback": "http://caller"}
    assert seen.body == b'{"in":1}'
    assert seen.headers["Nexus-Request-Id"] == "r1"
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["xdc-redirection-api"] == "true"
    assert seen.headers["xdc-redirection-source-cell"] == "a"
    assert standby.api.forwarder.forwarded[("b", "nexus operation")] >= 1


async def test_a_request_on_an_endpoint_goes_by_namespace_and_task_queue(standby: Setup) -> None:
    standby.remote.seen.clear()
    resp = await standby.client.post(
        f"/nexus/endpoints/{standby.endpoint_id}/services/svc/op/cancel", headers={"Nexus-Operation-Token": "t"}
    )
    assert resp.status == 200
    [seen] = standby.remote.seen
    assert seen.path == "/namespaces/g/task-queues/tq/nexus-services/svc/op/cancel"
    assert seen.headers["Nexus-Operation-Token"] == "t"


async def test_a_completion_callback_goes_to_the_callers_active_cluster(standby: Setup) -> None:
    standby.remote.seen.clear()
    token = NexusCallbackToken(namespace_id=standby.namespace_id, workflow_id="w", run_id="r", scheduled_event_id=5)
    headers = {CALLBACK_TOKEN_HEADER: encode_callback_token(token), "Nexus-Operation-State": "succeeded"}
    resp = await standby.client.post("/nexus/callback", data=b"result", headers=headers)
    assert resp.status == 200
    [seen] = standby.remote.seen
    assert seen.path == "/namespaces/g/nexus/callback"
    assert seen.body == b"result"
    assert seen.headers[CALLBACK_TOKEN_HEADER] == headers[CALLBACK_TOKEN_HEADER]


async def failure(resp: Any) -> tuple[int, str]:
    body = json.loads(await resp.read())
    return resp.status, body["message"]


async def test_opted_out_or_forwarded_requests_are_refused_as_cluster_inactive(standby: Setup) -> None:
    standby.remote.seen.clear()
    for header in ({"xdc-redirection": "false"}, {"xdc-redirection-api": "true"}):
        resp = await standby.client.post("/namespaces/g/task-queues/tq/nexus-services/svc/op", headers=header)
        assert await failure(resp) == (503, "cluster inactive")
    assert standby.remote.seen == []


async def test_without_the_active_clusters_http_address_forwarding_fails(standby: Setup) -> None:
    record = standby.clusters.get("b")
    assert record is not None
    saved = record.http_address
    record.http_address = ""
    try:
        resp = await standby.client.post("/namespaces/g/task-queues/tq/nexus-services/svc/op")
        assert await failure(resp) == (500, "request forwarding failed")
        token = NexusCallbackToken(namespace_id=standby.namespace_id, workflow_id="w", run_id="r", scheduled_event_id=5)
        resp = await standby.client.post(
            "/namespaces/g/nexus/callback",
            headers={CALLBACK_TOKEN_HEADER: encode_callback_token(token), "Nexus-Operation-State": "succeeded"},
        )
        assert await failure(resp) == (500, "internal error")
    finally:
        record.http_address = saved
