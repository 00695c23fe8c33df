"""Visibility filters as a small predicate tree, and their rendering as SQL.

The query compiler (tempyral.visibility.query) turns Temporal's list-filter language into the
predicates below; this module is the one place that turns them into SQL text. Values never go into
the SQL text: each one is a `?` parameter. `SqliteVisibilitySQL` is the SQLite rendering;
`PostgresVisibilitySQL` overrides the pieces PostgreSQL writes differently, so that both answer every
filter, ordering, page and count alike.

Semantics follow the reference server's SQLite visibility store: attributes that are unset compare
as NULL (so `!=` and `NOT` do not match them), Keyword-list and Text predicates are never NULL (the
reference answers them from full-text tables: `rowid IN (...)`; here each row keeps the words of its
attribute values, `search_attribute_tokens`, and a phrase matches where its words appear in a row in
order), Datetime search attributes compare
as the same text the reference compares, and attributes the reference only records at close
(HistoryLength, ExecutionDuration, ...) are NULL while a workflow runs.
"""

from __future__ import annotations

import json
import sqlite3
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeAlias

from tempyral.common.clock import int64_ns
from tempyral.common.trampoline import Step, run

Value: TypeAlias = str | int | float | bool
# A parenthesized list on the right of `=` or BETWEEN is kept as a row value, which SQL refuses
# when the statement runs ("row value misused"), as the reference's SQL does.
Operand: TypeAlias = Value | tuple[Value, ...]

# The last instant the reference's page tokens and ordering give running workflows as close time.
MAX_CLOSE_TIME_NS = 9223372036854775807
STATUS_SORT_NAMES = {
    0: "Unspecified",
    1: "Running",
    2: "Completed",
    3: "Failed",
    4: "Canceled",
    5: "Terminated",
    6: "ContinuedAsNew",
    7: "TimedOut",
}
KEYWORD_LIST_SEPARATOR = "\u2661"  # the reference joins keyword lists with '♡' in its full-text table


@dataclass(frozen=True)
class Field:
    """A search attribute: its field name and type name (Keyword, Text, Int, Double, Bool,
    Datetime, KeywordList)."""

    name: str
    type: str


@dataclass(frozen=True)
class Compare:
    field: Field
    op: str  # = != < > <= >=
    value: Operand


@dataclass(frozen=True)
class InList:
    field: Field
    values: tuple[Value, ...]
    negate: bool = False


@dataclass(frozen=True)
class Between:
    field: Field
    low: Operand
    high: Operand
    negate: bool = False


@dataclass(frozen=True)
class IsNull:
    field: Field
    negate: bool = False


@dataclass(frozen=True)
class StartsWith:
    field: Field
    prefix: str
    negate: bool = False


@dataclass(frozen=True)
class ListMatch:
    """A Keyword-list attribute has an element equal (ignoring case) to one of the values."""

    field: Field
    values: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class TextMatch:
    """A Text attribute contains one of the phrases (words in order; case and accents ignored)."""

    field: Field
    phrases: tuple[str, ...]
    negate: bool = False


@dataclass(frozen=True)
class Not:
    expr: Filter


@dataclass(frozen=True)
class And:
    items: tuple[Filter, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Filter, ...]


Condition: TypeAlias = Compare | InList | Between | IsNull | StartsWith | ListMatch | TextMatch
Filter: TypeAlias = Condition | Not | And | Or
# How a filter is written into SQLite's limits (see SqliteVisibilitySQL._render).
MAX_CHAIN = 32  # conditions in one AND or OR chain of the SQL text
MAX_GROUP_DEPTH = 12  # parenthesized groups within groups in one expression
MAX_LISTED = 1000  # values of an IN list written as parameters each (longer lists: one JSON parameter)


@dataclass(frozen=True)
class Cursor:
    """Where a page ended, in the listing order (close time desc, running first; start time
    desc; run id). With an ORDER BY, `sort_values` holds the last row's values of its attributes
    and the run id alone breaks ties."""

    close_time: int | None
    start_time: int
    run_id: str
    sort_values: tuple[Any, ...] | None = None


OrderBy: TypeAlias = tuple[tuple["Field", bool], ...]


def _when_closed(column: str) -> str:
    return f"(CASE WHEN close_time IS NULL THEN NULL ELSE {column} END)"


