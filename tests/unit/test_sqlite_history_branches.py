"""The SQLite migration that added history branch ids. Reads through ancestors and deletion by branch are part of
the store contract (tests/unit/test_memory_store_contract.py), which runs against SqliteStore too."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from tempyral.persistence import sql_ops as sql_ops_module
from tempyral.persistence.branches import first_branch
from tempyral.persistence.schema import MIGRATIONS, CopyRows
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import Transaction
from tests.support.branch_histories import B_BRANCH, R1, B, batch, events, write

# The first migration that knows history branches; a database made by the code before it has MIGRATIONS[:BRANCHES].
BRANCHES = next(
    i for i, m in enumerate(MIGRATIONS) if any(isinstance(s, CopyRows) and s.source == "history" for s in m)
)


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
    monkeypatch.setattr(sql_ops_module, "COPY_CHUNK", 2)
    monkeypatch.setattr(sql_ops_module, "PROGRESS_SECONDS", 0.0)
    caplog.set_level(logging.INFO, logger=sql_ops_module.__name__)
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
    monkeypatch.setattr(sql_ops_module, "MIGRATIONS", broken)
    with pytest.raises(Exception, match="no_such_function"):
        await SqliteStore(str(path)).open()
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchone() == (BRANCHES,)
    assert conn.execute("SELECT run_id, first_event_id FROM history").fetchall() == [("r1", 1)]
    assert "branch_id" not in [r[1] for r in conn.execute("PRAGMA table_info(history)")]
    conn.close()
