"""The Nexus HTTP API, driven with plain HTTP requests against the real server: operations started
and canceled on handler workers, the spec's answers for failures and bad requests, and
completions of operations on an external endpoint arriving at the callback URL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():  # the workflow sandbox re-imports this module
    from tests.conftest import new_id, within
    from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow
    from tests.support.servers import ServerProcess, free_port, tempyral

HTTP_TIMEOUT = aiohttp.ClientTimeout(total=30)


# ---------------------------------------------------------------------- helpers
async def create_endpoint(client: Client, target: nexus_pb.EndpointTarget) -> tuple[str, str]:
    name = f"http-{uuid.uuid4().hex[:12]}"
    resp = await client.operator_service.create_nexus_endpoint(
        CreateNexusEndpointRequest(spec=nexus_pb.EndpointSpec(name=name, target=target))
    )
    return resp.endpoint.id, name


def worker_target(task_queue: str) -> nexus_pb.EndpointTarget:
    return nexus_pb.EndpointTarget(worker=nexus_pb.EndpointTarget.Worker(namespace="default", task_queue=task_queue))


def base_url(server: ServerProcess) -> str:
    assert server.http_port is not None
    return f"http://127.0.0.1:{server.http_port}"


@pytest_asyncio.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=HTTP_TIMEOUT) as session:
        yield session


@pytest_asyncio.fixture
async def handler_endpoint(client: Client, task_queue: str, server: ServerProcess) -> AsyncIterator[str]:
    """The URL prefix of an endpoint whose handler worker runs for the test."""
    endpoint_id, _ = await create_endpoint(client, worker_target(task_queue))
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=[GreeterHandler()],
    ):
        yield f"{base_url(server)}/nexus/endpoints/{endpoint_id}/services/Greeter"


async def post(
    http: aiohttp.ClientSession, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any, CIMultiDictProxy[str]]:
    data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
    all_headers = {"Content-Type": "application/json", **(headers or {})} if data is not None else headers or {}
    async with http.post(url, data=data, headers=all_headers) as resp:
        raw = await resp.read()
        parsed = json.loads(raw) if raw and resp.content_type == "application/json" else raw
        return resp.status, parsed, resp.headers


# ---------------------------------------------------------------------- operations on handler workers
async def test_a_sync_operation_answers_200_with_its_result(
    http: aiohttp.ClientSession, handler_endpoint: str, server: ServerProcess, task_queue: str
) -> None:
    status, body, headers = await post(http, f"{handler_endpoint}/echo", {"name": "http"})
    assert status == 200, body
    assert body == {"message": "echo http"}
    assert headers["Content-Type"].startswith("application/json")
    # the same operation, addressed by namespace and task queue
    url = f"{base_url(server)}/namespaces/default/task-queues/{task_queue}/nexus-services/Greeter/echo"
    status, body, _ = await post(http, url, {"name": "queue"})
    assert (status, body) == (200, {"message": "echo queue"})


async def test_an_async_operation_answers_201_and_cancels_over_http(
    http: aiohttp.ClientSession, handler_endpoint: str, client: Client
) -> None:
    name = uuid.uuid4().hex[:10]
    status, body, _ = await post(
        http, f"{handler_endpoint}/hello", {"name": name, "mode": "hang"}, {"Nexus-Request-Id": new_id("r")}
    )
    assert status == 201, body
    assert body["state"] == "running"
    token = body["token"]
    assert isinstance(token, str) and token
    handle = client.get_workflow_handle(f"greeter-{name}")
    status, body, _ = await post(http, f"{handler_endpoint}/hello/cancel", headers={"Nexus-Operation-Token": token})
    assert status == 202, body
    with pytest.raises(WorkflowFailureError) as err:
        await within(handle.result(), 30)
    assert isinstance(err.value.cause, CancelledError)
    # without a token there is nothing to cancel
    status, body, _ = await post(http, f"{handler_endpoint}/hello/cancel")
    assert status == 400
    assert body["message"] == "missing operation token"


async def test_a_handler_workflow_delivers_its_outcome_to_the_caller_callback_url(
    http: aiohttp.ClientSession, handler_endpoint: str
) -> None:
    received: asyncio.Queue[tuple[CIMultiDict[str], bytes]] = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        await received.put((request.headers.copy(), await request.read()))  # case-insensitive
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/callback", callback)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        url = f"{handler_endpoint}/hello?callback=http://127.0.0.1:{port}/callback"
        name = uuid.uuid4().hex[:10]
        status, body, _ = await post(http, url, {"name": name, "mode": "hang"}, {"Nexus-Callback-My-Token": "secret-1"})
        assert status == 201, body
        status, _, _ = await post(
            http, f"{handler_endpoint}/hello/cancel", headers={"Nexus-Operation-Token": body["token"]}
        )
        assert status == 202
        headers, data = await within(received.get(), 30)
    finally:
        await runner.cleanup()
    assert headers["My-Token"] == "secret-1"
    assert headers["Nexus-Operation-State"] == "canceled"
    assert headers["Nexus-Operation-Token"] == body["token"]
    assert headers["Content-Type"] == "application/json"
    assert "Nexus-Operation-Start-Time" in headers and "Nexus-Operation-Close-Time" in headers
    assert json.loads(data)["metadata"]["type"] == "temporal.api.failure.v1.Failure"


async def test_failures_answer_with_the_spec_status_codes(http: aiohttp.ClientSession, handler_endpoint: str) -> None:
    status, body, headers = await post(http, f"{handler_endpoint}/echo", {"name": "x", "mode": "operation-error"})
    assert status == 424, body
    assert headers["Nexus-Operation-State"] == "failed"
    assert body["metadata"]["type"] == "nexus.OperationError"
    assert body["details"]["state"] == "failed"
    assert body["cause"]["message"] == "operation failed on purpose"

    status, body, _ = await post(http, f"{handler_endpoint}/echo", {"name": "x", "mode": "bad-request"})
    assert status == 400, body
    assert body["metadata"]["type"] == "nexus.HandlerError"
    assert body["details"]["type"] == "BAD_REQUEST"
    assert "bad request on purpose" in json.dumps(body)


async def test_bad_requests_are_refused_with_400(http: aiohttp.ClientSession, handler_endpoint: str) -> None:
    # As the reference: a body over 2 MiB is not read whole ("invalid input", and the connection is closed);
    # one that is read but makes a payload over the blob limit once its content type is added is too big.
    too_big = b'"' + b"x" * (2 * 1024 * 1024) + b'"'
    status, body, headers = await post(http, f"{handler_endpoint}/echo", too_big)
    assert (status, body["message"], headers["Connection"]) == (400, "invalid input", "close")
    status, body, _ = await post(http, f"{handler_endpoint}/echo", b'"' + b"x" * (2 * 1024 * 1024 - 2) + b'"')
    assert (status, body["message"]) == (400, "input exceeds size limit")
    status, body, _ = await post(http, f"{handler_endpoint}/echo", b"{not json")
    assert status == 400 and body["message"].startswith("invalid input"), body
    status, body, _ = await post(http, f"{handler_endpoint}/echo", {"name": "x"}, {"Request-Timeout": "soon"})
    assert (status, body["message"]) == (400, "invalid request timeout header")
    status, body, _ = await post(http, f"{handler_endpoint}/echo", {"name": "x"}, {"Nexus-Link": "not a link"})
    assert status == 400 and "Nexus-Link" in body["message"], body


async def test_unknown_endpoints_answer_404(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    for endpoint_id in (str(uuid.uuid4()), "not-an-id"):
        url = f"{base_url(server)}/nexus/endpoints/{endpoint_id}/services/Greeter/echo"
        status, body, _ = await post(http, url, {"name": "x"})
        assert status == 404, body
        assert body["details"]["type"] == "NOT_FOUND"


async def test_no_worker_answers_520_within_the_request_timeout(
    http: aiohttp.ClientSession, client: Client, server: ServerProcess, task_queue: str
) -> None:
    endpoint_id, _ = await create_endpoint(client, worker_target(task_queue))
    url = f"{base_url(server)}/nexus/endpoints/{endpoint_id}/services/Greeter/echo"
    status, body, _ = await within(post(http, url, {"name": "x"}, {"Request-Timeout": "2s"}), 20)
    assert status == 520, body
    assert body["details"]["type"] == "UPSTREAM_TIMEOUT"


async def test_metrics_are_served(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    async with http.get(f"{base_url(server)}/metrics") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert "# TYPE nexus_outbound_requests counter" in await resp.text()  # no _total, as the reference


# ---------------------------------------------------------------------- completions from an external handler
@dataclass
class ExternalHandler:
    """A Nexus handler outside Temporal: starts every operation asynchronously."""

    url: str
    starts: asyncio.Queue[web.Request]


@pytest_asyncio.fixture
async def external_handler() -> AsyncIterator[ExternalHandler]:
    starts: asyncio.Queue[web.Request] = asyncio.Queue()

    async def start(request: web.Request) -> web.Response:
        await request.read()
        await starts.put(request)
        return web.json_response({"token": "ext-token-1", "state": "running"}, status=201)

    app = web.Application()
    app.router.add_post("/ext/{service}/{operation}", start)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield ExternalHandler(f"http://127.0.0.1:{port}/ext", starts)
    finally:
        await runner.cleanup()


async def call_external_handler(
    client: Client, task_queue: str, external_handler: ExternalHandler
) -> tuple[WorkflowHandle[Any, str], web.Request]:
    """A caller workflow calls an endpoint whose target is the test's external handler: the
    caller's handle, and the start request the handler received."""
    target = nexus_pb.EndpointTarget(external=nexus_pb.EndpointTarget.External(url=external_handler.url))
    _, endpoint_name = await create_endpoint(client, target)
    handle = await client.start_workflow(
        Caller.run, Call(endpoint_name, "hello", "external", schedule_to_close_s=60), id=new_id(), task_queue=task_queue
    )
    return handle, await within(external_handler.starts.get(), 30)


