"""The visibility filter language: tokenizer and parser (positions and messages as the reference
gives them), the compiler's checks and conversions, and the SQL it becomes, run on an in-memory
SQLite visibility table."""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.api.enums.v1 import IndexedValueType as T

from tempyral.common.errors import InvalidArgument
from tempyral.persistence.schema import MIGRATIONS
from tempyral.persistence.sql_ops import VISIBILITY_WRITE_COLUMNS, visibility_params
from tempyral.persistence.store import VisibilityQuery, VisibilityRow
from tempyral.persistence.visibility_sql import (
    And,
    Compare,
    Cursor,
    Field,
    IsNull,
    ListMatch,
    Not,
    Or,
    SqliteVisibilitySQL,
    StartsWith,
    TextMatch,
    go_datetime_text,
    register_functions,
    text_tokens,
)
from tempyral.visibility import service
from tempyral.visibility import sqlparse as ast
from tempyral.visibility.query import (
    compile_query,
    go_float,
    parse_execution_duration,
    parse_rfc3339_ns,
)
from tempyral.visibility.service import decode_page_token, encode_page_token, rfc3339_nano

CUSTOM: dict[str, int] = {
    "CustomerId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "Priority": T.INDEXED_VALUE_TYPE_INT,
    "Score": T.INDEXED_VALUE_TYPE_DOUBLE,
    "Flag": T.INDEXED_VALUE_TYPE_BOOL,
    "Due": T.INDEXED_VALUE_TYPE_DATETIME,
    "Tags": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "Notes": T.INDEXED_VALUE_TYPE_TEXT,
}
DIVISION = IsNull(Field("TemporalNamespaceDivision", "Keyword"))
SECOND = 1_000_000_000


def where(query: str) -> Any:
    """The filter without the namespace-division condition every filter gets."""
    compiled = compile_query(query, CUSTOM).filter
    assert isinstance(compiled, And) and compiled.items[-1] == DIVISION
    return compiled.items[0]


# ---------------------------------------------------------------------- tokenizer and parser
def test_positions_count_bytes_of_the_whole_statement() -> None:
    tokens = ast.tokenize("select * from table1 where WorkflowId = 'αβ' AND x")
    assert [(t.kind, t.val) for t in tokens[4:]] == [
        ("kw", "where"),
        ("id", "WorkflowId"),
        ("op", "="),
        ("str", "αβ"),
        ("kw", "and"),
        ("id", "x"),
        ("eof", ""),
    ]
    assert tokens[-2].pos == len("select * from table1 where WorkflowId = 'αβ' AND x".encode()) + 1
    assert tokens[-1].pos == tokens[-2].pos


def test_strings_escapes_comments_and_operators() -> None:
    tokens = ast.tokenize(r"""'it''s' "a\"b" 'x\ny' -- comment
        <> != <=> && || `a``b` 1.5e3 .5 0x1F ? :v""")
    assert [(t.kind, t.val) for t in tokens[:-1]] == [
        ("str", "it's"),
        ("str", 'a"b'),
        ("str", "x\ny"),
        ("op", "!="),
        ("op", "!="),
        ("op", "<=>"),
        ("kw", "and"),
        ("kw", "or"),
        ("id", "a`b"),
        ("float", "1.5e3"),
        ("float", ".5"),
        ("hexnum", "0x1F"),
        ("arg", ":v1"),
        ("arg", ":v"),
    ]


@pytest.mark.parametrize(
    ("sql", "kind", "near"),
    [
        ("'open", "err", "open"),
        ("`open", "err", "open"),
        ("1abc", "err", "1"),
        ("é", "err", "\ufffd"),
        ("/* open", "err", "/* open"),
    ],
)
def test_unreadable_input_stops_the_tokens(sql: str, kind: str, near: str) -> None:
    last = ast.tokenize(sql)[-1]
    assert (last.kind, last.near) == (kind, near)