class SqliteVisibilitySQL:
    """The SQLite dialect of the visibility table."""

    SYSTEM_COLUMNS: dict[str, str] = {
        "WorkflowId": "workflow_id",
        "RunId": "run_id",
        "WorkflowType": "workflow_type",
        "TaskQueue": "task_queue",
        "ExecutionStatus": "status",
        "StartTime": "start_time",
        "ExecutionTime": "execution_time",
        "CloseTime": "close_time",
        "ExecutionDuration": "(close_time - execution_time)",
        "HistoryLength": _when_closed("history_length"),
        "HistorySizeBytes": _when_closed("history_size_bytes"),
        "StateTransitionCount": _when_closed("state_transition_count"),
        "ParentWorkflowId": "NULLIF(parent_workflow_id, '')",
        "ParentRunId": "NULLIF(parent_run_id, '')",
        "RootWorkflowId": "root_workflow_id",
        "RootRunId": "root_run_id",
    }
    ORDER = f"COALESCE(close_time, {MAX_CLOSE_TIME_NS}) DESC, start_time DESC, run_id"
    ROW_KEY = "rowid"  # what a WITH query of a deep group selects its rows by (the namespace is fixed)
    GROUP_ORDER = "grp"  # how counted groups are ordered: SQLite puts NULL first
    TEXT = ""  # appended to text expressions that are not columns (PostgreSQL: the byte order SQLite compares in)

    def __init__(self) -> None:
        self.params: list[Any] = []
        self.namespace_id = ""
        self.with_queries: list[tuple[str, list[Any]]] = []  # for filters nested deep: text, parameters

    # ------------------------------------------------------------------ statements
    def select(
        self,
        columns: str,
        namespace_id: str,
        where: Filter | None,
        cursor: Cursor | None,
        limit: int,
        order_by: OrderBy = (),
    ) -> tuple[str, list[Any]]:
        """Rows of one page. With an ORDER BY, the selected columns are followed by the row's
        values of the ordering attributes (for the next page's cursor)."""
        if order_by:
            return self._select_ordered(columns, namespace_id, where, cursor, limit, order_by)
        self.params = [namespace_id]
        self.namespace_id = namespace_id
        sql = f"SELECT {columns} FROM visibility WHERE namespace_id = ?"
        if where is not None:
            sql += f" AND {self.render(where)}"
        if cursor is not None:
            # A token's times are compared as the columns hold them (within 64 bits).
            close = MAX_CLOSE_TIME_NS if cursor.close_time is None else int64_ns(cursor.close_time)
            start = int64_ns(cursor.start_time)
            ct = f"COALESCE(close_time, {MAX_CLOSE_TIME_NS})"
            sql += f" AND (({ct} = ? AND start_time = ? AND run_id > ?) OR ({ct} = ? AND start_time < ?) OR {ct} < ?)"
            self.params += [close, start, cursor.run_id, close, start, close]
        sql += f" ORDER BY {self.ORDER} LIMIT ?"
        self.params.append(limit)
        return self._statement(sql)

    def _select_ordered(
        self,
        columns: str,
        namespace_id: str,
        where: Filter | None,
        cursor: Cursor | None,
        limit: int,
        order_by: OrderBy,
    ) -> tuple[str, list[Any]]:
        """ORDER BY as the reference's Elasticsearch store sorts: each attribute ascending or
        descending with unset values last, then run id descending. Pages are keyset pages on
        those values, so rows are neither repeated nor skipped while the data stays put."""
        # Parameters are collected in textual order: sort expressions, filter, cursor, limit.
        self.params = []
        keys = [self.sort_key(f) for f, _ in order_by]
        sql = f"SELECT {columns}, {', '.join(keys)} FROM visibility WHERE namespace_id = ?"
        self.params.append(namespace_id)
        self.namespace_id = namespace_id
        if where is not None:
            sql += f" AND {self.render(where)}"
        if cursor is not None and cursor.sort_values is not None:
            sql += f" AND {self._after(order_by, cursor.sort_values, cursor.run_id)}"
        # Each use of a key renders it again: its parameters are bound where its text is.
        terms = [
            f"({self.sort_key(f)}) IS NULL, {self.sort_key(f)} {'DESC' if desc else 'ASC'}" for f, desc in order_by
        ]
        sql += f" ORDER BY {', '.join(terms)}, run_id DESC LIMIT ?"
        self.params.append(limit)
        return self._statement(sql)

    def _after(self, order_by: OrderBy, values: tuple[Any, ...], run_id: str) -> str:
        """Rows strictly after the row whose ordering values are `values`: equal on the first i
        keys and later on key i, for each i; the run id (descending) decides full ties. Every
        expression is rendered where it is used, so its parameters are bound in text order."""
        keys = list(zip(order_by, values, strict=True))

        def equal_on(count: int) -> list[str]:
            return [self._same(self.sort_key(f), self.sort_param(f, v)) for (f, _), v in keys[:count]]

        alternatives: list[str] = []
        for i, ((f, desc), value) in enumerate(keys):
            if value is None:  # unset values sort last: nothing but other unset values follows them
                continue
            prefix = equal_on(i)
            is_unset = f"({self.sort_key(f)}) IS NULL"
            later = f"({is_unset} OR {self.sort_key(f)} {'<' if desc else '>'} {self.sort_param(f, value)})"
            alternatives.append(" AND ".join([*prefix, later]))
        alternatives.append(" AND ".join([*equal_on(len(keys)), f"run_id < {self.param(run_id)}"]))
        return "(" + " OR ".join(f"({a})" for a in alternatives) + ")"

    def _same(self, expr: str, param: str) -> str:
        """`expr` equals the parameter, NULL equal to NULL."""
        return f"({expr}) IS {param}"

    def sort_param(self, f: Field, value: Any) -> str:
        """A cursor's value of an ordering attribute, as a parameter compared with its sort key."""
        return self.param(value)

    def sort_key(self, f: Field) -> str:
        """What an attribute sorts by: its stored value; ExecutionStatus by its name, as it is a
        keyword in the reference's Elasticsearch documents."""
        if f.name == "ExecutionStatus":
            names = " ".join(f"WHEN {code} THEN '{name}'" for code, name in STATUS_SORT_NAMES.items())
            return f"(CASE status {names} END{self.TEXT})"
        return self.column(f)

    def count(self, namespace_id: str, where: Filter | None, group_by: str) -> tuple[str, list[Any]]:
        self.params = []
        column = self.column(Field(group_by, "Keyword")) if group_by else ""
        self.params.append(namespace_id)
        self.namespace_id = namespace_id
        condition = "namespace_id = ?"
        if where is not None:
            condition += f" AND {self.render(where)}"
        if not group_by:
            return self._statement(f"SELECT COUNT(*) FROM visibility WHERE {condition}")
        return self._statement(
            f"SELECT {column} AS grp, COUNT(*) FROM visibility WHERE {condition} "
            f"GROUP BY grp ORDER BY {self.GROUP_ORDER}"
        )

    def _statement(self, sql: str) -> tuple[str, list[Any]]:
        """The statement, after the WITH queries its filter needs; the parameters in text order."""
        if not self.with_queries:
            return sql, self.params
        texts = ", ".join(text for text, _ in self.with_queries)
        return f"WITH {texts} {sql}", [p for _, params in self.with_queries for p in params] + self.params

    # ------------------------------------------------------------------ filters
    def render(self, f: Filter) -> str:
        return run(self._render(f, 0, False))

    def _render(self, f: Filter, depth: int, negated: bool) -> Step[str]:
        """`f` as SQL, `depth` groups deep in its expression. SQLite parses on a stack of 100
        entries and refuses expression trees over 1000 levels: long chains are cut into groups,
        and a group nested too deep becomes a WITH query of the rows it holds for. That is only
        done outside NOT: inside, a row for which the group is NULL would wrongly match."""
        if isinstance(f, And | Or):
            if depth >= MAX_GROUP_DEPTH and not negated:
                reference: str = yield self._with_query(f)
                return reference
            items = f.items
            while len(items) > MAX_CHAIN:
                items = tuple(
                    type(f)(items[k : k + MAX_CHAIN]) if len(items[k : k + MAX_CHAIN]) > 1 else items[k]
                    for k in range(0, len(items), MAX_CHAIN)
                )
            rendered = []
            for item in items:
                rendered.append((yield self._render(item, depth + 1, negated)))
            return "(" + (" AND " if isinstance(f, And) else " OR ").join(rendered) + ")"
        if isinstance(f, Not):
            inner = yield self._render(f.expr, depth + 1, not negated)
            return f"(NOT {inner})"
        return self._condition(f)

    def _with_query(self, f: And | Or) -> Step[str]:
        outer, self.params = self.params, [self.namespace_id]
        body = yield self._render(f, 0, False)
        name = f"deep{len(self.with_queries) + 1}"
        text = f"{name} AS (SELECT {self.ROW_KEY} FROM visibility WHERE namespace_id = ? AND {body})"
        self.with_queries.append((text, self.params))
        self.params = outer
        return f"({self.ROW_KEY} IN (SELECT {self.ROW_KEY} FROM {name}))"

    def _condition(self, f: Condition) -> str:
        if isinstance(f, IsNull):
            return f"({self.column(f.field)} IS {'NOT ' if f.negate else ''}NULL)"
        if isinstance(f, ListMatch | TextMatch):
            sql = self._match(f)
            return f"(NOT {sql})" if f.negate else sql
        column = self.column(f.field)
        if isinstance(f, Compare):
            return f"({column} {f.op} {self.value(f.field, f.value)})"
        if isinstance(f, InList):
            negate = "NOT " if f.negate else ""
            if len(f.values) > MAX_LISTED and not any(isinstance(v, tuple) for v in f.values):
                # One parameter for the whole list: a statement takes only so many.
                listed = [self.bound(f.field, v) for v in f.values if not isinstance(v, tuple)]
                return f"({column} {negate}IN ({self._listed(f.field, listed)}))"
            marks = ", ".join(self.value(f.field, v) for v in f.values)
            return f"({column} {negate}IN ({marks}))"
        if isinstance(f, Between):
            low, high = self.value(f.field, f.low), self.value(f.field, f.high)
            return f"({column} {'NOT ' if f.negate else ''}BETWEEN {low} AND {high})"
        # StartsWith: a LIKE prefix pattern, with '!' escaping the pattern characters (as the reference)
        pattern = "".join("!" + c if c in "%_!" else c for c in f.prefix) + "%"
        return self._like(column, pattern, f.negate)

    def _like(self, column: str, pattern: str, negate: bool) -> str:
        """SQLite's LIKE ignores the case of ASCII letters (only)."""
        return f"({column} {'NOT ' if negate else ''}LIKE {self.param(pattern)} ESCAPE '!')"

    def _listed(self, field: Field, values: list[Any]) -> str:
        """A subquery of the values of a long IN list, bound as one parameter."""
        return f"SELECT value FROM json_each({self.param(json.dumps(values))})"

    def _match(self, f: ListMatch | TextMatch) -> str:
        """Whether one of the phrases appears in the attribute's words (never NULL): the row's words are kept
        joined by a separator and wrapped in it (search_attribute_tokens), and so is each phrase, so a phrase
        matches exactly where its words follow each other in the value."""
        form = 1 if isinstance(f, ListMatch) else 0
        terms = f.values if isinstance(f, ListMatch) else f.phrases
        needles = [n for n in (phrase_needle(t, form) for t in terms) if n]
        if not needles:
            return "(1 = 0)"
        tests = [f"({self._contains(f.field.name, form, needle)})" for needle in needles]
        return tests[0] if len(tests) == 1 else "(" + " OR ".join(tests) + ")"

    def _contains(self, name: str, form: int, needle: str) -> str:
        path = self.param(f"{json_path(name)}[{form}]")
        return f"COALESCE(instr(json_extract(search_attributes_tokens, {path}), {self.param(needle)}), 0) > 0"

    def column(self, field: Field) -> str:
        system = self.SYSTEM_COLUMNS.get(field.name)
        if system is not None:
            return system
        extract = f"json_extract(search_attributes_json, {self.param(json_path(field.name))})"
        if field.type == "Datetime":
            # The reference keeps these as text with milliseconds and compares them as text.
            return f"strftime('%Y-%m-%d %H:%M:%f+00:00', {extract})"
        return extract

    def value(self, field: Field, value: Operand) -> str:
        if isinstance(value, tuple):
            return "(" + ", ".join(self.value(field, v) for v in value) + ")"
        return self.param(self.bound(field, value))

    def bound(self, field: Field, value: Value) -> Any:
        """What a value is compared as."""
        if field.type == "Datetime" and isinstance(value, int):
            if field.name not in self.SYSTEM_COLUMNS:
                return go_datetime_text(value)
            return int64_ns(value)  # instants beyond the columns' range
        return int(value) if isinstance(value, bool) else value

    def param(self, value: Any) -> str:
        self.params.append(value)
        return "?"


