"""PostgresStore beyond the contract: schema migrations (a new database, a second start, several nodes starting at
once, a newer schema), and faults (a database unreachable at start, a missing database or user, a database that
stops answering or goes away mid-run and comes back)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator

import pytest

from tempyral.common.errors import StartupError, StorageUnavailable
from tempyral.persistence.postgres import PostgresStore, describe_url
from tempyral.persistence.schema import MIGRATIONS
from tempyral.persistence.store import CurrentWrite, ExecutionWrite, HistoryWrite, TaskRow, Transaction
from tests.support.ci import cannot_run
from tests.support.postgres import PostgresServer, why_unavailable
from tests.support.servers import free_port


def create(range_id: int, run: str) -> Transaction:
    return Transaction(
        0,
        range_id,
        executions=[ExecutionWrite("ns", f"w-{run}", run, b"state", 1, 0)],
        current=[CurrentWrite("ns", f"w-{run}", run, 1, "req", None)],
        history=[HistoryWrite("ns", run, 1, 2, b"events")],
        tasks=[TaskRow(1, abs(hash(run)) % 1_000_000, 0, b"task")],
    )


# ---------------------------------------------------------------------- migrations
async def test_an_empty_database_migrates_and_a_second_start_changes_nothing(
    postgres_server: PostgresServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = postgres_server.create_database()
    caplog.set_level(logging.INFO)
    store = PostgresStore(url)
    await store.open()
    await store.close()
    applied = [r.getMessage() for r in caplog.records if r.getMessage().startswith("applying schema migration")]
    assert applied == [f"applying schema migration {n}" for n in range(1, len(MIGRATIONS) + 1)]
    database = url.rsplit("/", 1)[1]
    assert postgres_server.psql("SELECT version FROM schema_version", database).split() == [str(len(MIGRATIONS))]
    caplog.clear()
    store = PostgresStore(url)
    await store.open()
    try:
        assert not [r for r in caplog.records if r.getMessage().startswith("applying schema migration")]
        assert await store.get_or_set_metadata("k", "v") == "v"
    finally:
        await store.close()
    # 64-bit integers, bytes as BYTEA, text in byte order
    columns = postgres_server.psql(
        "SELECT column_name, data_type, collation_name FROM information_schema.columns "
        "WHERE table_name = 'tasks' ORDER BY ordinal_position",
        database,
    ).split()
    assert columns == [
        "shard_id|bigint|",
        "category|bigint|",
        "task_id|bigint|",
        "visibility_ns|bigint|",
        "data|bytea|",
    ]
    assert "run_id|text|C" in postgres_server.psql(
        "SELECT column_name, data_type, collation_name FROM information_schema.columns WHERE table_name = 'history'",
        database,
    )


async def test_several_stores_opening_a_new_database_at_once_all_succeed(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    stores = [PostgresStore(url) for _ in range(4)]
    await asyncio.wait_for(asyncio.gather(*(s.open() for s in stores)), 60)
    try:
        ranges = await asyncio.gather(*(s.acquire_shard(0, f"node-{n}") for n, s in enumerate(stores)))
        assert sorted(ranges) == [1, 2, 3, 4]  # acquiring at once: every node got a range of its own
    finally:
        for s in stores:
            await s.close()


async def test_a_newer_schema_is_refused(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database()
    store = PostgresStore(url)
    await store.open()
    await store.close()
    postgres_server.psql("UPDATE schema_version SET version = 999", url.rsplit("/", 1)[1])
    with pytest.raises(StartupError, match="schema version 999, written by a newer tempyral"):
        await PostgresStore(url).open()


# ---------------------------------------------------------------------- faults at start
async def test_an_unreachable_database_is_retried_then_refused(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()  # nothing listens there
    caplog.set_level(logging.WARNING)
    started = time.monotonic()
    with pytest.raises(StartupError, match=f"cannot reach the database at 127.0.0.1:{port} within 1.5 s"):
        await PostgresStore(f"postgresql://tempyral:secret@127.0.0.1:{port}/db", connect_timeout_s=1.5).open()
    assert 1.4 < time.monotonic() - started < 15
    retries = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert retries and all(m.startswith(f"cannot reach the database at 127.0.0.1:{port}: ") for m in retries)
    assert not any("secret" in r.getMessage() for r in caplog.records)


async def test_a_missing_database_or_user_is_refused_at_once(postgres_server: PostgresServer) -> None:
    started = time.monotonic()
    with pytest.raises(StartupError, match=r"database 'nosuchdb' does not exist at 127\.0\.0\.1"):
        await PostgresStore(postgres_server.url("nosuchdb"), connect_timeout_s=30).open()
    url = postgres_server.url("postgres").replace("postgres@", "nobody@")
    with pytest.raises(StartupError, match="refused user 'nobody'"):
        await PostgresStore(url, connect_timeout_s=30).open()
    assert time.monotonic() - started < 10  # no retries


def test_urls_are_described_without_their_password() -> None:
    assert describe_url("postgresql://u:pw@h:5/db?pool_size=3") == "postgresql://u@h:5/db?pool_size=3"
    assert describe_url("postgresql://u@h/db") == "postgresql://u@h/db"


# ---------------------------------------------------------------------- faults while running
@pytest.fixture(scope="module")
def own_server() -> Iterator[PostgresServer]:
    """A server of this module's own: the tests stop it."""
    reason = why_unavailable()
    if reason is not None:
        cannot_run(reason)
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


async def test_a_database_that_does_not_answer_fails_the_commit_whole(own_server: PostgresServer) -> None:
    url = own_server.create_database()
    store = PostgresStore(url, statement_timeout_s=1.0)
    await store.open()
    try:
        range_id = await store.acquire_shard(0, "me")
        # another session holds the executions table: the commit writes its current row, then waits there
        holder = asyncio.create_task(asyncio.to_thread(own_server.psql, _hold_lock(), url.rsplit("/", 1)[1]))
        await asyncio.sleep(0.5)
        with pytest.raises(StorageUnavailable, match="cannot answer now"):
            await asyncio.wait_for(store.commit(create(range_id, "r1")), 20)
        await asyncio.wait_for(holder, 30)
        assert await store.get_current("ns", "w-r1") is None  # nothing half-written
        await store.commit(create(range_id, "r1"))
        assert await store.get_current("ns", "w-r1") is not None
    finally:
        await store.close()


def _hold_lock() -> str:
    return "BEGIN; LOCK TABLE executions IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3); COMMIT;"


async def test_a_database_that_goes_away_and_comes_back(own_server: PostgresServer) -> None:
    store = PostgresStore(own_server.create_database(), statement_timeout_s=5.0)
    await store.open()
    try:
        range_id = await store.acquire_shard(0, "me")
        await store.commit(create(range_id, "before"))
        own_server.pause()
        for run in ("during-1", "during-2"):
            with pytest.raises(StorageUnavailable):
                await asyncio.wait_for(store.commit(create(range_id, run)), 30)
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(store.get_current("ns", "w-before"), 30)
        own_server.resume()
        # the same store serves again: its pool reconnects
        deadline = time.monotonic() + 30
        while True:
            try:
                await store.commit(create(range_id, "after"))
                break
            except StorageUnavailable:
                assert time.monotonic() < deadline, "the store did not come back"
                await asyncio.sleep(0.2)
        for run, there in (("before", True), ("during-1", False), ("during-2", False), ("after", True)):
            assert (await store.get_current("ns", f"w-{run}") is not None) == there, run
    finally:
        await store.close()
