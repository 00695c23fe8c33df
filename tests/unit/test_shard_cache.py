"""The shard's execution cache is bounded by bytes, not only by count: big workflows are evicted (and read
back from the store when next used) so memory follows the configured bound, not the size of what
clients send."""

from __future__ import annotations

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import TaskQueue

from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import Mutation, Shard
from tempyral.persistence.sqlite import SqliteStore
from tempyral.proto.internal_pb2 import ExecutionState

T0 = 1_700_000_000 * 1_000_000_000
INPUT_BYTES = 300_000
BUDGET = 1_000_000


@pytest_asyncio.fixture(loop_scope="function")
async def shard(store: SqliteStore) -> Shard:
    shard = Shard(0, store, "me", lambda tasks: None, cache_size=1000, cache_bytes=BUDGET)
    await shard.acquire()
    return shard


async def start_run(shard: Shard, run_id: str) -> None:
    ms = MutableState(ExecutionState(namespace_id="ns", workflow_id=run_id, run_id=run_id, next_event_id=1), T0)
    ms.begin(T0)
    attrs = history.WorkflowExecutionStartedEventAttributes(
        task_queue=TaskQueue(name="q", kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL), attempt=1
    )
    attrs.workflow_type.name = "W"
    attrs.input.CopyFrom(Payloads(payloads=[Payload(data=b"x" * INPUT_BYTES)]))
    ms.add_workflow_execution_started(attrs)
    entry = shard.new_entry(("ns", run_id, run_id))
    await shard.commit([Mutation(entry, ms, new=True)])


@pytest.mark.asyncio(loop_scope="function")
async def test_big_executions_are_evicted_to_stay_within_the_byte_budget(shard: Shard) -> None:
    for i in range(20):
        await start_run(shard, f"run-{i}")
        assert shard.cached_bytes <= BUDGET
    assert shard.cached_bytes > BUDGET // 2  # it does cache what fits
    # The oldest was evicted and still reads back whole from the store.
    key = ("ns", "run-0", "run-0")
    assert shard.peek(key) is None
    async with shard.locked(key) as entry:
        ms = await shard.load(entry)
        assert ms is not None and ms.state.run_id == "run-0"
        assert entry.state_bytes > 0
    assert shard.cached_bytes <= BUDGET


@pytest.mark.asyncio(loop_scope="function")
async def test_the_byte_count_follows_evictions_and_deletes(shard: Shard) -> None:
    await start_run(shard, "a")
    entry = shard.peek(("ns", "a", "a"))
    assert entry is not None
    held = entry.state_bytes + entry.events_bytes
    assert held > INPUT_BYTES  # the input is counted
    assert shard.cached_bytes == held
    shard.evict_state(entry)
    assert shard.cached_bytes == 0
    await start_run(shard, "b")
    other = shard.peek(("ns", "b", "b"))
    assert other is not None
    await shard.delete(other)
    assert shard.cached_bytes == 0
