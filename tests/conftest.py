"""Shared fixtures: a tempyral server for the whole session, and SDK clients on it."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.support.servers import ServerProcess, reference, tempyral


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("tempyral") / "session.db"
    proc = tempyral(
        str(db), extra=["--search-attribute", "CustomerId=Keyword", "--search-attribute", "Priority=Int"]
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def reference_server() -> Iterator[ServerProcess]:
    proc = reference(extra=["--search-attribute", "CustomerId=Keyword", "--search-attribute", "Priority=Int"]).start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="session")
async def client(server: ServerProcess) -> AsyncIterator[Client]:
    yield await Client.connect(server.address)


@pytest.fixture
def task_queue() -> str:
    return f"tq-{uuid.uuid4().hex}"


def new_id(prefix: str = "wf") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


async def within(awaitable: Any, timeout: float = 60.0) -> Any:
    """Fail instead of hanging when a server never answers."""
    return await asyncio.wait_for(awaitable, timeout)
