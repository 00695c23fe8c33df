"""History branches in the SQLite store: reads through ancestors, the migration that added branch ids, deletion."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.history.branches import first_branch, fork
from tempyral.persistence import sqlite as sqlite_module
from tempyral.persistence.schema import MIGRATIONS, CopyRows
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import HistoryWrite, Transaction
from tempyral.proto.internal_pb2 import HistoryBranch

# The first migration that knows history branches; a database made by the code before it has MIGRATIONS[:BRANCHES].
BRANCHES = next(
    i for i, m in enumerate(MIGRATIONS) if any(isinstance(s, CopyRows) and s.source == "history" for s in m)
)


def batch(first: int, last: int, mark: int) -> bytes:
    """Events first..last; `mark` (as the task id) says which branch wrote them."""
    return history.History(
        events=[history.HistoryEvent(event_id=i, task_id=mark) for i in range(first, last + 1)]
    ).SerializeToString()


def write(first: int, last: int, mark: int, branch_id: str = "", run_id: str = "r1") -> HistoryWrite:
    return HistoryWrite("ns", run_id, first, last, batch(first, last, mark), branch_id=branch_id)


async def events(
    store: SqliteStore, first: int, next_: int, branch: HistoryBranch | None = None, run_id: str = "r1"
) -> list[tuple[int, int]]:
    """(event id, mark) of the events in [first, next_), filtered by id as the engine's callers do."""
    out: list[tuple[int, int]] = []
    for blob in await store.read_history("ns", run_id, first, next_, branch):
        out.extend((e.event_id, e.task_id) for e in history.History.FromString(blob).events)
    return [(i, mark) for i, mark in out if first <= i < next_]


# The run's first branch r1 has events 1..9 (mark 1) in batches 1..3, 4..7, 8..9: the second straddles event 5.
# b forks r1 at 5 and has 6..8 (mark 2) in one batch, which straddles event 7; c forks b at 7 and has 8..10
# (mark 3); d forks c at 3 (inside r1's range) and has 4..5 (mark 4).
R1 = [(i, 1) for i in range(1, 10)]
B_BRANCH = fork(first_branch("r1"), 5, "b")
C_BRANCH = fork(B_BRANCH, 7, "c")
D_BRANCH = fork(C_BRANCH, 3, "d")
B = [*R1[:5], (6, 2), (7, 2), (8, 2)]
C = [*R1[:5], (6, 2), (7, 2), (8, 3), (9, 3), (10, 3)]
D = [*R1[:3], (4, 4), (5, 4)]


async def write_branches(store: SqliteStore) -> int:
    range_id = await store.acquire_shard(0, "me")
    rows = [write(1, 3, 1), write(4, 7, 1), write(8, 9, 1)]
    rows += [write(6, 8, 2, "b"), write(8, 10, 3, "c"), write(4, 5, 4, "d")]
    await store.commit(Transaction(0, range_id, history=rows))
    return range_id


@pytest.mark.asyncio(loop_scope="function")
async def test_each_branch_reads_whole(store: SqliteStore) -> None:
    await write_branches(store)
    assert await events(store, 1, 100) == R1
    assert await events(store, 1, 100, first_branch("r1")) == R1
    assert await events(store, 1, 100, B_BRANCH) == B
    assert await events(store, 1, 100, C_BRANCH) == C
    assert await events(store, 1, 100, D_BRANCH) == D


@pytest.mark.asyncio(loop_scope="function")
async def test_each_branch_reads_in_part(store: SqliteStore) -> None:
    await write_branches(store)
    for branch, expected in ((None, R1), (B_BRANCH, B), (C_BRANCH, C), (D_BRANCH, D)):
        for first in range(1, 12):
            for next_ in range(first, 12):
                want = [e for e in expected if first <= e[0] < next_]
                assert await events(store, first, next_, branch) == want, (branch, first, next_)


@pytest.mark.asyncio(loop_scope="function")
async def test_ancestor_batches_are_trimmed_at_the_fork_point(store: SqliteStore) -> None:
    await write_branches(store)
    blobs = await store.read_history("ns", "r1", 1, 9, B_BRANCH)
    got = [[e.event_id for e in history.History.FromString(b).events] for b in blobs]
    assert got == [[1, 2, 3], [4, 5], [6, 7, 8]]  # r1's 4..7 loses 6 and 7, which are r1's own
    assert blobs[0] == batch(1, 3, 1)  # a batch inside its range is returned as stored
    # without ancestors, stored batches come back as they are (callers filter by event id)
    assert await store.read_history("ns", "r1", 5, 6) == [batch(4, 7, 1)]


