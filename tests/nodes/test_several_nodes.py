"""Several tempyral nodes against one PostgreSQL form one cluster: any node serves any request, workers on one
node get tasks made on another, and SIGKILL of a node loses nothing: its shards move to the others within a bound,
every workflow completes exactly once, histories stay well formed, and a restarted node gets shards back."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.crash.history_checks import problems
from tests.crash.test_sigkill import retrying
from tests.crash.workloads import CounterWorkflow, EchoChild, LoadWorkflow, increment
from tests.support.nodes import MEMBERSHIP_TIMEOUT_S, postgres, running_nodes, tempyral_node
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
DEADLINE_S = 180.0


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


def shard_owners(pg: PostgresServer, database: str) -> dict[int, str]:
    out = pg.psql("SELECT shard_id, owner FROM shards ORDER BY shard_id", database)
    owners: dict[int, str] = {}
    for line in out.strip().splitlines():
        shard, owner = line.split("|")
        owners[int(shard)] = owner
    return owners


async def wait_for(check: Any, what: str, timeout: float) -> float:
    """Poll `check()` until true; the seconds it took."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def results(handles: list[WorkflowHandle[Any, int]], values: list[int]) -> None:
    """Every workflow's result, within the deadline; the ones that did not finish are named, with their last
    events."""
    pending = {h.id for h in handles}

    async def one(handle: WorkflowHandle[Any, int], value: int) -> None:
        result = await retrying(handle.result, f"result of {handle.id}", DEADLINE_S)
        assert result == value + 2, handle.id
        pending.discard(handle.id)

    try:
        await asyncio.wait_for(asyncio.gather(*(one(h, v) for h, v in zip(handles, values, strict=True))), DEADLINE_S)
    except TimeoutError:
        stuck = sorted(pending)[:5]
        tails = []
        for workflow_id in stuck:
            history = await next(h for h in handles if h.id == workflow_id).fetch_history()
            tails.append(f"{workflow_id}: {[e.event_type for e in history.events][-4:]}")
        raise AssertionError(f"{len(pending)} workflows did not finish: {tails}") from None


async def check_histories(client: Client, handles: list[WorkflowHandle[Any, int]]) -> None:
    for handle in handles:
        history = await retrying(handle.fetch_history, f"history of {handle.id}")
        assert problems(history) == [], handle.id
        runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
        assert len(runs) == 1, f"{handle.id} ran {len(runs)} times"


async def test_any_node_serves_any_request_and_workers_get_tasks_made_elsewhere(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["n1", "n2"]) as (n1, n2):
        await wait_for(lambda: set(shard_owners(pg, database).values()) == {"n1", "n2"}, "shards spread", 30)
        starter = await Client.connect(n1.address)
        worker_client = await Client.connect(n2.address)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with Worker(worker_client, task_queue=queue, workflows=[LoadWorkflow, EchoChild], activities=[increment]):
            values = list(range(24))
            handles = [
                await starter.start_workflow(LoadWorkflow.run, v, id=f"wf-{v}-{queue}", task_queue=queue)
                for v in values
            ]
            await results(handles, values)
        # every node answers for every workflow, wherever its shard is
        for client in (starter, worker_client):
            for handle in handles[:6]:
                described = await client.get_workflow_handle(handle.id).describe()
                assert described.status is not None and described.status.name == "COMPLETED"
        await check_histories(starter, handles)


async def test_sigkill_of_a_node_under_load_loses_nothing(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["n1", "n2", "n3"]) as (n1, n2, n3):
        await wait_for(lambda: len(set(shard_owners(pg, database).values())) == 3, "shards spread over 3 nodes", 30)
        clients = [await Client.connect(n.address) for n in (n1, n2, n3)]
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        workers = [
            Worker(c, task_queue=queue, workflows=[LoadWorkflow, EchoChild], activities=[increment])
            for c in clients[:2]
        ]
        async with workers[0], workers[1]:
            values = list(range(60))
            handles: list[WorkflowHandle[Any, int]] = []
            for v in values[:30]:
                handles.append(
                    await clients[2].start_workflow(LoadWorkflow.run, v, id=f"load-{v}-{queue}", task_queue=queue)
                )
            killed_shards = [s for s, owner in shard_owners(pg, database).items() if owner == "n2"]
            assert killed_shards
            n2.kill()
            killed_at = time.monotonic()
            # the load goes on through the nodes that are left
            for v in values[30:]:

                async def start(v: int = v) -> WorkflowHandle[Any, int]:
                    try:
                        return await clients[2].start_workflow(
                            LoadWorkflow.run, v, id=f"load-{v}-{queue}", task_queue=queue
                        )
                    except WorkflowAlreadyStartedError:  # an earlier attempt got there
                        return clients[2].get_workflow_handle(f"load-{v}-{queue}")

                handles.append(await retrying(start, f"start load-{v}"))
            moved = await wait_for(
                lambda: all(shard_owners(pg, database)[s] in ("n1", "n3") for s in killed_shards),
                "the killed node's shards owned again",
                MEMBERSHIP_TIMEOUT_S * 4 + 10,
            )
            print(f"shards of the killed node owned again {time.monotonic() - killed_at:.1f} s after the kill")
            assert moved <= MEMBERSHIP_TIMEOUT_S * 4 + 10
            await results(handles, values)
            # a restarted node gets shards back
            n2.start()
            await wait_for(lambda: "n2" in shard_owners(pg, database).values(), "the restarted node owns shards", 30)
        await check_histories(clients[0], handles)