def json_path(name: str) -> str:
    return '$."' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def go_datetime_text(ns: int) -> str:
    """An instant as the reference writes Datetime values into its SQL (Go's
    "2006-01-02 15:04:05.999999-07:00" in UTC)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    days, second_of_day = divmod(seconds, 86400)
    year, month, day = _civil_from_days(days)
    hour, minute, second = second_of_day // 3600, second_of_day // 60 % 60, second_of_day % 60
    fraction = f"{rest // 1000:06d}".rstrip("0")
    return (
        f"{year:04d}-{month:02d}-{day:02d} {hour:02d}:{minute:02d}:{second:02d}"
        f"{'.' + fraction if fraction else ''}+00:00"
    )


def _civil_from_days(days: int) -> tuple[int, int, int]:
    """The proleptic Gregorian date `days` after 1970-01-01."""
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


# ---------------------------------------------------------------------- full-text emulation
def text_tokens(text: str) -> list[str]:
    """Words as SQLite's `unicode61 remove_diacritics 2` tokenizer finds them: runs of letters,
    digits and private-use characters, case-folded and without accents."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        category = unicodedata.category(ch)
        if category[0] in "LN" or category == "Co":
            base = unicodedata.normalize("NFD", ch)
            current.append("".join(c for c in base if not unicodedata.combining(c)).lower() or ch.lower())
        elif current:
            words.append("".join(current))
            current = []
    if current:
        words.append("".join(current))
    return words


