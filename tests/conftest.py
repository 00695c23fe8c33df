"""Shared fixtures: a tempyral server for the whole session, and SDK clients on it."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client

from tests.support.postgres_fixtures import postgres_server, postgres_url  # noqa: F401 (fixtures)
from tests.support.servers import ServerProcess, reference, tempyral

# Custom search attributes registered on both servers: the first two are used across the tests, the
# Vis* ones (one of each type) by tests/differential/test_visibility_queries.py.
SEARCH_ATTRIBUTES = [
    "CustomerId=Keyword",
    "Priority=Int",
    "VisKeyword=Keyword",
    "VisInt=Int",
    "VisDouble=Double",
    "VisBool=Bool",
    "VisTime=Datetime",
    "VisTags=KeywordList",
    "VisText=Text",
]
SEARCH_ATTRIBUTE_FLAGS = [arg for sa in SEARCH_ATTRIBUTES for arg in ("--search-attribute", sa)]
# A snapshot of the shared acceptance suite: tests/integration/test_conformance.py runs it in its own pytest.
collect_ignore = ["shared_conformance"]
# Where completion callbacks and external Nexus endpoints may point, the same on both servers: test
# listeners on 127.0.0.1 over plain http, localhost over https only (for the refusals on the session servers).
CALLBACK_ADDRESSES = [("127.0.0.1:*", True), ("localhost:*", False)]
TEMPYRAL_CALLBACK_FLAGS = [
    arg
    for pattern, insecure in CALLBACK_ADDRESSES
    for arg in ("--callback-allowed-address", f"{pattern},allow-insecure" if insecure else pattern)
]
REFERENCE_CALLBACK_FLAGS = [
    "--dynamic-config-value",
    "callback.allowedAddresses="
    + json.dumps([{"Pattern": pattern, "AllowInsecure": insecure} for pattern, insecure in CALLBACK_ADDRESSES]),
]


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("tempyral") / "session.db"
    proc = tempyral(str(db), extra=SEARCH_ATTRIBUTE_FLAGS + TEMPYRAL_CALLBACK_FLAGS).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def reference_server() -> Iterator[ServerProcess]:
    proc = reference(extra=SEARCH_ATTRIBUTE_FLAGS + REFERENCE_CALLBACK_FLAGS).start()
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
