"""Timers are kept in memory a window at a time (history/engine.py TIMER_WINDOW_S): a shard's owner queues the
timers due within the window and reads the later ones from the table as their time comes, so memory does not grow
with the closed runs waiting for retention. A timer is queued once, whichever way it arrives."""

from __future__ import annotations

import time

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from tempyral.history.engine import TIMER_WINDOW_S, EngineConfig, HistoryEngine
from tempyral.matching.service import Matching
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import TaskRow, Transaction
from tempyral.proto.internal_pb2 import Task, TaskCategory, TaskType
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
WINDOW_NS = int(TIMER_WINDOW_S * 1e9)
TIMER = TaskCategory.TASK_CATEGORY_TIMER


def timer(task_id: int, at_ns: int) -> Task:
    task = Task(category=TIMER, type=TaskType.TASK_TYPE_USER_TIMER, task_id=task_id, shard_id=0)
    task.visibility_time.CopyFrom(Timestamp(seconds=at_ns // 10**9, nanos=at_ns % 10**9))
    task.namespace_id, task.workflow_id, task.run_id = "ns", f"wf-{task_id}", f"run-{task_id}"
    return task


async def test_only_the_window_is_queued_and_later_timers_come_as_it_moves() -> None:
    store = MemoryStore()
    namespaces = NamespaceRegistry(store, "active")
    await namespaces.load()
    engine = HistoryEngine(store, namespaces, Matching(), EngineConfig(num_shards=1))
    range_id = await store.acquire_shard(0, "before")
    now = time.time_ns()
    soon, later, much_later = timer(1, now + WINDOW_NS // 2), timer(2, now + 2 * WINDOW_NS), timer(3, now + 10**18)
    rows = [TaskRow(TIMER, t.task_id, t.visibility_time.ToNanoseconds(), t.SerializeToString()) for t in (soon, later)]
    await store.commit(Transaction(0, range_id, tasks=rows))
    engine.timer_queue.start = lambda: None  # type: ignore[method-assign]  # nothing fires: only what is queued
    await engine.start()
    assert len(engine.timer_queue) == 1  # `soon`; `later` waits in the table

    # a timer committed now: queued if it is due within the window, left in the table if not
    engine._on_tasks([much_later, timer(4, now + 1)])
    assert len(engine.timer_queue) == 2

    # the window moves on: `later` is read once, even if it arrives twice
    assert await engine.read_next_timers(now + 2 * WINDOW_NS) == 1
    assert len(engine.timer_queue) == 3
    assert await engine.read_next_timers(now + 2 * WINDOW_NS) == 0
    engine._on_tasks([later])
    assert len(engine.timer_queue) == 3
    await engine.stop()
