"""Standalone activities through the official SDK and CLI: started by a client with an id, run by a worker."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio import activity
from temporalio.api.enums.v1 import ActivityExecutionStatus as Status
from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import ActivityFailureError, ActivityHandle, Client
from temporalio.common import ActivityIDConflictPolicy, ActivityIDReusePolicy, RetryPolicy
from temporalio.exceptions import (
    ActivityAlreadyStartedError,
    ApplicationError,
    CancelledError,
    TerminatedError,
    TimeoutError,
    TimeoutType,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.support.servers import ServerProcess

pytestmark = pytest.mark.asyncio(loop_scope="session")

E = TypeVar("E", bound=BaseException)

TEMPORAL = "/work/main/.venv/bin/temporal"
DEADLINE_S = 30.0

attempts: dict[str, int] = {}
release: dict[str, asyncio.Event] = {}


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@activity.defn
async def flaky(key: str) -> str:
    """Fails twice, then succeeds."""
    attempts[key] = attempts.get(key, 0) + 1
    if attempts[key] < 3:
        raise ApplicationError(f"attempt {attempts[key]} failed")
    return f"done after {attempts[key]}"


@activity.defn
async def always_fails(key: str) -> None:
    raise ApplicationError("bad input", non_retryable=True, type="BadInput")


@activity.defn
async def sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "woke"


@activity.defn
async def heartbeat_then_wait(key: str) -> str:
    """Heartbeats its progress until released, and stops when cancelled."""
    activity.heartbeat(f"progress-{key}")
    while not release.setdefault(key, asyncio.Event()).is_set():
        await asyncio.sleep(0.1)
        activity.heartbeat(f"progress-{key}")
    return "released"


@activity.defn
async def heartbeat_once(key: str) -> str:
    """Heartbeats once, then never again: its heartbeat timeout fires."""
    activity.heartbeat(f"last-{key}")
    await asyncio.sleep(60)
    return "never"


ACTIVITIES: list[Callable[..., Any]] = [greet, flaky, always_fails, sleepy, heartbeat_then_wait, heartbeat_once]


@pytest_asyncio.fixture(loop_scope="session")
async def worker(client: Client) -> AsyncIterator[str]:
    task_queue = f"sa-{uuid.uuid4().hex}"
    async with Worker(client, task_queue=task_queue, activities=ACTIVITIES):
        yield task_queue


def new_id() -> str:
    return f"act-{uuid.uuid4().hex}"


async def eventually(check: Callable[[], Awaitable[Any]], deadline_s: float = DEADLINE_S) -> Any:
    """Poll `check` until it returns something truthy (bounded)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def failure_cause(handle: ActivityHandle[Any], cause: type[E]) -> E:
    """The cause of the activity's failure, which must be a `cause`."""
    with pytest.raises(ActivityFailureError) as err:
        await handle.result()
    assert isinstance(err.value.cause, cause)
    return err.value.cause


async def describe(client: Client, activity_id: str, **kw: Any) -> ws.DescribeActivityExecutionResponse:
    return await client.workflow_service.describe_activity_execution(
        ws.DescribeActivityExecutionRequest(namespace=client.namespace, activity_id=activity_id, **kw)
    )


async def test_start_and_result(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        greet, "world", id=aid, task_queue=worker, start_to_close_timeout=timedelta(seconds=10)
    )
    assert await handle.result() == "hello world"
    d = await describe(client, aid, include_input=True, include_outcome=True)
    assert d.info.status == Status.ACTIVITY_EXECUTION_STATUS_COMPLETED
    assert d.info.activity_type.name == "greet"
    assert d.info.attempt == 1
    assert d.info.HasField("last_started_time") and d.info.HasField("close_time")
    assert json.loads(d.input.payloads[0].data) == "world"
    assert json.loads(d.outcome.result.payloads[0].data) == "hello world"
    desc = await handle.describe()
    assert desc.activity_run_id == handle.run_id
    # never a workflow
    listed = [w async for w in client.list_workflows(f"WorkflowId = '{aid}'")]
    assert listed == []
    with pytest.raises(RPCError) as err:
        await client.get_workflow_handle(aid).describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND


async def test_retries_then_success(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        flaky,
        aid,
        id=aid,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=10),
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0),
    )
    assert await handle.result() == "done after 3"
    d = await describe(client, aid, include_last_failure=True)
    assert d.info.attempt == 3
    assert d.info.last_failure.message == "attempt 2 failed"
    assert not (await describe(client, aid)).info.HasField("last_failure")  # only when asked for


