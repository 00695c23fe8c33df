"""Standalone activities on two nodes of one cluster: started, described, cancelled and completed through a node that
may not own their shard, run by a worker connected to the other node."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta

import pytest
from temporalio import activity
from temporalio.client import ActivityFailureError, Client
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from tests.crash.test_sigkill import retrying
from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
DEADLINE_S = 120.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


@activity.defn
async def double(value: int) -> int:
    activity.heartbeat(value)  # heartbeats go by task token to the shard's node
    return value * 2


@activity.defn
async def wait_for_cancel() -> None:
    while True:
        activity.heartbeat()
        await asyncio.sleep(0.2)


async def test_activities_across_nodes(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["a1", "a2"]) as (a1, a2):
        await wait_for(lambda: set(shard_owners(pg, database).values()) == {"a1", "a2"}, "shards spread", 30)
        starter = await Client.connect(a1.address)
        other = await Client.connect(a2.address)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with Worker(other, task_queue=queue, activities=[double, wait_for_cancel]):
            # enough activities that both nodes own some of them, whichever way the shards fall
            handles = [
                await starter.start_activity(
                    double, i, id=f"double-{i}-{queue}", task_queue=queue, start_to_close_timeout=timedelta(seconds=30)
                )
                for i in range(12)
            ]
            results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), DEADLINE_S)
            assert results == [i * 2 for i in range(12)]
            cancelled = [
                await starter.start_activity(
                    wait_for_cancel,
                    id=f"cancel-{i}-{queue}",
                    task_queue=queue,
                    start_to_close_timeout=timedelta(seconds=60),
                    heartbeat_timeout=timedelta(seconds=5),
                )
                for i in range(4)
            ]
            for handle in cancelled:

                async def started(activity_id: str = handle.id) -> bool:
                    described = await other.get_activity_handle(activity_id).describe()
                    return described.last_started_time is not None

                await wait_for_async(started)
                await other.get_activity_handle(handle.id).cancel(reason="done")
                with pytest.raises(ActivityFailureError) as err:
                    await retrying(starter.get_activity_handle(handle.id).result, "cancelled result")
                assert isinstance(err.value.cause, CancelledError)
        # completed by id through either node, with no worker at all
        manual = await other.start_activity(
            "manual", id=f"manual-{queue}", task_queue="nobody", start_to_close_timeout=timedelta(seconds=30)
        )
        await starter.get_async_activity_handle(activity_id=manual.id).complete("by hand")
        assert await manual.result() == "by hand"
        count = await other.count_activities(f"TaskQueue = '{queue}'")
        assert count.count == 16


async def wait_for_async(check: Callable[[], Awaitable[bool]], timeout: float = DEADLINE_S) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not await check():
        assert loop.time() < end, "not in time"
        await asyncio.sleep(0.1)
