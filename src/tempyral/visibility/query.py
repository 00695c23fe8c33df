"""Temporal's list-filter language compiled to a visibility filter.

A filter is parsed with the reference's SQL grammar (tempyral.visibility.sqlparse), then checked and
converted the way the reference's SQL visibility store does it: attribute names resolve to system,
predefined or the namespace's custom search attributes; values are checked against the attribute's
type and turned into what is stored (ExecutionStatus names into codes, datetimes into instants,
durations into nanoseconds); Keyword-list `=` / `IN` mean "has an element", Text `=` means "contains
one of the words"; LIMIT is refused, GROUP BY only takes ExecutionStatus. ORDER BY sorts as the
reference's Elasticsearch visibility does (its SQL visibility refuses the clause). The result is
a predicate tree (tempyral.persistence.visibility_sql) that a SQL dialect renders with parameters.
Errors carry the reference's messages.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums

from tempyral.common.errors import InvalidArgument
from tempyral.common.trampoline import Step, run
from tempyral.persistence.store import VisibilityQuery
from tempyral.persistence.visibility_sql import (
    And,
    Between,
    Compare,
    Field,
    Filter,
    InList,
    IsNull,
    ListMatch,
    Not,
    Or,
    StartsWith,
    TextMatch,
)
from tempyral.visibility import sqlparse as ast
from tempyral.visibility.attributes import SYSTEM_ATTRIBUTES

T = IndexedValueType
TYPE_NAMES: dict[int, str] = {
    T.INDEXED_VALUE_TYPE_TEXT: "Text",
    T.INDEXED_VALUE_TYPE_KEYWORD: "Keyword",
    T.INDEXED_VALUE_TYPE_INT: "Int",
    T.INDEXED_VALUE_TYPE_DOUBLE: "Double",
    T.INDEXED_VALUE_TYPE_BOOL: "Bool",
    T.INDEXED_VALUE_TYPE_DATETIME: "Datetime",
    T.INDEXED_VALUE_TYPE_KEYWORD_LIST: "KeywordList",
}
STATUS_NAMES = {
    "Unspecified": wf_enums.WORKFLOW_EXECUTION_STATUS_UNSPECIFIED,
    "Running": wf_enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
    "Completed": wf_enums.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    "Failed": wf_enums.WORKFLOW_EXECUTION_STATUS_FAILED,
    "Canceled": wf_enums.WORKFLOW_EXECUTION_STATUS_CANCELED,
    "Terminated": wf_enums.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    "ContinuedAsNew": wf_enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
    "TimedOut": wf_enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}
STATUS_BY_CODE = {code: name for name, code in STATUS_NAMES.items()}
STATUS_CODES = {**STATUS_NAMES, **{wf_enums.WorkflowExecutionStatus.Name(c): c for c in STATUS_NAMES.values()}}

MALFORMED = "malformed SQL query"
NOT_SUPPORTED = "operation is not supported"
INVALID = "invalid expression"
SCHEDULE_WORKFLOW_ID_PREFIX = "temporal-sys-scheduler:"
NAMESPACE_DIVISION = "TemporalNamespaceDivision"
KEYWORD_OPS = frozenset(["=", "!=", "<", ">", "<=", ">=", "in", "not in", "starts_with", "not starts_with"])
OTHER_OPS = frozenset(["=", "!=", "<", ">", "<=", ">=", "in", "not in"])
LIST_OPS = frozenset(["=", "!=", "in", "not in"])
TEXT_OPS = frozenset(["=", "!="])
RANGE_TYPES = frozenset(["Datetime", "Double", "Int", "Keyword"])
GROUP_BY_FIELDS = frozenset(["ExecutionStatus", NAMESPACE_DIVISION])
# The reference escapes string values for SQL text with this map; in SQLite only the quote doubling
# is undone, so values with these characters are compared with backslashes in them.
_REFERENCE_ESCAPES = {'"': '\\"', "\b": "\\b", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


class QueryError(Exception):
    """A filter the reference refuses; str() is its message without the "invalid query: " prefix."""


def _err(kind: str, detail: str) -> QueryError:
    return QueryError(f"{kind}: {detail}")


@dataclass(frozen=True)
class Column:
    alias: str  # the name as the filter wrote it
    field: str  # the search attribute it resolves to
    type: str  # Keyword, Text, Int, Double, Bool, Datetime, KeywordList


def compile_query(query: str, custom: dict[str, int]) -> VisibilityQuery:
    """The filter of a List/Count/Scan request; InvalidArgument("invalid query: ...") when it is not one."""
    try:
        return Compiler(custom).compile(query)
    except QueryError as err:
        raise InvalidArgument(f"invalid query: {err}") from None


class Compiler:
    def __init__(self, custom: dict[str, int]) -> None:
        self.custom = custom
        self.seen_namespace_division = False

    def compile(self, query: str) -> VisibilityQuery:
        try:
            sel = ast.parse_filter(query)
        except ast.SyntaxErr as err:
            raise _err(MALFORMED, str(err)) from None
        if sel.limit is not None:
            raise _err(NOT_SUPPORTED, "'LIMIT' clause")
        where = run(self.where(sel.where)) if sel.where is not None else None
        if len(sel.group_by) > 1:
            raise _err(NOT_SUPPORTED, "'GROUP BY' clause supports only a single field")
        group_by = ""
        for node in sel.group_by:
            col = self.column(node)
            if col.field not in GROUP_BY_FIELDS and not col.field.startswith("TemporalLowCardinalityKeyword"):
                raise _err(NOT_SUPPORTED, f"'GROUP BY' clause is not supported for search attribute {col.alias}")
            group_by = col.field
        order_by: list[tuple[Field, bool]] = []
        for node, descending in zip(sel.order_by, sel.order_desc, strict=True):
            col = self.column(node)
            if col.type == "Text":
                raise _err(NOT_SUPPORTED, "unable to sort by search attribute type Text")
            order_by.append((self.field(col), descending))
        if not self.seen_namespace_division:
            # Workflows have no namespace division unless the filter asks for one.
            division = IsNull(Field(NAMESPACE_DIVISION, "Keyword"))
            where = division if where is None else And((where, division))
        return VisibilityQuery(filter=where, group_by=group_by, order_by=tuple(order_by))

    # ------------------------------------------------------------------ expressions
    def where(self, node: ast.Node, negated: bool = False) -> Step[Filter]:
        """The filter a WHERE expression stands for, with NOTs moved down to the conditions (De
        Morgan's laws, and NOT NOT x = x, hold in SQL's three-valued logic too) and each chain of
        ANDs or ORs made one node, so that the SQL stays shallow however deep the filter nests.
        Conditions are converted left to right: the first bad one is the one the reference names."""
        while isinstance(node, ast.ParenExpr | ast.NotExpr):
            negated ^= isinstance(node, ast.NotExpr)
            node = node.expr
        if not isinstance(node, ast.AndExpr | ast.OrExpr):
            condition = self.condition(node)
            return Not(condition) if negated else condition
        conjunction = isinstance(node, ast.AndExpr) != negated
        items: list[Filter] = []
        for operand in _chain(node):
            item = yield self.where(operand, negated)
            same_kind = isinstance(item, And) if conjunction else isinstance(item, Or)
            items.extend(item.items if same_kind else (item,))
        return And(tuple(items)) if conjunction else Or(tuple(items))

    def condition(self, node: ast.Node) -> Filter:
        if isinstance(node, ast.ComparisonExpr):
            return self.comparison(node)
        if isinstance(node, ast.RangeCond):
            return self.range(node)
        if isinstance(node, ast.IsExpr):
            col = self.column(node.expr)
            if node.op not in ("is null", "is not null"):
                raise _err(INVALID, "'IS' operator can only be used as 'IS NULL' or 'IS NOT NULL'")
            return IsNull(self.field(col), negate=node.op == "is not null")
        if isinstance(node, ast.FuncExpr):
            raise _err(NOT_SUPPORTED, "function expression")
        if isinstance(node, ast.ColName):
            raise _err(INVALID, "incomplete expression")
        raise _err(NOT_SUPPORTED, f"expression of type {node.go_type}")

    def comparison(self, node: ast.ComparisonExpr) -> Filter:
        col = self.column(node.left)
        value = self.value(node.right, col)
        op = node.op
        allowed = {"Keyword": KEYWORD_OPS, "KeywordList": LIST_OPS, "Text": TEXT_OPS}.get(col.type, OTHER_OPS)
        if op not in allowed:
            raise _err(
                NOT_SUPPORTED,
                f"operator '{op.upper()}' not supported for {col.type} type search attribute '{col.alias}'",
            )
        field = self.field(col)
        negate = op in ("!=", "not in", "not starts_with")
        values = tuple(value) if isinstance(value, list) else (value,)
        if col.type in ("KeywordList", "Text") and op in ("=", "!=") and isinstance(value, list):
            shown = "(" + ", ".join(f"'{v}'" for v in value) + ")"
            raise _err(INVALID, f"unexpected value type (expected string, got {shown})")
        if col.type == "KeywordList":
            return ListMatch(field, tuple(str(v) for v in values), negate)
        if col.type == "Text":
            phrases = tuple(p for p in str(value).split(" ") if p)
            if not phrases:
                raise _err(INVALID, f"no tokens found filtering on Text type search attribute {col.alias}")
            return TextMatch(field, phrases, negate)
        if op in ("starts_with", "not starts_with"):
            if not isinstance(value, str) or col.field == "ExecutionStatus":
                shown = STATUS_BY_CODE.get(value, value) if col.field == "ExecutionStatus" else value
                raise _err(INVALID, f'right-hand side of "{op}" operator must be a literal string (got: {go_v(shown)})')
            return StartsWith(field, value, negate)
        if op in ("in", "not in"):
            return InList(field, values, negate)
        return Compare(field, op, tuple(value) if isinstance(value, list) else value)

    def range(self, node: ast.RangeCond) -> Filter:
        col = self.column(node.left)
        if col.type not in RANGE_TYPES:
            raise _err(INVALID, f"cannot do range condition on search attribute '{col.alias}' of type {col.type}")
        low = self.value(node.low, col)
        high = self.value(node.high, col)
        low, high = (tuple(v) if isinstance(v, list) else v for v in (low, high))
        return Between(self.field(col), low, high, negate=node.op == "not between")

    # ------------------------------------------------------------------ attributes
    def column(self, node: ast.Node) -> Column:
        if not isinstance(node, ast.ColName):
            raise _err(INVALID, f"must be a column name but was {node.go_type}")
        alias = node.sql().replace("`", "")
        field, vtype = self.resolve(alias)
        if field == NAMESPACE_DIVISION:
            self.seen_namespace_division = True
        return Column(alias, field, vtype)

    def resolve(self, name: str) -> tuple[str, str]:
        if name not in SYSTEM_ATTRIBUTES:
            if name in self.custom:
                return name, TYPE_NAMES.get(self.custom[name], "Unspecified")
            if name == "ScheduleId":
                return "WorkflowId", "Keyword"
        if name.removeprefix("Temporal") == "ScheduleId":
            return "WorkflowId", "Keyword"
        for candidate in (name, "Temporal" + name, name.removeprefix("Temporal")):
            if candidate in SYSTEM_ATTRIBUTES:
                return candidate, TYPE_NAMES[SYSTEM_ATTRIBUTES[candidate]]
        raise QueryError(f"invalid search attribute: {name}")

    @staticmethod
    def field(col: Column) -> Field:
        return Field(col.field, col.type)

    # ------------------------------------------------------------------ values
    def value(self, node: ast.Node, col: Column) -> Any:
        """The value (or list of values) a comparison's right side stands for, as stored."""
        if isinstance(node, ast.SQLVal):
            return self.literal(node, col)
        if isinstance(node, ast.BoolVal):
            return self.typed(col, node.value)
        if isinstance(node, ast.ValTuple):
            return [self.value(item, col) for item in node.items]
        if isinstance(node, ast.GroupConcatExpr):
            raise _err(NOT_SUPPORTED, "'group_concat'")
        if isinstance(node, ast.FuncExpr):
            raise _err(NOT_SUPPORTED, "nested func")
        if isinstance(node, ast.ColName):
            raise _err(
                NOT_SUPPORTED,
                "column name on the right side of comparison expression "
                f"(did you forget to quote {go_quote(node.sql())}?)",
            )
        if isinstance(node, ast.UnaryExpr):
            inner = node.expr
            if node.op in ("+", "-"):
                if isinstance(inner, ast.SQLVal) and inner.kind in ("int", "float"):
                    checked = self.literal(inner, col)  # errors name the value before the sign
                    return self.literal(inner, col, negate=True) if node.op == "-" else checked
                raise _err(INVALID, f"unary operator not supported in {go_quote(node.sql())}")
            raise _err(NOT_SUPPORTED, f"unary operator {go_quote(node.op)}")
        raise _err(INVALID, f"unexpected value type {node.go_type}")

    def literal(self, node: ast.SQLVal, col: Column, negate: bool = False) -> Any:
        raw = parse_sql_value(node)
        if negate and isinstance(raw, int | float):
            raw = -raw
        if col.alias == "ScheduleId" and col.field == "WorkflowId":
            raw = SCHEDULE_WORKFLOW_ID_PREFIX + go_v(raw)
        if col.field == "ExecutionStatus":
            return status_value(raw)
        if col.field == "ExecutionDuration":
            return duration_value(raw)
        return self.typed(col, raw)

    def typed(self, col: Column, value: Any) -> Any:
        """The value checked against the attribute's type, in its stored form."""
        ok = False
        if col.type in ("Int", "Double"):
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif col.type == "Bool":
            ok = isinstance(value, bool)
        elif col.type == "Datetime":
            if isinstance(value, str):
                try:
                    return parse_rfc3339_ns(value) // 1000 * 1000  # the reference keeps microseconds
                except ValueError:
                    raise _err(INVALID, f"unable to parse datetime '{value}'") from None
            if isinstance(value, int) and not isinstance(value, bool):
                return value // 1000 * 1000
        elif col.type in ("Keyword", "KeywordList", "Text"):
            if isinstance(value, str):
                return "".join(_REFERENCE_ESCAPES.get(c, c) for c in value)
        else:
            raise _err(INVALID, f"unknown search attribute type {col.type} for {col.alias}")
        if ok:
            return value
        raise _err(
            INVALID,
            f"invalid value type for search attribute {col.alias} of type {col.type}: "
            f"{go_sharp_v(value)} (type: {go_type_name(value)})",
        )


