"""Matching with several nodes (nodes/matching.py): each node serves its own part of every task queue to the workers
connected to it. A task stays on the node that made it (the owner of its workflow's shard) when a worker polls its
queue there, so a workflow's tasks go to the workers of its shard's node; a task whose queue has no worker on its
node goes to a node where one polls, also one made before any worker came, or left behind by a worker that stopped.
Describing a queue through any node lists the workers of every node."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, DescribeTaskQueueRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tempyral.history.executions import shard_id_for
from tests.crash.test_sigkill import retrying
from tests.crash.workloads import EchoChild, LoadWorkflow, increment
from tests.nodes.test_several_nodes import results, shard_owners, wait_for
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
SHARDS = 8  # tests/support/nodes.py tempyral_node's default
STARTED = {EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED, EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED}


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


@asynccontextmanager
async def two_nodes(pg: PostgresServer, names: list[str]) -> AsyncIterator[tuple[Client, Client, dict[int, str]]]:
    """Two nodes on a fresh database, once the shards are spread over both: a client of each, and the shards'
    owners."""
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, names) as nodes:
        await wait_for(lambda: set(shard_owners(pg, database).values()) == set(names), "shards spread", 30)
        owners = shard_owners(pg, database)
        clients = [await Client.connect(node.address) for node in nodes]
        yield clients[0], clients[1], owners
        assert owners == shard_owners(pg, database), "shards moved during the test"


def worker(client: Client, queue: str, identity: str) -> Worker:
    return Worker(
        client, task_queue=queue, workflows=[LoadWorkflow, EchoChild], activities=[increment], identity=identity
    )


async def pollers(client: Client, queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=queue), task_queue_type=kind)
    )
    return {p.identity for p in described.pollers}


async def until_polling(client: Client, queue: str, identities: set[str]) -> None:
    """Until every named worker polls both the workflow and the activity queue (on whichever node it is)."""
    deadline = time.monotonic() + 30
    while True:
        seen = [
            await pollers(client, queue, kind)
            for kind in (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        ]
        if all(identities <= s for s in seen):
            return
        assert time.monotonic() < deadline, f"workers polling: {seen}, expected {identities}"
        await asyncio.sleep(0.1)


async def takers(client: Client, workflow_id: str) -> set[str]:
    """The identities of the workers that started the workflow's tasks."""
    history = await retrying(client.get_workflow_handle(workflow_id).fetch_history, f"history of {workflow_id}")
    found = set()
    for event in history.events:
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            found.add(event.workflow_task_started_event_attributes.identity)
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            found.add(event.activity_task_started_event_attributes.identity)
    return found


async def start_load(client: Client, queue: str, values: list[int]) -> list[WorkflowHandle[Any, int]]:
    return [await client.start_workflow(LoadWorkflow.run, v, id=f"wf-{v}-{queue}", task_queue=queue) for v in values]


async def test_a_workflows_tasks_go_to_the_workers_of_its_shards_node(pg: PostgresServer) -> None:
    async with two_nodes(pg, ["m1", "m2"]) as (c1, c2, owners):
        namespace_id = (
            await c1.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        ).namespace_info.id
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        identity_of = {"m1": "worker-on-m1", "m2": "worker-on-m2"}
        async with worker(c1, queue, identity_of["m1"]), worker(c2, queue, identity_of["m2"]):
            # each node lists the workers of both: describe gathers every node's part of the queue
            await until_polling(c1, queue, set(identity_of.values()))
            await until_polling(c2, queue, set(identity_of.values()))
            values = list(range(24))
            handles = await start_load(c1, queue, values)
            await results(handles, values)
            runs = [w.id async for w in c1.list_workflows(f"TaskQueue = '{queue}'")]
        assert len(runs) > len(values)  # children too
        nodes_used = set()
        for workflow_id in runs:
            node = owners[shard_id_for(namespace_id, workflow_id, SHARDS)]
            nodes_used.add(node)
            assert await takers(c1, workflow_id) == {identity_of[node]}, f"{workflow_id} (shard on {node})"
        assert nodes_used == {"m1", "m2"}


async def test_tasks_made_before_any_worker_reach_one_that_polls_another_node(pg: PostgresServer) -> None:
    async with two_nodes(pg, ["e1", "e2"]) as (c1, c2, _):
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        values = list(range(16))
        handles = await start_load(c1, queue, values)  # no worker anywhere: each task waits on its shard's node
        async with worker(c2, queue, "late-worker-on-e2"):
            await results(handles, values)
        for handle in handles:
            assert await takers(c1, handle.id) == {"late-worker-on-e2"}


async def test_tasks_left_by_a_worker_that_stopped_go_to_a_worker_on_another_node(pg: PostgresServer) -> None:
    """A node whose last worker of a queue stopped (the SDK says so with ShutdownWorker) gives the queue's tasks to
    a node where a worker polls, at once (a worker that vanishes without a word: after the grace time, as
    tests/unit/test_node_matching.py shows)."""
    async with two_nodes(pg, ["s1", "s2"]) as (c1, c2, _):
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with worker(c2, queue, "stays-on-s2"):
            async with worker(c1, queue, "leaves-s1"):
                await until_polling(c1, queue, {"stays-on-s2", "leaves-s1"})
            # the worker on s1 stopped: tasks made on s1 go to s2
            values = list(range(12))
            handles = await start_load(c1, queue, values)
            await results(handles, values)
        for handle in handles:
            assert await takers(c1, handle.id) == {"stays-on-s2"}