async def test_an_external_handler_completes_the_operation_once_through_the_callback_url(
    http: aiohttp.ClientSession,
    client: Client,
    server: ServerProcess,
    task_queue: str,
    external_handler: ExternalHandler,
) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[Caller]):
        handle, start = await call_external_handler(client, task_queue, external_handler)
        assert start.match_info["service"] == "Greeter"
        assert start.match_info["operation"] == "hello"
        callback_url = start.query["callback"]
        assert callback_url == f"{base_url(server)}/namespaces/default/nexus/callback"
        token = start.headers["Nexus-Callback-Temporal-Callback-Token"]
        assert start.headers["Nexus-Request-Id"]

        completion = {
            "Temporal-Callback-Token": token,
            "Nexus-Operation-State": "succeeded",
            "Nexus-Operation-Token": "ext-token-1",
        }
        # a token is good only on its own namespace's callback URL
        wrong = f"{base_url(server)}/namespaces/not-{uuid.uuid4().hex[:6]}/nexus/callback"
        status, body, _ = await post(http, wrong, {"message": "x"}, completion)
        assert status == 400, body
        status, body, _ = await post(http, callback_url, {"message": "from outside"}, completion)
        assert status == 200, body
        assert await within(handle.result(), 30) == "from outside"
        # a repeated completion finds nothing left to complete
        status, body, _ = await post(http, callback_url, {"message": "again"}, completion)
        assert status == 404, body

    events = [e async for e in handle.fetch_history_events()]
    completed = [e for e in events if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED]
    started = [e for e in events if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_STARTED]
    assert len(completed) == 1
    assert [e.nexus_operation_started_event_attributes.operation_token for e in started] == ["ext-token-1"]


