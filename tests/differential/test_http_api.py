"""tempyral's HTTP API against the reference's (its frontend HTTP port with plain payloads,
which is what the Web UI gets): the same scenario on both servers, the same GET requests, the
same JSON once ids, times and other per-server values are normalized."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.servers import ServerProcess
from tests.support.workflows import HelloWorkflow, greet

TASK_QUEUE = "http-api-diff"
DONE_ID = "http-api-done"
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT[\d:.]+Z$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
# Values that differ between two servers by nature.
VOLATILE_KEYS = {
    "taskId", "identity", "requestId", "historySizeBytes", "stateTransitionCount", "binaryChecksum", "buildId",
    "data", "executionDuration", "clusterId", "lastAccessTime", "ratePerSecond", "version", "urlPrefix",
    "nextPageToken", "firstWorkflowTaskCompletedId", "historyLength",
}  # fmt: skip


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        if value.get("kind") == "TASK_QUEUE_KIND_STICKY":  # a worker's own queue: its name is per process
            value = {**value, "name": "<sticky>"}
        if "coreUsedFlags" in value:  # the SDK lists them in no fixed order
            value = {**value, "coreUsedFlags": sorted(value["coreUsedFlags"])}
        return {k: ("<v>" if k in VOLATILE_KEYS else normalize(v)) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str) and (_TIME.match(value) or _UUID.match(value)):
        return "<id-or-time>"
    return value


async def _scenario(server: ServerProcess) -> str:
    client = await Client.connect(server.address)
    async with Worker(client, task_queue=TASK_QUEUE, workflows=[HelloWorkflow], activities=[greet]):
        await within(client.execute_workflow(HelloWorkflow.run, "HTTP", id=DONE_ID, task_queue=TASK_QUEUE))
    spec = EndpointSpec(
        name="http-api-diff-endpoint",
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue="nexus-tq")),
    )
    created = await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    return created.endpoint.id


@pytest_asyncio.fixture(scope="module")
async def both(
    reference_server: ServerProcess, server: ServerProcess
) -> AsyncIterator[tuple[tuple[str, str], tuple[str, str]]]:
    """((reference base URL, endpoint id), (tempyral base URL, endpoint id))"""
    out = []
    for proc in (reference_server, server):
        endpoint_id = await _scenario(proc)
        out.append((f"http://127.0.0.1:{proc.http_port}/api/v1", endpoint_id))
    yield out[0], out[1]


async def _get(base: str, path: str) -> tuple[int, Any]:
    separator = "&" if "?" in path else "?"
    async with aiohttp.ClientSession() as session:
        # noPayloadShorthand: the reference's plain protobuf JSON, the form the Web UI reads
        async with session.get(f"{base}{path}{separator}noPayloadShorthand=true") as resp:
            return resp.status, await resp.json()


async def _same(both: Any, path: str, pick: Any = lambda body: body) -> Any:
    (ref_base, _), (our_base, _) = both
    ref_status, ref_body = await _get(ref_base, path)
    our_status, our_body = await _get(our_base, path)
    assert our_status == ref_status, (our_body, ref_body)
    assert normalize(pick(our_body)) == normalize(pick(ref_body))
    return our_body


async def test_history(both: Any) -> None:
    body = await _same(both, f"/namespaces/default/workflows/{DONE_ID}/history?maximumPageSize=100")
    assert len(body["history"]["events"]) == 11


async def test_describe_workflow(both: Any) -> None:
    def pick(body: Any) -> Any:
        info = body["workflowExecutionInfo"]
        return {
            "executionConfig": body["executionConfig"],
            "info": {k: info[k] for k in ("execution", "type", "status", "taskQueue", "memo", "rootExecution")},
        }

    await _same(both, f"/namespaces/default/workflows/{DONE_ID}", pick)


async def test_list_and_count(both: Any) -> None:
    query = f"WorkflowId = '{DONE_ID}'"
    body = await _same(
        both,
        f"/namespaces/default/workflows?query={query}",
        lambda b: [{k: e[k] for k in ("execution", "type", "status", "taskQueue", "memo")} for e in b["executions"]],
    )
    assert len(body["executions"]) == 1
    await _same(both, f"/namespaces/default/workflow-count?query={query}")
    await _same(both, f"/namespaces/default/workflow-count?query=TaskQueue='{TASK_QUEUE}' GROUP BY ExecutionStatus")


async def test_errors(both: Any) -> None:
    await _same(both, f"/namespaces/default/workflows/no-such-{uuid.uuid4().hex}")
    await _same(both, "/namespaces/no-such-namespace")


async def test_namespace_and_cluster(both: Any) -> None:
    await _same(
        both,
        "/namespaces/default",
        lambda b: {"info": {k: b["namespaceInfo"][k] for k in ("name", "state")}, "global": b.get("isGlobalNamespace")},
    )
    await _same(
        both,
        "/cluster-info",
        lambda b: {k: b[k] for k in ("serverVersion", "clusterName", "persistenceStore", "visibilityStore")},
    )


async def test_nexus_endpoints(both: Any) -> None:
    (_, ref_id), (_, our_id) = both
    (ref_base, _), (our_base, _) = both
    ref_status, ref_body = await _get(ref_base, f"/nexus/endpoints/{ref_id}")
    our_status, our_body = await _get(our_base, f"/nexus/endpoints/{our_id}")
    assert our_status == ref_status == 200
    assert normalize(our_body) == normalize(ref_body)


# ---------------------------------------------------------------------- request size and undecodable paths
MIB = 1024 * 1024


def _padded_signal_body(size: int) -> bytes:
    """A valid SignalWorkflowExecution body of exactly `size` bytes (its identity is the padding)."""
    head, tail = b'{"identity":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


async def _post(url: str, data: Any, headers: dict[str, str] | None = None) -> tuple[int, Any, str | None]:
    """Status, JSON body and Connection header (the reference's JSON comes as Content-Type `*`)."""
    async with aiohttp.ClientSession() as session, session.post(url, data=data, headers=headers) as resp:
        return resp.status, await resp.json(content_type=None), resp.headers.get("Connection")


async def _both_post(both: Any, path: str, make_data: Any, headers: dict[str, str] | None = None) -> Any:
    (ref_base, _), (our_base, _) = both
    reference = await _post(f"{ref_base}{path}", make_data(), headers)
    ours = await _post(f"{our_base}{path}", make_data(), headers)
    return reference, ours


async def test_a_300_kb_body_is_read_whole(both: Any) -> None:
    data = base64.b64encode(b"x" * 300_000).decode()
    body = json.dumps({"signalName": "s", "input": {"payloads": [{"data": data}]}}).encode()
    reference, ours = await _both_post(
        both, f"/namespaces/default/workflows/no-such-{uuid.uuid4().hex}/signal/s", lambda: body
    )
    assert ours[0] == reference[0] == 404, (ours, reference)
    assert ours[1]["code"] == reference[1]["code"] == 5


async def test_a_body_over_4_mib_is_refused_and_the_connection_closed(both: Any) -> None:
    path = "/namespaces/default/workflows/size-wf/signal/s"
    reference, ours = await _both_post(both, path, lambda: _padded_signal_body(4 * MIB + 1))
    assert ours == reference == (400, {"code": 3, "message": "http: request body too large"}, "close")

    def chunks() -> Any:  # no Content-Length: refused once more than 4 MiB have come
        async def gen() -> AsyncIterator[bytes]:
            yield b'{"identity":"'
            for _ in range(80):
                yield b"x" * 65536
            yield b'"}'

        return gen()

    reference, ours = await _both_post(both, path, chunks)
    assert ours == reference == (400, {"code": 3, "message": "http: request body too large"}, "close")


async def test_a_request_over_the_grpc_message_limit_is_resource_exhausted(both: Any) -> None:
    # The body is under 4 MiB, the request made of it and of the path's long id is not.
    path = f"/namespaces/default/workflows/{'w' * 1000}/signal/s"
    reference, ours = await _both_post(both, path, lambda: _padded_signal_body(4 * MIB - 64))
    assert ours[0] == reference[0] == 429, (ours, reference)
    assert ours[1]["code"] == reference[1]["code"] == 8
    # The sizes in the messages differ by a few bytes: the reference's gateway adds fields of its own.
    for answer in (ours, reference):
        assert answer[1]["message"].startswith("grpc: received message larger than max (")


async def test_undecodable_path_parameters(both: Any) -> None:
    """The reference passes the raw bytes on and fails with INTERNAL where they become a string field (its
    message is masked with a hash of the Go error); tempyral refuses them alike, never as U+FFFD text."""
    (ref_base, _), (our_base, _) = both
    for path in ("/namespaces/default/workflows/%FF%FE", "/namespaces/default/workflows/ok%FF/history"):
        async with aiohttp.ClientSession() as session:
            answers = []
            for base in (ref_base, our_base):
                async with session.get(f"{base}{path}") as resp:
                    answers.append((resp.status, (await resp.json(content_type=None))["code"]))
        assert answers[0] == answers[1] == (500, 13), (path, answers)
    reference, ours = await _both_post(both, "/namespaces/default/workflows/%FF%FE/signal/s", lambda: b"{}")
    assert (ours[0], ours[1]["code"]) == (reference[0], reference[1]["code"]) == (500, 13)


async def test_nexus_bodies_over_2_mib_are_refused(both: Any) -> None:
    (ref_base, ref_id), (our_base, our_id) = both
    headers = {"Content-Type": "application/octet-stream", "Request-Timeout": "2s"}
    for size, message, connection in [
        (2 * MIB + 1, "invalid input", "close"),  # the body cannot be read whole
        (2 * MIB, "input exceeds size limit", None),  # read, but its payload with the content type is too big
    ]:
        answers = []
        for base, endpoint_id in ((ref_base, ref_id), (our_base, our_id)):
            url = f"{base.removesuffix('/api/v1')}/nexus/endpoints/{endpoint_id}/services/s/op"
            status, body, close = await _post(url, b"x" * size, headers)
            answers.append((status, body["message"], body["details"]["type"], close))
        assert answers[0] == answers[1] == (400, message, "BAD_REQUEST", connection), answers


async def test_an_over_long_namespace_is_refused_before_any_lookup(both: Any) -> None:
    """The checks the gRPC frontend makes before its servicers apply over HTTP too."""
    (ref_base, _), (our_base, _) = both
    path = f"/namespaces/{'n' * 1001}/workflows"
    reference, ours = await _get(ref_base, path), await _get(our_base, path)
    assert ours == reference
    assert ours[0] == 400 and ours[1]["message"] == "Namespace length exceeds limit."
