"""Starting the server wrong: one line that says what is wrong, exit status 1, no traceback, and nothing
touched: a running server on the same database keeps working, a database file is not created by a start
that fails."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from temporalio.client import Client

from tests.conftest import within
from tests.support.servers import ServerProcess, free_port, tempyral


def start_dev(*args: str) -> subprocess.CompletedProcess[str]:
    """A start that is expected to fail at once (a bounded wait, should it not)."""
    command = [sys.executable, "-m", "tempyral", "server", "start-dev", "--headless", "--log-level", "warn", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start printed."""
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("tempyral: error: ")
    return lines[0]


@dataclass
class Running:
    server: ServerProcess
    db: Path


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    db = tmp_path_factory.mktemp("running") / "held.db"
    proc = tempyral(str(db), extra=["--headless"]).start()
    yield Running(proc, db)
    proc.stop()


async def still_writes(server: ServerProcess) -> None:
    client = await Client.connect(server.address)
    handle = await within(client.start_workflow("Any", id=f"w-{uuid.uuid4().hex}", task_queue="nobody"))
    await within(handle.signal("poke"))
    assert (await within(handle.describe())).status is not None


async def test_a_second_server_on_the_same_database_is_refused_and_the_first_keeps_writing(running: Running) -> None:
    line = refused(start_dev("--port", str(free_port()), "--http-port", str(free_port()), "-f", str(running.db)))
    assert "is in use by another tempyral server" in line
    await still_writes(running.server)  # its shards were not taken over


async def test_a_port_in_use_is_named_and_the_start_leaves_no_trace(running: Running, tmp_path: Path) -> None:
    server = running.server
    fresh = tmp_path / "never.db"
    line = refused(start_dev("--port", str(server.port), "-f", str(fresh)))
    assert f"cannot listen on 127.0.0.1:{server.port} for the gRPC API: Address already in use" in line
    assert not fresh.exists()
    assert server.http_port is not None
    line = refused(start_dev("--port", str(free_port()), "--http-port", str(server.http_port), "-f", str(fresh)))
    assert f"127.0.0.1:{server.http_port} for the HTTP API: Address already in use" in line
    assert not fresh.exists()
    # The same database, with the gRPC port taken: refused before the database is touched.
    line = refused(start_dev("--port", str(server.port), "-f", str(running.db)))
    assert "cannot listen on" in line
    await still_writes(server)


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    line = refused(start_dev("--port", str(free_port()), "-f", str(tmp_path / "no" / "such" / "x.db")))
    assert f"the directory {tmp_path / 'no' / 'such'} does not exist" in line


def test_a_place_the_server_cannot_write_is_named() -> None:
    # sysfs refuses new files to everyone, root included (Permission denied, or Read-only file system where it
    # is mounted read-only).
    line = refused(start_dev("--port", str(free_port()), "-f", "/sys/tempyral-test.db"))
    assert "cannot open database /sys/tempyral-test.db for writing: " in line


def test_a_damaged_database_is_named_and_left_as_it_was(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.db"
    content = b"not a database " * 1000
    damaged.write_bytes(content)
    line = refused(start_dev("--port", str(free_port()), "-f", str(damaged)))
    assert "is not a tempyral database or is damaged" in line
    assert damaged.read_bytes() == content


async def test_an_empty_file_becomes_a_new_database_and_says_so(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    proc = tempyral(str(empty), extra=["--headless", "--log-level", "info"]).start()
    try:
        await still_writes(proc)
        assert f"{empty} is empty: creating a new database there" in proc.log_tail(20_000)
    finally:
        proc.stop()


def test_the_number_of_shards_cannot_change(running: Running) -> None:
    line = refused(start_dev("--port", str(free_port()), "--shards", "8", "-f", str(running.db)))
    assert "is in use by another tempyral server" in line  # the lock comes first
    line = refused(start_dev("--port", str(free_port()), "--shards", "8", "-f", str(copy_of(running.db))))
    assert line.endswith("has 4 history shards, and their number cannot change: start with --shards 4")


def copy_of(db: Path) -> Path:
    """A copy of a live database, as SQLite's backup makes it (the WAL included)."""
    copy = db.with_name(f"copy-{uuid.uuid4().hex}.db")
    with closing(sqlite3.connect(db)) as source, closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    return copy


def test_version() -> None:
    done = subprocess.run([sys.executable, "-m", "tempyral", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith("tempyral 0.1.0 (Temporal server 1.32.0 API)")
