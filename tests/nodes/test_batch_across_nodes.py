"""Batch operations with two nodes on one PostgreSQL: a job runs on the node holding its job id's shard, whichever
node the calls reach, acts on workflows of every shard, and when that node is SIGKILLed the other takes the shard
over and finishes the job, every workflow signalled once."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from temporalio.api.enums.v1 import BatchOperationState
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from tempyral.history.executions import shard_id_for
from tests.crash.test_sigkill import retrying
from tests.nodes.test_several_nodes import shard_owners, wait_for
from tests.support.batches import describe, signal_op, signals, start, start_idle, until
from tests.support.nodes import postgres, running_nodes
from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.asyncio(loop_scope="function")
SHARDS = 8
COUNT = 8


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres() as server:
        yield server


async def test_a_job_runs_on_its_shards_node_and_moves_with_it(pg: PostgresServer) -> None:
    url = pg.create_database()
    database = url.rsplit("/", 1)[1]
    with running_nodes(url, ["a", "b"]) as nodes:
        await wait_for(lambda: set(shard_owners(pg, database).values()) == {"a", "b"}, "shards spread", 30)
        owners = shard_owners(pg, database)
        via_a = await Client.connect(nodes[0].address)
        ns_id = (
            await via_a.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
        ).namespace_info.id
        # a job id of one of b's shards, started through a
        job = next(
            j
            for j in (f"job-{uuid.uuid4().hex[:8]}" for _ in range(1000))
            if owners[shard_id_for(ns_id, j, SHARDS)] == "b"
        )
        tq = f"nodes-batch-{uuid.uuid4().hex[:8]}"
        ids = await start_idle(via_a, COUNT, tq)
        await start(
            via_a,
            job_id=job,
            visibility_query=f"TaskQueue = '{tq}'",
            max_operations_per_second=1,
            signal_operation=signal_op(),
        )

        async def under_way() -> bool:
            found = await describe(via_a, job)
            assert found.state == BatchOperationState.BATCH_OPERATION_STATE_RUNNING
            return found.complete_operation_count >= 2

        await until(under_way, "the job to be under way on b")
        nodes[1].kill()  # the job's node dies; a takes its shards and resumes the job

        async def completed() -> bool:
            found = await retrying(lambda: describe(via_a, job), "describe through a")
            return found.state == BatchOperationState.BATCH_OPERATION_STATE_COMPLETED

        await until(completed, "the job to complete on a", timeout=90)
        done = await describe(via_a, job)
        assert (done.total_operation_count, done.complete_operation_count, done.failure_operation_count) == (
            COUNT,
            COUNT,
            0,
        )
        for workflow_id in ids:
            got = await retrying(lambda: signals(via_a, workflow_id), f"history of {workflow_id}")  # noqa: B023
            assert len(got) == 1, workflow_id
