"""SIGKILL the server while one standalone activity waits for a worker and another backs off before its retry;
after the restart both complete, each once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio import activity
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

from tests.crash.test_sigkill import retrying
from tests.support.servers import ServerProcess

DEADLINE_S = 60.0
runs: list[tuple[str, int]] = []


@activity.defn
async def fails_first(tag: str) -> str:
    """The "retrying" activity's first attempt fails."""
    info = activity.info()
    runs.append((tag, info.attempt))
    if tag == "retrying" and info.attempt == 1:
        raise ApplicationError("first attempt fails")
    return f"{tag} on attempt {info.attempt}"


async def test_pending_and_retrying_activities_survive_sigkill(crashable: ServerProcess) -> None:
    client = await Client.connect(crashable.address)
    queue = f"sa-crash-{uuid.uuid4().hex[:8]}"
    retrying_id, pending_id = f"retrying-{queue}", f"pending-{queue}"
    policy = RetryPolicy(initial_interval=timedelta(seconds=3), backoff_coefficient=1.0)
    async with Worker(client, task_queue=queue, activities=[fails_first]):
        await client.start_activity(
            fails_first,
            "retrying",
            id=retrying_id,
            task_queue=queue,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=policy,
        )

        async def backing_off() -> bool:
            d = await client.workflow_service.describe_activity_execution(
                ws.DescribeActivityExecutionRequest(namespace="default", activity_id=retrying_id)
            )
            return d.info.attempt == 2

        deadline = asyncio.get_running_loop().time() + DEADLINE_S
        while not await backing_off():
            assert asyncio.get_running_loop().time() < deadline, "the first attempt never failed"
            await asyncio.sleep(0.1)
    # the worker is gone: the retry waits out its backoff, and the new activity waits for a worker
    await client.start_activity(
        fails_first,
        "pending",
        id=pending_id,
        task_queue=queue,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=RetryPolicy(maximum_attempts=1),
    )
    assert ("retrying", 2) not in runs
    crashable.kill()
    crashable.start()
    client = await Client.connect(crashable.address)
    async with Worker(client, task_queue=queue, activities=[fails_first]):
        retried = await retrying(lambda: client.get_activity_handle(retrying_id).result(), "retrying result")
        assert retried == "retrying on attempt 2"
        pending = await retrying(lambda: client.get_activity_handle(pending_id).result(), "pending result")
        assert pending == "pending on attempt 1"
    assert runs.count(("retrying", 2)) == 1
    assert runs.count(("pending", 1)) == 1