async def test_non_retryable_failure(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        always_fails, aid, id=aid, task_queue=worker, start_to_close_timeout=timedelta(seconds=10)
    )
    cause = await failure_cause(handle, ApplicationError)
    assert cause.type == "BadInput"
    d = await describe(client, aid)
    assert d.info.status == Status.ACTIVITY_EXECUTION_STATUS_FAILED


async def test_schedule_to_start_timeout(client: Client) -> None:
    aid = new_id()
    handle = await client.start_activity(
        "nobody-runs-this",
        id=aid,
        task_queue=f"empty-{uuid.uuid4().hex}",
        start_to_close_timeout=timedelta(seconds=10),
        schedule_to_start_timeout=timedelta(seconds=1),
    )
    cause = await failure_cause(handle, TimeoutError)
    assert cause.type == TimeoutType.SCHEDULE_TO_START
    assert (await describe(client, aid)).info.status == Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT


async def test_schedule_to_close_timeout(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        sleepy,
        30.0,
        id=aid,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=30),
        schedule_to_close_timeout=timedelta(seconds=2),
    )
    cause = await failure_cause(handle, TimeoutError)
    assert cause.type == TimeoutType.SCHEDULE_TO_CLOSE


async def test_start_to_close_timeout_retries_then_fails(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        sleepy,
        30.0,
        id=aid,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=1),
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2),
    )
    cause = await failure_cause(handle, TimeoutError)
    assert cause.type == TimeoutType.START_TO_CLOSE
    d = await describe(client, aid)
    assert d.info.attempt == 2
    assert d.info.status == Status.ACTIVITY_EXECUTION_STATUS_TIMED_OUT


async def test_heartbeat_details_and_heartbeat_timeout(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        heartbeat_once,
        aid,
        id=aid,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=30),
        heartbeat_timeout=timedelta(seconds=1),
        retry_policy=RetryPolicy(maximum_attempts=1),
    )
    cause = await failure_cause(handle, TimeoutError)
    assert cause.type == TimeoutType.HEARTBEAT
    assert list(cause.last_heartbeat_details) == [f"last-{aid}"]
    d = await describe(client, aid, include_heartbeat_details=True)
    assert json.loads(d.info.heartbeat_details.payloads[0].data) == f"last-{aid}"
    assert d.info.HasField("last_heartbeat_time")


async def test_cancel_seen_by_worker(client: Client, worker: str) -> None:
    aid = new_id()
    handle = await client.start_activity(
        heartbeat_then_wait,
        aid,
        id=aid,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=30),
        heartbeat_timeout=timedelta(seconds=5),
    )

    async def started() -> bool:
        d = await describe(client, aid, include_heartbeat_details=True)
        return d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and d.info.HasField(
            "heartbeat_details"
        )

    await eventually(started)
    await handle.cancel(reason="enough")
    await failure_cause(handle, CancelledError)
    d = await describe(client, aid)
    assert d.info.status == Status.ACTIVITY_EXECUTION_STATUS_CANCELED
    assert d.info.canceled_reason == "enough"


async def test_cancel_before_start_and_terminate(client: Client) -> None:
    queue = f"empty-{uuid.uuid4().hex}"
    aid = new_id()
    handle = await client.start_activity("x", id=aid, task_queue=queue, start_to_close_timeout=timedelta(seconds=10))
    await handle.cancel(reason="not needed")
    await failure_cause(handle, CancelledError)
    with pytest.raises(RPCError) as rpc:
        await handle.terminate(reason="too late")
    assert rpc.value.status == RPCStatusCode.FAILED_PRECONDITION
    aid2 = new_id()
    handle2 = await client.start_activity("x", id=aid2, task_queue=queue, start_to_close_timeout=timedelta(seconds=10))
    await handle2.terminate(reason="stop")
    await failure_cause(handle2, TerminatedError)
    assert (await describe(client, aid2)).info.status == Status.ACTIVITY_EXECUTION_STATUS_TERMINATED


async def test_delete(client: Client) -> None:
    aid = new_id()
    await client.start_activity("x", id=aid, task_queue="nowhere", start_to_close_timeout=timedelta(seconds=10))
    await client.workflow_service.delete_activity_execution(
        ws.DeleteActivityExecutionRequest(namespace=client.namespace, activity_id=aid)
    )
    with pytest.raises(RPCError) as err:
        await describe(client, aid)
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert err.value.message == f"activity not found for ID: {aid}"

    async def gone() -> bool:
        return (await client.count_activities(f"ActivityId = '{aid}'")).count == 0

    await eventually(gone)


