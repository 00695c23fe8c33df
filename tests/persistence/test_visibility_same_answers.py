"""The visibility queries give the same answers on SQLite and PostgreSQL: the same rows are written to a SqliteStore
and a PostgresStore, and every filter (the list filter language), ORDER BY with paging through page tokens, count
and count with GROUP BY is run on both through the Store API and compared. The SQLite answers of the rows of
tests/unit/test_query.py are the ones that file checks against the reference's; the extra rows here add what
tells the databases apart (byte order of text, accents and case, lists in number attributes, JSON nulls, large and
fractional numbers, datetimes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio

from tempyral.common.errors import InvalidArgument
from tempyral.persistence.postgres import PostgresStore
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import Store, Transaction, VisibilityQuery, VisibilityQueryFailed, VisibilityRow
from tempyral.persistence.visibility_sql import Cursor, go_datetime_text
from tempyral.visibility.query import compile_query, parse_rfc3339_ns
from tempyral.visibility.service import decode_page_token, encode_page_token
from tests.unit.test_query import CUSTOM, ROWS, SECOND

pytestmark = pytest.mark.asyncio(loop_scope="module")


def due(text: str) -> str:
    """A Datetime value as the server stores it (records.indexed_value)."""
    ns = parse_rfc3339_ns(text)
    return go_datetime_text(ns - ns % 1_000_000)


EXTRA = [
    ("x1", "Zebra", 2, 50, 60, {"CustomerId": "Zebra", "Priority": [7], "Score": 1e20, "Flag": [False],
                                "Tags": ["ÄPFEL", "apple pie"], "Notes": "Ça va? très-bien 42"}),
    ("x2", "apple", 3, 51, 61, {"CustomerId": "apple", "Priority": -3, "Score": 0.1, "Flag": False,
                                "Due": due("1999-12-31T23:59:59.999Z"), "Tags": [], "Notes": ""}),
    ("x3", "Äpfel", 4, 52, None, {"CustomerId": "Äpfel", "Priority": None, "Score": -0.5, "Flag": True,
                                  "Due": due("2030-01-02T03:04:05.1Z"), "Tags": ["x♡y"], "Notes": "naïve café"}),
    ("x4", "ä-emoji-😀", 5, 53, 63, {"CustomerId": "😀", "Priority": 9223372036854775807, "Score": 3,
                                     "Due": due("2024-01-01T00:00:00Z"), "Tags": ["apple"], "Notes": "APPLE pie"}),
    ("x5", "wf_%!", 6, 54, 64, {"CustomerId": "a_b%c!", "Priority": 2, "Score": [2.5], "Flag": True,
                                "Tags": "apple", "Notes": ["list", "notes"]}),
    ("x6", "WF-UPPER", 1, 55, None, {"CustomerId": "", "Priority": 0, "Score": 0, "Notes": "the fox the quick"}),
]  # fmt: skip

QUERIES = [
    "",
    "CustomerId != 'alpha'",
    "NOT CustomerId = 'alpha'",
    "CustomerId = 'a\"b'",
    "CustomerId > 'Z'",
    "CustomerId < 'a'",
    "CustomerId >= 'Äpfel'",
    "CustomerId IN ('apple', 'Zebra', '😀')",
    "CustomerId NOT IN ('apple', 'Zebra')",
    "CustomerId BETWEEN 'a' AND 'b'",
    "CustomerId STARTS_WITH 'A'",
    "CustomerId STARTS_WITH 'ä'",
    "CustomerId STARTS_WITH 'a_'",
    "CustomerId NOT STARTS_WITH 'z'",
    "CustomerId = ''",
    "CustomerId IS NULL",
    "CustomerId IS NOT NULL",
    "Tags != 'red'",
    "Tags = 'BLUE SKY'",
    "Tags IN ('green', 'nope')",
    "Tags = 'äpfel'",
    "Tags = 'apple'",
    "Tags = 'pie'",
    "Tags = 'x♡y'",
    "Tags NOT IN ('apple', 'red')",
    "Tags IS NULL",
    "Notes = 'fox dog'",
    "Notes = 'uber'",
    "Notes = 'UBER'",
    "Notes != 'fox'",
    "Notes = 'ca va'",
    "Notes = 'tres bien'",
    "Notes = 'bien tres'",
    "Notes = 'naive'",
    "Notes = 'quick fox'",
    "Notes = 'fox quick'",
    "Notes = '42'",
    "Notes = 'notes'",
    "Notes = '!!'",
    "Notes IS NULL",
    "WorkflowId STARTS_WITH 'WF_'",
    "WorkflowId STARTS_WITH 'wf_%'",
    "WorkflowId NOT STARTS_WITH 'wf-'",
    "WorkflowId STARTS_WITH 'Ä'",
    "WorkflowId > 'Z'",
    "WorkflowId < 'a'",
    "Due >= '2024-01-01T00:00:00Z'",
    "Due = '2024-01-01T00:00:00Z'",
    "Due < '2024-06-01T00:00:00Z'",
    "Due > '2030-01-02T03:04:05.05Z'",
    "Due BETWEEN '1999-01-01T00:00:00Z' AND '2000-01-01T00:00:00Z'",
    "Due IS NULL",
    "Flag = true OR Score > 2",
    "Flag = false",
    "Flag != true",
    "Flag IS NULL",
    "Flag IS NOT NULL",
    "Priority > 1",
    "Priority < 1",
    "Priority = 7",
    "Priority != 7",
    "Priority >= 1.5",
    "Priority IN (1, 2, 7)",
    "Priority NOT IN (1, 2)",
    "Priority BETWEEN 0 AND 5",
    "Priority NOT BETWEEN 0 AND 5",
    "Priority = 9223372036854775807",
    "Priority IS NULL",
    "Priority IS NOT NULL",
    "Score > 0.1",
    "Score = 0.1",
    "Score >= 1e20",
    "Score < 0",
    "Score = 3",
    "Score IN (2.5, 3)",
    "CloseTime > '1970-01-01T00:00:35Z'",
    "CloseTime IS NULL",
    "ExecutionDuration = '10s'",
    "ExecutionDuration > 5",
    "HistoryLength IS NULL",
    "HistoryLength > 2.5",
    "ParentWorkflowId IS NOT NULL",
    "ExecutionStatus IN ('Running', 'TimedOut')",
    "ExecutionStatus != 'Completed'",
    "StartTime BETWEEN 20 AND 30000000000",
    "StartTime > '1970-01-01T00:00:30Z' AND (Priority > 0 OR CustomerId = 'apple')",
    "WorkflowId = 'x'' OR 1=1 --'",
    "NOT " * 31 + "CustomerId = 'alpha'",
    " OR ".join(f"Priority = {n}" for n in range(300)),
    "(" * 40 + "Tags = 'red'" + ")" * 40,
    "WorkflowId IN (" + ", ".join(f"'x{n}'" for n in range(1200)) + ", 'apple', 'wf-a')",
    "Priority NOT IN (" + ", ".join(str(n) for n in range(3, 1300)) + ")",
    "Score IN (" + ", ".join(f"{n}.5" for n in range(1200)) + ")",
]

ORDERED = [
    "ORDER BY Priority",
    "ORDER BY Priority DESC",
    "ORDER BY CustomerId DESC, StartTime ASC",
    "ORDER BY CustomerId",
    "ORDER BY StartTime ASC, WorkflowId DESC",
    "ORDER BY WorkflowId",
    "ORDER BY CloseTime",
    "ORDER BY ExecutionStatus",
    "ORDER BY Due DESC, Score",
    "ORDER BY Score",
    "ORDER BY Flag, WorkflowId",
    "Priority > 0 ORDER BY Priority DESC",
    "CustomerId IS NOT NULL ORDER BY CustomerId ASC, Due DESC",
]


def rows() -> list[VisibilityRow]:
    out = []
    for run_id, workflow_id, status, start, close, attributes in [*ROWS, *EXTRA]:
        out.append(
            VisibilityRow(
                "ns", run_id, workflow_id, "Type", status, start * SECOND, start * SECOND,
                None if close is None else close * SECOND, "tq", 3, 100, b"", b"", json.dumps(attributes),
                parent_workflow_id="wf-a" if run_id == "r2" else "",
            )
        )  # fmt: skip
    return out


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def stores(postgres_server: Any, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Store, Store]]:
    sqlite = SqliteStore(str(tmp_path_factory.mktemp("same") / "v.db"))
    postgres = PostgresStore(postgres_server.create_database())
    for store in (sqlite, postgres):
        await store.open()
        range_id = await store.acquire_shard(0, "me")
        await store.commit(Transaction(0, range_id, visibility=rows()))
        # another namespace, never listed
        await store.commit(Transaction(0, range_id, visibility=[replace(rows()[0], namespace_id="x")]))
    yield sqlite, postgres
    for store in (sqlite, postgres):
        await store.close()


async def answer(store: Store, query: str, page_size: int = 1000) -> Any:
    """Every page of the listing (run ids), or the failure's message."""
    try:
        compiled = compile_query(query, CUSTOM)
    except InvalidArgument as err:
        return ("invalid", err.message)
    out: list[str] = []
    cursor: Cursor | None = None
    for _ in range(100):
        q = VisibilityQuery(compiled.filter, "", compiled.order_by, page_size, cursor)
        try:
            page = await store.list_visibility("ns", q)
        except VisibilityQueryFailed as err:
            return ("failed", str(err))
        out += [r.run_id for r in page]
        if len(page) < page_size:
            return out
        token = encode_page_token(page[-1], ordered=bool(compiled.order_by))
        cursor = decode_page_token(token, len(compiled.order_by))
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("query", QUERIES)
async def test_filters(stores: tuple[Store, Store], query: str) -> None:
    sqlite, postgres = stores
    expected = await answer(sqlite, query)
    assert isinstance(expected, list)
    assert await answer(postgres, query) == expected