def test_precedence_follows_the_reference_grammar() -> None:
    sel = ast.parse_filter("a = 1 OR b = 2 AND NOT c = 3 IS NULL")
    assert isinstance(sel.where, ast.OrExpr)
    right = sel.where.right
    assert isinstance(right, ast.AndExpr) and isinstance(right.right, ast.NotExpr)
    assert isinstance(right.right.expr, ast.IsExpr)  # NOT (c = 3 IS NULL)
    assert ast.parse_filter("n = - 5").where == ast.ComparisonExpr(ast.ColName("n"), "=", ast.SQLVal("int", "-5"))
    assert ast.parse_filter("n = - -5").where == ast.ComparisonExpr(ast.ColName("n"), "=", ast.SQLVal("int", "5"))
    unary = ast.parse_filter("n = -1.5").where
    assert isinstance(unary, ast.ComparisonExpr) and isinstance(unary.right, ast.UnaryExpr)
    assert ast.parse_filter("x BETWEEN 1 + 1 AND 3").where == ast.RangeCond(
        ast.ColName("x"),
        "between",
        ast.BinaryExpr(ast.SQLVal("int", "1"), "+", ast.SQLVal("int", "1")),
        ast.SQLVal("int", "3"),
    )


def test_clauses_after_the_filter() -> None:
    sel = ast.parse_filter("a = 1 GROUP BY ExecutionStatus HAVING x ORDER BY StartTime DESC, b LIMIT 5;")
    assert sel.group_by == [ast.ColName("ExecutionStatus")]
    assert sel.order_by == [ast.ColName("StartTime"), ast.ColName("b")]
    assert sel.order_desc == [True, False]
    assert sel.limit == ast.SQLVal("int", "5")
    assert ast.parse_filter("ORDER BY StartTime").where is None
    assert ast.parse_filter("group by ExecutionStatus").group_by == [ast.ColName("ExecutionStatus")]


def test_identifiers_as_the_reference_prints_them() -> None:
    assert ast.ColName("status").sql() == "`status`"  # a keyword
    assert ast.ColName("Nope Nope").sql() == "`Nope Nope`"
    assert ast.ColName("WorkflowId", ("t",)).sql() == "t.WorkflowId"
    assert ast.parse_filter("Status = 1").where == ast.ComparisonExpr(
        ast.ColName("status"), "=", ast.SQLVal("int", "1")
    )


# Positions are of the statement the filter becomes, "select * from table1 where <filter>".
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("(" * 5000 + "a = 1" + ")" * 5000, "max nesting level reached at position 228"),
        ("NOT " * 200 + "a = 1", "max nesting level reached at position 827 near 'not'"),
        ("a = " + "~" * 300 + "1", "max nesting level reached at position 232"),
        ("a = " + "- " * 300 + "1", "max nesting level reached at position 431"),
        ("a IN (" + "(" * 300 + "1" + ")" * 300 + ")", "max nesting level reached at position 233"),
        ("f(" * 300 + "x" + ")" * 300 + " = 1", "max nesting level reached at position 428"),
        ("EXISTS (select " + "(" * 300 + ")", "max nesting level reached at position 242"),
        ("NOT (" * 150 + "a = 1" + ")" * 150, "max nesting level reached at position 528"),
        (" OR ".join(["a = 1"] * 996), "max ast depth reached"),
        ("a = 1 AND " * 20_000 + "a = 1", "max ast depth reached"),
        ("a = " + "+".join(["1"] * 5000), "max ast depth reached"),
    ],
)
def test_nesting_past_the_reference_limits(query: str, message: str) -> None:
    with pytest.raises(ast.SyntaxErr, match=f"^{re.escape(message)}$"):
        ast.parse_filter(query)


@pytest.mark.parametrize(
    "query",
    [
        "(" * 199 + "a = 1" + ")" * 199,
        "NOT " * 199 + "a = 1",
        "(a = 1) AND " * 300 + "NOT " * 199 + "a = 1",  # levels close again
        " OR ".join(["a = 1"] * 995),
        "a = " + "+".join(["1"] * 995),
        "ORDER BY " + "+".join(["1"] * 996),  # an ORDER BY expression sits one level deeper
    ],
)
def test_nesting_within_the_reference_limits(query: str) -> None:
    ast.parse_filter(query)


def test_deep_trees_print_without_recursion() -> None:
    where = ast.parse_filter("a = -(" + "+".join(["1"] * 990) + ")").where
    assert isinstance(where, ast.ComparisonExpr)
    assert where.right.sql() == "-(" + " + ".join(["1"] * 990) + ")"