def list_tokens(text: str) -> list[str]:
    """Tokens as the reference's keyword-list tokenizer finds them: only '♡' separates, case-folded."""
    return [t.lower() for t in text.split(KEYWORD_LIST_SEPARATOR) if t]


def _contains_phrase(tokens: list[str], phrase: list[str]) -> bool:
    if not phrase:
        return False
    n = len(phrase)
    return any(tokens[i : i + n] == phrase for i in range(len(tokens) - n + 1))


def _stored_text(value: Any, separator: str) -> str:
    """What the reference indexes for an attribute value: lists joined by the separator."""
    if isinstance(value, str):
        try:
            decoded = json.loads(value)
        except ValueError:
            return value
        if isinstance(decoded, list):
            return separator.join(str(v) for v in decoded)
        return value if not isinstance(decoded, str) else decoded
    return "" if value is None else str(value)


def _extracted(value: Any) -> Any:
    """A decoded JSON value as SQLite's json_extract gives it (what the reference's full-text index saw)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


def _joined(tokens: list[str], separator: str) -> str:
    return separator + separator.join(tokens) + separator if tokens else ""


def search_attribute_tokens(search_attributes_json: str) -> str:
    """The words of each attribute value, as stored beside the row: {name: [text words, list words]}, each joined by
    its separator and wrapped in it (" a b ", "♡a♡b♡"), so that a phrase's words, joined and wrapped alike, are a
    substring exactly where they follow each other in the value."""
    try:
        decoded = json.loads(search_attributes_json)
    except ValueError:
        return "{}"
    if not isinstance(decoded, dict):
        return "{}"
    out: dict[str, list[str]] = {}
    for name, value in decoded.items():
        stored = _extracted(value)
        text = _joined(text_tokens(_stored_text(stored, " ")), " ")
        listed = _joined(list_tokens(_stored_text(stored, KEYWORD_LIST_SEPARATOR)), KEYWORD_LIST_SEPARATOR)
        if text or listed:
            out[name] = [text, listed]
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def phrase_needle(phrase: str, form: int) -> str:
    """What a Text phrase (form 0) or a Keyword-list term (form 1) is searched for in the row's words ("": nothing,
    a phrase without words matches no row)."""
    if form == 0:
        return _joined(text_tokens(phrase), " ")
    return _joined(list_tokens(phrase), KEYWORD_LIST_SEPARATOR)


def list_match(stored: Any, terms_json: str) -> int:
    """Whether a keyword list has an element equal to one of the terms (ignoring case); what a row's words say."""
    tokens = list_tokens(_stored_text(stored, KEYWORD_LIST_SEPARATOR))
    return int(any(_contains_phrase(tokens, list_tokens(term)) for term in json.loads(terms_json)))


