"""Failures of the update path's commit, over a MemoryStore (tests/support/history_harness.py): a shard
taken by another owner, a store that cannot write, a state changed behind the cache. Each must leave the
execution cache without the uncommitted change, so the next read shows what the store has, and a retry of
the same request is applied once."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage, WorkflowExecutionStatus
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import ConditionFailed, ShardNotHere, StorageUnavailable
from tempyral.persistence.store import ExecutionRow
from tempyral.proto.internal_pb2 import TaskType
from tests.support.history_harness import (
    COMPLETED_WT,
    TRANSFER,
    Harness,
    complete_workflow,
    idle_run,
    open_harness,
    start_timer,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
SIGNALED = [*COMPLETED_WT, "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]


@pytest_asyncio.fixture(loop_scope="function")
async def h() -> AsyncIterator[Harness]:
    async with open_harness(num_shards=2) as harness:
        yield harness


def assert_evicted(h: Harness, workflow_id: str, run_id: str) -> None:
    entry = h.cache_entry(workflow_id, run_id)
    assert entry is None or (entry.ms is None and entry.events is None), "the uncommitted change stayed cached"


async def test_a_lost_shard_fences_writes_and_leaves_no_uncommitted_state(h: Harness) -> None:
    run_id = await idle_run(h)
    state = await h.stored_state("wf")
    shard = h.shard("wf")
    h.store.steal_shard(shard.shard_id)
    with pytest.raises(ShardNotHere):  # UNAVAILABLE: the client retries, and reaches the new owner
        await h.signal("wf", request_id="sig-1")
    assert_evicted(h, "wf", run_id)
    assert not shard.owned  # learnt at that write
    assert await h.stored_state("wf") == state
    assert await h.outstanding_types("wf") == ["WORKFLOW_TASK_TIMEOUT"]
    with pytest.raises(ShardNotHere):  # every later call for this shard is refused here
        await h.terminate("wf")
    assert await h.stored_state("wf") == state

    # the other shard's workflows are not affected
    other = next(f"other-{i}" for i in range(100) if h.shard(f"other-{i}") is not shard)
    await h.start(other)
    assert await h.event_types(other) == COMPLETED_WT[:2]

    # once the shard is acquired again, the same request is applied (the failed one left no request id behind)
    await shard.acquire()
    assert await h.event_types("wf") == COMPLETED_WT
    await h.signal("wf", request_id="sig-1")
    assert await h.event_types("wf") == SIGNALED


async def test_a_failed_commit_leaves_the_cache_clean(h: Harness) -> None:
    run_id = await idle_run(h)
    state = await h.stored_state("wf")
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await h.signal("wf", request_id="sig-1")
    assert_evicted(h, "wf", run_id)
    assert await h.state("wf") == state
    assert "sig-1" not in (await h.state("wf")).signal_request_ids
    await h.signal("wf", request_id="sig-1")  # the retry is not taken for a repeat
    assert await h.event_types("wf") == SIGNALED
    assert await h.outstanding_types("wf", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]


async def test_a_failed_completion_can_be_retried_with_the_same_token(h: Harness) -> None:
    run_id = await h.start("wf")
    task = await h.next_workflow_task()
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await h.complete_workflow_task(task.task_token, complete_workflow())
    assert_evicted(h, "wf", run_id)
    state = await h.state("wf")
    assert (
        state.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
        and state.workflow_task.started_event_id
    )
    current = await h.current("wf")
    assert current is not None and current.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    await h.complete_workflow_task(task.task_token, complete_workflow())
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_COMPLETED"]
    current = await h.current("wf")
    assert current is not None and current.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED


async def test_a_failed_start_leaves_no_run_behind(h: Harness) -> None:
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await h.start("wf")
    assert await h.current("wf") is None
    assert h.shard("wf").current_run_cached(h.ns.id, "wf") is None
    run_id = await h.start("wf")  # not refused as already started
    assert await h.current_run_id("wf") == run_id
    assert await h.event_types("wf") == COMPLETED_WT[:2]


async def test_a_state_changed_behind_the_cache_fails_the_commit_and_is_read_afresh(h: Harness) -> None:
    run_id = await idle_run(h)
    key = (h.ns.id, "wf", run_id)
    row = h.store.tables.executions[key]
    # another writer moved the run on (same state, next version): the cached db_version is stale
    h.store.tables.executions[key] = ExecutionRow(row.state, row.db_version + 1)
    with pytest.raises(ConditionFailed):
        await h.signal("wf")
    assert_evicted(h, "wf", run_id)
    assert await h.event_types("wf") == COMPLETED_WT
    await h.signal("wf")  # read afresh, with the store's version
    assert await h.event_types("wf") == SIGNALED
    stored = await h.store.get_execution(*key)
    assert stored is not None and stored.db_version == row.db_version + 2


async def test_a_workflow_task_whose_start_fails_to_commit_goes_back_to_its_queue(h: Harness) -> None:
    run_id = await h.start("wf")
    h.store.fail_next_commit()
    # the poll's attempt to record the start fails: the poller gets nothing, the task is put back
    assert not (await h.poll_workflow_task(timeout=0.05)).task_token
    assert_evicted(h, "wf", run_id)
    assert not (await h.state("wf")).workflow_task.started_event_id
    assert await h.outstanding_types("wf") == ["DISPATCH_WORKFLOW_TASK"]
    task = await h.next_workflow_task()
    assert task.workflow_execution.run_id == run_id and task.started_event_id == 3


async def test_a_timer_whose_commit_fails_keeps_its_row_and_fires_on_retry(h: Harness) -> None:
    await h.start("wf")
    await h.run_workflow_task(start_timer())
    (timer,) = h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):  # the timer queue retries it with backoff
        await h.fire_timer(timer)
    assert "t1" in (await h.state("wf")).timers
    assert "USER_TIMER" in await h.outstanding_types("wf")
    await h.fire_timer(timer)
    assert (await h.event_types("wf"))[-2:] == ["TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]
    assert "USER_TIMER" not in await h.outstanding_types("wf")


def update_request(update_id: str) -> ws.UpdateWorkflowExecutionRequest:
    req = ws.UpdateWorkflowExecutionRequest(namespace="default")
    req.workflow_execution.workflow_id = "wf"
    req.request.meta.update_id = update_id
    req.request.input.name = "my-update"
    req.wait_policy.lifecycle_stage = (
        UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
    )
    return req


async def test_an_update_whose_admission_fails_to_commit_is_admitted_again_on_retry(h: Harness) -> None:
    run_id = await idle_run(h)
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await h.engine.updates.update(h.ns, update_request("u1"), timeout=0.01)
    assert_evicted(h, "wf", run_id)
    # the client retries the update: it must reach a worker
    resp = await h.engine.updates.update(h.ns, update_request("u1"), timeout=0.01)
    assert resp.stage == UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
    state = await h.state("wf")
    assert state.workflow_task.scheduled and state.speculative_workflow_task
    task = await h.poll_workflow_task()
    assert [m.protocol_instance_id for m in task.messages] == ["u1"]
