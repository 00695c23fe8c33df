"""The HTTP API's routing and request building, over stub servicers: routes come from the
descriptors, paths match still encoded, query parameters in both spellings, JSON bodies,
errors in the reference's shape."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from google.protobuf.message import Message
from temporalio.api.enums.v1 import HistoryEventFilterType, TaskQueueType
from temporalio.api.operatorservice.v1 import service_pb2 as operator_service
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.api.workflowservice.v1 import service_pb2 as workflow_service

from tempyral.common.errors import WorkflowNotFound
from tempyral.frontend.http_gateway import HttpGateway, routes_for

WORKFLOW_SERVICE = workflow_service.DESCRIPTOR.services_by_name["WorkflowService"]
OPERATOR_SERVICE = operator_service.DESCRIPTOR.services_by_name["OperatorService"]


class Recorder:
    """Answers every call with an empty response and keeps the requests."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message]] = []

    def __getattr__(self, name: str) -> Any:
        if name in ("get_workflow_execution_history", "signal_workflow_execution", "describe_task_queue"):

            async def handler(request: Message, context: Any) -> Message:
                self.calls.append((name, request))
                return _response_for(request)

            return handler
        if name == "describe_workflow_execution":

            async def missing(request: Message, context: Any) -> Message:
                raise WorkflowNotFound.for_id(request.execution.workflow_id)  # type: ignore[attr-defined]

            return missing
        raise AttributeError(name)


def _response_for(request: Message) -> Message:
    name = type(request).__name__.replace("Request", "Response")
    response: Message = getattr(ws, name)()
    if isinstance(response, ws.GetWorkflowExecutionHistoryResponse):
        response.next_page_token = b"\x01\x02"
    return response


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[tuple[TestClient[web.Request, web.Application], Recorder]]:
    recorder = Recorder()
    app = web.Application()
    HttpGateway([(WORKFLOW_SERVICE, recorder), (OPERATOR_SERVICE, recorder)]).add_to(app)
    async with TestClient(TestServer(app)) as client:
        yield client, recorder


def test_every_api_v1_route_of_the_descriptors_is_served() -> None:
    routes = routes_for(WORKFLOW_SERVICE, object()) + routes_for(OPERATOR_SERVICE, object())
    assert len(routes) == 114
    names = {r.method.name for r in routes}
    assert {"ListWorkflowExecutions", "SignalWorkflowExecution", "ListNexusEndpoints", "GetClusterInfo"} <= names


async def test_encoded_path_segments_and_query_parameters_in_both_spellings(gateway: Any) -> None:
    client, recorder = gateway
    resp = await client.get(
        "/api/v1/namespaces/default/workflows/odd%2Fid%20x/history"
        "?execution.runId=r1&maximumPageSize=7&next_page_token=AQI&waitNewEvent=true"
        "&historyEventFilterType=HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT&unknownParam=1"
    )
    assert resp.status == 200
    assert await resp.json() == {"nextPageToken": "AQI="}
    name, request = recorder.calls[-1]
    assert name == "get_workflow_execution_history"
    assert request.namespace == "default"
    assert request.execution.workflow_id == "odd/id x" and request.execution.run_id == "r1"
    assert request.maximum_page_size == 7 and request.next_page_token == b"\x01\x02" and request.wait_new_event
    assert request.history_event_filter_type == HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT


async def test_enum_by_number(gateway: Any) -> None:
    client, recorder = gateway
    resp = await client.get("/api/v1/namespaces/default/task-queues/q1?taskQueueType=2")
    assert resp.status == 200
    assert recorder.calls[-1][1].task_queue.name == "q1"
    assert recorder.calls[-1][1].task_queue_type == TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY


async def test_json_body_with_path_parameters_on_top(gateway: Any) -> None:
    client, recorder = gateway
    resp = await client.post(
        "/api/v1/namespaces/default/workflows/wf-1/signal/ping",
        json={"namespace": "other", "identity": "me", "input": {"payloads": [{"data": "MQ=="}]}},
    )
    assert resp.status == 200
    request = recorder.calls[-1][1]
    assert (request.namespace, request.workflow_execution.workflow_id, request.signal_name) == (
        "default",
        "wf-1",
        "ping",
    )
    assert request.identity == "me" and request.input.payloads[0].data == b"1"


