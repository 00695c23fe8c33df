"""Several tempyral nodes of one cluster, each its own process and ports, sharing one PostgreSQL database that the
test starts itself (tests/support/postgres.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.ci import cannot_run
from tests.support.postgres import PostgresServer, why_unavailable
from tests.support.servers import ServerProcess, free_port

# The default: a killed node's shards move within seconds; a busy machine does not make live nodes look dead.
MEMBERSHIP_TIMEOUT_S = 5.0


def tempyral_node(db_url: str, name: str, extra: list[str] | None = None, shards: int = 8) -> ServerProcess:
    """`tempyral server start --db URL --ip 127.0.0.1 --port P --http-port H` (the issue's interface)."""
    port, http_port = free_port(), free_port()
    command = [sys.executable, "-m", "tempyral", "server", "start", "--db", db_url]
    command += ["--ip", "127.0.0.1", "--port", str(port), "--http-port", str(http_port), "--headless"]
    command += ["--node-name", name, "--shards", str(shards), "--log-level", "info"]
    command += ["--membership-timeout", str(MEMBERSHIP_TIMEOUT_S)]
    command += list(extra or [])
    proc = ServerProcess(command, port, f"tempyral-{name}")
    proc.http_port = http_port
    proc.wait_until_serving = True
    return proc


@contextmanager
def postgres() -> Iterator[PostgresServer]:
    reason = why_unavailable()
    if reason is not None:
        cannot_run(reason)
    pg = PostgresServer()
    pg.start()
    try:
        yield pg
    finally:
        pg.stop()


@contextmanager
def running_nodes(db_url: str, names: list[str], extra: list[str] | None = None) -> Iterator[list[ServerProcess]]:
    nodes: list[ServerProcess] = []
    try:
        for name in names:
            nodes.append(tempyral_node(db_url, name, extra).start())
        yield nodes
    finally:
        for node in nodes:
            node.stop()
