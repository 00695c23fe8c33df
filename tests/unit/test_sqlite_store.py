"""The SQLite store: conditional writes, fencing, group-commit isolation, reads."""

from __future__ import annotations

import asyncio

import pytest

from tempyral.common.errors import AlreadyExists, ConditionFailed, ShardOwnershipLost
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import CurrentWrite, ExecutionWrite, HistoryWrite, TaskRow, Transaction


def create(range_id: int, run: str = "r1", workflow: str = "w", task_id: int = 100) -> Transaction:
    return Transaction(
        shard_id=0,
        range_id=range_id,
        executions=[ExecutionWrite("ns", workflow, run, b"state-1", 1, 0)],
        current=[CurrentWrite("ns", workflow, run, 1, "req", None)],
        history=[HistoryWrite("ns", run, 1, 2, b"batch-1")],
        tasks=[TaskRow(1, task_id, 0, b"task")],
    )


@pytest.mark.asyncio(loop_scope="function")
async def test_create_update_and_read(store: SqliteStore) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    update = Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"state-2", 2, 1)])
    update.history.append(HistoryWrite("ns", "r1", 3, 4, b"batch-2"))
    update.deleted_tasks.append((1, 100))
    await store.commit(update)
    row = await store.get_execution("ns", "w", "r1")
    assert row is not None and (row.state, row.db_version) == (b"state-2", 2)
    assert (await store.get_current("ns", "w")).run_id == "r1"  # type: ignore[union-attr]
    assert await store.read_history("ns", "r1", 1, 5) == [b"batch-1", b"batch-2"]
    assert await store.read_history("ns", "r1", 3, 5) == [b"batch-2"]
    assert await store.load_tasks(0, 1) == []


@pytest.mark.asyncio(loop_scope="function")
async def test_stale_db_version_and_existing_current_fail(store: SqliteStore) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    with pytest.raises(ConditionFailed):
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"x", 2, 5)]))
    with pytest.raises(ConditionFailed):
        await store.commit(create(range_id, run="r2"))  # the workflow id has a current run
    # nothing of the failed transactions was written
    assert (await store.get_current("ns", "w")).run_id == "r1"  # type: ignore[union-attr]
    assert await store.get_execution("ns", "w", "r2") is None


@pytest.mark.asyncio(loop_scope="function")
async def test_a_new_owner_fences_the_old_one(store: SqliteStore) -> None:
    old = await store.acquire_shard(0, "node-a")
    new = await store.acquire_shard(0, "node-b")
    assert new > old
    with pytest.raises(ShardOwnershipLost):
        await store.commit(create(old))
    await store.commit(create(new))


@pytest.mark.asyncio(loop_scope="function")
async def test_one_failure_in_a_group_commit_spares_the_others(store: SqliteStore) -> None:
    range_id = await store.acquire_shard(0, "me")
    txns = [create(range_id, run=f"r{i}", workflow=f"w{i}", task_id=i) for i in range(20)]
    txns.append(create(range_id, run="dup", workflow="w3", task_id=99))  # conflicts with w3
    results = await asyncio.gather(*(store.commit(t) for t in txns), return_exceptions=True)
    assert sum(isinstance(r, ConditionFailed) for r in results) == 1
    for i in range(20):
        assert await store.get_execution("ns", f"w{i}", f"r{i}") is not None


@pytest.mark.asyncio(loop_scope="function")
async def test_namespaces_and_metadata(store: SqliteStore) -> None:
    await store.insert_namespace("id-1", "alpha", b"a")
    with pytest.raises(AlreadyExists):
        await store.insert_namespace("id-2", "alpha", b"b")
    await store.update_namespace("id-1", b"a2")
    assert await store.load_namespaces() == [b"a2"]
    assert await store.get_or_set_metadata("cluster_id", "x") == "x"
    assert await store.get_or_set_metadata("cluster_id", "y") == "x"