async def test_errors_carry_status_code_and_details(gateway: Any) -> None:
    client, _ = gateway
    resp = await client.get("/api/v1/namespaces/default/workflows/nope")
    assert resp.status == 404
    body = await resp.json()
    assert body["code"] == 5 and body["message"] == "workflow not found for ID: nope"
    assert body["details"][0]["@type"] == "type.googleapis.com/temporal.api.errordetails.v1.NotFoundFailure"
    bad = await client.post("/api/v1/namespaces/default/workflows/wf-1/signal/ping", data=b"{nope")
    assert bad.status == 400 and (await bad.json())["code"] == 3
    unknown = await client.get("/api/v1/no/such/route")
    assert unknown.status == 404
    unimplemented = await client.get("/api/v1/namespaces")  # ListNamespaces: the recorder has none
    assert unimplemented.status == 501 and (await unimplemented.json())["code"] == 12
    bad_value = await client.get("/api/v1/namespaces/default/task-queues/q1?taskQueueType=NOPE")
    assert bad_value.status == 400


# ---------------------------------------------------------------------- body size and undecodable input
MIB = 1024 * 1024
SIGNAL_PATH = "/api/v1/namespaces/default/workflows/wf-1/signal/ping"


def _padded_signal_body(size: int) -> bytes:
    """A valid SignalWorkflowExecution body of exactly `size` bytes (its identity is the padding)."""
    head, tail = b'{"identity":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def test_a_body_larger_than_one_read_is_read_whole(gateway: Any) -> None:
    client, recorder = gateway
    data = bytes(range(256)) * 1200  # 300 KB of payload, 400 KB of JSON: more than arrives at once
    body = {"input": {"payloads": [{"data": base64.b64encode(data).decode()}]}}
    resp = await client.post(SIGNAL_PATH, json=body)
    assert resp.status == 200, await resp.text()
    assert recorder.calls[-1][1].input.payloads[0].data == data


async def test_a_body_up_to_4_mib_is_taken(gateway: Any) -> None:
    client, recorder = gateway
    resp = await client.post(SIGNAL_PATH, data=_padded_signal_body(4 * MIB - 64))
    assert resp.status == 200, await resp.text()
    assert len(recorder.calls[-1][1].identity) > 4 * MIB - 100


async def test_a_body_over_4_mib_is_refused_and_the_connection_closed(gateway: Any) -> None:
    client, recorder = gateway
    calls = len(recorder.calls)
    resp = await client.post(SIGNAL_PATH, data=_padded_signal_body(4 * MIB + 1))
    assert resp.status == 400
    assert await resp.json() == {"code": 3, "message": "http: request body too large"}
    assert resp.headers["Connection"] == "close"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: refused once 4 MiB have come
        yield b'{"identity":"'
        for _ in range(80):
            yield b"x" * 65536
        yield b'"}'

    resp = await client.post(SIGNAL_PATH, data=chunks())
    assert resp.status == 400 and (await resp.json())["message"] == "http: request body too large"
    assert len(recorder.calls) == calls


async def test_a_request_over_the_grpc_message_limit_is_resource_exhausted(gateway: Any) -> None:
    client, recorder = gateway
    calls = len(recorder.calls)
    long_id = "w" * 1000  # the path adds to what the body holds
    resp = await client.post(
        f"/api/v1/namespaces/default/workflows/{long_id}/signal/ping", data=_padded_signal_body(4 * MIB - 64)
    )
    assert resp.status == 429
    body = await resp.json()
    assert body["code"] == 8 and body["message"].startswith("grpc: received message larger than max (")
    assert body["message"].endswith(f" vs. {4 * MIB})")
    assert len(recorder.calls) == calls


async def test_path_and_query_values_that_are_not_utf8_are_refused(gateway: Any) -> None:
    client, recorder = gateway
    calls = len(recorder.calls)
    for method, path in [
        ("GET", "/api/v1/namespaces/default/workflows/%FF%FE/history"),
        ("GET", "/api/v1/namespaces/%FF%FE/task-queues/q1"),
        ("POST", "/api/v1/namespaces/default/workflows/wf-1/signal/%FF"),
        ("GET", "/api/v1/namespaces/default/workflows/wf-1/history?execution.runId=%FF%FE"),
    ]:
        resp = await client.request(method, path, data=b"{}" if method == "POST" else None)
        assert resp.status == 500, (path, await resp.text())
        assert await resp.json() == {"code": 13, "message": "string field contains invalid UTF-8"}
    assert len(recorder.calls) == calls  # nothing reached the servicer with a mangled value
    resp = await client.get("/api/v1/namespaces/default/workflows/%C3%A9t%C3%A9/history?unknown%FF=1")
    assert resp.status == 200  # UTF-8 decodes; an unknown parameter is ignored whatever its name
    assert recorder.calls[-1][1].execution.workflow_id == "été"