async def test_id_policies_and_request_id(client: Client) -> None:
    aid = new_id()
    start = ws.StartActivityExecutionRequest(
        namespace=client.namespace, activity_id=aid, request_id="r1", identity="test"
    )
    start.activity_type.name = "x"
    start.task_queue.name = "nowhere"
    start.start_to_close_timeout.seconds = 10
    first = await client.workflow_service.start_activity_execution(start)
    assert first.started
    again = await client.workflow_service.start_activity_execution(start)
    assert again.run_id == first.run_id and not again.started
    start.request_id = "r2"
    with pytest.raises(RPCError) as err:
        await client.workflow_service.start_activity_execution(start)
    assert err.value.status == RPCStatusCode.ALREADY_EXISTS
    handle = await client.start_activity(
        "x",
        id=aid,
        task_queue="nowhere",
        start_to_close_timeout=timedelta(seconds=10),
        id_conflict_policy=ActivityIDConflictPolicy.USE_EXISTING,
    )
    assert handle.run_id == first.run_id
    await handle.terminate()
    with pytest.raises(ActivityAlreadyStartedError):
        await client.start_activity(
            "x",
            id=aid,
            task_queue="nowhere",
            start_to_close_timeout=timedelta(seconds=10),
            id_reuse_policy=ActivityIDReusePolicy.REJECT_DUPLICATE,
        )
    second = await client.start_activity(
        "x",
        id=aid,
        task_queue="nowhere",
        start_to_close_timeout=timedelta(seconds=10),
        id_reuse_policy=ActivityIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    )
    assert second.run_id != first.run_id
    await second.terminate()


async def test_list_and_count(client: Client, worker: str) -> None:
    kind = uuid.uuid4().hex[:8]
    queue = f"list-{kind}"
    ids = [f"list-{kind}-{i}" for i in range(3)]
    for aid in ids:
        await client.start_activity("listed", id=aid, task_queue=queue, start_to_close_timeout=timedelta(seconds=30))
    await client.get_activity_handle(ids[0]).terminate(reason="one fewer")

    async def listed() -> list[Any]:
        found = [a async for a in client.list_activities(f"TaskQueue = '{queue}'")]
        return found if len(found) == 3 else []

    found = await listed() or await eventually(listed)
    assert sorted(a.activity_id for a in found) == sorted(ids)
    running = [a async for a in client.list_activities(f"TaskQueue = '{queue}' AND ExecutionStatus = 'Running'")]
    assert sorted(a.activity_id for a in running) == sorted(ids[1:])
    assert (await client.count_activities(f"TaskQueue = '{queue}'")).count == 3
    assert (await client.count_activities(f"ActivityId = '{ids[1]}'")).count == 1
    assert (await client.count_activities(f"ActivityType = 'listed' AND TaskQueue = '{queue}'")).count == 3
    grouped = await client.count_activities(f"TaskQueue = '{queue}' GROUP BY ExecutionStatus")
    assert sorted((g.group_values[0], g.count) for g in grouped.groups) == [("Running", 2), ("Terminated", 1)]
    with pytest.raises(RPCError) as err:
        await client.count_activities("Nope = 1")
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT
    # workflows see none of them
    workflows = await client.count_workflows(f"TaskQueue = '{queue}'")
    assert workflows.count == 0
    for aid in ids[1:]:
        await client.get_activity_handle(aid).terminate()


def cli(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TEMPORAL, *args, "--address", server.address, "--namespace", "default"],
        capture_output=True,
        text=True,
        timeout=60,
    )


