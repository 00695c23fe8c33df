"""tempyral's HTTP API against the reference's (its frontend HTTP port with plain payloads,
which is what the Web UI gets): the same scenario on both servers, the same GET requests, the
same JSON once ids, times and other per-server values are normalized."""

from __future__ import annotations

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