async def test_a_second_node_with_a_live_nodes_name_is_refused(pg: PostgresServer) -> None:
    url = pg.create_database()
    with running_nodes(url, ["same"]) as (first,):
        twin = tempyral_node(url, "same")
        with pytest.raises(RuntimeError):
            twin.start()
        assert twin.proc is not None and twin.proc.wait(30) == 1
        assert "tempyral: error: node name same is taken by a running node" in twin.log_tail()
        client = await Client.connect(first.address)  # the first goes on serving
        await client.start_workflow(EchoChild.run, 1, id="after-twin", task_queue="nobody")


async def test_the_database_going_away_mid_run_fails_calls_with_unavailable_and_service_resumes(
    pg: PostgresServer,
) -> None:
    url = pg.create_database()
    with running_nodes(url, ["a", "b"]) as (a, b):
        client = await Client.connect(a.address)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with Worker(
            await Client.connect(b.address),
            task_queue=queue,
            workflows=[LoadWorkflow, EchoChild],
            activities=[increment],
        ):
            before = [
                await client.start_workflow(LoadWorkflow.run, v, id=f"pre-{v}-{queue}", task_queue=queue)
                for v in range(10)
            ]
            pg.pause()
            try:
                with pytest.raises(RPCError) as refused:
                    await client.workflow_service.start_workflow_execution(
                        StartWorkflowExecutionRequest(
                            namespace="default",
                            workflow_id=f"during-{queue}",
                            workflow_type=WorkflowType(name="LoadWorkflow"),
                            task_queue=TaskQueue(name=queue),
                            request_id=str(uuid.uuid4()),
                        ),
                        retry=False,
                        timeout=timedelta(seconds=20),
                    )
                assert refused.value.status == RPCStatusCode.UNAVAILABLE
            finally:
                pg.resume()
            after: list[WorkflowHandle[Any, int]] = []
            for v in range(10, 20):

                async def start(v: int = v) -> WorkflowHandle[Any, int]:
                    try:
                        return await client.start_workflow(
                            LoadWorkflow.run, v, id=f"post-{v}-{queue}", task_queue=queue
                        )
                    except WorkflowAlreadyStartedError:
                        return client.get_workflow_handle(f"post-{v}-{queue}")

                after.append(await retrying(start, "start after the outage"))
            await results([*before, *after], list(range(20)))
        await check_histories(client, [*before, *after])


async def test_queries_updates_and_signals_through_a_node_that_does_not_own_the_workflow(pg: PostgresServer) -> None:
    url = pg.create_database()
    with running_nodes(url, ["q1", "q2"]) as (q1, q2):
        caller = await Client.connect(q1.address)
        queue = f"tq-{uuid.uuid4().hex[:8]}"
        async with Worker(await Client.connect(q2.address), task_queue=queue, workflows=[CounterWorkflow]):
            # enough workflows that both nodes own some of them, whichever way the shards fall
            handles = [
                await caller.start_workflow(CounterWorkflow.run, id=f"counter-{i}-{queue}", task_queue=queue)
                for i in range(8)
            ]
            for i, handle in enumerate(handles):
                assert await handle.execute_update(CounterWorkflow.add, i + 1) == i + 1
                assert await handle.query(CounterWorkflow.current) == i + 1
                await handle.signal(CounterWorkflow.finish)
            assert [await h.result() for h in handles] == [i + 1 for i in range(8)]
        await check_histories(caller, handles)
