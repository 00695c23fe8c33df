"""The Store contract, run against both SqliteStore and the tests' MemoryStore, so that unit tests built on the
in-memory fake (tests/support/history_harness.py) exercise the semantics the real store has: conditional
writes, atomic transactions, the current-run pointer, history by range and by branch, outbox tasks, shard
fencing, deletion, namespaces, Nexus endpoints and plain visibility listings."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.errors import AlreadyExists, ConditionFailed, ShardOwnershipLost, StorageUnavailable
from tempyral.persistence.branches import first_branch
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import (
    BatchRow,
    CurrentWrite,
    DlqRow,
    EndpointRow,
    ExecutionWrite,
    HistoryWrite,
    MemberRow,
    ShardRow,
    Store,
    TaskRow,
    Transaction,
    VisibilityQuery,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import Cursor
from tempyral.proto.internal_pb2 import HistoryBranch
from tests.support.branch_histories import B_BRANCH, C_BRANCH, D_BRANCH, R1, B, C, D, batch, events, write_branches
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
TRANSFER, TIMER = 1, 2


@pytest_asyncio.fixture(loop_scope="function", params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = MemoryStore() if request.param == "memory" else SqliteStore(str(tmp_path / "contract.db"))
    await s.open()
    yield s
    await s.close()


def create(range_id: int, run: str = "r1", workflow: str = "w", task_id: int = 100) -> Transaction:
    return Transaction(
        shard_id=0,
        range_id=range_id,
        executions=[ExecutionWrite("ns", workflow, run, b"state-1", 1, 0)],
        current=[CurrentWrite("ns", workflow, run, 1, "req", None)],
        history=[HistoryWrite("ns", run, 1, 2, batch(1, 2))],
        tasks=[TaskRow(TRANSFER, task_id, 0, b"task")],
    )


async def nothing_of(store: Store, run: str, workflow: str = "w") -> bool:
    """No trace of the run: no state, no history."""
    return await store.get_execution("ns", workflow, run) is None and await store.read_history("ns", run, 1, 100) == []


# ---------------------------------------------------------------------- conditions and the current pointer
async def test_commit_then_update_reads_back(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    update = Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"state-2", 2, 1)])
    update.history.append(HistoryWrite("ns", "r1", 3, 4, batch(3, 4)))
    update.deleted_tasks.append((TRANSFER, 100))
    await store.commit(update)
    row = await store.get_execution("ns", "w", "r1")
    assert row is not None and (row.state, row.db_version) == (b"state-2", 2)
    current = await store.get_current("ns", "w")
    assert current is not None and (current.run_id, current.status, current.start_request_id) == ("r1", 1, "req")
    assert await store.read_history("ns", "r1", 1, 5) == [batch(1, 2), batch(3, 4)]
    assert await store.read_history("ns", "r1", 3, 5) == [batch(3, 4)]
    assert await store.load_tasks(0, TRANSFER) == []
    assert await store.get_execution("ns", "w", "other") is None
    assert await store.get_current("ns", "other") is None


async def test_db_version_conditions(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    with pytest.raises(ConditionFailed):  # stale expected version
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"x", 3, 5)]))
    with pytest.raises(ConditionFailed):  # the row is new, but exists
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"x", 1, 0)]))
    with pytest.raises(ConditionFailed):  # an update of a row that does not exist
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "nope", b"x", 2, 1)]))
    row = await store.get_execution("ns", "w", "r1")
    assert row is not None and (row.state, row.db_version) == (b"state-1", 1)


async def test_current_pointer_conditions(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    with pytest.raises(ConditionFailed):  # the workflow id has a current run already
        await store.commit(create(range_id, run="r2", task_id=101))
    with pytest.raises(ConditionFailed):  # the pointer does not name the expected run
        await store.commit(Transaction(0, range_id, current=[CurrentWrite("ns", "w", "r2", 1, "q", "r9")]))
    with pytest.raises(ConditionFailed):  # no pointer to update
        await store.commit(Transaction(0, range_id, current=[CurrentWrite("ns", "x", "r2", 1, "q", "r1")]))
    # the run closes (status 2), then a new run replaces it, each conditional on the run before
    await store.commit(Transaction(0, range_id, current=[CurrentWrite("ns", "w", "r1", 2, "req", "r1")]))
    closed = await store.get_current("ns", "w")
    assert closed is not None and (closed.run_id, closed.status) == ("r1", 2)
    txn = create(range_id, run="r2", task_id=101)
    txn.current = [CurrentWrite("ns", "w", "r2", 1, "req-2", "r1")]
    await store.commit(txn)
    current = await store.get_current("ns", "w")
    assert current is not None and (current.run_id, current.status, current.start_request_id) == ("r2", 1, "req-2")


async def test_a_failed_condition_writes_nothing_of_its_transaction(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    # every part is fine except the execution write, which comes after the current write and before the rest
    txn = Transaction(
        0,
        range_id,
        executions=[ExecutionWrite("ns", "w2", "r2", b"s", 1, 0), ExecutionWrite("ns", "w", "r1", b"x", 2, 7)],
        current=[CurrentWrite("ns", "w2", "r2", 1, "req", None)],
        history=[HistoryWrite("ns", "r2", 1, 2, batch(1, 2))],
        tasks=[TaskRow(TIMER, 5, 123, b"timer")],
        deleted_tasks=[(TRANSFER, 100)],
    )
    with pytest.raises(ConditionFailed):
        await store.commit(txn)
    assert await store.get_current("ns", "w2") is None
    assert await nothing_of(store, "r2", "w2")
    assert await store.load_tasks(0, TIMER) == []
    assert await store.load_tasks(0, TRANSFER) == [(100, b"task")]  # its deletion was undone too


async def test_a_repeated_history_batch_or_task_is_refused_whole(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id))
    with pytest.raises(sqlite3.IntegrityError):
        txn = Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"s2", 2, 1)])
        txn.history.append(HistoryWrite("ns", "r1", 1, 3, batch(1, 3)))
        await store.commit(txn)
    with pytest.raises(sqlite3.IntegrityError):
        txn = Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"s2", 2, 1)])
        txn.tasks.append(TaskRow(TRANSFER, 100, 0, b"again"))
        await store.commit(txn)
    row = await store.get_execution("ns", "w", "r1")
    assert row is not None and row.db_version == 1
    assert await store.read_history("ns", "r1", 1, 100) == [batch(1, 2)]
    # the same first event id on another branch of the run is another row
    await store.commit(Transaction(0, range_id, history=[HistoryWrite("ns", "r1", 1, 3, batch(1, 3, 2), "b")]))


# ---------------------------------------------------------------------- shards
async def test_shard_ranges_and_fencing(store: Store) -> None:
    old = await store.acquire_shard(0, "node-a")
    assert await store.acquire_shard(1, "node-a") == 1  # a shard never acquired starts at range 1
    extended = await store.extend_shard_range(0, old)
    assert extended == old + 1
    with pytest.raises(ShardOwnershipLost):
        await store.extend_shard_range(0, old)  # the range moved on
    new = await store.acquire_shard(0, "node-b")
    assert new == extended + 1
    with pytest.raises(ShardOwnershipLost):
        await store.commit(create(extended))
    with pytest.raises(ShardOwnershipLost):
        await store.commit(Transaction(7, 1))  # a shard nobody acquired
    with pytest.raises(ShardOwnershipLost):
        await store.extend_shard_range(7, 0)
    assert await nothing_of(store, "r1")
    await store.commit(create(new))
    with pytest.raises(ShardOwnershipLost):
        await store.delete_execution(0, extended, "ns", "w", "r1")
    assert await store.get_execution("ns", "w", "r1") is not None
    # a shard's range does not fence another shard's writes
    await store.commit(Transaction(1, 1, history=[HistoryWrite("ns", "r-one", 1, 1, batch(1, 1))]))


# ---------------------------------------------------------------------- history (tests/support/branch_histories.py)
async def test_history_by_range_and_branch(store: Store) -> None:
    await write_branches(store)
    for branch, expected in ((None, R1), (first_branch("r1"), R1), (B_BRANCH, B), (C_BRANCH, C), (D_BRANCH, D)):
        for first in range(1, 12):
            for next_ in range(first, 12):
                want = [e for e in expected if first <= e[0] < next_]
                assert await events(store, first, next_, branch) == want, (branch, first, next_)
    # an ancestor's batch that straddles the fork point loses the events past it; one inside comes back as stored
    blobs = await store.read_history("ns", "r1", 1, 9, B_BRANCH)
    assert [[e.event_id for e in history.History.FromString(b).events] for b in blobs] == [[1, 2, 3], [4, 5], [6, 7, 8]]
    assert blobs[0] == batch(1, 3, 1)
    # without ancestors, the batches that hold any event of the range come back as stored
    assert await store.read_history("ns", "r1", 5, 6) == [batch(4, 7, 1)]
    assert await store.read_history("ns", "r1", 7, 8, HistoryBranch(branch_id="b")) == [batch(6, 8, 2)]


async def test_deleting_a_branch_and_an_execution(store: Store) -> None:
    range_id = await write_branches(store)
    assert await store.delete_history_branch("r1", "d") == 1
    assert await events(store, 1, 100, D_BRANCH) == R1[:3]  # only what d read from its ancestors is left
    assert await events(store, 1, 100) == R1
    assert await events(store, 1, 100, B_BRANCH) == B
    assert await events(store, 1, 100, C_BRANCH) == C
    assert await store.delete_history_branch("r1", "d") == 0
    # the run itself, with a visibility row; another run of the same workflow id is current
    txn = create(range_id, run="r1", workflow="w")
    txn.history = []
    txn.visibility.append(visibility_row("r1", start=1))
    await store.commit(txn)
    await store.commit(Transaction(0, range_id, history=[HistoryWrite("ns", "r2", 1, 2, batch(1, 2, 9))]))
    await store.delete_execution(0, range_id, "ns", "w", "r1")
    assert await store.get_execution("ns", "w", "r1") is None
    assert await store.get_current("ns", "w") is None
    for branch in (None, B_BRANCH, C_BRANCH):
        assert await store.read_history("ns", "r1", 1, 100, branch) == []
    assert await store.read_history("ns", "r2", 1, 100) == [batch(1, 2, 9)]
    assert await store.list_visibility("ns", VisibilityQuery()) == []
    assert await store.load_tasks(0, TRANSFER) == [(100, b"task")]  # outbox rows are not the run's to delete


async def test_deleting_a_run_that_is_not_current_keeps_the_pointer(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(create(range_id, run="r1"))
    txn = create(range_id, run="r2", task_id=101)
    txn.current = [CurrentWrite("ns", "w", "r2", 1, "req", "r1")]
    await store.commit(txn)
    await store.delete_execution(0, range_id, "ns", "w", "r1")
    current = await store.get_current("ns", "w")
    assert current is not None and current.run_id == "r2"
    assert await nothing_of(store, "r1")


async def test_timers_are_read_by_window(store: Store) -> None:
    r0 = await store.acquire_shard(0, "me")
    rows = [TaskRow(TIMER, 10, 500, b"t10"), TaskRow(TIMER, 20, 100, b"t20"), TaskRow(TIMER, 30, 2**70, b"far")]
    await store.commit(Transaction(0, r0, tasks=[*rows, TaskRow(TRANSFER, 40, 100, b"x40")]))
    assert await store.load_tasks_due(0, TIMER, -(2**63), 500) == [(20, b"t20")]
    assert await store.load_tasks_due(0, TIMER, 500, 501) == [(10, b"t10")]
    # a timer past 2262 is stored at the last 64-bit instant, which no window reaches
    assert await store.load_tasks_due(0, TIMER, 501, 2**63 - 1) == []
    assert await store.load_tasks_due(0, TIMER, 501, 2**80) == []  # bounds are taken as 64-bit instants
    assert await store.load_tasks_due(1, TIMER, -(2**63), 2**63 - 1) == []


# ---------------------------------------------------------------------- several nodes
async def test_shards_are_listed_released_and_task_deletes_are_fenced(store: Store) -> None:
    old = await store.acquire_shard(0, "node-a")
    await store.commit(Transaction(0, old, tasks=[TaskRow(TIMER, 10, 0, b"t10"), TaskRow(TIMER, 20, 0, b"t20")]))
    assert await store.list_shards() == [ShardRow(0, old, "node-a")]
    new = await store.acquire_shard(0, "node-b")
    assert await store.list_shards() == [ShardRow(0, new, "node-b")]
    # the node that lost the shard deletes nothing, and learns it at that write
    with pytest.raises(ShardOwnershipLost):
        await store.delete_tasks(0, old, [(TIMER, 10)])
    with pytest.raises(ShardOwnershipLost):
        await store.delete_tasks_through(0, old, TIMER, 20)
    assert await store.load_tasks(0, TIMER) == [(10, b"t10"), (20, b"t20")]
    assert not await store.release_shard(0, old)  # nor can it release what it no longer holds
    await store.delete_tasks(0, new, [(TIMER, 10)])
    assert await store.delete_tasks_through(0, new, TIMER, 20) == 1
    assert await store.load_tasks(0, TIMER) == []
    assert await store.release_shard(0, new)
    assert await store.list_shards() == [ShardRow(0, new, "")]
    assert await store.acquire_shard(0, "node-a") == new + 1


async def test_membership_rows(store: Store) -> None:
    a = MemberRow("a", "session-1", "127.0.0.1:1", "127.0.0.1:2", heartbeat_ns=100, started_ns=50)
    assert await store.join_member(a, stale_before_ns=0) is None
    assert await store.list_members() == [a]
    # another process with the same name is refused while the row is live, and gets the live row
    rival = MemberRow("a", "session-2", "127.0.0.1:3", "127.0.0.1:4", heartbeat_ns=150, started_ns=150)
    assert await store.join_member(rival, stale_before_ns=90) == a
    assert await store.heartbeat_member("a", "session-1", 200)
    assert not await store.heartbeat_member("a", "session-2", 200)
    assert not await store.heartbeat_member("nobody", "session-1", 200)
    # once the heartbeat is older than the bound, the name is free: the old session's heartbeats now fail
    assert await store.join_member(rival, stale_before_ns=201) is None
    assert not await store.heartbeat_member("a", "session-1", 300)
    b = MemberRow("b", "session-3", "127.0.0.1:5", "127.0.0.1:6", heartbeat_ns=10, started_ns=10)
    assert await store.join_member(b, stale_before_ns=0) is None
    assert [m.node for m in await store.list_members()] == ["a", "b"]
    assert (await store.list_members())[0] == rival
    await store.leave_member("a", "session-1")  # not its row any more: nothing happens
    assert [m.node for m in await store.list_members()] == ["a", "b"]
    await store.leave_member("a", "session-2")
    assert await store.list_members() == [b]


# ---------------------------------------------------------------------- tasks
async def test_tasks_by_shard_and_category(store: Store) -> None:
    r0 = await store.acquire_shard(0, "me")
    r1 = await store.acquire_shard(1, "me")
    await store.commit(
        Transaction(
            0,
            r0,
            tasks=[TaskRow(TIMER, 30, 5, b"t30"), TaskRow(TRANSFER, 20, 0, b"x20"), TaskRow(TIMER, 10, 9, b"t10")],
        )
    )
    await store.commit(Transaction(1, r1, tasks=[TaskRow(TIMER, 10, 0, b"other shard")]))
    assert await store.load_tasks(0, TIMER) == [(10, b"t10"), (30, b"t30")]
    assert await store.load_tasks(0, TRANSFER) == [(20, b"x20")]
    assert await store.load_tasks(1, TIMER) == [(10, b"other shard")]
    await store.delete_tasks(0, r0, [(TIMER, 10), (TIMER, 999), (TRANSFER, 30)])  # unknown keys are ignored
    assert await store.load_tasks(0, TIMER) == [(30, b"t30")]
    assert await store.load_tasks(1, TIMER) == [(10, b"other shard")]
    # a task added and deleted in one transaction is gone; deletion is by this transaction's shard only
    await store.commit(
        Transaction(0, r0, tasks=[TaskRow(TIMER, 40, 0, b"t40")], deleted_tasks=[(TIMER, 40), (TIMER, 10)])
    )
    assert await store.load_tasks(0, TIMER) == [(30, b"t30")]
    assert await store.load_tasks(1, TIMER) == [(10, b"other shard")]
    # a far-off instant is stored as the last one a 64-bit column holds
    assert TaskRow(TIMER, 1, 2**70, b"").visibility_ns == 2**63 - 1


# ---------------------------------------------------------------------- namespaces, endpoints, metadata
async def test_namespaces_endpoints_and_metadata(store: Store) -> None:
    assert await store.get_or_set_metadata("cluster_id", "a") == "a"
    assert await store.get_or_set_metadata("cluster_id", "b") == "a"
    await store.insert_namespace("id-1", "alpha", b"a")
    with pytest.raises(AlreadyExists):
        await store.insert_namespace("id-2", "alpha", b"b")
    with pytest.raises(AlreadyExists):
        await store.insert_namespace("id-1", "beta", b"b")
    await store.update_namespace("id-1", b"a2")
    await store.update_namespace("id-unknown", b"z")
    assert await store.load_namespaces() == [b"a2"]

    def endpoint(endpoint_id: str, name: str, seq: int, deleted: bool = False) -> EndpointRow:
        return EndpointRow(endpoint_id, name, 1, f"d{seq}".encode(), deleted, seq, seq * 10, "a", 5)

    await store.save_nexus_endpoints([endpoint("e1", "one", 1), endpoint("e2", "two", 2)])
    with pytest.raises(AlreadyExists):  # a live name is unique, and a failed save writes none of its rows
        await store.save_nexus_endpoints([endpoint("e3", "three", 3), endpoint("e4", "one", 4)])
    assert sorted(r.id for r in await store.load_nexus_endpoints()) == ["e1", "e2"]
    # a tombstone frees the name, in the same save as the row that takes it
    await store.save_nexus_endpoints([endpoint("e1", "one", 5, deleted=True), endpoint("e4", "one", 6)])
    rows = {r.id: r for r in await store.load_nexus_endpoints()}
    assert rows["e1"] == endpoint("e1", "one", 5, deleted=True)
    assert rows["e4"] == endpoint("e4", "one", 6)
    await store.save_nexus_endpoints([endpoint("e2", "one", 7, deleted=True)])  # tombstones may share a name
    assert len(await store.load_nexus_endpoints()) == 3


# ---------------------------------------------------------------------- visibility
def visibility_row(run: str, start: int, close: int | None = None, namespace: str = "ns") -> VisibilityRow:
    return VisibilityRow(
        namespace_id=namespace,
        run_id=run,
        workflow_id=f"wf-{run}",
        workflow_type="W",
        status=1 if close is None else 2,
        start_time=start,
        execution_time=start,
        close_time=close,
        task_queue="q",
        history_length=2,
        history_size_bytes=10,
        memo=b"",
        search_attributes=b"",
        search_attributes_json="{}",
    )


async def test_visibility_lists_in_the_default_order_and_counts(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    rows = [
        visibility_row("a", start=10, close=50),
        visibility_row("b", start=30),
        visibility_row("c", start=20, close=60),
        visibility_row("d", start=40),
        visibility_row("e", start=10, close=50),
        visibility_row("x", start=99, namespace="other"),
    ]
    await store.commit(Transaction(0, range_id, visibility=rows))
    listed = await store.list_visibility("ns", VisibilityQuery())
    # running runs first, by start time descending; then closed ones by close time, start time, run id
    assert [r.run_id for r in listed] == ["d", "b", "c", "a", "e"]
    assert listed[0].workflow_id == "wf-d" and listed[0].close_time is None and listed[2].close_time == 60
    # a row is replaced whole by a later write for the same run
    await store.commit(Transaction(0, range_id, visibility=[visibility_row("d", start=40, close=70)]))
    listed = await store.list_visibility("ns", VisibilityQuery(page_size=2))
    assert [r.run_id for r in listed] == ["b", "d"]
    after = await store.list_visibility("ns", VisibilityQuery(cursor=Cursor(70, 40, "d")))
    assert [r.run_id for r in after] == ["c", "a", "e"]
    assert await store.count_visibility("ns", VisibilityQuery()) == [(5,)]
    assert await store.count_visibility("nobody", VisibilityQuery()) == [(0,)]


# ---------------------------------------------------------------------- the fake's own switches
async def test_memory_store_faults() -> None:
    store = MemoryStore()
    range_id = await store.acquire_shard(0, "me")
    store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await store.commit(create(range_id))
    assert await nothing_of(store, "r1") and store.committed == []
    await store.commit(create(range_id))  # only the next commit fails
    assert len(store.committed) == 1
    store.fail_next_commit(RuntimeError("boom"))
    with pytest.raises(RuntimeError, match="boom"):
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"s2", 2, 1)]))
    stolen = store.steal_shard(0)
    assert stolen == range_id + 1
    with pytest.raises(ShardOwnershipLost):
        await store.commit(Transaction(0, range_id, executions=[ExecutionWrite("ns", "w", "r1", b"s2", 2, 1)]))
    row = await store.get_execution("ns", "w", "r1")
    assert row is not None and row.db_version == 1
    assert await store.acquire_shard(0, "me") == stolen + 1


# ---------------------------------------------------------------------- replication DLQ
def _dlq_row(source: str, shard: int, task_id: int, namespace_id: str = "ns", error: str = "boom") -> DlqRow:
    return DlqRow(source, shard, task_id, namespace_id, f"wf-{task_id}", f"run-{task_id}", b"task", error, 7, 3)


async def test_replication_dlq_rows_are_kept_by_source_shard_and_task_id(store: Store) -> None:
    for row in (_dlq_row("a", 1, 5), _dlq_row("a", 0, 9), _dlq_row("a", 1, 2, "other"), _dlq_row("b", 0, 1)):
        await store.put_replication_dlq(row)
    await store.put_replication_dlq(_dlq_row("a", 0, 9, error="again"))  # the same key: replaced, not added
    rows = await store.list_replication_dlq("a", (0, 0), 10)
    assert [(r.source_shard, r.task_id, r.error) for r in rows] == [(0, 9, "again"), (1, 2, "boom"), (1, 5, "boom")]
    assert rows[0] == _dlq_row("a", 0, 9, error="again")
    assert [r.task_id for r in await store.list_replication_dlq("a", (0, 9), 1)] == [2]  # paged after a key
    assert [r.task_id for r in await store.list_replication_dlq("a", (0, 0), 10, "other")] == [2]
    assert sorted(await store.count_replication_dlq()) == [("a", "ns", 2), ("a", "other", 1), ("b", "ns", 1)]
    assert await store.delete_replication_dlq("a", [(1, 5), (7, 7)]) == 1
    assert [r.task_id for r in await store.list_replication_dlq("a", (0, 0), 10)] == [9, 2]
    assert await store.delete_replication_dlq("a", None) == 2
    assert await store.list_replication_dlq("a", (0, 0), 10) == []
    assert await store.count_replication_dlq() == [("b", "ns", 1)]


async def test_counting_task_rows_by_id_range_reads_none_and_stops_at_the_limit(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    await store.commit(Transaction(0, range_id, tasks=[TaskRow(3, task_id, 0, b"r") for task_id in range(10, 20)]))
    assert await store.count_tasks(0, 3, 0, 1 << 62, 1000) == 10
    assert await store.count_tasks(0, 3, 12, 15, 1000) == 2  # 13 and 14: both bounds exclusive
    assert await store.count_tasks(0, 3, 0, 1 << 62, 4) == 4
    assert await store.count_tasks(0, TRANSFER, 0, 1 << 62, 1000) == 0


async def test_batch_operations_are_fenced_unique_and_listed_newest_first(store: Store) -> None:
    range_id = await store.acquire_shard(0, "me")
    running = BatchRow("ns", "a", 0, True, 10, 2**63 - 1, b"a1")
    await store.save_batch(0, range_id, running, create=True)
    with pytest.raises(AlreadyExists):
        await store.save_batch(0, range_id, BatchRow("ns", "a", 0, True, 11, 2**63 - 1, b"other"), create=True)
    await store.save_batch(0, range_id, BatchRow("ns", "b", 0, False, 5, 20, b"b"), create=True)
    await store.save_batch(0, range_id, BatchRow("ns", "c", 0, False, 6, 30, b"c"), create=True)
    await store.save_batch(0, range_id, BatchRow("other", "d", 0, True, 1, 2**63 - 1, b"d"), create=True)
    assert await store.get_batch("ns", "a") == running
    assert await store.get_batch("ns", "missing") is None
    # running first, then by close time, newest first; a page resumes after its last row
    assert [r.job_id for r in await store.list_batches("ns", None, 10)] == ["a", "c", "b"]
    first = await store.list_batches("ns", None, 2)
    last = first[-1]
    assert [r.job_id for r in await store.list_batches("ns", (last.close_time, last.start_time, last.job_id), 2)] == [
        "b"
    ]
    assert [(r.namespace_id, r.job_id) for r in await store.running_batches(0)] == [("other", "d"), ("ns", "a")]
    assert [r.job_id for r in await store.running_batches(None, "ns")] == ["a"]
    assert await store.running_batches(1) == []
    # a job closes; the shard moves and the old owner's writes are refused
    await store.save_batch(0, range_id, BatchRow("ns", "a", 0, False, 10, 40, b"a2"), create=False)
    assert [r.job_id for r in await store.running_batches(None, "ns")] == []
    assert [r.job_id for r in await store.list_batches("ns", None, 10)] == ["a", "c", "b"]
    await store.acquire_shard(0, "another")
    with pytest.raises(ShardOwnershipLost):
        await store.save_batch(0, range_id, BatchRow("ns", "a", 0, True, 10, 2**63 - 1, b"a3"), create=False)
    assert (await store.get_batch("ns", "a")) == BatchRow("ns", "a", 0, False, 10, 40, b"a2")
