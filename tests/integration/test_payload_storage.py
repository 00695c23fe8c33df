"""A workflow's input is stored once per run, in its start event: the execution's state keeps no copy (it did,
doubling the database for big inputs), and a retry run still starts with the same input, memo and search
attributes."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from temporalio.client import Client
from temporalio.common import RetryPolicy, SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.worker import Worker

from tests.conftest import within
from tests.support.servers import tempyral
from tests.support.workflows import EchoLengthOnSecondAttempt

CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")


async def test_the_input_is_stored_in_each_start_event_only_and_a_retry_keeps_it(tmp_path: Path) -> None:
    db = tmp_path / "payloads.db"
    marker = f"input-{uuid.uuid4().hex}"
    data = marker + "x" * 300_000
    proc = tempyral(str(db), extra=["--headless", "--search-attribute", "CustomerId=Keyword"]).start()
    try:
        client = await Client.connect(proc.address)
        task_queue = f"tq-{uuid.uuid4().hex}"
        async with Worker(client, task_queue=task_queue, workflows=[EchoLengthOnSecondAttempt]):
            handle = await client.start_workflow(
                EchoLengthOnSecondAttempt.run,
                data,
                id=f"wf-{uuid.uuid4().hex}",
                task_queue=task_queue,
                retry_policy=RetryPolicy(maximum_attempts=2),
                memo={"note": "kept"},
                search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER, "c-1")]),
            )
            assert await within(handle.result()) == len(data)
        second = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
        assert second.attempt == 2
        described = await handle.describe()
        assert await described.memo_value("note") == "kept"
        assert described.typed_search_attributes.get(CUSTOMER) == "c-1"
    finally:
        proc.stop()

    with sqlite3.connect(db) as conn:
        needle = marker.encode()
        states = [row[0] for row in conn.execute("SELECT state FROM executions")]
        batches = [row[0] for row in conn.execute("SELECT data FROM history")]
    assert len(states) == 2  # the failed run and its retry
    assert not any(needle in state for state in states)
    assert sum(needle in batch for batch in batches) == 2  # each run's start event