@pytest.mark.parametrize("page_size", [1, 3, 100])
@pytest.mark.parametrize("query", ORDERED)
async def test_order_by_and_pages(stores: tuple[Store, Store], query: str, page_size: int) -> None:
    sqlite, postgres = stores
    expected = await answer(sqlite, query, page_size)
    assert isinstance(expected, list) and len(expected) > 1
    assert await answer(postgres, query, page_size) == expected


@pytest.mark.parametrize("page_size", [1, 4])
async def test_default_order_pages(stores: tuple[Store, Store], page_size: int) -> None:
    sqlite, postgres = stores
    assert await answer(postgres, "", page_size) == await answer(sqlite, "", page_size)


@pytest.mark.parametrize(
    "query", ["", "GROUP BY ExecutionStatus", "Priority > 0 GROUP BY ExecutionStatus", "Notes = 'fox'"]
)
async def test_counts(stores: tuple[Store, Store], query: str) -> None:
    sqlite, postgres = stores
    compiled = compile_query(query, CUSTOM)
    expected = await sqlite.count_visibility("ns", compiled)
    assert expected and await postgres.count_visibility("ns", compiled) == expected


async def test_row_values_fail_alike(stores: tuple[Store, Store]) -> None:
    for store in stores:
        assert await answer(store, "WorkflowId = ('a', 'b')") == ("failed", "row value misused")


async def test_rows_read_back_alike(stores: tuple[Store, Store]) -> None:
    sqlite, postgres = stores
    assert await postgres.list_visibility("ns", VisibilityQuery()) == await sqlite.list_visibility(
        "ns", VisibilityQuery()
    )
