"""Dynamic config on a running server, and the Web UI's start-dev flags: one server started with a dynamic config
file (polled often), values on the command line, the UI on another loopback IP under a path prefix with a codec
endpoint, and --log-config. Each key shows its effect (Nexus ones included); a change of the file shows without a
restart."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import nexusrpc
import nexusrpc.handler
import pytest
import pytest_asyncio
from temporalio import nexus
from temporalio.api.common.v1 import Callback, Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import EventType, ResourceExhaustedCause, ResourceExhaustedScope, WorkflowTaskFailedCause
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetWorkflowExecutionHistoryRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_services import Call, Caller, Greeter, GreeterWorkflow, Req, Resp
from tests.support.servers import ServerProcess, tempyral
from tests.support.waiting import until

UI_IP = "127.0.0.2"  # loopback, but not --ip's address
RATE_LIMITED = "rate-limited"
OTHER = "other"
SMALL_HISTORY = "small-history"
NEXUS_CALLER, NEXUS_HANDLER, NEXUS_LIMITED = "nexus-caller", "nexus-handler", "nexus-limited"
ENDPOINT = "dc-endpoint"
FILE = """
limit.blobSize.warn:
  - value: 100000  # the command line's value wins
limit.blobSize.error:
  - value: 1000
    constraints: {namespace: default}
callback.allowedAddresses:
  - value: [{Pattern: "127.0.0.1:*", AllowInsecure: true}]
    constraints: {namespace: default}
frontend.namespaceRPS:
  - value: 0  # refuses every call of the namespace: deterministic, whatever the machine's speed
    constraints: {namespace: rate-limited}
component.nexusoperations.request.timeout:
  - value: 7s
    constraints: {namespace: nexus-caller, destination: dc-endpoint}
component.nexusoperations.limit.operation.concurrency:
  - value: 0
    constraints: {namespace: nexus-limited}
limit.historySize.error:
  - value: 2000
    constraints: {namespace: small-history}
no.such.setting:
  - value: 1
