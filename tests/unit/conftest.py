"""Fixtures the unit tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from tempyral.persistence.sqlite import SqliteStore
from tests.support.history_harness import Harness, open_harness


@pytest_asyncio.fixture(loop_scope="function")
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A SQLite store in a fresh file, opened (and its lock taken) for the test."""
    s = SqliteStore(str(tmp_path / "t.db"))
    await s.open()
    yield s
    await s.close()


@pytest_asyncio.fixture(loop_scope="function")
async def h() -> AsyncIterator[Harness]:
    """The history service over an in-memory store, one shard (tests/support/history_harness.py)."""
    async with open_harness() as harness:
        yield harness
