"""The machinery around Nexus calls, on a server with tight limits: retries while no handler
worker polls, the circuit breaker opening and closing, access control, load sharing between
workers, cancellation types, and bad input (unknown endpoint or operation, an endpoint deleted
while operations are in flight, oversized input)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, PendingNexusOperationState, WorkflowTaskFailedCause
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest, DeleteNexusEndpointRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import NexusOperationError, TemporalError
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow, PingerHandler
from tests.support.servers import ServerProcess, tempyral
from tests.support.waiting import until

State = PendingNexusOperationState
NAMESPACES = ("caller-ns", "handler-ns", "trusted-ns")
GUARDED = "ep-guarded"
LIMIT_FLAGS = [
    "--nexus-request-timeout", "1.5",
    "--nexus-retry-initial", "0.2",
    "--nexus-retry-max", "0.5",
    "--nexus-breaker-failures", "2",
    "--nexus-breaker-open", "3",
    "--nexus-allow", f"{GUARDED}=trusted-ns",
]  # fmt: skip


@pytest.fixture(scope="module")
def limited_server() -> Iterator[ServerProcess]:
    extra = [*LIMIT_FLAGS, *(arg for ns in NAMESPACES for arg in ("--namespace", ns))]
    proc = tempyral(extra=extra).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def clients(limited_server: ServerProcess) -> AsyncIterator[dict[str, Client]]:
    yield {ns: await Client.connect(limited_server.address, namespace=ns) for ns in ("default", *NAMESPACES)}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _endpoint(client: Client, task_queue: str, name: str = "") -> tuple[str, str]:
    spec = EndpointSpec(
        name=name or _name("ep"),
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="handler-ns", task_queue=task_queue)),
    )
    created = (await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))).endpoint
    return created.spec.name, created.id


@asynccontextmanager
async def _handler(client: Client, task_queue: str, handler: GreeterHandler | None = None) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=[handler or GreeterHandler()],
    ):
        yield


@asynccontextmanager
async def _caller(client: Client, task_queue: str) -> AsyncIterator[None]:
    async with Worker(client, task_queue=task_queue, workflows=[Caller]):
        yield


async def _start(client: Client, task_queue: str, call: Call) -> WorkflowHandle[Any, str]:
    return await client.start_workflow(Caller.run, call, id=_name("caller"), task_queue=task_queue)


async def _pending(handle: WorkflowHandle[Any, Any]) -> list[Any]:
    return list((await handle.describe()).raw_description.pending_nexus_operations)


async def test_operation_waits_for_a_handler_worker_and_shows_its_attempts(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    async with _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "hello", _name("n")))

        async def backing_off() -> Any:
            ops = await _pending(handle)
            return ops and ops[0].attempt >= 1 and ops[0].last_attempt_failure.message and ops[0]

        op = await until(backing_off, what="a failed attempt")
        assert op.last_attempt_failure.message == "upstream timeout"
        assert op.last_attempt_failure.nexus_handler_failure_info.type == "UPSTREAM_TIMEOUT"
        assert op.state in (
            State.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF,
            State.PENDING_NEXUS_OPERATION_STATE_SCHEDULED,
        )
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        async with _handler(clients["handler-ns"], handler_tq):
            assert (await within(handle.result())).startswith("Hello, ")


async def test_circuit_breaker_opens_and_closes(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    async with _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", _name("n")))

        async def blocked() -> Any:
            ops = await _pending(handle)
            return ops and ops[0].state == State.PENDING_NEXUS_OPERATION_STATE_BLOCKED and ops[0]

        # more than 2 consecutive upstream timeouts open the breaker of this endpoint
        op = await until(blocked, timeout=40, what="the circuit breaker to open")
        assert op.blocked_reason == "The circuit breaker is open."
        attempts_when_opened = op.attempt
        async with _handler(clients["handler-ns"], handler_tq):
            # after the open period one probe goes through, succeeds, and the breaker closes
            assert (await within(handle.result())).startswith("echo ")
            history = await handle.fetch_history()
            assert [e.event_type for e in history.events].count(EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED) == 1
            # closed again: the next operation goes straight through, on its first attempt
            second = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", _name("n")))
            assert (await within(second.result(), timeout=20)).startswith("echo ")
    assert attempts_when_opened >= 3


async def test_access_control_refuses_other_namespaces(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq, name=GUARDED)
    handler = GreeterHandler()
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(_handler(clients["handler-ns"], handler_tq, handler))
        await stack.enter_async_context(_caller(clients["caller-ns"], caller_tq))
        await stack.enter_async_context(_caller(clients["trusted-ns"], caller_tq))
        refused = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", "intruder"))
        with pytest.raises(WorkflowFailureError) as info:
            await within(refused.result())
        cause = info.value.cause
        assert type(cause).__name__ == "NexusOperationError" and isinstance(cause, NexusOperationError)
        assert "not allowed" in str(cause.cause) and type(cause.cause).__name__ == "HandlerError"
        assert handler.calls == 0  # never reached the handler
        allowed = await _start(clients["trusted-ns"], caller_tq, Call(endpoint, "echo", "friend"))
        assert await within(allowed.result()) == "echo friend"
        assert handler.calls == 1


async def test_workers_on_one_queue_share_the_load(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    first, second = GreeterHandler(), GreeterHandler()
    async with AsyncExitStack() as stack:
        # the SDK allows one worker per queue and client: the second worker gets its own connection
        other = await Client.connect(clients["handler-ns"].service_client.config.target_host, namespace="handler-ns")
        await stack.enter_async_context(_handler(clients["handler-ns"], handler_tq, first))
        await stack.enter_async_context(_handler(other, handler_tq, second))
        await stack.enter_async_context(_caller(clients["caller-ns"], caller_tq))
        handles = [await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", f"n{i}")) for i in range(30)]
        results = await within(asyncio.gather(*(h.result() for h in handles)))
    assert sorted(results) == sorted(f"echo n{i}" for i in range(30))
    assert first.calls + second.calls == 30
    assert first.calls > 0 and second.calls > 0


async def test_several_services_share_one_task_queue(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    worker = Worker(
        clients["handler-ns"],
        task_queue=handler_tq,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=[GreeterHandler(), PingerHandler()],
    )
    async with worker, _caller(clients["caller-ns"], caller_tq):
        greeted = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "hello", _name("n")))
        pinged = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "ping", "x"))
        assert (await within(greeted.result())).startswith("Hello, ")
        assert await within(pinged.result()) == "pong x"


async def test_unknown_endpoint_fails_the_workflow_task(clients: dict[str, Client]) -> None:
    caller_tq = _name("c")
    async with _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call("no-such-endpoint", "echo", "x"))

        async def failed_task() -> Any:
            events = (await handle.fetch_history()).events
            return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]

        failed = (await until(failed_task, what="a failed workflow task"))[0].workflow_task_failed_event_attributes
        assert (
            failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
        )
        assert failed.failure.message == 'BadScheduleNexusOperationAttributes: endpoint "no-such-endpoint" not found'
        assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING
        await handle.terminate()


async def test_unknown_operation_at_the_handler_fails_promptly(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    async with _handler(clients["handler-ns"], handler_tq), _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "missing", "x"))
        with pytest.raises(WorkflowFailureError) as info:
            await within(handle.result(), timeout=20)
    assert isinstance(info.value.cause, TemporalError)
    handler_error = info.value.cause.cause
    assert type(handler_error).__name__ == "HandlerError"
    assert "NOT_FOUND" in str(getattr(handler_error, "type", "")) or "not found" in str(handler_error).lower()


async def test_endpoint_deleted_while_operations_are_in_flight(clients: dict[str, Client]) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, endpoint_id = await _endpoint(clients["default"], handler_tq)
    async with _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", "x"))

        async def attempted() -> Any:
            ops = await _pending(handle)
            return ops and ops[0].attempt >= 1

        await until(attempted, what="a failed attempt")  # no worker: the operation retries
        await clients["default"].operator_service.delete_nexus_endpoint(
            DeleteNexusEndpointRequest(id=endpoint_id, version=1)
        )
        with pytest.raises(WorkflowFailureError) as info:
            await within(handle.result(), timeout=30)
    assert isinstance(info.value.cause, TemporalError)
    assert "endpoint not registered" in str(info.value.cause.cause)


async def test_oversized_input_never_leaves_the_caller(clients: dict[str, Client]) -> None:
    """The Python SDK checks payload sizes itself and fails its workflow task; the server's own
    check (for SDKs that do not) is covered by tests/unit/test_nexus_commands.py."""
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    handler = GreeterHandler()
    async with _handler(clients["handler-ns"], handler_tq, handler), _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "echo", "x", pad=2 * 1024 * 1024 + 10))

        async def failed_task() -> Any:
            events = (await handle.fetch_history()).events
            return [e for e in events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]

        failed = (await until(failed_task, what="a failed workflow task"))[0].workflow_task_failed_event_attributes
        assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_PAYLOADS_TOO_LARGE
        types = [e.event_type for e in (await handle.fetch_history()).events]
        assert EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED not in types
        assert handler.calls == 0
        await handle.terminate()


@pytest.mark.parametrize(
    ("cancel_type", "handler_status"),
    [
        ("ABANDON", WorkflowExecutionStatus.RUNNING),
        ("TRY_CANCEL", None),  # the request may or may not reach the handler before the caller closes
        ("WAIT_REQUESTED", WorkflowExecutionStatus.CANCELED),
        ("WAIT_COMPLETED", WorkflowExecutionStatus.CANCELED),
    ],
)
async def test_cancellation_types(
    clients: dict[str, Client], cancel_type: str, handler_status: WorkflowExecutionStatus | None
) -> None:
    handler_tq, caller_tq = _name("h"), _name("c")
    endpoint, _ = await _endpoint(clients["default"], handler_tq)
    name = _name("n")
    async with _handler(clients["handler-ns"], handler_tq), _caller(clients["caller-ns"], caller_tq):
        handle = await _start(clients["caller-ns"], caller_tq, Call(endpoint, "hello", name, "hang", 0, cancel_type))
        assert await within(handle.result()) == "NexusOperationError/CancelledError"
        handler = clients["handler-ns"].get_workflow_handle(f"greeter-{name}")
        if handler_status == WorkflowExecutionStatus.CANCELED:
            await until(
                lambda: _status_is(handler, WorkflowExecutionStatus.CANCELED), what="the handler workflow canceled"
            )
        elif handler_status is not None:
            await asyncio.sleep(1)
            assert (await handler.describe()).status == handler_status
        types = [e.event_type for e in (await handle.fetch_history()).events]
        requested = EventType.EVENT_TYPE_NEXUS_OPERATION_CANCEL_REQUESTED
        assert (requested in types) == (cancel_type != "ABANDON")
        if cancel_type == "WAIT_COMPLETED":
            assert EventType.EVENT_TYPE_NEXUS_OPERATION_CANCELED in types
        await _terminate_if_running(handler)


async def _status_is(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus) -> bool:
    return (await handle.describe()).status == status


async def _terminate_if_running(handle: WorkflowHandle[Any, Any]) -> None:
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate()
