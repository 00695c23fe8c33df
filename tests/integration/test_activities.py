"""Activities through the official SDK: describe of pending attempts, completion and heartbeats by id."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.workflows import (
    AsyncActivityWorkflow,
    PendingActivityWorkflow,
    complete_elsewhere,
    fail_twice_then_wait,
)


async def _pending(client: Client, workflow_id: str, predicate: object, timeout: float = 20.0) -> object:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        desc = await client.get_workflow_handle(workflow_id).describe()
        pending = desc.raw_description.pending_activities
        if pending and predicate(pending[0]):  # type: ignore[operator]
            return pending[0]
        assert asyncio.get_running_loop().time() < deadline, f"pending activities never matched: {pending}"
        await asyncio.sleep(0.1)


async def test_describe_shows_attempt_and_last_failure(client: Client, task_queue: str) -> None:
    wid = new_id()
    async with Worker(
        client, task_queue=task_queue, workflows=[PendingActivityWorkflow], activities=[fail_twice_then_wait]
    ):
        handle = await client.start_workflow(PendingActivityWorkflow.run, id=wid, task_queue=task_queue)
        info = await _pending(client, wid, lambda p: p.attempt == 3 and p.state == 2)  # STARTED
        assert info.activity_type.name == "fail_twice_then_wait"  # type: ignore[attr-defined]
        assert info.last_failure.message == "attempt 2 failed"  # type: ignore[attr-defined]
        assert info.HasField("last_started_time")  # type: ignore[attr-defined]
        await handle.terminate("enough")


async def test_async_completion_by_id_and_heartbeat_by_id(client: Client, task_queue: str) -> None:
    wid = new_id()
    async with Worker(
        client, task_queue=task_queue, workflows=[AsyncActivityWorkflow], activities=[complete_elsewhere]
    ):
        handle = await client.start_workflow(AsyncActivityWorkflow.run, id=wid, task_queue=task_queue)
        await _pending(client, wid, lambda p: p.state == 2)
        activity = client.get_async_activity_handle(workflow_id=wid, run_id=None, activity_id="async-1")
        await activity.heartbeat("progress-1")
        info = await _pending(client, wid, lambda p: p.HasField("heartbeat_details"))
        assert b"progress-1" in info.heartbeat_details.payloads[0].data  # type: ignore[attr-defined]
        await activity.complete("finished elsewhere")
        assert await within(handle.result()) == "finished elsewhere"