def text_match(stored: Any, phrases_json: str) -> int:
    """Whether a text contains one of the phrases (words in order, case and accents ignored)."""
    tokens = text_tokens(_stored_text(stored, " "))
    return int(any(_contains_phrase(tokens, text_tokens(phrase)) for phrase in json.loads(phrases_json)))


def register_functions(conn: sqlite3.Connection) -> None:
    """list_match and text_match as SQL functions (the filters no longer call them: a row keeps its words)."""
    conn.create_function("tempyral_list_match", 2, list_match, deterministic=True)
    conn.create_function("tempyral_text_match", 2, text_match, deterministic=True)


# ---------------------------------------------------------------------- PostgreSQL
def _quoted(text: str) -> str:
    """A SQL string literal (standard_conforming_strings: only quotes are doubled)."""
    return "'" + text.replace("'", "''") + "'"


# A custom Datetime value as SQLite's strftime('%Y-%m-%d %H:%M:%f+00:00', ...) turns it into the text the filters
# compare: in UTC, rounded to milliseconds. The store's connections run in UTC (a value without an offset is UTC, as
# in SQLite); text that is no such date is NULL (checked first: a cast of it would fail the whole query).
_PG_DATETIME = (
    "(CASE WHEN {x} ~ '^(?!0000)[0-9]{{4}}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    "([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9]([.][0-9]+)?)?)?([zZ]|[+-][0-9]{{2}}:[0-9]{{2}})?$' "
    "THEN to_char(date_trunc('milliseconds', {x}::timestamptz + interval '0.5 milliseconds') AT TIME ZONE 'UTC', "
    "'YYYY-MM-DD HH24:MI:SS.MS') || '+00:00' END)"
)


