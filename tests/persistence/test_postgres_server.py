"""tempyral on PostgreSQL as a user runs it: `tempyral server start --db postgresql://...` and `start-dev --db ...`
run workflows through the official SDK, keep them across a restart, never log the URL's password, and a database
that cannot be reached makes the start fail with one clear line after the bound."""

from __future__ import annotations

import subprocess
import sys
import time

from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.postgres import PostgresServer, tempyral_on_postgres
from tests.support.servers import ServerProcess, free_port
from tests.support.workflows import HelloWorkflow, greet


def node(command: str, url: str) -> ServerProcess:
    return tempyral_on_postgres(url, command)


async def run_hello(address: str, task_queue: str, workflow_id: str) -> str:
    client = await Client.connect(address)
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        result: str = await within(
            client.execute_workflow(HelloWorkflow.run, "postgres", id=workflow_id, task_queue=task_queue)
        )
        return result


async def test_server_start_runs_workflows_and_keeps_them(postgres_server: PostgresServer, task_queue: str) -> None:
    url = postgres_server.create_database().replace("postgres@", "postgres:hunter2@")  # trust: the password is unused
    proc = node("start", url).start()
    workflow_id = new_id()
    try:
        assert await run_hello(proc.address, task_queue, workflow_id) == "Hello, postgres!"
    finally:
        proc.stop()
    proc.start()  # the same database: the workflow is there
    try:
        client = await Client.connect(proc.address)
        described = await within(client.get_workflow_handle(workflow_id).describe())
        assert described.status is not None and described.status.name == "COMPLETED"
        assert [w.id async for w in client.list_workflows(f"WorkflowId = '{workflow_id}'")] == [workflow_id]
    finally:
        proc.stop()
    log = proc.log_tail(200_000)
    assert "hunter2" not in log
    assert f"(database: {url.replace(':hunter2', '')})" in log


async def test_start_dev_takes_a_postgres_database(postgres_server: PostgresServer, task_queue: str) -> None:
    proc = node("start-dev", postgres_server.create_database()).start()
    try:
        assert await run_hello(proc.address, task_queue, new_id()) == "Hello, postgres!"
    finally:
        proc.stop()


def test_an_unreachable_database_fails_the_start_with_one_line() -> None:
    port = free_port()
    command = [sys.executable, "-m", "tempyral", "server", "start", "--ip", "127.0.0.1", "--port", str(free_port())]
    command += ["--http-port", str(free_port()), "--headless", "--db-connect-timeout", "2"]
    command += ["--db", f"postgresql://tempyral:pw@127.0.0.1:{port}/db"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert f"tempyral: error: cannot reach the database at 127.0.0.1:{port} within 2 s" in done.stderr
    assert 2 <= time.monotonic() - started < 45
    assert f"cannot reach the database at 127.0.0.1:{port}: " in done.stderr + done.stdout  # the retries' lines
    assert ":pw@" not in done.stderr + done.stdout