async def test_cli(server: ServerProcess, client: Client, worker: str) -> None:
    aid = new_id()
    started = await asyncio.to_thread(
        cli,
        server,
        "activity",
        "start",
        "--activity-id",
        aid,
        "--type",
        "greet",
        "--task-queue",
        worker,
        "--start-to-close-timeout",
        "10s",
        "--input",
        '"cli"',
    )
    assert started.returncode == 0, started.stderr
    result = await asyncio.to_thread(cli, server, "activity", "result", "--activity-id", aid, "-o", "json")
    assert result.returncode == 0, result.stderr
    assert "hello cli" in result.stdout
    described = await asyncio.to_thread(cli, server, "activity", "describe", "--activity-id", aid, "-o", "json")
    assert described.returncode == 0, described.stderr
    assert "ACTIVITY_EXECUTION_STATUS_COMPLETED" in described.stdout or "Completed" in described.stdout
    listed = await asyncio.to_thread(cli, server, "activity", "list", "--query", f"ActivityId = '{aid}'", "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert aid in listed.stdout
    counted = await asyncio.to_thread(cli, server, "activity", "count", "--query", f"ActivityId = '{aid}'")
    assert counted.returncode == 0, counted.stderr
    assert "1" in counted.stdout
    executed = await asyncio.to_thread(
        cli,
        server,
        "activity",
        "execute",
        "--activity-id",
        new_id(),
        "--type",
        "greet",
        "--task-queue",
        worker,
        "--start-to-close-timeout",
        "10s",
        "--input",
        '"again"',
    )
    assert executed.returncode == 0, executed.stderr
    assert "hello again" in executed.stdout
    # complete by id, from the CLI, an activity no worker polls for
    pending = new_id()
    await client.start_activity(
        "manual", id=pending, task_queue="nowhere", start_to_close_timeout=timedelta(seconds=30)
    )
    handle = client.get_activity_handle(pending)
    d = await describe(client, pending)
    assert d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    cancel = await asyncio.to_thread(cli, server, "activity", "cancel", "--activity-id", pending, "--reason", "cli")
    assert cancel.returncode == 0, cancel.stderr
    with pytest.raises(ActivityFailureError):
        await handle.result()


async def test_cli_complete_and_fail(server: ServerProcess, client: Client, worker: str) -> None:
    """`temporal activity complete|fail` without a workflow id reach a standalone activity by its id."""
    pending = new_id()
    await client.start_activity(
        "manual", id=pending, task_queue="nowhere", start_to_close_timeout=timedelta(seconds=30)
    )
    done = await asyncio.to_thread(
        cli, server, "activity", "complete", "--activity-id", pending, "--result", '"by hand"'
    )
    assert done.returncode == 0, done.stderr
    assert await client.get_activity_handle(pending).result() == "by hand"
    # failing needs a started attempt (the reference says "activity not found" before): a worker holds one open
    running = new_id()
    handle = await client.start_activity(
        heartbeat_then_wait,
        running,
        id=running,
        task_queue=worker,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=1),
    )

    async def started() -> bool:
        d = await describe(client, running)
        return d.info.run_state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED

    await eventually(started)
    failed = await asyncio.to_thread(cli, server, "activity", "fail", "--activity-id", running, "--reason", "by hand")
    assert failed.returncode == 0, failed.stderr
    cause = await failure_cause(handle, ApplicationError)
    assert cause.message == "by hand"
    release.setdefault(running, asyncio.Event()).set()
    unstarted = new_id()
    await client.start_activity(
        "manual", id=unstarted, task_queue="nowhere", start_to_close_timeout=timedelta(seconds=30)
    )
    refused = await asyncio.to_thread(cli, server, "activity", "fail", "--activity-id", unstarted, "--reason", "no")
    assert refused.returncode != 0
    assert f"activity not found for ID: {unstarted}" in refused.stderr
    await client.get_activity_handle(unstarted).terminate()


async def test_closed_activities_go_after_the_retention_period(server: ServerProcess) -> None:
    first = await Client.connect(server.address)
    name = f"short-{uuid.uuid4().hex[:8]}"
    await first.workflow_service.register_namespace(
        ws.RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=Duration(seconds=2))
    )
    client = await Client.connect(server.address, namespace=name)
    closed, running = new_id(), new_id()
    for aid in (closed, running):
        await client.start_activity("kept", id=aid, task_queue="nowhere", start_to_close_timeout=timedelta(minutes=5))
    await client.get_activity_handle(closed).terminate(reason="closed")

    async def gone() -> bool:
        try:
            await describe(client, closed)
        except RPCError as err:
            assert err.status == RPCStatusCode.NOT_FOUND
            return (await client.count_activities(f"ActivityId = '{closed}'")).count == 0
        return False

    await eventually(gone)
    assert (await describe(client, running)).info.status == Status.ACTIVITY_EXECUTION_STATUS_RUNNING  # kept
    await client.get_activity_handle(running).terminate()


async def test_describe_long_poll_waits_for_a_change(client: Client) -> None:
    aid = new_id()
    handle = await client.start_activity("x", id=aid, task_queue="nowhere", start_to_close_timeout=timedelta(minutes=5))
    first = await describe(client, aid)
    waiting = asyncio.create_task(describe(client, aid, run_id=first.run_id, long_poll_token=first.long_poll_token))
    await asyncio.sleep(0.3)
    assert not waiting.done()  # nothing changed yet: the poll waits
    await handle.terminate(reason="changed")
    changed = await asyncio.wait_for(waiting, DEADLINE_S)
    assert changed.info.status == Status.ACTIVITY_EXECUTION_STATUS_TERMINATED
    assert changed.long_poll_token != first.long_poll_token