async def test_an_external_handler_fails_the_operation_through_the_callback_url(
    http: aiohttp.ClientSession, client: Client, task_queue: str, external_handler: ExternalHandler
) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[Caller]):
        handle, start = await call_external_handler(client, task_queue, external_handler)
        completion = {
            "Temporal-Callback-Token": start.headers["Nexus-Callback-Temporal-Callback-Token"],
            "Nexus-Operation-State": "failed",
            "Nexus-Operation-Token": "ext-token-1",
        }
        # a failure must be JSON
        status, body, _ = await post(
            http, start.query["callback"], b"failed", {**completion, "Content-Type": "text/plain"}
        )
        assert status == 400, body
        status, body, _ = await post(http, start.query["callback"], {"message": "external failure"}, completion)
        assert status == 200, body
        with pytest.raises(WorkflowFailureError):
            await within(handle.result(), 30)
    events = [e async for e in handle.fetch_history_events()]
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_NEXUS_OPERATION_FAILED]
    assert len(failed) == 1
    assert failed[0].nexus_operation_failed_event_attributes.failure.cause.message == "external failure"


async def test_completions_over_2_mib_are_refused_unread(
    http: aiohttp.ClientSession, client: Client, task_queue: str, external_handler: ExternalHandler
) -> None:
    """As the reference's callback handler, whose body reader stops at 2 MiB: the operation stays open."""
    async with Worker(client, task_queue=task_queue, workflows=[Caller]):
        handle, start = await call_external_handler(client, task_queue, external_handler)
        completion = {
            "Temporal-Callback-Token": start.headers["Nexus-Callback-Temporal-Callback-Token"],
            "Nexus-Operation-Token": "ext-token-1",
        }
        too_big = b'"' + b"x" * (2 * 1024 * 1024) + b'"'
        for state, message in (
            ("succeeded", "invalid result content"),
            ("failed", "failed to read Failure from request body"),
        ):
            status, body, headers = await post(
                http, start.query["callback"], too_big, {**completion, "Nexus-Operation-State": state}
            )
            assert (status, body["message"], headers["Connection"]) == (400, message, "close")
        completion["Nexus-Operation-State"] = "succeeded"
        status, body, _ = await post(http, start.query["callback"], {"message": "fits"}, completion)
        assert status == 200, body
        assert await within(handle.result(), 30) == "fits"