# ---------------------------------------------------------------------- compiler
def test_empty_filter_only_excludes_namespace_divisions() -> None:
    assert compile_query("  ", CUSTOM).filter == DIVISION
    assert compile_query("TemporalNamespaceDivision = 'x'", CUSTOM).filter == Compare(
        Field("TemporalNamespaceDivision", "Keyword"), "=", "x"
    )


def test_comparisons_of_every_type() -> None:
    assert where("WorkflowType = 'a' AND (Priority > 3 OR CustomerId != \"x\")") == And(
        (
            Compare(Field("WorkflowType", "Keyword"), "=", "a"),
            Or((Compare(Field("Priority", "Int"), ">", 3), Compare(Field("CustomerId", "Keyword"), "!=", "x"))),
        )
    )
    assert where("Score <= -1.5") == Compare(Field("Score", "Double"), "<=", -1.5)
    assert where("Flag = true") == Compare(Field("Flag", "Bool"), "=", True)
    assert where("Due > '2026-01-01T00:00:00.0000019+01:00'") == Compare(
        Field("Due", "Datetime"), ">", 1767222000 * SECOND + 1000
    )
    assert where("ExecutionStatus IN ('Running', 'WORKFLOW_EXECUTION_STATUS_FAILED', 2)").values == (1, 3, 2)
    assert where("ExecutionDuration > '1h30m'") == Compare(Field("ExecutionDuration", "Int"), ">", 5400 * SECOND)
    assert where("CustomerId STARTS_WITH '5%'") == StartsWith(Field("CustomerId", "Keyword"), "5%")
    assert where("Tags = 'red'") == ListMatch(Field("Tags", "KeywordList"), ("red",))
    assert where("Tags NOT IN ('a', 'b')") == ListMatch(Field("Tags", "KeywordList"), ("a", "b"), negate=True)
    assert where("Notes != 'quick  fox'") == TextMatch(Field("Notes", "Text"), ("quick", "fox"), negate=True)
    assert where("NOT ParentWorkflowId IS NULL") == Not(IsNull(Field("ParentWorkflowId", "Keyword")))
    assert where("ChangeVersion = 'v1'") == ListMatch(Field("TemporalChangeVersion", "KeywordList"), ("v1",))
    assert where("ScheduleId = 's'") == Compare(Field("WorkflowId", "Keyword"), "=", "temporal-sys-scheduler:s")
    assert where("TemporalScheduleId = 's'") == Compare(Field("WorkflowId", "Keyword"), "=", "s")
    assert where("StartTime > '0000-01-01T00:00:00,5Z'") == Compare(
        Field("StartTime", "Datetime"), ">", -62167219200 * SECOND + SECOND // 2
    )


def test_nots_move_down_to_the_conditions_and_chains_become_one_node() -> None:
    a, b, c = (Compare(Field("Priority", "Int"), "=", n) for n in (1, 2, 3))
    assert where("NOT (Priority = 1 AND (Priority = 2 OR NOT Priority = 3))") == Or((Not(a), And((Not(b), c))))
    assert where("NOT NOT Priority = 1") == a
    assert where("Priority = 1 AND (Priority = 2 AND Priority = 3)") == And((a, b, c))
    assert where("NOT (Priority = 1 OR Priority = 2 OR Priority = 3)") == And((Not(a), Not(b), Not(c)))
    assert len(where(" OR ".join(["Priority = 1"] * 995)).items) == 995


