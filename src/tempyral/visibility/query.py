"""Temporal's list filter, compiled to a parameterized SQL condition.

This first version understands comparisons (=, !=, >, >=, <, <=) joined by AND / OR with
parentheses, on system and custom search attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums

from tempyral.common.errors import InvalidArgument
from tempyral.persistence.store import VisibilityQuery
from tempyral.visibility.attributes import COLUMNS, SYSTEM_ATTRIBUTES

T = IndexedValueType
_TOKEN = re.compile(
    r"\s*(?:(?P<string>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")|(?P<op>>=|<=|!=|<>|=|>|<|\(|\)|,)"
    r"|(?P<number>-?\d+(?:\.\d+)?)|(?P<word>`[^`]+`|[A-Za-z_][A-Za-z0-9_]*))"
)
STATUS_NAMES = {
    "Running": wf_enums.WORKFLOW_EXECUTION_STATUS_RUNNING,
    "Completed": wf_enums.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    "Failed": wf_enums.WORKFLOW_EXECUTION_STATUS_FAILED,
    "Canceled": wf_enums.WORKFLOW_EXECUTION_STATUS_CANCELED,
    "Terminated": wf_enums.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    "ContinuedAsNew": wf_enums.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW,
    "TimedOut": wf_enums.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    pos: int


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        if query[pos:].strip() == "":
            break
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise syntax_error(pos)
        kind = m.lastgroup or ""
        tokens.append(Token(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    return tokens


# The reference parses the filter as the WHERE clause of this statement and reports syntax
# error positions (1-based) within it.
SQL_PREFIX_LENGTH = len("select * from table1 where ")


def syntax_error(position: int) -> InvalidArgument:
    return InvalidArgument(
        f"invalid query: malformed SQL query: syntax error at position {SQL_PREFIX_LENGTH + position + 1}"
    )


class _Parser:
    def __init__(self, query: str, custom: dict[str, int]) -> None:
        self.query = query.strip()
        self.tokens = tokenize(self.query)
        self.i = 0
        self.custom = custom
        self.params: list[Any] = []

    def peek(self) -> Token | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self) -> Token:
        tok = self.peek()
        if tok is None:
            raise syntax_error(len(self.query))
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok is not None and tok.kind == "word" and tok.text.upper() == word:
            self.i += 1
            return True
        return False

    def parse(self) -> tuple[str, str]:
        where = self.expr() if self.peek() is not None and not self._at_order_by() else "1=1"
        order = ""
        if self.keyword("ORDER"):
            if not self.keyword("BY"):
                raise InvalidArgument("invalid query: malformed SQL query: expected BY after ORDER")
            parts = []
            while True:
                name = self.take()
                column, _ = self.column(name)
                direction = "DESC" if self.keyword("DESC") else "ASC"
                self.keyword("ASC")
                parts.append(f"{column} {direction}")
                tok = self.peek()
                if tok is None or tok.text != ",":
                    break
                self.take()
            order = ", ".join(parts)
        tok = self.peek()
        if tok is not None:
            raise syntax_error(tok.pos)
        return where, order

    def _at_order_by(self) -> bool:
        tok = self.peek()
        return tok is not None and tok.kind == "word" and tok.text.upper() == "ORDER"

    def expr(self) -> str:
        parts = [self.term()]
        while True:
            if self.keyword("AND"):
                parts.append("AND")
            elif self.keyword("OR"):
                parts.append("OR")
            else:
                break
            parts.append(self.term())
        return " ".join(parts)

    def term(self) -> str:
        tok = self.take()
        if tok.text == "(":
            inner = self.expr()
            closing = self.take()
            if closing.text != ")":
                raise syntax_error(closing.pos)
            return f"({inner})"
        if tok.kind != "word":
            raise syntax_error(tok.pos)
        column, vtype = self.column(tok)
        op = self.take()
        if op.kind != "op" or op.text in ("(", ")", ","):
            raise syntax_error(op.pos)
        sql_op = "!=" if op.text == "<>" else op.text
        value = self.value(self.take(), tok.text, vtype)
        self.params.append(value)
        return f"{column} {sql_op} ?"

    def column(self, tok: Token) -> tuple[str, int]:
        name = tok.text.strip("`")
        if name in COLUMNS:
            return COLUMNS[name], SYSTEM_ATTRIBUTES[name]
        if name == "ExecutionDuration":
            return "(close_time - execution_time)", T.INDEXED_VALUE_TYPE_INT
        vtype = self.custom.get(name)
        if vtype is None:
            raise InvalidArgument(f"invalid query: invalid search attribute: {name}")
        return f"json_extract(search_attributes_json, '$.\"{name}\"')", vtype

    def value(self, tok: Token, name: str, vtype: int) -> Any:
        if tok.kind == "string":
            raw: Any = tok.text[1:-1]
        elif tok.kind == "number":
            raw = float(tok.text) if "." in tok.text else int(tok.text)
        elif tok.kind == "word" and tok.text.lower() in ("true", "false"):
            raw = tok.text.lower() == "true"
        else:
            raise syntax_error(tok.pos)
        if name == "ExecutionStatus":
            if raw not in STATUS_NAMES:
                raise InvalidArgument(f"invalid query: invalid ExecutionStatus value '{raw}'")
            return STATUS_NAMES[raw]
        if vtype == T.INDEXED_VALUE_TYPE_DATETIME and isinstance(raw, str):
            try:
                return int(datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp() * 1_000_000_000)
            except ValueError as err:
                raise InvalidArgument(f"invalid query: invalid datetime value for {name}: {raw}") from err
        return raw


def compile_query(query: str, custom: dict[str, int]) -> VisibilityQuery:
    if not query.strip():
        return VisibilityQuery()
    parser = _Parser(query, custom)
    where, order = parser.parse()
    return VisibilityQuery(where=where, params=parser.params, order_by=order)