def _chain(node: ast.AndExpr | ast.OrExpr) -> list[ast.Node]:
    """The operands of a chain of ANDs (or of ORs), parentheses aside, left to right."""
    operands: list[ast.Node] = []
    todo: list[ast.Node] = [node]
    while todo:
        item = todo.pop()
        while isinstance(item, ast.ParenExpr):
            item = item.expr
        if isinstance(item, ast.AndExpr | ast.OrExpr) and type(item) is type(node):
            todo += [item.right, item.left]
        else:
            operands.append(item)
    return operands


def parse_sql_value(node: ast.SQLVal) -> str | int | float:
    """A literal as the reference reads it: quoted text is a string, anything else a number."""
    if node.kind == "str":
        return node.val.strip("'")
    text = node.val
    if text == "":
        return ""
    if re.fullmatch(r"[+-]?\d+", text) and -(2**63) <= int(text) < 2**63:
        return int(text)
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        number = float(text)
        if number not in (float("inf"), float("-inf")):
            return number
    raise _err(INVALID, f"unable to parse value {go_quote(node.sql())}")


def status_value(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if value in STATUS_BY_CODE:
            return value
        raise _err(INVALID, f"invalid ExecutionStatus value {value}")
    if isinstance(value, str):
        if value in STATUS_CODES:
            return STATUS_CODES[value]
        raise _err(INVALID, f"invalid ExecutionStatus value '{value}'")
    raise _err(INVALID, f"unexpected value type {go_type_name(value)} for search attribute ExecutionStatus")


def duration_value(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return parse_execution_duration(value)
        except ValueError:
            raise _err(INVALID, f"invalid duration value for search attribute ExecutionDuration: {value}") from None
    raise _err(INVALID, f"unexpected value type {go_type_name(value)} for search attribute ExecutionDuration")


# ---------------------------------------------------------------------- time values
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:[.,](\d+))?(Z|[+-]\d{2}:\d{2})")


def parse_rfc3339_ns(text: str) -> int:
    """RFC 3339 as Go's time.Parse(time.RFC3339Nano) reads it (any fraction length, '.' or ',',
    years from 0000), as nanoseconds since the epoch."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(text)
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    if not 1 <= month <= 12 or not 1 <= day <= month_days[month - 1] or hour > 23 or minute > 59 or second > 59:
        raise ValueError(text)
    offset = 0
    zone = m[8]
    if zone != "Z":
        oh, om = int(zone[1:3]), int(zone[4:6])
        if oh > 24 or om > 60:
            raise ValueError(text)
        offset = (oh * 3600 + om * 60) * (1 if zone[0] == "+" else -1)
    seconds = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    return seconds * 1_000_000_000 + int((m[7] or "0")[:9].ljust(9, "0"))


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


_DURATION_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,
    "\u03bcs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DAYS = re.compile(r"([0-9]+(\.[0-9]*)?|(\.[0-9]+))d")


def parse_execution_duration(text: str) -> int:
    """Nanoseconds from "12345" (nanoseconds), a Go duration with days ("1d2h", "1.5h", "300ms")
    or "hh:mm:ss", as the reference reads ExecutionDuration values."""
    if re.fullmatch(r"[+-]?[0-9]+", text) and -(2**63) <= int(text) < 2**63:
        return int(text)
    try:
        return parse_go_duration(_DAYS.sub(lambda m: f"{24 * float(m[0][:-1]):f}h", text))
    except ValueError:
        pass
    m = re.match(r"[ \t\r]*([+-]?[0-9]+):[ \t\r]*([+-]?[0-9]+):[ \t\r]*([+-]?[0-9]+)", text)
    if m is None:
        raise ValueError(text)
    hours, minutes, seconds = int(m[1]), int(m[2]), int(m[3])
    if hours < 0 or not 0 <= minutes <= 59 or not 0 <= seconds <= 59:
        raise ValueError(text)
    return (hours * 3600 + minutes * 60 + seconds) * 1_000_000_000


def parse_go_duration(text: str) -> int:
    """Go's time.ParseDuration."""
    s = text
    negative = False
    if s[:1] in ("-", "+"):
        negative = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        raise ValueError(text)
    total = 0
    while s:
        m = re.match(r"([0-9]*)(?:\.([0-9]*))?", s)
        assert m is not None
        whole, fraction = m[1], m[2]
        if not whole and not fraction:
            raise ValueError(text)
        s = s[m.end() :]
        u = re.match(r"[^0-9.]+", s)
        if u is None or u[0] not in _DURATION_UNITS:
            raise ValueError(text)
        unit = _DURATION_UNITS[u[0]]
        s = s[u.end() :]
        value = int(whole or "0") * unit
        if fraction:
            value += int(int(fraction) * (unit / 10 ** len(fraction)))
        total += value
        if total > 2**63 - 1 + (1 if negative else 0):
            raise ValueError(text)
    return -total if negative else total


# ---------------------------------------------------------------------- Go formatting of values
def go_quote(s: str) -> str:
    """Go's %q of a string."""
    out = ['"']
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def go_float(f: float) -> str:
    """Go's %v of a float64: shortest digits, exponent form below 1e-4 and from 1e6."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, f) < 0 else ""
    shortest = Decimal(repr(abs(f))).normalize().as_tuple()
    digits = "".join(str(d) for d in shortest.digits)
    if digits == "0":
        return sign + "0"
    assert isinstance(shortest.exponent, int)
    exp = len(digits) + shortest.exponent - 1
    if exp < -4 or exp >= 6:
        tail = "." + digits[1:] if len(digits) > 1 else ""
        return f"{sign}{digits[0]}{tail}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[: exp + 1]}.{digits[exp + 1 :]}"


def go_v(value: Any) -> str:
    """Go's %v."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, list):
        return "[" + " ".join(go_v(v) for v in value) + "]"
    return str(value)


def go_sharp_v(value: Any) -> str:
    """Go's %#v."""
    return go_quote(value) if isinstance(value, str) else go_v(value)


def go_type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int64"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, list):
        return "[]interface {}"
    return "string"
