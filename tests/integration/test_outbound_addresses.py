"""The server calls only the addresses its configuration allows (`--callback-allowed-address`):
by default no completion callback or external Nexus endpoint outside tempyral itself, whether
named over gRPC or through the Nexus HTTP API; and a URL stored while it was allowed is not
called once the configuration no longer allows it. A loopback listener counts what arrives."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Callback, WorkflowType
from temporalio.api.enums.v1 import CallbackState
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest, UpdateNexusEndpointRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.listener import Listener, listening
from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow
from tests.support.servers import ServerProcess, tempyral

NO_MATCH = "url does not match any configured callback address"


@pytest.fixture(scope="module")
def default_server() -> Iterator[ServerProcess]:
    """No --callback-allowed-address: only tempyral's own callback URL and the internal ones."""
    proc = tempyral(extra=["--headless"]).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    async with listening() as found:
        yield found


def _start_request(url: str) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=new_id("cb"),
        workflow_type=WorkflowType(name="NoSuchWorkflow"),
        task_queue=TaskQueue(name=f"cb-{uuid.uuid4().hex}"),
        request_id=str(uuid.uuid4()),
        completion_callbacks=[Callback(nexus=Callback.Nexus(url=url))],
    )


def _external(url: str) -> EndpointTarget:
    return EndpointTarget(external=EndpointTarget.External(url=url))


def _worker(task_queue: str) -> EndpointTarget:
    return EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))


async def test_by_default_a_callback_may_only_point_at_tempyral_itself(
    default_server: ServerProcess, listener: Listener
) -> None:
    client = await Client.connect(default_server.address)
    own = f"http://127.0.0.1:{default_server.http_port}"
    for url in (listener.url("127.0.0.1", "/cb"), f"{own}/api/v1/namespaces/default/workflows/x"):
        with pytest.raises(RPCError) as err:
            await client.workflow_service.start_workflow_execution(_start_request(url))
        assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
        assert err.value.message == f"invalid url: {NO_MATCH}: {url}"

    accepted = []
    for url in ("temporal://system", f"{own}/namespaces/default/nexus/callback", f"{own}/nexus/callback"):
        request = _start_request(url)
        await client.workflow_service.start_workflow_execution(request)
        accepted.append(request.workflow_id)
    for workflow_id in accepted:
        await client.get_workflow_handle(workflow_id).terminate()
    await asyncio.sleep(0.5)  # room for a call that should not come
    assert listener.paths == []


async def test_by_default_no_external_endpoint_may_be_registered(
    default_server: ServerProcess, listener: Listener
) -> None:
    client = await Client.connect(default_server.address)
    url = listener.url("127.0.0.1", "/ext")
    spec = EndpointSpec(name=f"ext-{uuid.uuid4().hex[:8]}", target=_external(url))
    with pytest.raises(RPCError) as err:
        await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    assert err.value.message == f"invalid target URL: {NO_MATCH}: {url}"

    spec = EndpointSpec(name=f"ext-{uuid.uuid4().hex[:8]}", target=_worker("some-queue"))
    created = await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    spec.target.CopyFrom(_external(url))
    with pytest.raises(RPCError) as err:
        await client.operator_service.update_nexus_endpoint(
            UpdateNexusEndpointRequest(id=created.endpoint.id, version=created.endpoint.version, spec=spec)
        )
    assert err.value.message == f"invalid target URL: {NO_MATCH}: {url}"


async def test_a_nexus_http_caller_cannot_name_a_callback_that_is_not_allowed(
    default_server: ServerProcess, listener: Listener
) -> None:
    """The handler's start of its workflow, with the caller's callback URL, is refused (as on the
    reference): the caller gets 400 and nothing is started that could call it."""
    client = await Client.connect(default_server.address)
    task_queue = f"tq-{uuid.uuid4().hex}"
    spec = EndpointSpec(name=f"http-{uuid.uuid4().hex[:8]}", target=_worker(task_queue))
    created = await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    callback = listener.url("127.0.0.1", "/cb")
    name = uuid.uuid4().hex[:10]
    url = (
        f"http://127.0.0.1:{default_server.http_port}/nexus/endpoints/{created.endpoint.id}"
        f"/services/Greeter/hello?callback={callback}"
    )
    async with (
        Worker(client, task_queue=task_queue, workflows=[GreeterWorkflow], nexus_service_handlers=[GreeterHandler()]),
        aiohttp.ClientSession() as http,
        http.post(
            url,
            data=json.dumps({"name": name, "mode": "hang"}),
            headers={"Content-Type": "application/json", "Request-Timeout": "20s"},
        ) as resp,
    ):
        body = await resp.json()
    assert resp.status == 400, body
    assert body["message"] == f"invalid url: {NO_MATCH}: {callback}"
    assert [w async for w in client.list_workflows(f"WorkflowId = 'greeter-{name}'")] == []
    assert listener.paths == []


async def _callback_failure(client: Client, workflow_id: str) -> str:
    """The message of the run's callback once its delivery has failed for good."""
    while True:
        described = await client.get_workflow_handle(workflow_id).describe()
        info = described.raw_description.callbacks[0]
        if info.state == CallbackState.CALLBACK_STATE_FAILED:
            return str(info.last_attempt_failure.message)
        await asyncio.sleep(0.2)


async def test_urls_stored_while_allowed_are_not_called_once_the_configuration_forbids_them(
    tmp_path: Path, listener: Listener
) -> None:
    db = str(tmp_path / "outbound.db")
    allowing = tempyral(db, extra=["--headless", "--callback-allowed-address", "127.0.0.1:*,allow-insecure"])
    allowing.start()
    try:
        client = await Client.connect(allowing.address)
        endpoint = f"ext-{uuid.uuid4().hex[:8]}"
        spec = EndpointSpec(name=endpoint, target=_external(listener.url("127.0.0.1", "/ext")))
        await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
        waiting = _start_request(listener.url("127.0.0.1", "/cb"))
        await client.workflow_service.start_workflow_execution(waiting)
    finally:
        allowing.stop()

    # The same database, without the allow-list.
    strict = tempyral(db, extra=["--headless"])
    strict.start()
    try:
        client = await Client.connect(strict.address)
        await client.get_workflow_handle(waiting.workflow_id).terminate()  # closing the run fires its callback
        message = await within(_callback_failure(client, waiting.workflow_id), 30)
        assert message == f"invalid url: {NO_MATCH}: {listener.url('127.0.0.1', '/cb')}"

        task_queue = f"tq-{uuid.uuid4().hex}"
        async with Worker(client, task_queue=task_queue, workflows=[Caller]):
            handle = await client.start_workflow(
                Caller.run, Call(endpoint, "hello", "x", schedule_to_close_s=60), id=new_id(), task_queue=task_queue
            )
            with pytest.raises(WorkflowFailureError) as err:
                await within(handle.result(), 30)
        handler_error = getattr(err.value.cause, "cause", None)
        assert type(handler_error).__name__ == "HandlerError"
        assert f"invalid target URL: {NO_MATCH}: {listener.url('127.0.0.1', '/ext')}" in str(handler_error)
    finally:
        strict.stop()
    assert listener.paths == []