def test_group_by_execution_status_or_namespace_division() -> None:
    assert compile_query("GROUP BY ExecutionStatus", CUSTOM).group_by == "ExecutionStatus"
    assert compile_query("Priority = 1", CUSTOM).group_by == ""
    grouped = compile_query("GROUP BY TemporalNamespaceDivision", CUSTOM)
    assert (grouped.group_by, grouped.filter) == ("TemporalNamespaceDivision", None)  # every division


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("WorkflowType = ", "malformed SQL query: syntax error at position 42"),
        ("WorkflowId 'a'", "malformed SQL query: syntax error at position 42 near 'a'"),
        ("When = 'x'", "malformed SQL query: syntax error at position 32 near 'when'"),
        ("WorkflowId = 'a')", "malformed SQL query: syntax error at position 45"),
        ("WorkflowId = 'αβγ' AND é = 'x'", "malformed SQL query: syntax error at position 55 near '\ufffd'"),
        (
            "WorkflowId = 'x' LIMIT 10 ORDER BY StartTime",
            "malformed SQL query: syntax error at position 59 near 'order'",
        ),
        ("Nope = 'x' AND Priority = 'y'", "invalid search attribute: Nope"),
        ("status = 'x'", "invalid search attribute: status"),
        ("WorkflowId", "invalid expression: incomplete expression"),
        ("'a' = WorkflowId", "invalid expression: must be a column name but was *sqlparser.SQLVal"),
        ("lower(WorkflowId) = 'a'", "invalid expression: must be a column name but was *sqlparser.FuncExpr"),
        ("WorkflowId = lower('a')", "operation is not supported: nested func"),
        ("WorkflowId = 'a' AND true", "operation is not supported: expression of type sqlparser.BoolVal"),
        ("WorkflowId = NULL", "invalid expression: unexpected value type *sqlparser.NullVal"),
        ("Priority = 1 + 2", "invalid expression: unexpected value type *sqlparser.BinaryExpr"),
        ("Priority = -'a'", "invalid expression: unary operator not supported in \"-'a'\""),
        ("Priority = ~1", 'operation is not supported: unary operator "~"'),
        (
            "WorkflowId = WorkflowType",
            "operation is not supported: column name on the right side of comparison expression "
            '(did you forget to quote "WorkflowType"?)',
        ),
        ("WorkflowId IS TRUE", "invalid expression: 'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'"),
        (
            "Priority = 'abc'",
            'invalid expression: invalid value type for search attribute Priority of type Int: "abc" (type: string)',
        ),
        (
            "CustomerId = 1e6",
            "invalid value type for search attribute CustomerId of type Keyword: 1e+06 (type: float64)",
        ),
        (
            "CustomerId = -1.5",
            "invalid value type for search attribute CustomerId of type Keyword: 1.5 (type: float64)",
        ),
        ("Flag = 1", "invalid value type for search attribute Flag of type Bool: 1 (type: int64)"),
        ("Priority = 0x10", 'invalid expression: unable to parse value "0x10"'),
        ("Priority = 1e400", 'invalid expression: unable to parse value "1e400"'),
        ("Due = 'yesterday'", "invalid expression: unable to parse datetime 'yesterday'"),
        ("StartTime = '2024-02-30T00:00:00Z'", "unable to parse datetime '2024-02-30T00:00:00Z'"),
        ("ExecutionStatus = 'running'", "invalid expression: invalid ExecutionStatus value 'running'"),
        ("ExecutionStatus = 99", "invalid expression: invalid ExecutionStatus value 99"),
        ("ExecutionStatus = 1.5", "unexpected value type float64 for search attribute ExecutionStatus"),
        ("ExecutionDuration < '1:00'", "invalid duration value for search attribute ExecutionDuration: 1:00"),
        (
            "Tags > 'a'",
            "operation is not supported: operator '>' not supported for KeywordList type search attribute 'Tags'",
        ),
        ("Notes IN ('a')", "operator 'IN' not supported for Text type search attribute 'Notes'"),
        ("WorkflowId LIKE 'a%'", "operator 'LIKE' not supported for Keyword type search attribute 'WorkflowId'"),
        ("Priority STARTS_WITH 1", "operator 'STARTS_WITH' not supported for Int type search attribute 'Priority'"),
        ("Notes = '   '", "invalid expression: no tokens found filtering on Text type search attribute Notes"),
        ("Flag BETWEEN true AND false", "cannot do range condition on search attribute 'Flag' of type Bool"),
        ("WorkflowId = 'a' LIMIT 1", "operation is not supported: 'LIMIT' clause"),
        ("ORDER BY NoSuch", "invalid search attribute: NoSuch"),
        ("Priority = 1 ORDER BY Notes", "operation is not supported: unable to sort by search attribute type Text"),
        ("GROUP BY WorkflowType", "'GROUP BY' clause is not supported for search attribute WorkflowType"),
        ("GROUP BY ExecutionStatus, WorkflowType", "'GROUP BY' clause supports only a single field"),
        ("WorkflowId IN (SELECT 1)", "invalid expression: unexpected value type *sqlparser.Subquery"),
        ("EXISTS (select 1)", "operation is not supported: expression of type *sqlparser.ExistsExpr"),
        ("WorkflowId = CASE WHEN 1 THEN 2 END", "unexpected value type *sqlparser.CaseExpr"),
        ("WorkflowId = interval 1 day", "unexpected value type *sqlparser.IntervalExpr"),
        ("DEFAULT", "operation is not supported: expression of type *sqlparser.Default"),
        ("Tags = ('a', 'b')", "invalid expression: unexpected value type (expected string, got ('a', 'b'))"),
    ],
)
def test_errors_carry_the_reference_messages(query: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        compile_query(query, CUSTOM)
    assert err.value.message.startswith("invalid query: ")
    assert err.value.message.endswith(message)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("300", 300),
        ("-1.5h", -5400 * SECOND),
        ("1d2h", 26 * 3600 * SECOND),
        ("1.5ms", 1_500_000),
        ("2h45m", (2 * 3600 + 45 * 60) * SECOND),
        ("01:02:03", 3723 * SECOND),
        ("0", 0),
    ],
)
def test_execution_durations(text: str, ns: int) -> None:
    assert parse_execution_duration(text) == ns


