"""Schedules on two nodes of one PostgreSQL: each runs on the node owning its scheduler run's shard, and any node
creates, describes, triggers, lists and deletes any of them."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator

import pytest
from temporalio.client import Client, Schedule, ScheduleActionStartWorkflow, ScheduleSpec

from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


async def test_schedules_through_either_node(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["s1", "s2"]) as (s1, s2):
        await wait_for(lambda: set(shard_owners(pg, database).values()) == {"s1", "s2"}, "shards spread", 30)
        one, two = await Client.connect(s1.address), await Client.connect(s2.address)
        tag = uuid.uuid4().hex[:8]
        ids = [f"nodes-{tag}-{i}" for i in range(8)]  # enough that both nodes own some, whichever way shards fall
        for sid in ids:
            action = ScheduleActionStartWorkflow("Unpolled", "x", id=f"wf-{sid}", task_queue="nobody-polls")
            await one.create_schedule(sid, Schedule(action=action, spec=ScheduleSpec()))
        for sid in ids:
            await two.get_schedule_handle(sid).trigger()
        deadline = time.monotonic() + DEADLINE_S
        for sid in ids:
            while not (await one.get_schedule_handle(sid).describe()).info.recent_actions:
                assert time.monotonic() < deadline, f"{sid}: the trigger did not start a workflow"
                await asyncio.sleep(0.2)
        listed = {s.id async for s in await two.list_schedules(query=f"ScheduleId STARTS_WITH 'nodes-{tag}-'")}
        assert listed == set(ids)
        for sid in ids:
            await two.get_schedule_handle(sid).delete()
        assert not [s async for s in await one.list_schedules(query=f"ScheduleId STARTS_WITH 'nodes-{tag}-'")]
