"""Overload: a burst larger than the server takes in at once loses nothing, and what it refuses it refuses
with RESOURCE_EXHAUSTED (which clients retry), says so in its log, and serves again once the load passes."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest
from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tests.conftest import within
from tests.support.servers import ServerProcess, tempyral

BURST = 4000


@pytest.fixture(scope="module")
def small_server() -> Iterator[ServerProcess]:
    """A server that works on one request at a time."""
    proc = tempyral(extra=["--headless", "--max-inflight-requests", "1", "--log-level", "warn"]).start()
    yield proc
    proc.stop()


async def test_a_burst_of_starts_loses_none(server: ServerProcess) -> None:
    # The SDK sends all of them at once on one connection: more than the transport's default queue of
    # pending calls, which cancelled the excess before.
    client = await Client.connect(server.address)
    prefix = f"burst-{uuid.uuid4().hex[:8]}"
    outcomes: Counter[str] = Counter()

    async def start(i: int) -> None:
        try:
            await client.start_workflow("Unpolled", id=f"{prefix}-{i}", task_queue=prefix)
            outcomes["started"] += 1
        except RPCError as err:
            outcomes[err.status.name] += 1

    await within(asyncio.gather(*(start(i) for i in range(BURST))), 240)
    assert outcomes == {"started": BURST}
    count = await client.count_workflows(f"TaskQueue = '{prefix}'")
    assert count.count == BURST


async def test_over_the_limit_a_call_gets_resource_exhausted_and_is_served_once_load_passes(
    small_server: ServerProcess,
) -> None:
    client = await Client.connect(small_server.address)
    handle = await client.start_workflow("Unpolled", id=f"held-{uuid.uuid4().hex}", task_queue="nobody-polls")
    # A query to a workflow nobody runs waits for a worker: it holds the one slot.
    held = asyncio.create_task(handle.query("anything"))
    try:
        refused = await within(_first_refusal(client), 30)
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    assert refused.status == RPCStatusCode.RESOURCE_EXHAUSTED
    assert refused.message == "service rate limit exceeded"  # the reference's service-wide limiter answers so
    details = ResourceExhaustedFailure()
    assert refused.grpc_status.details[0].Unpack(details)
    assert details.cause == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT
    assert details.scope == ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_SYSTEM
    # The slot is free again: calls are served (the SDK retries any that still meet a refusal).
    await within(client.start_workflow("Unpolled", id=f"after-{uuid.uuid4().hex}", task_queue="nobody-polls"))
    assert "overloaded: refusing requests with RESOURCE_EXHAUSTED" in small_server.log_tail(20_000)


async def test_the_http_api_shares_the_limit(small_server: ServerProcess) -> None:
    client = await Client.connect(small_server.address)
    handle = await client.start_workflow("Unpolled", id=f"held-{uuid.uuid4().hex}", task_queue="nobody-polls")
    held = asyncio.create_task(handle.query("anything"))
    url = f"http://127.0.0.1:{small_server.http_port}/api/v1/namespaces/default"
    try:
        async with aiohttp.ClientSession() as session:
            status, body = await within(_first_http_refusal(session, url), 30)
    finally:
        held.cancel()
        await asyncio.gather(held, return_exceptions=True)
    assert status == 429
    assert (body["code"], body["message"]) == (8, "service rate limit exceeded")


async def _first_http_refusal(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, object]]:
    while True:
        async with session.get(url) as resp:
            if resp.status != 200:
                return resp.status, await resp.json()
        await asyncio.sleep(0.05)


async def _first_refusal(client: Client) -> RPCError:
    """Call (without the SDK's retries) until the server, busy with the held query, refuses."""
    while True:
        try:
            await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        except RPCError as err:
            return err
        await asyncio.sleep(0.05)
