"""Instants past 2262, where 64-bit nanoseconds end, up to the last one of the year 9999 (which the API
accepts): stored without overflow, indexed and listed."""

from __future__ import annotations

import json

import pytest
from temporalio.api.common.v1 import Payload

from tempyral.common.clock import INT64_MAX, INT64_MIN, int64_ns, timestamp
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import TaskRow, Transaction, VisibilityQuery, VisibilityRow
from tempyral.proto.internal_pb2 import ExecutionState
from tempyral.visibility.query import parse_rfc3339_ns
from tempyral.visibility.records import execution_info, row_from_state
from tempyral.visibility.service import rfc3339_nano


def test_int64_ns_saturates() -> None:
    assert int64_ns(2**70) == INT64_MAX and int64_ns(-(2**70)) == INT64_MIN and int64_ns(5) == 5


def test_rows_keep_instants_past_2262_as_the_last_one_a_column_holds() -> None:
    far = 2**70
    assert TaskRow(1, 1, far, b"").visibility_ns == INT64_MAX
    row = VisibilityRow("ns", "r", "w", "T", 1, -far, far, far, "q", 1, 1, b"", b"", "{}")
    assert (row.start_time, row.execution_time, row.close_time) == (INT64_MIN, INT64_MAX, INT64_MAX)


def _state_with_far_times() -> ExecutionState:
    s = ExecutionState(namespace_id="ns", workflow_id="w", run_id="r")
    s.start.workflow_type.name = "T"
    s.start.task_queue.name = "q"
    s.start_time.CopyFrom(timestamp(1_700_000_000 * 10**9))
    # a retry ~292 years ahead (the longest delay the reference schedules), closed later still
    s.execution_time.CopyFrom(timestamp(1_700_000_000 * 10**9 + INT64_MAX))
    s.close_time.CopyFrom(timestamp(parse_rfc3339_ns("9999-12-31T23:59:59.999999999Z")))
    for name, value, kind in (
        ("VisTime", "9999-12-31T23:59:59.999999999Z", b"Datetime"),
        ("VisTimes", ["2024-01-01T12:00:00.9996+02:00"], b"Datetime"),
        ("VisKeyword", "9999-12-31T23:59:59.999999999Z", b"Keyword"),
    ):
        s.search_attributes.indexed_fields[name].CopyFrom(
            Payload(metadata={"encoding": b"json/plain", "type": kind}, data=json.dumps(value).encode())
        )
    return s


def test_datetime_values_are_indexed_in_utc_to_the_millisecond() -> None:
    row = row_from_state(_state_with_far_times(), 3)
    assert json.loads(row.search_attributes_json) == {
        "VisTime": "9999-12-31 23:59:59.999+00:00",
        "VisTimes": ["2024-01-01 10:00:00.999+00:00"],
        "VisKeyword": "9999-12-31T23:59:59.999999999Z",  # not a Datetime: kept as given
    }


def test_page_token_times_before_the_year_1000_are_written_with_four_digits() -> None:
    assert rfc3339_nano(parse_rfc3339_ns("0001-01-02T00:00:00Z")) == "0001-01-02T00:00:00Z"


@pytest.mark.asyncio(loop_scope="function")
async def test_the_store_takes_tasks_and_visibility_rows_of_the_far_future(store: SqliteStore) -> None:
    range_id = await store.acquire_shard(0, "me")
    row = row_from_state(_state_with_far_times(), 3)
    far_task = TaskRow(2, 7, 1_700_000_000 * 10**9 + INT64_MAX, b"task")
    await store.commit(Transaction(0, range_id, tasks=[far_task], visibility=[row]))
    assert await store.load_tasks(0, 2) == [(7, b"task")]
    [listed] = await store.list_visibility("ns", VisibilityQuery())
    info = execution_info(listed)
    assert info.start_time == timestamp(1_700_000_000 * 10**9)
    assert info.execution_time == info.close_time == timestamp(INT64_MAX)