"""


def _write(path: Path, text: str) -> None:
    path.write_text(text)
    os.utime(path)


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dynconfig") / "dynamic.yaml"
    _write(path, FILE)
    return path


@pytest.fixture(scope="module")
def server(config_file: Path) -> Iterator[ServerProcess]:
    extra = [
        arg
        for ns in (RATE_LIMITED, OTHER, SMALL_HISTORY, NEXUS_CALLER, NEXUS_HANDLER, NEXUS_LIMITED)
        for arg in ("--namespace", ns)
    ]
    extra += ["--dynamic-config-path", str(config_file), "--dynamic-config-poll-interval", "0.1"]
    extra += ["--dynamic-config-value", "limit.blobSize.warn=500"]
    extra += ["--ui-ip", UI_IP, "--ui-public-path", "/x/", "--ui-codec-endpoint", "http://127.0.0.1:9/codec"]
    extra += ["--log-config"]
    proc = tempyral(extra=extra).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    yield await Client.connect(server.address)


def _start(
    size: int, namespace: str = "default", callbacks: list[Callback] | None = None
) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace=namespace,
        workflow_id=f"dc-{uuid.uuid4().hex}",
        workflow_type=WorkflowType(name="anything"),
        task_queue=TaskQueue(name="nobody-polls"),
        request_id=str(uuid.uuid4()),
        input=Payloads(payloads=[Payload(data=b"a" * size)]),
        completion_callbacks=callbacks or [],
    )


async def _start_error(client: Client, request: StartWorkflowExecutionRequest) -> RPCError | None:
    try:
        await within(client.workflow_service.start_workflow_execution(request, retry=False))
    except RPCError as err:
        return err
    return None


async def test_blob_size_limit_of_the_namespace(client: Client) -> None:
    assert await _start_error(client, _start(900)) is None
    err = await _start_error(client, _start(1500))
    assert err is not None and err.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.message == "Blob data size exceeds limit."
    # The limit is the namespace's: another namespace keeps the default error limit.
    assert await _start_error(client, _start(1500, OTHER)) is None
    # And the SDKs are told, as the reference tells them.
    info = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert info.namespace_info.limits.blob_size_limit_error == 1000


async def test_namespace_rate_limit(client: Client) -> None:
    err = await _start_error(client, _start(10, RATE_LIMITED))
    assert err is not None and err.status == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert err.message == "namespace rate limit exceeded"
    detail = ResourceExhaustedFailure()
    assert err.grpc_status.details[0].Unpack(detail)
    assert detail.cause == ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT
    assert detail.scope == ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE


async def test_history_size_limit_terminates(client: Client) -> None:
    request = _start(1500, SMALL_HISTORY)
    assert await _start_error(client, request) is None  # about 1.6 kB of history: under the limit

    async def signal() -> RPCError | None:
        call = SignalWorkflowExecutionRequest(
            namespace=SMALL_HISTORY,
            workflow_execution=WorkflowExecution(workflow_id=request.workflow_id),
            signal_name="s",
            input=Payloads(payloads=[Payload(data=b"s" * 600)]),
            request_id=str(uuid.uuid4()),
        )
        try:
            await within(client.workflow_service.signal_workflow_execution(call, retry=False))
        except RPCError as err:
            return err
        return None

    assert await signal() is None  # the written history is still under 2000 bytes
    err = await signal()
    assert err is not None and err.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.message == "Workflow history size exceeds limit."
    history = await client.workflow_service.get_workflow_execution_history(
        GetWorkflowExecutionHistoryRequest(
            namespace=SMALL_HISTORY, execution=WorkflowExecution(workflow_id=request.workflow_id)
        )
    )
    last = history.history.events[-1]
    assert last.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED
    assert last.workflow_execution_terminated_event_attributes.reason == "Workflow history size exceeds limit."
    assert last.workflow_execution_terminated_event_attributes.identity == "history-service"


async def test_callback_addresses_from_dynamic_config(client: Client) -> None:
    """The server has no --callback-allowed-address: dynamic config allows 127.0.0.1 for `default` only."""
    callback = [Callback(nexus=Callback.Nexus(url="http://127.0.0.1:1/callback"))]
    assert await _start_error(client, _start(10, callbacks=callback)) is None
    err = await _start_error(client, _start(10, OTHER, callbacks=callback))
    assert err is not None and err.status == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert err.message == "invalid url: url does not match any configured callback address: http://127.0.0.1:1/callback"


async def test_a_changed_file_applies_without_restart(client: Client, config_file: Path, server: ServerProcess) -> None:
    _write(config_file, FILE.replace("value: 1000", "value: 2000"))
    try:
        for _ in range(600):  # the file is polled every 0.1 s; bounded all the same
            if await _start_error(client, _start(1500)) is None:
                break
            await asyncio.sleep(0.1)
        else:
            pytest.fail("the new blob size limit never applied")
        err = await _start_error(client, _start(2500))
        assert err is not None and err.message == "Blob data size exceeds limit."
    finally:
        _write(config_file, FILE)
    # The unknown key was logged once, though the file was read again.
    log = server.log_tail(200_000)
    assert log.count("unregistered key 'no.such.setting'") == 1, log[-3000:]


def test_log_config(server: ServerProcess) -> None:
    log = server.log_tail(200_000)
    assert "tempyral configuration: ServerConfig(" in log
    line = next(line for line in log.splitlines() if line.startswith("tempyral dynamic config: "))
    values = json.loads(line.removeprefix("tempyral dynamic config: "))
    assert values["limit.blobSize.warn"] == [{"value": 500}]
    assert values["limit.blobSize.error"] == [{"value": 1000, "constraints": {"namespace": "default"}}]


async def test_ui_flags(server: ServerProcess) -> None:
    base = f"http://{UI_IP}:{server.ui_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/x/api/v1/settings") as resp:
            assert resp.status == 200
            settings = await resp.json()
        assert settings["Codec"]["Endpoint"] == "http://127.0.0.1:9/codec"
        async with session.get(f"{base}/x/") as resp:
            page = await resp.text()
        assert '"/x/_app/' in page and 'base: "/x"' in page and '"/_app/' not in page
        async with session.get(f"{base}/", allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == "/x/"
        async with session.get(f"{base}/x/api/v1/namespaces/default") as resp:
            assert resp.status == 200  # the UI's API calls under the prefix reach the server
    # Bound to --ui-ip only, not to --ip's address.
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", server.ui_port), timeout=5):
        pass


@nexusrpc.handler.service_handler(service=Greeter)
class HeaderEcho:
    """Answers with the request timeout the server gave the request."""

    @nexusrpc.handler.sync_operation
    async def echo(self, ctx: nexusrpc.handler.StartOperationContext, req: Req) -> Resp:
        return Resp(ctx.headers.get("request-timeout", ""))

    @nexus.workflow_run_operation
    async def hello(self, ctx: nexus.WorkflowRunOperationContext, req: Req) -> nexus.WorkflowHandle[Resp]:
        return await ctx.start_workflow(GreeterWorkflow.run, req, id=f"greeter-{req.name}")


async def test_nexus_request_timeout_and_concurrency(server: ServerProcess) -> None:
    clients = {
        ns: await Client.connect(server.address, namespace=ns) for ns in (NEXUS_CALLER, NEXUS_HANDLER, NEXUS_LIMITED)
    }
    handler_tq, caller_tq = f"h-{uuid.uuid4().hex}", f"c-{uuid.uuid4().hex}"
    spec = EndpointSpec(
        name=ENDPOINT,
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace=NEXUS_HANDLER, task_queue=handler_tq)),
    )
    await clients[NEXUS_CALLER].operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    async with (
        Worker(
            clients[NEXUS_HANDLER],
            task_queue=handler_tq,
            workflows=[GreeterWorkflow],
            nexus_service_handlers=[HeaderEcho()],
        ),
        Worker(clients[NEXUS_CALLER], task_queue=caller_tq, workflows=[Caller]),
        Worker(clients[NEXUS_LIMITED], task_queue=caller_tq, workflows=[Caller]),
    ):
        # The caller namespace's timeout for this endpoint (the flag's default is 10 s).
        result = await clients[NEXUS_CALLER].execute_workflow(
            Caller.run, Call(ENDPOINT, "echo", "x"), id=f"dc-{uuid.uuid4().hex}", task_queue=caller_tq
        )
        assert result == "7000ms"
        # No operation at all may be pending in the limited namespace: the command fails the workflow task.
        handle = await clients[NEXUS_LIMITED].start_workflow(
            Caller.run, Call(ENDPOINT, "echo", "y"), id=f"dc-{uuid.uuid4().hex}", task_queue=caller_tq
        )

        async def failed_task() -> list[Any]:
            events = (await handle.fetch_history()).events
            return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]

        failed = (await until(failed_task, what="a failed workflow task"))[0]
        attrs = failed.workflow_task_failed_event_attributes
        assert attrs.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_NEXUS_OPERATIONS_LIMIT_EXCEEDED
        await handle.terminate()