class RowValueMisused(Exception):
    """A parenthesized list where one value belongs: SQLite refuses it when the statement runs ("row value
    misused"); the PostgreSQL rendering refuses it with SQLite's words, so both stores answer alike."""


class PostgresVisibilitySQL(SqliteVisibilitySQL):
    """The PostgreSQL rendering: the same statements, with what PostgreSQL writes differently.

    Text compares as bytes, as SQLite's does: the text columns are created COLLATE "C" (dialect.py), and text
    expressions get it here. Attribute values are read from the JSON as their type (Int and Bool as numeric,
    Double as float8, true and false as 1 and 0), so that they compare as SQLite compares json_extract's values,
    a text value (a list) included; a parameter that mixes a float into an integer comparison is exact numeric, as
    in SQLite. LIKE folds ASCII case only, as SQLite's does. `?` placeholders stay: the dialect numbers them.
    """

    ROW_KEY = "run_id"
    GROUP_ORDER = "grp NULLS FIRST"
    TEXT = ' COLLATE "C"'
    TEXT_SYSTEM = frozenset(
        [
            "WorkflowId",
            "RunId",
            "WorkflowType",
            "TaskQueue",
            "ParentWorkflowId",
            "ParentRunId",
            "RootWorkflowId",
            "RootRunId",
        ]
    )

    def column_type(self, field: Field) -> str:
        """The PostgreSQL type of what `column(field)` gives."""
        if field.name in self.SYSTEM_COLUMNS:
            return "text" if field.name in self.TEXT_SYSTEM else "bigint"
        return {"Int": "numeric", "Double": "float8", "Bool": "numeric"}.get(field.type, "text")

    @staticmethod
    def _json(field: Field) -> str:
        return f"(search_attributes_json::json -> {_quoted(field.name)})"

    def _numeric(self, field: Field) -> bool:
        """A custom attribute read as a number: its stored value may also be text (a list of one value, as the
        SDKs' untyped search attributes give), which SQLite compares as greater than any number."""
        return field.name not in self.SYSTEM_COLUMNS and field.type in ("Int", "Double", "Bool")

    def column(self, field: Field) -> str:
        system = self.SYSTEM_COLUMNS.get(field.name)
        if system is not None:
            return system
        if self._numeric(field):
            # json_extract's numbers: true and false are 1 and 0
            value, kind = self._json(field), self.column_type(field)
            return (
                f"(CASE json_typeof({value}) WHEN 'number' THEN ({value}::text)::{kind} "
                f"WHEN 'boolean' THEN (CASE WHEN {value}::text = 'true' THEN 1 ELSE 0 END)::{kind} END)"
            )
        text = f"(search_attributes_json::json ->> {_quoted(field.name)})"
        if field.type == "Datetime":
            return f"({_PG_DATETIME.format(x=text)}{self.TEXT})"
        return f"({text}{self.TEXT})"

    def _condition(self, f: Condition) -> str:
        if not self._numeric(f.field):
            return super()._condition(f)
        value = self._json(f.field)
        if isinstance(f, IsNull):  # JSON null is SQL NULL, as json_extract gives it
            return f"(COALESCE(json_typeof({value}), 'null') {'<>' if f.negate else '='} 'null')"
        if isinstance(f, Compare):
            text_wins = f.op in ("!=", ">", ">=")
        elif isinstance(f, InList | Between):
            text_wins = f.negate
        else:
            return super()._condition(f)
        # SQLite orders every text after every number: the outcome for a text value depends on the operator only
        condition = super()._condition(f)
        return (
            f"(CASE WHEN json_typeof({value}) IN ('string', 'array', 'object') THEN {'TRUE' if text_wins else 'FALSE'} "
            f"ELSE {condition} END)"
        )

    def _cast(self, field: Field, value: Any) -> str:
        """A value compared with the field's column, typed: exact numeric where a float meets integers."""
        kind = self.column_type(field)
        if value is None or kind == "text":
            return self.param(value)
        if kind == "float8":
            return self.param(float(value)) + "::float8"
        if kind == "numeric" or isinstance(value, float):
            return self.param(Decimal(value)) + "::numeric"
        return self.param(value) + "::bigint"

    def value(self, field: Field, value: Operand) -> str:
        if isinstance(value, tuple):
            raise RowValueMisused("row value misused")
        return self._cast(field, self.bound(field, value))

    def sort_key(self, f: Field) -> str:
        if not self._numeric(f):
            return super().sort_key(f)
        # SQLite sorts the texts (lists) of a number attribute after its numbers, by bytes: a row of (0, the number)
        # or (1, the text's bytes) sorts the same (a record's text would compare by the database's collation).
        value, kind = self._json(f), self.column_type(f)
        text = f"(CASE json_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' ELSE {value}::text END)"
        return (
            f"(CASE WHEN json_typeof({value}) IN ('number', 'boolean') THEN ROW(0, {self.column(f)}, ''::bytea) "
            f"WHEN json_typeof({value}) IN ('string', 'array', 'object') "
            f"THEN ROW(1, 0::{kind}, convert_to({text}, 'UTF8')) END)"
        )

    def sort_param(self, f: Field, value: Any) -> str:
        if f.name == "ExecutionStatus":
            return self.param(value)  # its sort key is the status name
        if not self._numeric(f):
            return self._cast(f, value)
        if value is None:
            return "NULL"
        kind = self.column_type(f)
        if isinstance(value, str):
            return f"ROW({self.param(1)}::int, 0::{kind}, {self.param(value.encode())}::bytea)"
        number = float(value) if kind == "float8" else Decimal(value)
        return f"ROW({self.param(0)}::int, {self.param(number)}::{kind}, ''::bytea)"

    def _same(self, expr: str, param: str) -> str:
        return f"({expr}) IS NOT DISTINCT FROM {param}"

    def _like(self, column: str, pattern: str, negate: bool) -> str:
        # lower() under the "C" collation folds ASCII letters only, as SQLite's LIKE
        return (
            f'(lower({column} COLLATE "C") {"NOT " if negate else ""}LIKE lower({self.param(pattern)}::text '
            "COLLATE \"C\") ESCAPE '!')"
        )

    def _listed(self, field: Field, values: list[Any]) -> str:
        kind = self.column_type(field)
        if kind == "float8":
            values = [float(v) for v in values]
        elif kind != "text" and (kind == "numeric" or any(isinstance(v, float) for v in values)):
            kind, values = "numeric", [Decimal(v) for v in values]
        return f"SELECT unnest({self.param(values)}::{kind}[])"

    def _contains(self, name: str, form: int, needle: str) -> str:
        words = f"(search_attributes_tokens::json -> {_quoted(name)} ->> {form})"
        return f"COALESCE(strpos({words}, {self.param(needle)}::text), 0) > 0"
