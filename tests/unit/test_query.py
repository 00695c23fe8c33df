"""The visibility filter compiled to parameterized SQL."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import IndexedValueType

from tempyral.common.errors import InvalidArgument
from tempyral.visibility.query import compile_query

CUSTOM = {
    "CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Priority": IndexedValueType.INDEXED_VALUE_TYPE_INT,
}


def test_empty_query_matches_everything() -> None:
    q = compile_query("  ", CUSTOM)
    assert q.where == "1=1" and q.params == []


def test_comparisons_and_booleans_are_parameterized() -> None:
    q = compile_query("WorkflowType = 'a' AND (Priority > 3 OR CustomerId != \"x\")", CUSTOM)
    assert q.where == (
        "workflow_type = ? AND (json_extract(search_attributes_json, '$.\"Priority\"') > ? OR "
        "json_extract(search_attributes_json, '$.\"CustomerId\"') != ?)"
    )
    assert q.params == ["a", 3, "x"]


def test_status_names_datetimes_and_order_by() -> None:
    q = compile_query("ExecutionStatus = 'Running' AND StartTime > '2026-01-01T00:00:00Z' ORDER BY StartTime DESC", {})
    assert q.params[0] == 1
    assert q.params[1] == 1767225600 * 1_000_000_000
    assert q.order_by == "start_time DESC"


def test_injection_attempts_stay_values() -> None:
    q = compile_query("WorkflowId = 'x\\' OR 1=1 --'", {})
    assert q.where == "workflow_id = ?"
    assert len(q.params) == 1


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("WorkflowType = ", "invalid query: malformed SQL query: syntax error at position 42"),
        ("Nope = 'x'", "invalid query: invalid search attribute: Nope"),
        ("ExecutionStatus = 'Sleeping'", "invalid ExecutionStatus value"),
        ("WorkflowId = 'a' 'b'", "syntax error"),
    ],
)
def test_errors_point_at_the_problem(query: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        compile_query(query, CUSTOM)