@pytest.mark.asyncio(loop_scope="function")
async def test_deleting_one_branch_leaves_the_others(store: SqliteStore) -> None:
    range_id = await write_branches(store)
    assert await store.delete_history_branch("r1", "d") == 1
    assert await events(store, 1, 100, D_BRANCH) == R1[:3]  # only what d read from r1 is left
    assert await events(store, 1, 100) == R1
    assert await events(store, 1, 100, B_BRANCH) == B
    assert await events(store, 1, 100, C_BRANCH) == C
    assert await store.delete_history_branch("r1", "d") == 0
    # deleting the execution deletes every branch of the run, and no other run's history
    await store.commit(Transaction(0, range_id, history=[write(1, 2, 9, run_id="r2")]))
    await store.delete_execution(0, range_id, "ns", "w", "r1")
    for branch in (None, B_BRANCH, C_BRANCH):
        assert await store.read_history("ns", "r1", 1, 100, branch) == []
    assert await events(store, 1, 100, run_id="r2") == [(1, 9), (2, 9)]


def old_database(path: Path, rows: list[tuple[str, str, int, int, bytes]]) -> None:
    """A database file as the code before history branches left it, with these history rows."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for migration in MIGRATIONS[:BRANCHES]:
        for statement in migration:
            assert isinstance(statement, str)
            conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (?)", (BRANCHES,))
    conn.executemany(
        "INSERT INTO history (namespace_id, run_id, first_event_id, last_event_id, data) VALUES (?, ?, ?, ?, ?)", rows
    )
    conn.execute("DELETE FROM history WHERE run_id='gone'")  # gaps in the rowids
    conn.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_an_existing_database_is_migrated_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.db"
    rows = [("ns", "r1", 1, 3, batch(1, 3, 1)), ("ns", "gone", 1, 1, b"x"), ("ns", "r1", 4, 7, batch(4, 7, 1))]
    rows += [("ns", "gone", 2, 2, b"x"), ("ns", "r2", 1, 2, batch(1, 2, 5)), ("ns", "r1", 8, 9, batch(8, 9, 1))]
    old_database(path, rows)
    monkeypatch.setattr(sqlite_module, "COPY_CHUNK", 2)
    monkeypatch.setattr(sqlite_module, "COPY_PROGRESS_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger=sqlite_module.__name__)
    store = SqliteStore(str(path))
    await store.open()
    try:
        assert await events(store, 1, 100) == R1
        assert await events(store, 1, 100, first_branch("r1")) == R1
        assert await events(store, 1, 100, run_id="r2") == [(1, 5), (2, 5)]
        # the migrated history forks like a new one
        range_id = await store.acquire_shard(0, "me")
        await store.commit(Transaction(0, range_id, history=[write(6, 8, 2, "b")]))
        assert await events(store, 1, 100, B_BRANCH) == B
        assert await events(store, 1, 100) == R1
    finally:
        await store.close()
    messages = [r.getMessage() for r in caplog.records]
    assert "copying 4 rows of table history" in messages
    assert any(m.startswith("copied 2 of 4 rows of table history") for m in messages)
    assert any(m.startswith("copied 4 rows of table history") for m in messages)
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (len(MIGRATIONS),)
    columns = conn.execute("PRAGMA table_info(history)").fetchall()  # (cid, name, type, notnull, default, pk)
    assert [c[1] for c in sorted((c for c in columns if c[5]), key=lambda c: c[5])] == [
        "run_id",
        "branch_id",
        "first_event_id",
    ]
    tables = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name LIKE 'history%'").fetchall()
    assert tables == [("history",)]
    conn.close()


@pytest.mark.asyncio(loop_scope="function")
async def test_a_failed_migration_leaves_the_database_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.db"
    old_database(path, [("ns", "r1", 1, 3, batch(1, 3, 1))])
    broken = [*MIGRATIONS[:BRANCHES], [*MIGRATIONS[BRANCHES], "SELECT no_such_function()"]]
    monkeypatch.setattr(sqlite_module, "MIGRATIONS", broken)
    with pytest.raises(Exception, match="no_such_function"):
        await SqliteStore(str(path)).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (BRANCHES,)
    assert conn.execute("SELECT run_id, first_event_id FROM history").fetchall() == [("r1", 1)]
    assert "branch_id" not in [r[1] for r in conn.execute("PRAGMA table_info(history)")]
    conn.close()
