"""SIGKILL the server while Nexus operations are in flight (sync and async, some still waiting
for their start, some whose handler workflows are running), restart it on the same database,
and check that every operation completes exactly once: one completion event per caller, one
handler workflow per async operation, and well-formed histories."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.crash.history_checks import problems
from tests.crash.test_sigkill import retrying
from tests.support.nexus_services import Call, Caller, GreeterHandler, GreeterWorkflow
from tests.support.servers import ServerProcess, tempyral

COUNT = 40
NAMESPACES = ("caller-ns", "handler-ns")


@pytest.fixture
def crashable(tmp_path: Path) -> Iterator[ServerProcess]:
    extra = ["--nexus-retry-initial", "0.2", "--nexus-retry-max", "1"]
    for ns in NAMESPACES:
        extra += ["--namespace", ns]
    proc = tempyral(str(tmp_path / "nexus-crash.db"), extra=extra).start()
    yield proc
    proc.stop()


async def _connect(server: ServerProcess, namespace: str) -> Client:
    return await retrying(lambda: Client.connect(server.address, namespace=namespace), "connect")


@pytest.mark.parametrize("kill_after", [0.4, 1.5])
async def test_sigkill_with_operations_in_flight_completes_each_once(
    crashable: ServerProcess, kill_after: float
) -> None:
    operator = await _connect(crashable, "default")
    handler_tq, caller_tq = f"h-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    spec = EndpointSpec(
        name=f"ep-{uuid.uuid4().hex[:8]}",
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="handler-ns", task_queue=handler_tq)),
    )
    await operator.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    callers = await _connect(crashable, "caller-ns")
    handlers = await _connect(crashable, "handler-ns")
    calls = [Call(spec.name, "hello" if i % 2 else "echo", f"crash-{uuid.uuid4().hex[:8]}-{i}") for i in range(COUNT)]
    async with (
        Worker(callers, task_queue=caller_tq, workflows=[Caller], max_concurrent_workflow_tasks=20),
        Worker(handlers, task_queue=handler_tq, workflows=[GreeterWorkflow], nexus_service_handlers=[GreeterHandler()]),
    ):
        handles: list[WorkflowHandle[Any, str]] = []
        for call in calls:
            handles.append(
                await retrying(
                    lambda call=call: callers.start_workflow(  # type: ignore[misc]
                        Caller.run, call, id=f"caller-{call.name}", task_queue=caller_tq
                    ),
                    "start",
                )
            )
        await asyncio.sleep(kill_after)
        crashable.kill()
        await asyncio.sleep(0.3)
        crashable.start()
        results = await asyncio.wait_for(
            asyncio.gather(*(retrying(h.result, f"result of {h.id}") for h in handles)), timeout=150
        )
    for call, result in zip(calls, results, strict=True):
        assert result == (f"Hello, {call.name}!" if call.operation == "hello" else f"echo {call.name}")
    for handle in handles:
        history = await retrying(handle.fetch_history, "history")
        assert not problems(history), f"{handle.id}: {problems(history)}"
        types = [e.event_type for e in history.events]
        assert types.count(EventType.EVENT_TYPE_NEXUS_OPERATION_SCHEDULED) == 1, handle.id
        assert types.count(EventType.EVENT_TYPE_NEXUS_OPERATION_COMPLETED) == 1, handle.id
    for call in calls:
        if call.operation == "hello":
            runs = [e async for e in handlers.list_workflows(f"WorkflowId = 'greeter-{call.name}'")]
            assert len(runs) == 1, f"greeter-{call.name} ran {len(runs)} times"
