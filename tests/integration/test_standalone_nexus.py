"""Standalone Nexus operations (nexus/standalone.py), started by a client through an endpoint, driven with the
official SDK (`client.create_nexus_client`, the handle, list and count) and the `temporal nexus operation` CLI,
against a real Nexus worker: sync and async handlers, handler failures, retries, timeouts, cancel, terminate,
delete, id policies and request-id dedupe."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import nexusrpc
import nexusrpc.handler
import pytest
from temporalio.api.enums.v1 import (
    CallbackState,
    NexusOperationCancellationState,
    NexusOperationIdConflictPolicy,
    WorkflowExecutionStatus,
)
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.workflowservice.v1 import (
    DeleteNexusOperationExecutionRequest,
    DescribeNamespaceRequest,
    DescribeNexusOperationExecutionRequest,
    ListWorkflowExecutionsRequest,
    StartNexusOperationExecutionRequest,
)
from temporalio.client import Client, NexusOperationFailureError
from temporalio.common import (
    NexusOperationExecutionStatus,
    NexusOperationIDConflictPolicy,
    NexusOperationIDReusePolicy,
)
from temporalio.common import (
    PendingNexusOperationExecutionState as PendingState,
)
from temporalio.exceptions import (
    ApplicationError,
    CancelledError,
    NexusOperationAlreadyStartedError,
    TerminatedError,
    TimeoutError,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.nexus_services import Greeter, GreeterHandler, GreeterWorkflow, Req, Resp
from tests.support.servers import ServerProcess, reference_binary
from tests.support.waiting import until

Status = NexusOperationExecutionStatus
CancelState = NexusOperationCancellationState


@nexusrpc.service
class Flaky:
    flaky: nexusrpc.Operation[Req, Resp]


@nexusrpc.handler.service_handler(service=Flaky)
class FlakyHandler:
    """Fails its first `failures` start requests with a retryable handler error, then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    @nexusrpc.handler.sync_operation
    async def flaky(self, ctx: nexusrpc.handler.StartOperationContext, req: Req) -> Resp:
        self.calls += 1
        if self.calls <= self.failures:
            raise nexusrpc.HandlerError("not yet", type=nexusrpc.HandlerErrorType.INTERNAL, retryable_override=True)
        return Resp(f"flaky {req.name} after {self.calls}")


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def _endpoint(client: Client, task_queue: str) -> str:
    spec = EndpointSpec(
        name=_name("ep"),
        target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue)),
    )
    await client.operator_service.create_nexus_endpoint(CreateNexusEndpointRequest(spec=spec))
    return spec.name


@asynccontextmanager
async def _handler(client: Client, task_queue: str, *handlers: Any) -> AsyncIterator[None]:
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[GreeterWorkflow],
        nexus_service_handlers=list(handlers) or [GreeterHandler()],
    ):
        yield


