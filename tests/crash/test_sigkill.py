"""SIGKILL the server in the middle of work, restart it on the same database, and check that
nothing was lost or done twice: every started workflow completes, histories stay well formed,
timers still fire (not early), and tasks waiting in the outbox reach workers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.crash.crash_workflows import ChainWorkflow, TimerWorkflow, add_one
from tests.crash.history_checks import problems
from tests.support.servers import ServerProcess

T = TypeVar("T")
DEADLINE_S = 120.0


async def retrying(call: Callable[[], Awaitable[T]], what: str, timeout: float = DEADLINE_S) -> T:
    """Retry a client call through a server outage, within a bound."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await call()
        except RPCError:
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} kept failing for {timeout}s") from None
            await asyncio.sleep(0.2)


async def start_chain(client: Client, workflow_id: str, task_queue: str, value: int) -> WorkflowHandle[Any, int]:
    async def start() -> WorkflowHandle[Any, int]:
        try:
            return await client.start_workflow(ChainWorkflow.run, value, id=workflow_id, task_queue=task_queue)
        except WorkflowAlreadyStartedError:
            # an earlier attempt reached the server before the crash: it counts as started
            return client.get_workflow_handle(workflow_id)

    return await retrying(start, f"start {workflow_id}")


async def assert_healthy_history(client: Client, workflow_id: str) -> None:
    history = await retrying(lambda: client.get_workflow_handle(workflow_id).fetch_history(), "history")
    found = problems(history)
    assert not found, f"{workflow_id}: {found}"


def restart(server: ServerProcess, down_for: float = 0.3) -> None:
    server.kill()
    time.sleep(down_for)
    server.start()


@pytest.mark.parametrize("kill_after", [0.3, 1.0])
async def test_sigkill_under_load_loses_nothing(crashable: ServerProcess, kill_after: float) -> None:
    client = await Client.connect(crashable.address)
    task_queue = f"crash-{uuid.uuid4().hex[:8]}"
    count = 150
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[ChainWorkflow],
        activities=[add_one],
        max_concurrent_workflow_tasks=50,
        max_concurrent_activities=50,
    ):
        starts = [asyncio.create_task(start_chain(client, f"{task_queue}-{i}", task_queue, i)) for i in range(count)]
        await asyncio.sleep(kill_after)
        running = await client.count_workflows(f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running'")
        assert running.count > 0, "the crash must hit workflows in flight"
        await asyncio.to_thread(restart, crashable)
        # a second crash while the first recovery is still under way
        await asyncio.sleep(1.0)
        await asyncio.to_thread(restart, crashable)
        handles = await asyncio.wait_for(asyncio.gather(*starts), DEADLINE_S)
        results = await asyncio.wait_for(
            asyncio.gather(*(retrying(h.result, f"result of {h.id}") for h in handles)), DEADLINE_S
        )
    assert results == [i + 2 for i in range(count)]
    for i in range(count):
        await assert_healthy_history(client, f"{task_queue}-{i}")


async def test_durable_timers_survive_a_crash(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    task_queue = f"timers-{uuid.uuid4().hex[:8]}"
    durations = [3.0, 4.0, 5.0]
    async with Worker(client, task_queue=task_queue, workflows=[TimerWorkflow]):
        started = time.monotonic()
        handles = [
            await client.start_workflow(TimerWorkflow.run, d, id=f"{task_queue}-{d}", task_queue=task_queue)
            for d in durations
        ]
        await asyncio.sleep(1.0)
        crashable.kill()
        await asyncio.sleep(1.5)  # down while nothing is due yet
        crashable.start()
        slept = await asyncio.wait_for(asyncio.gather(*(retrying(h.result, "timer") for h in handles)), DEADLINE_S)
        elapsed = time.monotonic() - started
    for wanted, measured in zip(durations, slept, strict=True):
        assert measured >= wanted - 0.05, "a timer fired early"
    assert elapsed >= max(durations) - 0.05
    for h in handles:
        await assert_healthy_history(client, h.id)


async def test_timer_due_while_the_server_was_down_fires_after_restart(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    task_queue = f"overdue-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[TimerWorkflow]):
        handle = await client.start_workflow(TimerWorkflow.run, 1.0, id=f"{task_queue}-1", task_queue=task_queue)
        await asyncio.sleep(0.3)
        crashable.kill()
        await asyncio.sleep(2.0)  # the timer comes due while the server is gone
        crashable.start()
        assert await asyncio.wait_for(retrying(handle.result, "overdue timer"), DEADLINE_S) >= 1.0
    await assert_healthy_history(client, handle.id)


async def test_backlog_in_the_outbox_reaches_a_worker_after_restart(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    task_queue = f"backlog-{uuid.uuid4().hex[:8]}"
    handles = [
        await client.start_workflow(ChainWorkflow.run, i, id=f"{task_queue}-{i}", task_queue=task_queue)
        for i in range(20)
    ]
    crashable.kill()
    crashable.start()
    client = await Client.connect(crashable.address)
    for h in handles:  # every acknowledged start survived
        desc = await client.get_workflow_handle(h.id).describe()
        assert desc.status is not None and desc.status.name == "RUNNING"
    async with Worker(client, task_queue=task_queue, workflows=[ChainWorkflow], activities=[add_one]):
        results = await asyncio.wait_for(
            asyncio.gather(*(client.get_workflow_handle(h.id).result() for h in handles)), DEADLINE_S
        )
    assert results == [i + 2 for i in range(20)]
