"""The Store contract (tests/unit/test_memory_store_contract.py) run against PostgresStore, each test on a fresh
database of the session's PostgreSQL server."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tempyral.persistence.postgres import PostgresStore
from tempyral.persistence.store import Store
from tests.unit import test_memory_store_contract as contract

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="function")
async def store(postgres_url: str) -> AsyncIterator[Store]:
    s = PostgresStore(postgres_url)
    await s.open()
    yield s
    await s.close()


# Every contract test that takes a store, collected here with the fixture above.
for _name, _test in vars(contract).items():
    if _name.startswith("test_") and "store" in inspect.signature(_test).parameters:
        globals()[_name] = _test
