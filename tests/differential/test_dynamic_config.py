"""Dynamic config values given on the command line, the same on the reference and on tempyral
(`--dynamic-config-value KEY=JSON`): a lower blob size limit refuses a payload both accepted before,
a lower history count limit terminates a workflow, and a namespace rate of 0 refuses calls, with the
same status, message, details and history on both."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator

import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import Payload, Payloads, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import EventType
from temporalio.api.errordetails.v1 import ResourceExhaustedFailure
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    GetWorkflowExecutionHistoryRequest,
    RegisterNamespaceRequest,
    SignalWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError

from tests.conftest import within
from tests.support.servers import ServerProcess, reference, tempyral

LIMITS = [
    *("--dynamic-config-value", "limit.blobSize.warn=500"),
    *("--dynamic-config-value", "limit.blobSize.error=1000"),
    *("--dynamic-config-value", "limit.historyCount.error=5"),
    *("--dynamic-config-value", "limit.maxIDLength=40"),  # the ids below are 35 characters
    *("--dynamic-config-value", 'system.namespaceMinRetentionLocal="2h"'),
]
NO_RATE = ["--dynamic-config-value", "frontend.namespaceRPS=0"]


def _pair(flags: list[str]) -> Iterator[dict[str, ServerProcess]]:
    servers = {"reference": reference(extra=flags), "tempyral": tempyral(extra=["--headless", *flags])}
    try:
        for proc in servers.values():
            proc.start()
        yield servers
    finally:
        for proc in servers.values():
            proc.stop()


@pytest.fixture(scope="module")
def blob_servers() -> Iterator[dict[str, ServerProcess]]:
    yield from _pair(LIMITS)


@pytest.fixture(scope="module")
def rate_servers() -> Iterator[dict[str, ServerProcess]]:
    yield from _pair(NO_RATE)


async def _clients(servers: dict[str, ServerProcess]) -> dict[str, Client]:
    return {name: await Client.connect(proc.address) for name, proc in servers.items()}


@pytest_asyncio.fixture(scope="module")
async def blob_clients(blob_servers: dict[str, ServerProcess]) -> AsyncIterator[dict[str, Client]]:
    yield await _clients(blob_servers)


@pytest_asyncio.fixture(scope="module")
async def rate_clients(rate_servers: dict[str, ServerProcess]) -> AsyncIterator[dict[str, Client]]:
    yield await _clients(rate_servers)


def _start(workflow_id: str, size: int) -> StartWorkflowExecutionRequest:
    return StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="anything"),
        task_queue=TaskQueue(name="nobody-polls"),
        request_id=str(uuid.uuid4()),
        input=Payloads(payloads=[Payload(data=b"a" * size)]),
    )


def _outcome(err: RPCError | None) -> tuple[int, str, list[str]] | str:
    if err is None:
        return "ok"
    return err.status, err.message, [d.type_url for d in err.grpc_status.details]


async def _error(call: Awaitable[object]) -> RPCError | None:
    try:
        await within(call)
    except RPCError as err:
        return err
    return None


async def test_lower_blob_size_limit(blob_clients: dict[str, Client]) -> None:
    seen: dict[str, list[object]] = {}
    for name, client in blob_clients.items():
        service = client.workflow_service
        workflow_id = f"dc-{uuid.uuid4().hex}"
        started = await _error(service.start_workflow_execution(_start(workflow_id, 900), retry=False))
        too_big = await _error(service.start_workflow_execution(_start(f"{workflow_id}-2", 1500), retry=False))
        signal = SignalWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            signal_name="s",
            input=Payloads(payloads=[Payload(data=b"a" * 1500)]),
            request_id=str(uuid.uuid4()),
        )
        signal_error = await _error(service.signal_workflow_execution(signal, retry=False))
        info = await service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        seen[name] = [
            _outcome(started),
            _outcome(too_big),
            _outcome(signal_error),
            info.namespace_info.limits.blob_size_limit_error,
        ]
    assert seen["tempyral"] == seen["reference"]
    assert seen["tempyral"][0] == "ok" and seen["tempyral"][1][1] == "Blob data size exceeds limit."  # type: ignore[index]


async def test_history_count_limit_terminates(blob_clients: dict[str, Client]) -> None:
    seen: dict[str, list[object]] = {}
    for name, client in blob_clients.items():
        service = client.workflow_service
        workflow_id = f"dc-{uuid.uuid4().hex}"
        await within(service.start_workflow_execution(_start(workflow_id, 10), retry=False))
        outcomes: list[object] = []
        for _ in range(6):
            signal = SignalWorkflowExecutionRequest(
                namespace="default",
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
                signal_name="s",
                request_id=str(uuid.uuid4()),
            )
            outcomes.append(_outcome(await _error(service.signal_workflow_execution(signal, retry=False))))
        execution = WorkflowExecution(workflow_id=workflow_id)
        events = (
            await service.get_workflow_execution_history(
                GetWorkflowExecutionHistoryRequest(namespace="default", execution=execution)
            )
        ).history.events
        terminated = events[-1].workflow_execution_terminated_event_attributes
        seen[name] = [outcomes, [EventType.Name(e.event_type) for e in events], terminated.reason, terminated.identity]
    assert seen["tempyral"] == seen["reference"]
    assert seen["tempyral"][2] == "Workflow history count exceeds limit."


async def test_lower_id_length_limit(blob_clients: dict[str, Client]) -> None:
    seen: dict[str, list[object]] = {}
    for name, client in blob_clients.items():
        service = client.workflow_service
        outcomes: list[object] = []
        for workflow_id in ("w" * 40, "w" * 41):
            request = _start(workflow_id, 10)
            outcomes.append(_outcome(await _error(service.start_workflow_execution(request, retry=False))))
        long_type = _start(f"dc-{uuid.uuid4().hex}", 10)
        long_type.workflow_type.name = "t" * 41
        outcomes.append(_outcome(await _error(service.start_workflow_execution(long_type, retry=False))))
        seen[name] = outcomes
    assert seen["tempyral"] == seen["reference"]
    assert seen["tempyral"][0] == "ok" and seen["tempyral"][1] != "ok"


async def test_minimum_retention(blob_clients: dict[str, Client]) -> None:
    seen: dict[str, list[object]] = {}
    for name, client in blob_clients.items():
        outcomes: list[object] = []
        for seconds in (3600, 7200):
            request = RegisterNamespaceRequest(
                namespace=f"dc-{uuid.uuid4().hex[:12]}", workflow_execution_retention_period=Duration(seconds=seconds)
            )
            outcomes.append(_outcome(await _error(client.workflow_service.register_namespace(request, retry=False))))
        seen[name] = outcomes
    assert seen["tempyral"] == seen["reference"]
    assert seen["tempyral"][0] != "ok" and seen["tempyral"][1] == "ok"


async def test_namespace_rate_of_zero(rate_clients: dict[str, Client]) -> None:
    seen: dict[str, list[object]] = {}
    for name, client in rate_clients.items():
        service = client.workflow_service
        outcomes: list[object] = []
        for call in (
            service.describe_namespace(DescribeNamespaceRequest(namespace="default"), retry=False),
            service.start_workflow_execution(_start(f"dc-{uuid.uuid4().hex}", 10), retry=False),
        ):
            err = await _error(call)
            assert err is not None
            detail = ResourceExhaustedFailure()
            assert err.grpc_status.details[0].Unpack(detail)
            outcomes.append((_outcome(err), detail.cause, detail.scope))
        seen[name] = outcomes
    assert seen["tempyral"] == seen["reference"]