async def test_malformed_callbacks_are_refused_with_400(http: aiohttp.ClientSession, server: ServerProcess) -> None:
    url = f"{base_url(server)}/namespaces/default/nexus/callback"
    for headers in (
        {"Nexus-Operation-State": "succeeded"},
        {"Nexus-Operation-State": "succeeded", "Temporal-Callback-Token": "not a token"},
        {"Nexus-Operation-State": "succeeded", "Temporal-Callback-Token": json.dumps({"v": 1, "d": "AAAA"})},
    ):
        status, body, _ = await post(http, url, {"message": "x"}, headers)
        assert status == 400, body
        assert body["message"] == "invalid callback token"


# ---------------------------------------------------------------------- access control
@pytest.fixture(scope="module")
def guarded_server() -> Iterator[ServerProcess]:
    proc = tempyral(extra=["--nexus-allow", "guarded-endpoint=default"]).start()
    yield proc
    proc.stop()


async def test_endpoints_with_allowed_callers_refuse_http_callers(
    http: aiohttp.ClientSession, guarded_server: ServerProcess, task_queue: str
) -> None:
    guarded_client = await Client.connect(guarded_server.address)
    open_id, _ = await create_endpoint(guarded_client, worker_target(task_queue))
    spec = nexus_pb.EndpointSpec(name="guarded-endpoint", target=worker_target(task_queue))
    resp = await guarded_client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    guarded_url = f"{base_url(guarded_server)}/nexus/endpoints/{resp.endpoint.id}/services/Greeter/echo"
    status, body, _ = await post(http, guarded_url, {"name": "x"})
    assert status == 403, body
    assert body["details"]["type"] == "UNAUTHORIZED"
    # an endpoint without a list still serves HTTP callers (no worker here: the upstream times out)
    open_url = f"{base_url(guarded_server)}/nexus/endpoints/{open_id}/services/Greeter/echo"
    status, body, _ = await within(post(http, open_url, {"name": "x"}, {"Request-Timeout": "1s"}), 20)
    assert status == 520, body


async def test_a_repeated_start_starts_the_handler_workflow_once(
    http: aiohttp.ClientSession, handler_endpoint: str, client: Client
) -> None:
    """A start request sent again (a retry after a lost answer) carries the same request id: the
    handler workflow it starts is the one the first request started."""
    name = uuid.uuid4().hex[:10]
    request_id = new_id("r")
    answers = []
    for _ in range(2):
        status, body, _ = await post(
            http, f"{handler_endpoint}/hello", {"name": name, "mode": "hang"}, {"Nexus-Request-Id": request_id}
        )
        assert status == 201, body
        answers.append(body["token"])
    assert answers[0] == answers[1]
    runs = [w async for w in client.list_workflows(f"WorkflowId = 'greeter-{name}'")]
    assert len(runs) == 1
    await client.get_workflow_handle(f"greeter-{name}").terminate()
