"""Pytest fixtures over tests/support/postgres.py: one PostgreSQL server for the session, a fresh database per test.
Where PostgreSQL cannot run, the tests that need it skip saying why (and fail with CI=true)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.ci import cannot_run
from tests.support.postgres import PostgresServer, why_unavailable


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = why_unavailable()
    if reason is not None:
        cannot_run(reason)
    server = PostgresServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server."""
    return postgres_server.create_database()