@pytest.mark.parametrize("text", ["", "h", "1x", "1:00", "01:60:00", "1.h2"])
def test_bad_execution_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_execution_duration(text)


def test_datetimes_and_go_formats() -> None:
    assert parse_rfc3339_ns("1970-01-01T00:00:01.5Z") == 1_500_000_000
    assert parse_rfc3339_ns("1970-01-01T01:00:00+01:00") == 0
    for bad in ("2024-01-01", "2024-01-01 00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:00"):
        with pytest.raises(ValueError):
            parse_rfc3339_ns(bad)
    assert go_datetime_text(1_500_000_000) == "1970-01-01 00:00:01.5+00:00"
    assert go_datetime_text(0) == "1970-01-01 00:00:00+00:00"
    assert go_datetime_text(parse_rfc3339_ns("0000-02-29T23:59:59+24:00")) == "0000-02-28 23:59:59+00:00"
    assert rfc3339_nano(1_000_000_001) == "1970-01-01T00:00:01.000000001Z"
    assert [go_float(f) for f in (1.5, 1e6, 123456.0, 1e-5, 0.0001, 1e21, -0.0)] == [
        "1.5", "1e+06", "123456", "1e-05", "0.0001", "1e+21", "-0",
    ]  # fmt: skip


def test_text_tokens_fold_case_and_accents() -> None:
    assert text_tokens("Über-FOX, it's 42") == ["uber", "fox", "it", "s", "42"]


# ---------------------------------------------------------------------- SQL, run on SQLite
ROWS = [
    # run id, workflow id, status, start s, close s, search attributes
    ("r1", "wf-a", 1, 10, None,
     {"CustomerId": "alpha", "Priority": 1, "Tags": ["red", "Blue Sky"], "Notes": "the quick fox"}),
    ("r2", "wf-b", 2, 20, 30, {"CustomerId": "beta", "Priority": 5, "Flag": True, "Due": "2024-01-01T00:00:00Z"}),
    ("r3", "wf_c", 3, 30, 40, {"Tags": ["green"], "Score": 2.5, "Due": "2024-06-01T00:00:00.5+02:00", "Notes": "Über"}),
    ("r4", "wf-d", 1, 40, None, {}),
    ("r5", "wf-e", 7, 30, 40, {"CustomerId": "a\\\"b"}),
]  # fmt: skip


@pytest.fixture
def db() -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(":memory:")
    register_functions(conn)
    for statement in (step for migration in MIGRATIONS for step in migration):
        if isinstance(statement, str) and "visibility" in statement:
            conn.execute(statement)
    for run_id, workflow_id, status, start, close, attributes in ROWS:
        row = VisibilityRow(
            "ns", run_id, workflow_id, "Type", status, start * SECOND, start * SECOND,
            None if close is None else close * SECOND, "tq", 3, 100, b"", b"", json.dumps(attributes),
            parent_workflow_id="wf-a" if run_id == "r2" else "",
        )  # fmt: skip
        values = visibility_params(row)
        marks = ", ".join("?" * len(values))
        conn.execute(f"INSERT INTO visibility ({VISIBILITY_WRITE_COLUMNS}) VALUES ({marks})", values)
    yield conn
    conn.close()


