"""Rate limits on outbound Nexus calls, per endpoint and per caller namespace: calls over the
limit wait (the operation shows as blocked, and the metric counts them), and all complete."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow
from tests.support.servers import ServerProcess, tempyral

NAMESPACES = ("endpoint-limited", "namespace-limited", "handler-ns")


@pytest.fixture(scope="module")
def rate_limited_server() -> Iterator[ServerProcess]:
    extra = ["--nexus-endpoint-rps", "2", "--nexus-namespace-rps", "3"]
    for ns in NAMESPACES:
        extra += ["--namespace", ns]
    proc = tempyral(extra=extra).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def clients(rate_limited_server: ServerProcess) -> AsyncIterator[dict[str, Client]]:
    yield {ns: await Client.connect(rate_limited_server.address, namespace=ns) for ns in ("default", *NAMESPACES)}


async def _endpoints(client: Client, task_queue: str, count: int) -> list[str]:
    names = []
    for _ in range(count):
        spec = EndpointSpec(
            name=f"ep-{uuid.uuid4().hex[:12]}",
            target=EndpointTarget(worker=EndpointTarget.Worker(namespace="handler-ns", task_queue=task_queue)),
        )
        await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
        names.append(spec.name)
    return names


async def _blocked(server: ServerProcess, reason_part: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{server.http_port}/metrics") as resp:
            text = await resp.text()
    return sum(
        int(float(line.rsplit(" ", 1)[1]))
        for line in text.splitlines()
        if line.startswith("nexus_outbound_blocked{") and reason_part in line
    )


async def _run_calls(clients: dict[str, Client], namespace: str, endpoints: list[str], count: int) -> list[str]:
    caller_tq = f"c-{uuid.uuid4().hex[:8]}"
    caller = clients[namespace]
    async with Worker(caller, task_queue=caller_tq, workflows=[Caller]):
        handles = [
            await caller.start_workflow(
                Caller.run,
                Call(endpoints[i % len(endpoints)], "echo", f"n{i}"),
                id=f"rl-{uuid.uuid4().hex}",
                task_queue=caller_tq,
            )
            for i in range(count)
        ]
        return list(await within(asyncio.gather(*(h.result() for h in handles)), timeout=90))


async def test_endpoint_rate_limit(clients: dict[str, Client], rate_limited_server: ServerProcess) -> None:
    handler_tq = f"h-{uuid.uuid4().hex[:8]}"
    endpoints = await _endpoints(clients["default"], handler_tq, 1)
    async with Worker(
        clients["handler-ns"],
        task_queue=handler_tq,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=[GreeterHandler()],
    ):
        results = await _run_calls(clients, "endpoint-limited", endpoints, 12)
    assert sorted(results) == sorted(f"echo n{i}" for i in range(12))
    assert await _blocked(rate_limited_server, f"The endpoint {endpoints[0]} is over its rate limit.") > 0


async def test_namespace_rate_limit(clients: dict[str, Client], rate_limited_server: ServerProcess) -> None:
    handler_tq = f"h-{uuid.uuid4().hex[:8]}"
    endpoints = await _endpoints(clients["default"], handler_tq, 8)  # one or two calls each: under their limit
    async with Worker(
        clients["handler-ns"],
        task_queue=handler_tq,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=[GreeterHandler()],
    ):
        results = await _run_calls(clients, "namespace-limited", endpoints, 12)
    assert sorted(results) == sorted(f"echo n{i}" for i in range(12))
    assert await _blocked(rate_limited_server, "The namespace namespace-limited is over its Nexus rate limit.") > 0