async def test_sync_operation_start_result_and_describe(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    async with _handler(client, task_queue):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
        op_id = _name("sync")
        handle = await nexus.start_operation(
            Greeter.echo, Req("ann"), id=op_id, schedule_to_close_timeout=timedelta(seconds=30), summary="greet ann"
        )
        assert handle.run_id
        assert await within(handle.result()) == Resp("echo ann")
        desc = await handle.describe()
        assert (desc.operation_id, desc.run_id, desc.endpoint, desc.service, desc.operation) == (
            op_id,
            handle.run_id,
            endpoint,
            "Greeter",
            "echo",
        )
        assert desc.status == Status.COMPLETED
        assert desc.attempt == 1
        assert desc.schedule_to_close_timeout == timedelta(seconds=30)
        assert desc.schedule_time is not None and desc.close_time is not None
        assert desc.expiration_time == desc.schedule_time + timedelta(seconds=30)
        assert desc.identity == client.identity
        assert await desc.static_summary() == "greet ann"
        assert desc.operation_token is None
        # execute_operation is start + result
        assert await within(nexus.execute_operation(Greeter.echo, Req("bo"), id=_name("exec"))) == Resp("echo bo")
        # another handle on the same operation, by id alone
        again = client.get_nexus_operation_handle(op_id, result_type=Resp)
        assert await within(again.result()) == Resp("echo ann")
    # operations are not workflows: they never show in workflow lists
    listed = await client.workflow_service.list_workflow_executions(
        ListWorkflowExecutionsRequest(namespace="default", query=f"WorkflowId = '{op_id}'")
    )
    assert not listed.executions


async def test_async_operation_completes_through_the_handler_workflows_callback(
    client: Client, task_queue: str
) -> None:
    endpoint = await _endpoint(client, task_queue)
    name = _name("async")
    async with _handler(client, task_queue):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
        handle = await nexus.start_operation(Greeter.hello, Req(name), id=_name("op"))
        assert await within(handle.result()) == Resp(f"Hello, {name}!")
        desc = await handle.describe()
        assert desc.status == Status.COMPLETED
        assert desc.operation_token
        links = desc.raw_description.links
        assert [link.workflow_event.workflow_id for link in links] == [f"greeter-{name}"]
        # the handler workflow's completion callback was delivered (to this operation)
        handler_wf = await client.get_workflow_handle(f"greeter-{name}").describe()
        callbacks = handler_wf.raw_description.callbacks
        assert len(callbacks) == 1 and callbacks[0].state == CallbackState.CALLBACK_STATE_SUCCEEDED


async def test_handler_failures_fail_the_operation(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    async with _handler(client, task_queue):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
        # an operation error from a sync handler
        handle = await nexus.start_operation(Greeter.echo, Req("x", "operation-error"), id=_name("fail"))
        with pytest.raises(NexusOperationFailureError) as failed:
            await within(handle.result())
        assert isinstance(failed.value.cause, ApplicationError)
        assert failed.value.cause.message == "operation failed on purpose"
        desc = await handle.describe()
        assert desc.status == Status.FAILED
        assert desc.last_attempt_failure is not None
        # a non-retryable handler error
        handle = await nexus.start_operation(Greeter.echo, Req("x", "bad-request"), id=_name("bad"))
        with pytest.raises(NexusOperationFailureError) as bad:
            await within(handle.result())
        assert "bad request on purpose" in str(bad.value.cause)
        # the handler workflow of an async operation fails
        handle = await nexus.start_operation(Greeter.hello, Req(_name("wf"), "fail"), id=_name("wffail"))
        with pytest.raises(NexusOperationFailureError) as wf_failed:
            await within(handle.result())
        assert isinstance(wf_failed.value.cause, ApplicationError)
        assert wf_failed.value.cause.message == "handler workflow failed"
        assert (await handle.describe()).status == Status.FAILED


async def test_retryable_failures_are_retried_with_backoff_then_succeed(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    flaky = FlakyHandler(failures=2)
    async with _handler(client, task_queue, flaky):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Flaky)
        handle = await nexus.start_operation(Flaky.flaky, Req("z"), id=_name("flaky"))

        async def backing_off() -> Any:
            desc = await handle.describe()
            return desc if desc.state == PendingState.BACKING_OFF else None

        desc = await until(backing_off, what="a failed attempt")
        assert desc.status == Status.RUNNING
        assert desc.next_attempt_schedule_time is not None
        assert "not yet" in str(desc.last_attempt_failure)
        assert await within(handle.result()) == Resp("flaky z after 3")
        desc = await handle.describe()
        assert desc.status == Status.COMPLETED
        assert desc.attempt == 3
        assert flaky.calls == 3


async def test_schedule_to_close_timeout(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)  # no worker: the start request waits for one
    nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
    handle = await nexus.start_operation(
        Greeter.echo, Req("late"), id=_name("timeout"), schedule_to_close_timeout=timedelta(seconds=2)
    )
    with pytest.raises(NexusOperationFailureError) as timed_out:
        await within(handle.result())
    assert isinstance(timed_out.value.cause, TimeoutError)
    desc = await handle.describe()
    assert desc.status == Status.TIMED_OUT
    assert desc.close_time is not None


async def test_cancel_of_an_async_operation_cancels_the_handler_workflow(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    name = _name("hang")
    async with _handler(client, task_queue):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
        handle = await nexus.start_operation(Greeter.hello, Req(name, "hang"), id=_name("cancel"))

        async def started() -> Any:
            desc = await handle.describe()
            return desc.state == PendingState.STARTED

        await until(started, what="the operation to start")
        await handle.cancel(reason="no longer needed")
        with pytest.raises(NexusOperationFailureError) as canceled:
            await within(handle.result())
        assert isinstance(canceled.value.cause, CancelledError)
        desc = await handle.describe()
        assert desc.status == Status.CANCELED
        assert desc.cancellation_info is not None
        assert desc.cancellation_info.reason == "no longer needed"
        assert (
            desc.cancellation_info.raw.state
            == NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SUCCEEDED
        )
        handler_wf = await client.get_workflow_handle(f"greeter-{name}").describe()
        assert handler_wf.raw_description.workflow_execution_info.status == (
            WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_CANCELED
        )
        # a closed operation takes no cancel
        with pytest.raises(RPCError) as closed:
            await handle.cancel()
        assert (closed.value.status, closed.value.message) == (
            RPCStatusCode.FAILED_PRECONDITION,
            "operation already completed",
        )


async def test_terminate_and_delete(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)  # no worker: stays scheduled
    nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
    op_id = _name("term")
    handle = await nexus.start_operation(Greeter.echo, Req("t"), id=op_id)
    assert (await handle.describe()).state == PendingState.SCHEDULED
    await handle.terminate(reason="enough")
    with pytest.raises(NexusOperationFailureError) as terminated:
        await within(handle.result())
    assert isinstance(terminated.value.cause, TerminatedError)
    assert terminated.value.cause.message == "enough"
    assert (await handle.describe()).status == Status.TERMINATED
    with pytest.raises(RPCError) as again:
        await handle.terminate()
    assert again.value.status == RPCStatusCode.FAILED_PRECONDITION
    assert again.value.message.startswith("already terminated with request ID ")
    await client.workflow_service.delete_nexus_operation_execution(
        DeleteNexusOperationExecutionRequest(namespace="default", operation_id=op_id)
    )
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert (gone.value.status, gone.value.message) == (RPCStatusCode.NOT_FOUND, f"operation not found for ID: {op_id}")
    count = await client.count_nexus_operations(f"OperationId = '{op_id}'")
    assert count.count == 0


async def test_id_reuse_and_conflict_policies_and_request_id_dedupe(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)  # no worker until the end: the first run stays running
    nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
    op_id = _name("ids")
    first = await nexus.start_operation(Greeter.echo, Req("1"), id=op_id)
    with pytest.raises(NexusOperationAlreadyStartedError) as running:
        await nexus.start_operation(Greeter.echo, Req("2"), id=op_id)
    assert running.value.run_id == first.run_id
    existing = await nexus.start_operation(
        Greeter.echo, Req("3"), id=op_id, id_conflict_policy=NexusOperationIDConflictPolicy.USE_EXISTING
    )
    assert existing.run_id == first.run_id
    # a retried start (same request id) is answered with the run it started, whatever the policies
    raw = StartNexusOperationExecutionRequest(
        namespace="default",
        request_id=(await first.describe()).request_id,
        operation_id=op_id,
        endpoint=endpoint,
        service="Greeter",
        operation="echo",
        id_conflict_policy=NexusOperationIdConflictPolicy.NEXUS_OPERATION_ID_CONFLICT_POLICY_FAIL,
    )
    retried = await client.workflow_service.start_nexus_operation_execution(raw)
    assert (retried.run_id, retried.started) == (first.run_id, False)
    await first.terminate()
    # closed as terminated: REJECT_DUPLICATE refuses, ALLOW_DUPLICATE_FAILED_ONLY starts a new run
    with pytest.raises(NexusOperationAlreadyStartedError):
        await nexus.start_operation(
            Greeter.echo, Req("4"), id=op_id, id_reuse_policy=NexusOperationIDReusePolicy.REJECT_DUPLICATE
        )
    async with _handler(client, task_queue):
        second = await nexus.start_operation(
            Greeter.echo, Req("5"), id=op_id, id_reuse_policy=NexusOperationIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
        )
        assert second.run_id != first.run_id
        assert await within(second.result()) == Resp("echo 5")
        # completed: ALLOW_DUPLICATE_FAILED_ONLY refuses, ALLOW_DUPLICATE starts another
        with pytest.raises(NexusOperationAlreadyStartedError):
            await nexus.start_operation(
                Greeter.echo,
                Req("6"),
                id=op_id,
                id_reuse_policy=NexusOperationIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
            )
        third = await nexus.start_operation(Greeter.echo, Req("7"), id=op_id)
        assert await within(third.result()) == Resp("echo 7")
    # the earlier runs stay readable by run id
    old = client.get_nexus_operation_handle(op_id, run_id=first.run_id)
    assert (await old.describe()).status == Status.TERMINATED


async def test_list_and_count_with_queries(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    async with _handler(client, task_queue):
        nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
        done = [await nexus.start_operation(Greeter.echo, Req(str(i)), id=_name("list")) for i in range(3)]
        for handle in done:
            await within(handle.result())
        failed = await nexus.start_operation(Greeter.echo, Req("f", "operation-error"), id=_name("list"))
        with pytest.raises(NexusOperationFailureError):
            await within(failed.result())
    listed = [op async for op in client.list_nexus_operations(f"Endpoint = '{endpoint}'")]
    assert {op.operation_id for op in listed} == {h.operation_id for h in [*done, failed]}
    assert all(op.service == "Greeter" and op.operation == "echo" and op.endpoint == endpoint for op in listed)
    completed = [
        op async for op in client.list_nexus_operations(f"Endpoint = '{endpoint}' AND ExecutionStatus = 'Completed'")
    ]
    assert {op.operation_id for op in completed} == {h.operation_id for h in done}
    assert all(op.status == Status.COMPLETED and op.close_time is not None for op in completed)
    by_id = [op async for op in client.list_nexus_operations(f"OperationId = '{failed.operation_id}'")]
    assert [(op.status, op.state_transition_count) for op in by_id] == [(Status.FAILED, 2)]
    assert (await client.count_nexus_operations(f"Endpoint = '{endpoint}' AND Service = 'Greeter'")).count == 4
    grouped = await client.count_nexus_operations(f"Endpoint = '{endpoint}' GROUP BY ExecutionStatus")
    assert grouped.count == 4
    assert sorted((g.group_values[0], g.count) for g in grouped.groups) == [("Completed", 3), ("Failed", 1)]
    with pytest.raises(RPCError) as bad:
        await client.count_nexus_operations("Foo = 1")
    assert (bad.value.status, bad.value.message) == (
        RPCStatusCode.INVALID_ARGUMENT,
        "invalid query: invalid search attribute: Foo",
    )


async def test_describe_long_poll_waits_for_a_change(client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    nexus = client.create_nexus_client(endpoint=endpoint, service=Greeter)
    handle = await nexus.start_operation(Greeter.echo, Req("lp"), id=_name("lp"))
    first = await client.workflow_service.describe_nexus_operation_execution(
        DescribeNexusOperationExecutionRequest(namespace="default", operation_id=handle.operation_id)
    )
    waiting = asyncio.ensure_future(
        client.workflow_service.describe_nexus_operation_execution(
            DescribeNexusOperationExecutionRequest(
                namespace="default", operation_id=handle.operation_id, long_poll_token=first.long_poll_token
            ),
            timeout=timedelta(seconds=30),
        )
    )
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await handle.terminate(reason="wake up")
    changed = await within(waiting)
    assert changed.info.status == Status.TERMINATED.value


async def test_namespace_claims_the_capability(client: Client) -> None:
    resp = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    assert resp.namespace_info.capabilities.standalone_nexus_operation


def _cli(server: ServerProcess, *args: str) -> str:
    out = subprocess.run(
        [reference_binary(), "nexus", "operation", *args, "--address", server.address, "--namespace", "default"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


async def test_cli_commands(server: ServerProcess, client: Client, task_queue: str) -> None:
    endpoint = await _endpoint(client, task_queue)
    common = ["--endpoint", endpoint, "--service", "Greeter"]
    async with _handler(client, task_queue):
        op_id = _name("cli")
        started = await asyncio.to_thread(
            _cli, server, "start", *common, "--operation", "echo", "--operation-id", op_id, "--input", '{"name": "cli"}'
        )
        assert op_id in started
        result = await asyncio.to_thread(_cli, server, "result", "--operation-id", op_id, "-o", "json")
        assert "echo cli" in result
        described = json.loads(await asyncio.to_thread(_cli, server, "describe", "--operation-id", op_id, "-o", "json"))
        assert described["operationId"] == op_id
        assert described["status"] == "NEXUS_OPERATION_EXECUTION_STATUS_COMPLETED"
        executed = await asyncio.to_thread(
            _cli,
            server,
            "execute",
            *common,
            "--operation",
            "echo",
            "--operation-id",
            _name("cli"),
            "-i",
            '{"name":"x"}',
        )
        assert "echo x" in executed
        hang_id = _name("cli")
        await asyncio.to_thread(
            _cli, server, "start", *common, "--operation", "hello", "--operation-id", hang_id,
            "--input", json.dumps({"name": hang_id, "mode": "hang"}),
        )  # fmt: skip

        async def started_op() -> Any:
            desc = await client.get_nexus_operation_handle(hang_id).describe()
            return desc.state == PendingState.STARTED

        await until(started_op, what="the operation to start")
        await asyncio.to_thread(_cli, server, "cancel", "--operation-id", hang_id, "--reason", "cli cancel")

        async def closed(op: str, status: Status) -> Any:
            return (await client.get_nexus_operation_handle(op).describe()).status == status

        await until(lambda: closed(hang_id, Status.CANCELED), what="the cancel")
    term_id = _name("cli")
    await asyncio.to_thread(_cli, server, "start", *common, "--operation", "echo", "--operation-id", term_id)
    await asyncio.to_thread(_cli, server, "terminate", "--operation-id", term_id, "--reason", "cli terminate")
    assert await closed(term_id, Status.TERMINATED)
    listed = await asyncio.to_thread(_cli, server, "list", "--query", f"Endpoint = '{endpoint}'", "-o", "json")
    ids = {op["operationId"] for op in json.loads(listed)}
    assert op_id in ids and hang_id in ids and term_id in ids
    counted = await asyncio.to_thread(_cli, server, "count", "--query", f"Endpoint = '{endpoint}'")
    assert counted.split() == ["Total:", "4"]