def run(db: sqlite3.Connection, query: str, cursor: Cursor | None = None, limit: int = 100) -> list[str]:
    sql, params = SqliteVisibilitySQL().select("run_id", "ns", compile_query(query, CUSTOM).filter, cursor, limit)
    return [r[0] for r in db.execute(sql, params)]


@pytest.mark.parametrize(
    ("query", "runs"),
    [
        ("", ["r4", "r1", "r3", "r5", "r2"]),  # running first (newest start first), then newest close
        ("CustomerId != 'alpha'", ["r5", "r2"]),  # unset attributes never compare
        ("NOT CustomerId = 'alpha'", ["r5", "r2"]),
        ("CustomerId = 'a\"b'", ["r5"]),  # the reference puts a backslash before quotes in values
        ("Tags != 'red'", ["r4", "r3", "r5", "r2"]),  # keyword lists: "has no such element"
        ("Tags = 'BLUE SKY'", ["r1"]),
        ("Tags IN ('green', 'nope')", ["r3"]),
        ("Notes = 'fox dog'", ["r1"]),
        ("Notes = 'uber'", ["r3"]),
        ("Notes != 'fox'", ["r4", "r3", "r5", "r2"]),
        ("WorkflowId STARTS_WITH 'WF_'", ["r3"]),  # LIKE: case-insensitive, '_' escaped
        ("WorkflowId NOT STARTS_WITH 'wf-'", ["r3"]),
        ("Due >= '2024-01-01T00:00:00Z'", ["r3", "r2"]),
        ("Due = '2024-01-01T00:00:00Z'", []),  # compared as the reference's text
        ("Due < '2024-06-01T00:00:00Z'", ["r3", "r2"]),  # 2024-05-31T22:00:00.5Z
        ("Flag = true OR Score > 2", ["r3", "r2"]),
        ("CloseTime > '1970-01-01T00:00:35Z'", ["r3", "r5"]),
        ("ExecutionDuration = '10s'", ["r3", "r5", "r2"]),
        ("HistoryLength IS NULL", ["r4", "r1"]),  # only recorded at close
        ("ParentWorkflowId IS NOT NULL", ["r2"]),
        ("ExecutionStatus IN ('Running', 'TimedOut')", ["r4", "r1", "r5"]),
        ("StartTime BETWEEN 20 AND 30000000000", ["r1", "r3", "r5", "r2"]),
        ("WorkflowId = 'x'' OR 1=1 --'", []),
    ],
)
def test_filters_select_the_reference_rows(db: sqlite3.Connection, query: str, runs: list[str]) -> None:
    assert run(db, query) == runs


def _nested(levels: int, innermost: str) -> str:
    """A filter nested `levels` groups deep that selects what `innermost` selects."""
    query = innermost
    for _ in range(levels):
        query = f"(StartTime < 0 OR (StartTime >= 0 AND {query}))"  # false or (true and ...), never NULL
    return query


@pytest.mark.parametrize(
    ("deep", "shallow"),
    [
        ("NOT " * 198 + "CustomerId = 'alpha'", "CustomerId = 'alpha'"),
        ("NOT " * 197 + "CustomerId = 'alpha'", "NOT CustomerId = 'alpha'"),
        ("(" * 199 + "Tags = 'red'" + ")" * 199, "Tags = 'red'"),
        (_nested(95, "Priority > 1"), "Priority > 1"),
        ("NOT " + _nested(60, "CustomerId = 'alpha'"), "NOT CustomerId = 'alpha'"),
        (" OR ".join([f"Priority = {n}" for n in range(990)]), "Priority IN (1, 5)"),
        (" AND ".join(["Notes != 'nope'"] * 990), ""),
    ],
)
def test_deep_filters_select_the_rows_of_shallow_ones(db: sqlite3.Connection, deep: str, shallow: str) -> None:
    """SQLite's parser refuses far less nesting than the reference's: the SQL must not nest as the filter does."""
    assert run(db, deep) == run(db, shallow)
    for query in (deep, shallow):
        compiled = compile_query(query, CUSTOM)
        sql, params = SqliteVisibilitySQL().count("ns", compiled.filter, "ExecutionStatus")
        assert (
            db.execute(sql, params).fetchall()
            == db.execute(
                *SqliteVisibilitySQL().count("ns", compile_query(shallow, CUSTOM).filter, "ExecutionStatus")
            ).fetchall()
        )
    assert ordered(db, deep + " ORDER BY Priority", 1) == ordered(db, shallow + " ORDER BY Priority", 1)


