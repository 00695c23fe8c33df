"""A full disk: clients get UNAVAILABLE (which they retry), the log gets a line per kind of failure and interval
instead of a traceback per failed write, timers back off, and once the server has room again (here: restarted
without the size cap) the workflows it accepted go on, none lost.

The disk is made full with SQLite's max_page_count, which fails writes with the same SQLITE_FULL a full disk
gives."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import within
from tests.crash.crash_workflows import Ticker
from tests.support.servers import tempyral

PAGE_CAP = "max_page_count=400"  # 1.6 MB with SQLite's 4 KiB pages: the schema and a few workflows
INPUT = "x" * 100_000
LOAD_S = 8.0  # how long the full disk is kept under load


async def test_a_full_disk_is_reported_briefly_and_loses_nothing(tmp_path: Path) -> None:
    db = tmp_path / "small.db"
    proc = tempyral(str(db), extra=["--headless", "--sqlite-pragma", PAGE_CAP]).start()
    task_queue = f"full-{uuid.uuid4().hex}"
    accepted: list[str] = []
    refusals: list[RPCError] = []
    try:
        client = await Client.connect(proc.address)
        async with Worker(client, task_queue=task_queue, workflows=[Ticker]):
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            full_since: float | None = None
            while full_since is None or loop.time() < full_since + LOAD_S:
                assert loop.time() < deadline, "the database never filled up"
                workflow_id = f"{task_queue}-{len(accepted) + len(refusals)}"
                try:
                    await client.start_workflow(
                        Ticker.run, INPUT, id=workflow_id, task_queue=task_queue, rpc_timeout=timedelta(seconds=5)
                    )
                    accepted.append(workflow_id)
                except RPCError as err:
                    refusals.append(err)
                    full_since = full_since or loop.time()
                await asyncio.sleep(0.05)
        log = proc.log_tail(1_000_000)
    finally:
        proc.stop()

    assert accepted, "no workflow was accepted before the disk was full"
    assert {(e.status, e.message) for e in refusals} == {
        (RPCStatusCode.UNAVAILABLE, "the database cannot take writes: database or disk is full")
    }
    assert "Traceback" not in log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    # One line per kind of failure while the interval (30 s) lasts: commits, timers, workflow tasks.
    assert 1 <= len(errors) <= 6, "\n".join(errors)

    # Room again: every accepted workflow completes, exactly once.
    proc = tempyral(str(db), extra=["--headless"]).start()
    try:
        client = await Client.connect(proc.address)
        async with Worker(client, task_queue=task_queue, workflows=[Ticker]):
            results = await within(
                asyncio.gather(*(client.get_workflow_handle(w).result() for w in accepted)), timeout=120
            )
        assert results == [len(INPUT)] * len(accepted)
    finally:
        proc.stop()