@pytest.mark.parametrize(
    ("values", "shallow"),
    [
        ([f"'x{n}'" for n in range(1500)] + ["'wf-a'", "'wf_c'"], "WorkflowId IN ('wf-a', 'wf_c')"),
        ([str(n * SECOND) for n in range(30, 1500)], "StartTime IN (30000000000, 40000000000)"),
        ([f"'2024-01-01T00:{n // 60:02d}:{n % 60:02d}Z'" for n in range(1500)], "Due IN ('2024-01-01T00:00:00Z')"),
    ],
)
def test_long_in_lists_select_the_rows_of_short_ones(db: sqlite3.Connection, values: list[str], shallow: str) -> None:
    column = shallow.split(" ")[0]
    for negate in ("", "NOT "):
        assert run(db, f"{column} {negate}IN ({', '.join(values)})") == run(db, shallow.replace(" IN", f" {negate}IN"))


def test_an_in_list_longer_than_sqlite_takes_parameters(db: sqlite3.Connection) -> None:
    db.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)  # SQLite's default; some builds allow more
    values = ", ".join(str(n) for n in range(40_000))
    assert run(db, f"Priority IN ({values})") == run(db, "Priority >= 0")
    assert run(db, f"Priority = 1 OR Priority NOT IN ({values})") == run(db, "Priority = 1")


async def test_long_filters_are_compiled_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compiling a filter of a few MB takes seconds: meanwhile the server must answer everyone else."""
    threads: list[int] = []

    def compile_recording_thread(query: str, custom: dict[str, int]) -> VisibilityQuery:
        threads.append(threading.get_ident())
        return VisibilityQuery()

    monkeypatch.setattr(service, "compile_query", compile_recording_thread)
    await service.compile_filter("x" * service.LONG_FILTER, CUSTOM)
    await service.compile_filter("WorkflowId = 'a'", CUSTOM)
    assert threads[0] != threading.get_ident() and threads[1] == threading.get_ident()


def test_groups_nested_deep_become_with_queries() -> None:
    compiled = compile_query(_nested(40, "Priority > 1"), CUSTOM)
    sql, params = SqliteVisibilitySQL().select("run_id", "ns", compiled.filter, None, 5)
    assert sql.startswith("WITH deep1 AS (SELECT rowid FROM visibility WHERE namespace_id = ? AND")
    assert sql.count(" AS (SELECT rowid FROM visibility") == 6  # 80 groups deep, 12 at a time
    assert params[0] == "ns"


def test_values_are_parameters(db: sqlite3.Connection) -> None:
    sql, params = SqliteVisibilitySQL().select(
        "run_id", "ns", compile_query("CustomerId = 'x'' OR 1=1 --' AND Tags = 'y'", CUSTOM).filter, None, 5
    )
    assert "x'" not in sql and "OR 1=1" not in sql and "'y'" not in sql
    assert "x' OR 1=1 --" in params


def test_row_values_fail_when_run(db: sqlite3.Connection) -> None:
    """`WorkflowId = ('a', 'b')` passes the checks and fails in the database, as in the reference."""
    sql, params = SqliteVisibilitySQL().select(
        "run_id", "ns", compile_query("WorkflowId = ('a', 'b')", CUSTOM).filter, None, 5
    )
    with pytest.raises(sqlite3.OperationalError, match="row value misused"):
        db.execute(sql, params)
    assert run(db, "StartTime > '0000-01-01T00:00:00Z' AND StartTime < '9999-01-01T00:00:00Z'") == run(db, "")


def test_counts_group_by_status(db: sqlite3.Connection) -> None:
    query = compile_query("GROUP BY ExecutionStatus", CUSTOM)
    sql, params = SqliteVisibilitySQL().count("ns", query.filter, query.group_by)
    assert db.execute(sql, params).fetchall() == [(1, 2), (2, 1), (3, 1), (7, 1)]
    sql, params = SqliteVisibilitySQL().count("ns", compile_query("Priority > 0", CUSTOM).filter, "")
    assert db.execute(sql, params).fetchall() == [(2,)]


@pytest.mark.parametrize("page_size", [1, 2, 3])
def test_keyset_pages_neither_repeat_nor_skip(db: sqlite3.Connection, page_size: int) -> None:
    everything = run(db, "")
    seen: list[str] = []
    cursor: Cursor | None = None
    while True:
        page = run(db, "", cursor, page_size)
        seen += page
        if len(page) < page_size:
            break
        last = db.execute("SELECT * FROM visibility WHERE run_id = ?", (page[-1],)).fetchone()
        token = encode_page_token(VisibilityRow("ns", last[1], "", "", 0, last[5], 0, last[7], "", 0, 0, b"", b"", ""))
        assert json.loads(token).keys() == {"CloseTime", "StartTime", "RunID"}
        cursor = decode_page_token(token)
    assert seen == everything


def test_bad_page_tokens_are_refused() -> None:
    for token in (b"garbage", b"{}", b'{"CloseTime": 1, "StartTime": "x", "RunID": "r"}'):
        with pytest.raises(InvalidArgument):
            decode_page_token(token)


# ---------------------------------------------------------------------- ORDER BY
def ordered(db: sqlite3.Connection, query: str, page_size: int) -> list[str]:
    """All rows of an ordered listing, read page by page through encoded page tokens."""
    compiled = compile_query(query, CUSTOM)
    seen: list[str] = []
    cursor: Cursor | None = None
    for _ in range(20):
        sql, params = SqliteVisibilitySQL().select(
            "run_id", "ns", compiled.filter, cursor, page_size, compiled.order_by
        )
        page = db.execute(sql, params).fetchall()
        seen += [r[0] for r in page]
        if len(page) < page_size:
            return seen
        last = VisibilityRow("ns", page[-1][0], "", "", 0, 0, 0, None, "", 0, 0, b"", b"", "", sort_values=page[-1][1:])
        token = encode_page_token(last, ordered=True)
        assert json.loads(token).keys() == {"SearchAfter"}
        cursor = decode_page_token(token, len(compiled.order_by))
    raise AssertionError("paging did not end")


@pytest.mark.parametrize("page_size", [1, 2, 100])
@pytest.mark.parametrize(
    ("query", "runs"),
    [
        # unset values last in both directions; run id descending breaks ties
        ("ORDER BY Priority", ["r1", "r2", "r5", "r4", "r3"]),
        ("ORDER BY Priority DESC", ["r2", "r1", "r5", "r4", "r3"]),
        ("ORDER BY CustomerId DESC, StartTime ASC", ["r2", "r1", "r5", "r3", "r4"]),
        ("ORDER BY StartTime ASC, WorkflowId DESC", ["r1", "r2", "r3", "r5", "r4"]),
        ("ORDER BY CloseTime", ["r2", "r5", "r3", "r4", "r1"]),
        ("ORDER BY ExecutionStatus", ["r2", "r3", "r4", "r1", "r5"]),  # by name, as a keyword,
        ("Priority > 0 ORDER BY Priority DESC", ["r2", "r1"]),
        ("ORDER BY Due DESC, Score", ["r3", "r2", "r5", "r4", "r1"]),
    ],
)
def test_order_by_sorts_and_pages(db: sqlite3.Connection, query: str, runs: list[str], page_size: int) -> None:
    assert ordered(db, query, page_size) == runs


def test_order_by_tokens_belong_to_their_query() -> None:
    with pytest.raises(InvalidArgument):
        decode_page_token(b'{"SearchAfter": [1, "r1"]}', 2)
    with pytest.raises(InvalidArgument):
        decode_page_token(
            b'{"CloseTime": "9999-12-31T23:59:59Z", "StartTime": "2024-01-01T00:00:00Z", "RunID": "r"}', 1
        )
    assert decode_page_token(b'{"SearchAfter": [null, "r1"]}', 1) == Cursor(None, 0, "r1", sort_values=(None,))
