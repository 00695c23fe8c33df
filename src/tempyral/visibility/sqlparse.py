"""The SQL dialect Temporal's list filters are written in: a tokenizer and a recursive-descent
parser for the part of the reference's parser (github.com/temporalio/sqlparser, a Vitess/MySQL
grammar) that a filter can reach.

The reference parses a filter as `select * from table1 where <filter>`, so syntax errors carry a
1-based byte position within that statement ("syntax error at position 42 near 'x'"), the same
keywords are reserved (`When` must be written `` `When` ``), and valid SQL that is not a valid
filter (`lower(WorkflowId) = 'a'`) parses into nodes the converter then rejects by their Go type
name. The AST below keeps those names.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, TypeAlias

from tempyral.common.trampoline import Step, run

# Keywords of the reference's tokenizer. Reserved ones (and the few with their own grammar) cannot
# name a column; non-reserved ones can, and then name it in lower case.
RESERVED_WORDS = frozenset(
    """add and as asc auto_increment between binary by case collate convert create cross current_date
    current_time current_timestamp database databases default delete desc describe distinct div drop
    else end escape exists explain false for force from group having if ignore in index inner insert
    interval into is join key left like limit localtime localtimestamp lock match maxvalue mod natural
    next not null on or order outer regexp rename replace right rlike schema select separator set show
    starts_with straight_join substr substring table tables then to true union unique update use using
    utc_date utc_time utc_timestamp values when where _binary all alter analyze boolean cast column
    constraint extended full group_concat processlist sql_cache sql_no_cache stream""".split()
)
NON_RESERVED_WORDS = frozenset(
    """accessible against asensitive before begin bigint bit blob bool both call cascade change char
    character charset check comment commit committed condition continue current_user cursor date
    datetime day_hour day_microsecond day_minute day_second dec decimal declare delayed deterministic
    distinctrow double duplicate each elseif enclosed enum escaped exit expansion fetch float float4
    float8 foreign fulltext generated geometry geometrycollection get global grant high_priority
    hour_microsecond hour_minute hour_second infile inout insensitive int int1 int2 int3 int4 int8
    integer io_after_gtids isolation iterate json key_block_size keys kill language last_insert_id
    leading leave less level linear lines linestring load long longblob longtext loop low_priority
    master_bind mediumblob mediumint mediumtext middleint minute_microsecond minute_second mode modifies
    multilinestring multipoint multipolygon names nchar no_write_to_binlog numeric offset only optimize
    optimizer_costs option optionally out outfile partition point polygon precision primary procedure
    query range read read_write reads real references release reorganize repair repeat repeatable
    require resignal restrict return revoke rollback schemas second_microsecond sensitive serializable
    session share signal signed smallint spatial specific sql sql_big_result sql_calc_found_rows
    sql_small_result sqlexception sqlstate sqlwarning ssl start starting status stored terminated text
    than time timestamp tinyblob tinyint tinytext trailing transaction trigger truncate uncommitted undo
    unlock unsigned usage varbinary varchar varcharacter variables varying view vindex vindexes virtual
    vitess_keyspaces vitess_shards vitess_tablets vschema_tables while with write xor year year_month
    zerofill""".split()
)
KEYWORDS = RESERVED_WORDS | NON_RESERVED_WORDS
# Reserved words that still start a function call: `left(x)`, `if(a, b, c)`, `current_date`.
FUNCTION_WORDS = frozenset(
    """left right replace mod if database values substr substring current_date current_time
    current_timestamp localtime localtimestamp utc_date utc_time utc_timestamp""".split()
)
NILADIC_FUNCTIONS = frozenset(
    "current_date current_time current_timestamp localtime localtimestamp utc_date utc_time utc_timestamp".split()
)
STATEMENT_PREFIX = "select * from table1 "
COMPARE_OPS = frozenset(["=", "<", ">", "<=", ">=", "!=", "<=>"])
# Operator precedence of the reference's grammar (higher binds tighter).
PREC_OR, PREC_AND, PREC_NOT, PREC_BETWEEN, PREC_COMPARE = 1, 2, 3, 4, 5
PREC_UNARY, PREC_COLLATE = 12, 13
BINARY_OPS = {
    "|": 6,
    "&": 7,
    "<<": 8,
    ">>": 8,
    "+": 9,
    "-": 9,
    "*": 10,
    "/": 10,
    "div": 10,
    "%": 10,
    "mod": 10,
    "^": 11,
}
_DECODE_ESCAPES = {ord("0"): 0, ord("b"): 8, ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("Z"): 26}


class SyntaxErr(Exception):
    """What the reference's parser says of a statement it refuses: "syntax error at position N
    near 'x'", "max nesting level reached at position N", "max ast depth reached"."""

    def __init__(self, position: int | None, near: str | None, problem: str = "syntax error") -> None:
        self.position = position
        self.near = near
        where = f" near '{near}'" if near else ""
        super().__init__(problem if position is None else f"{problem} at position {position}{where}")


class Tok(NamedTuple):
    kind: str  # id kw str int float hexnum hex bit arg op eof err
    val: str  # identifiers as written (keywords lower-cased); strings decoded; operators as text
    pos: int  # the tokenizer's position once the token is read (what syntax errors report)
    near: str | None  # the token text a syntax error quotes, if the reference quotes one


# ---------------------------------------------------------------------- tokenizer
def _is_letter(c: int) -> bool:
    return 97 <= c <= 122 or 65 <= c <= 90 or c in (95, 64)  # a-z A-Z _ @


def _is_digit(c: int) -> bool:
    return 48 <= c <= 57


def _digit_val(c: int) -> int:
    if 48 <= c <= 57:
        return c - 48
    if 97 <= c <= 102:
        return c - 87
    if 65 <= c <= 70:
        return c - 55
    return 16


def tokenize(sql: str) -> list[Tok]:
    """The reference's tokens for `sql`, up to the end or the first token it cannot read.
    Positions count bytes of the UTF-8 text, as the reference does."""
    data = sql.encode()
    n = len(data)
    tokens: list[Tok] = []
    i = 0
    args = 0

    def at(k: int) -> int:
        return data[k] if k < n else -1

    def text(b: bytes) -> str:
        return b.decode(errors="replace")

    def mantissa(k: int, base: int) -> int:
        while k < n and _digit_val(data[k]) < base:
            k += 1
        return k

    while True:
        while i < n and data[i] in b" \n\r\t":
            i += 1
        if i >= n:
            tokens.append(Tok("eof", "", n + 1, None))
            return tokens
        start = i
        c = data[i]
        tok: Tok
        if _is_letter(c):
            i += 1
            if c in b"xXbB" and at(i) == 39:  # X'0A' and B'01' literals
                base = 16 if c in b"xX" else 2
                j = mantissa(i + 1, base)
                body = text(data[i + 1 : j])
                if at(j) != 39 or (base == 16 and len(body) % 2):
                    i = j + 1 if at(j) == 39 else j
                    tokens.append(Tok("err", body, i + 1, body or None))
                    return tokens
                i = j + 1
                tokens.append(Tok("hex" if base == 16 else "bit", body, i + 1, body or None))
                continue
            while i < n and (_is_letter(data[i]) or _is_digit(data[i])):
                i += 1
            word = text(data[start:i])
            lowered = word.lower()
            if lowered in KEYWORDS:
                tok = Tok("kw", lowered, i + 1, lowered)
            elif lowered == "dual":
                tok = Tok("id", lowered, i + 1, lowered)
            else:
                tok = Tok("id", word, i + 1, word)
        elif _is_digit(c) or (c == 46 and _is_digit(at(i + 1))):
            kind = "int"
            if c == 46:
                kind = "float"
                i = mantissa(i + 1, 10)
            elif c == 48 and at(i + 1) in (120, 88):  # 0x10
                kind = "hexnum"
                i = mantissa(i + 2, 16)
            else:
                i = mantissa(i, 10)
                if at(i) == 46:
                    kind = "float"
                    i = mantissa(i + 1, 10)
            if kind != "hexnum" and at(i) in (101, 69):  # exponent
                kind = "float"
                i += 1
                if at(i) in (43, 45):
                    i += 1
                i = mantissa(i, 10)
            body = text(data[start:i])
            if i < n and _is_letter(data[i]):
                tokens.append(Tok("err", body, i + 1, body))
                return tokens
            tok = Tok(kind, body, i + 1, body)
        elif c == 58:  # :name bind variables
            i += 1
            if at(i) == 58:
                i += 1
            if not _is_letter(at(i)):
                body = text(data[start:i])
                tokens.append(Tok("err", body, i + 1, body))
                return tokens
            while i < n and (_is_letter(data[i]) or _is_digit(data[i]) or data[i] == 46):
                i += 1
            body = text(data[start:i])
            tok = Tok("arg", body, i + 1, body)
        elif c in (39, 34):  # 'string' or "string"
            i += 1
            buf = bytearray()
            while True:
                if i >= n:
                    tokens.append(Tok("err", text(bytes(buf)), n + 1, text(bytes(buf)) or None))
                    return tokens
                ch = data[i]
                i += 1
                if ch == 92:  # backslash escape
                    if i >= n:
                        tokens.append(Tok("err", text(bytes(buf)), n + 1, text(bytes(buf)) or None))
                        return tokens
                    buf.append(_DECODE_ESCAPES.get(data[i], data[i]))
                    i += 1
                elif ch == c:
                    if at(i) == c:  # a doubled quote stands for itself
                        buf.append(c)
                        i += 1
                    else:
                        break
                else:
                    buf.append(ch)
            body = text(bytes(buf))
            tok = Tok("str", body, i + 1, body or None)
        elif c == 96:  # `identifier`
            i += 1
            buf = bytearray()
            while True:
                if i >= n:
                    tokens.append(Tok("err", text(bytes(buf)), n + 1, text(bytes(buf)) or None))
                    return tokens
                if data[i] == 96:
                    if at(i + 1) == 96:
                        buf.append(96)
                        i += 2
                        continue
                    i += 1
                    break
                buf.append(data[i])
                i += 1
            if not buf:
                tokens.append(Tok("err", "", i + 1, None))
                return tokens
            body = text(bytes(buf))
            tok = Tok("id", body, i + 1, body)
        else:
            i += 1
            two = data[start : start + 2]
            if two in (b"--", b"//") or c == 35:  # comments to the end of the line
                while i < n and data[i] != 10:
                    i += 1
                i += 1
                continue
            if two == b"/*":
                end = data.find(b"*/", start + 2)
                if end < 0:
                    body = text(data[start:])
                    tokens.append(Tok("err", body, n + 1, body))
                    return tokens
                i = end + 2
                continue
            op: str | None = None
            for candidate in ("<=>", "->>", "<>", "<<", "<=", ">=", ">>", "!=", "->", "&&", "||"):
                if data.startswith(candidate.encode(), start):
                    op = candidate
                    break
            if op is None and chr(c) in "=,;()+*%^~&|-<>!/.":
                op = chr(c)
            if op is None and c == 63:  # ? placeholders
                args += 1
                tok = Tok("arg", f":v{args}", i + 1, f":v{args}")
            elif op is None:
                body = text(bytes([c]))
                tokens.append(Tok("err", body, i + 1, body))
                return tokens
            else:
                i = start + len(op)
                if op in ("&&", "||"):
                    tok = Tok("kw", "and" if op == "&&" else "or", i + 1, None)
                else:
                    tok = Tok("op", "!=" if op == "<>" else op, i + 1, None)
        tokens.append(tok)


# ---------------------------------------------------------------------- syntax tree
# The reference's parser refuses statements nested too deep: 200 open parentheses, NOTs and unary
# operators at once while parsing ("max nesting level reached"), and a syntax tree 1000 levels deep
# ("max ast depth reached", counted on its tree, where e.g. a column name has two levels below it).
MAX_NESTING = 200
MAX_AST_DEPTH = 1000
Part: TypeAlias = "str | Node"


class Node(ABC):
    go_type = ""
    # Levels of the reference's tree below this node that this tree leaves out (a column name's
    # table qualifier and its identifiers, a function's argument list, a subquery's select).
    go_hidden_levels = 0

    def sql(self) -> str:
        """The node as the reference's parser prints it back (its error messages quote this).
        Written out from a list, not by recursion: a tree may be 1000 levels deep."""
        out: list[str] = []
        todo: list[Part] = [self]
        while todo:
            part = todo.pop()
            if isinstance(part, str):
                out.append(part)
            else:
                todo.extend(reversed(part.parts()))
        return "".join(out)

    @abstractmethod
    def parts(self) -> Sequence[Part]:
        """The node's text: strings and the child nodes between them."""

    def go_children(self) -> Sequence[tuple[int, Node]]:
        """The child nodes, each with how many levels below this one the reference's tree has it."""
        return ()


@dataclass
class SQLVal(Node):
    kind: str  # str int float hexnum hex bit arg
    val: str
    go_type = "*sqlparser.SQLVal"

    def parts(self) -> Sequence[Part]:
        if self.kind == "str":
            return ("'" + re.sub(r"""[\x00'"\x08\n\r\t\x1a\\]""", _mysql_escape, self.val) + "'",)
        if self.kind == "hex":
            return (f"X'{self.val}'",)
        if self.kind == "bit":
            return (f"B'{self.val}'",)
        return (self.val,)


def _mysql_escape(m: re.Match[str]) -> str:
    return "\\" + {"\x00": "0", "\x08": "b", "\n": "n", "\r": "r", "\t": "t", "\x1a": "Z"}.get(m[0], m[0])


@dataclass
class NullVal(Node):
    go_type = "*sqlparser.NullVal"

    def parts(self) -> Sequence[Part]:
        return ("null",)


@dataclass
class BoolVal(Node):
    value: bool
    go_type = "sqlparser.BoolVal"

    def parts(self) -> Sequence[Part]:
        return ("true" if self.value else "false",)


@dataclass
class ColName(Node):
    name: str
    qualifier: tuple[str, ...] = ()
    go_type = "*sqlparser.ColName"
    go_hidden_levels = 2  # its TableName qualifier, and that one's identifiers

    def parts(self) -> Sequence[Part]:
        return (".".join(format_id(part) for part in (*self.qualifier, self.name)),)


@dataclass
class ValTuple(Node):
    items: list[Node]
    go_type = "sqlparser.ValTuple"
    go_hidden_levels = 1  # the Exprs list between the tuple and its items

    def parts(self) -> Sequence[Part]:
        return ("(", *_joined(self.items, ", "), ")")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(2, item) for item in self.items]


def _joined(nodes: Sequence[Node], separator: str) -> list[Part]:
    parts: list[Part] = []
    for n, node in enumerate(nodes):
        if n:
            parts.append(separator)
        parts.append(node)
    return parts


@dataclass
class ParenExpr(Node):
    expr: Node
    go_type = "*sqlparser.ParenExpr"

    def parts(self) -> Sequence[Part]:
        return ("(", self.expr, ")")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class StarExpr(Node):
    go_type = "*sqlparser.StarExpr"
    go_hidden_levels = 2  # its TableName, and that one's identifiers

    def parts(self) -> Sequence[Part]:
        return ("*",)


@dataclass
class FuncExpr(Node):
    name: str
    args: list[Node] = field(default_factory=list)
    go_type = "*sqlparser.FuncExpr"
    go_hidden_levels = 1  # its name, qualifier and argument list

    def parts(self) -> Sequence[Part]:
        return (f"{self.name}(", *_joined(self.args, ", "), ")")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        # An argument sits in the argument list, in an AliasedExpr unless it is a `*`.
        return [(2 if isinstance(arg, StarExpr) else 3, arg) for arg in self.args]


@dataclass
class GroupConcatExpr(FuncExpr):
    go_type = "*sqlparser.GroupConcatExpr"


@dataclass
class BinaryExpr(Node):
    left: Node
    op: str
    right: Node
    go_type = "*sqlparser.BinaryExpr"

    def parts(self) -> Sequence[Part]:
        return (self.left, f" {self.op} ", self.right)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.left), (1, self.right)]


@dataclass
class UnaryExpr(Node):
    op: str
    expr: Node
    go_type = "*sqlparser.UnaryExpr"

    def parts(self) -> Sequence[Part]:
        space = " " if isinstance(self.expr, UnaryExpr) else ""
        return (f"{self.op}{space}", self.expr)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class CollateExpr(Node):
    expr: Node
    charset: str
    go_type = "*sqlparser.CollateExpr"

    def parts(self) -> Sequence[Part]:
        return (self.expr, f" collate {self.charset}")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class ComparisonExpr(Node):
    left: Node
    op: str  # = < > <= >= != <=> in "not in" like "not like" regexp "not regexp" starts_with "not starts_with"
    right: Node
    escape: Node | None = None
    go_type = "*sqlparser.ComparisonExpr"

    def parts(self) -> Sequence[Part]:
        escape: tuple[Part, ...] = (" escape ", self.escape) if self.escape is not None else ()
        return (self.left, f" {self.op} ", self.right, *escape)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, node) for node in (self.left, self.right, self.escape) if node is not None]


@dataclass
class RangeCond(Node):
    left: Node
    op: str  # between, "not between"
    low: Node
    high: Node
    go_type = "*sqlparser.RangeCond"

    def parts(self) -> Sequence[Part]:
        return (self.left, f" {self.op} ", self.low, " and ", self.high)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.left), (1, self.low), (1, self.high)]


@dataclass
class IsExpr(Node):
    expr: Node
    op: str  # "is null", "is not null", "is true", ...
    go_type = "*sqlparser.IsExpr"

    def parts(self) -> Sequence[Part]:
        return (self.expr, f" {self.op}")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class AndExpr(Node):
    left: Node
    right: Node
    go_type = "*sqlparser.AndExpr"

    def parts(self) -> Sequence[Part]:
        return (self.left, " and ", self.right)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.left), (1, self.right)]


@dataclass
class OrExpr(Node):
    left: Node
    right: Node
    go_type = "*sqlparser.OrExpr"

    def parts(self) -> Sequence[Part]:
        return (self.left, " or ", self.right)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.left), (1, self.right)]


@dataclass
class NotExpr(Node):
    expr: Node
    go_type = "*sqlparser.NotExpr"

    def parts(self) -> Sequence[Part]:
        return ("not ", self.expr)

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class Subquery(Node):
    """A `(select ...)`; filters have no use for one, so only its extent is parsed."""

    go_type = "*sqlparser.Subquery"
    go_hidden_levels = 5  # at least: its select, FROM list, table expression, table name, identifier

    def parts(self) -> Sequence[Part]:
        return ("(select ...)",)


@dataclass
class ExistsExpr(Node):
    go_type = "*sqlparser.ExistsExpr"
    go_hidden_levels = 6  # its subquery's levels and the subquery itself

    def parts(self) -> Sequence[Part]:
        return ("exists (select ...)",)


@dataclass
class CaseExpr(Node):
    go_type = "*sqlparser.CaseExpr"

    def parts(self) -> Sequence[Part]:
        return ("case ... end",)


@dataclass
class IntervalExpr(Node):
    expr: Node
    unit: str
    go_type = "*sqlparser.IntervalExpr"

    def parts(self) -> Sequence[Part]:
        return ("interval ", self.expr, f" {self.unit}")

    def go_children(self) -> Sequence[tuple[int, Node]]:
        return [(1, self.expr)]


@dataclass
class Default(Node):
    go_type = "*sqlparser.Default"

    def parts(self) -> Sequence[Part]:
        return ("default",)


@dataclass
class Select:
    where: Node | None = None
    group_by: list[Node] = field(default_factory=list)
    having: Node | None = None
    order_by: list[Node] = field(default_factory=list)
    order_desc: list[bool] = field(default_factory=list)  # one per order_by entry
    limit: Node | None = None

    def go_children(self) -> list[tuple[int, Node]]:
        """The clauses' expressions, at their levels in the reference's tree: WHERE, GROUP BY,
        HAVING and LIMIT hold theirs one level down, ORDER BY its entries, which hold theirs."""
        nodes = [(2, node) for node in (self.where, self.having, self.limit) if node is not None]
        return nodes + [(2, node) for node in self.group_by] + [(3, node) for node in self.order_by]


def check_ast_depth(sel: Select) -> None:
    """Refuse a tree as deep as the reference refuses (walked with a list: it may be that deep)."""
    todo = sel.go_children()
    while todo:
        depth, node = todo.pop()
        if depth + node.go_hidden_levels >= MAX_AST_DEPTH:
            raise SyntaxErr(None, None, "max ast depth reached")
        todo.extend((depth + below, child) for below, child in node.go_children())


def format_id(name: str) -> str:
    """An identifier as the reference prints it: backticks when it is a keyword or not a plain word."""
    for i, c in enumerate(name):
        if not _is_letter(ord(c)) and (i == 0 or not _is_digit(ord(c))):
            return "`" + name.replace("`", "``") + "`"
    if name.lower() in KEYWORDS:
        return "`" + name.replace("`", "``") + "`"
    return name


# ---------------------------------------------------------------------- parser
class Parser:
    """Recursive descent over the reference's grammar for `select * from table1 ...`.

    The rules that recurse are generators run by tempyral.common.trampoline: `x = yield
    self.rule()` parses a rule, and however deep the filter nests, the interpreter's stack does not.
    """

    def __init__(self, sql: str) -> None:
        self.tokens = tokenize(sql)
        self.i = 0
        self.nesting = 0  # open parentheses, NOTs and unary operators, as the reference counts them

    def peek(self, ahead: int = 0) -> Tok:
        if not ahead:  # the common case, kept cheap: `i` never passes the last token (eof or err)
            return self.tokens[self.i]
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def next(self) -> Tok:
        tok = self.peek()
        if tok.kind not in ("eof", "err"):
            self.i += 1
        return tok

    def fail(self, tok: Tok | None = None) -> SyntaxErr:
        tok = tok or self.peek()
        return SyntaxErr(tok.pos, tok.near)

    def is_kw(self, *words: str) -> bool:
        tok = self.peek()
        return tok.kind == "kw" and tok.val in words

    def is_op(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.val in ops

    def expect_kw(self, word: str) -> None:
        if not self.is_kw(word):
            raise self.fail()
        self.next()

    def expect_op(self, op: str) -> None:
        if not self.is_op(op):
            raise self.fail()
        self.next()

    def nest(self, tok: Tok) -> None:
        """One more level open, just after `tok` was read (a `(`, NOT or unary operator)."""
        self.nesting += 1
        if self.nesting == MAX_NESTING:
            raise SyntaxErr(tok.pos, tok.near, "max nesting level reached")

    def open_paren(self) -> None:
        self.expect_op("(")
        self.nest(self.tokens[self.i - 1])

    def close_paren(self) -> None:
        self.expect_op(")")
        self.nesting -= 1

    def parse_select(self) -> Step[Select]:
        self.expect_kw("select")
        self.expect_op("*")
        self.expect_kw("from")
        table = self.next()
        if table.kind != "id":
            raise self.fail(table)
        sel = Select()
        if self.is_kw("where"):
            self.next()
            sel.where = yield self.expression()
        if self.is_kw("group"):
            self.next()
            self.expect_kw("by")
            sel.group_by = yield self.expression_list()
        if self.is_kw("having"):
            self.next()
            sel.having = yield self.expression()
        if self.is_kw("order"):
            self.next()
            self.expect_kw("by")
            while True:
                sel.order_by.append((yield self.expression()))
                descending = self.is_kw("desc")
                if self.is_kw("asc", "desc"):
                    self.next()
                sel.order_desc.append(descending)
                if not self.is_op(","):
                    break
                self.next()
        if self.is_kw("limit"):
            self.next()
            sel.limit = yield self.expression()
            if self.is_op(",") or (self.peek().kind == "kw" and self.peek().val == "offset"):
                self.next()
                yield self.expression()
        if self.is_kw("for"):
            self.next()
            self.expect_kw("update")
        elif self.is_kw("lock"):
            self.next()
            self.expect_kw("in")
            share = self.next()
            if share.val != "share":
                raise self.fail(share)
            mode = self.next()
            if mode.val != "mode":
                raise self.fail(mode)
        if self.is_op(";"):
            self.next()
        if self.peek().kind != "eof":
            raise self.fail()
        return sel

    def expression_list(self) -> Step[list[Node]]:
        items = [(yield self.expression())]
        while self.is_op(","):
            self.next()
            items.append((yield self.expression()))
        return items

    def expression(self, min_prec: int = 0) -> Step[Node]:
        left: Node
        if self.is_kw("not"):
            self.nest(self.next())
            left = NotExpr((yield self.expression(PREC_NOT)))
            self.nesting -= 1
        elif self.is_kw("default"):
            self.next()
            if self.is_op("("):
                self.open_paren()
                if self.next().kind != "id":
                    raise self.fail(self.tokens[self.i - 1])
                self.close_paren()
            left = Default()
        elif self.is_kw("exists"):
            self.next()
            if not (self.is_op("(") and self.peek(1).kind == "kw" and self.peek(1).val == "select"):
                raise self.fail(self.peek(1) if self.is_op("(") else None)
            self.open_paren()
            self.subquery()
            left = ExistsExpr()
        else:
            left = yield self.condition()
        while True:
            if self.is_kw("and") and PREC_AND > min_prec:
                self.next()
                left = AndExpr(left, (yield self.expression(PREC_AND)))
            elif self.is_kw("or") and PREC_OR > min_prec:
                self.next()
                left = OrExpr(left, (yield self.expression(PREC_OR)))
            elif self.is_kw("is") and PREC_COMPARE > min_prec:
                self.next()
                negate = self.is_kw("not")
                if negate:
                    self.next()
                tok = self.next()
                if tok.kind != "kw" or tok.val not in ("null", "true", "false"):
                    raise self.fail(tok)
                left = IsExpr(left, f"is {'not ' if negate else ''}{tok.val}")
            else:
                return left

    def condition(self) -> Step[Node]:
        left: Node = yield self.value_expression(0)
        tok = self.peek()
        if tok.kind == "op" and tok.val in COMPARE_OPS:
            self.next()
            return ComparisonExpr(left, tok.val, (yield self.value_expression(PREC_COMPARE)))
        negate = False
        if self.is_kw("not"):
            self.next()
            negate = True
            if not self.is_kw("in", "like", "regexp", "rlike", "starts_with", "between"):
                raise self.fail()
        prefix = "not " if negate else ""
        if self.is_kw("in"):
            self.next()
            return ComparisonExpr(left, prefix + "in", (yield self.col_tuple()))
        if self.is_kw("like"):
            self.next()
            right = yield self.value_expression(PREC_COMPARE)
            escape = None
            if self.is_kw("escape"):
                self.next()
                escape = yield self.value_expression(PREC_COMPARE)
            return ComparisonExpr(left, prefix + "like", right, escape)
        if self.is_kw("regexp", "rlike"):
            self.next()
            return ComparisonExpr(left, prefix + "regexp", (yield self.value_expression(PREC_COMPARE)))
        if self.is_kw("starts_with"):
            self.next()
            return ComparisonExpr(left, prefix + "starts_with", (yield self.value_expression(PREC_COMPARE)))
        if self.is_kw("between"):
            self.next()
            low = yield self.value_expression(PREC_BETWEEN)
            self.expect_kw("and")
            return RangeCond(left, prefix + "between", low, (yield self.value_expression(PREC_BETWEEN)))
        return left

    def col_tuple(self) -> Step[Node]:
        self.open_paren()
        if self.is_kw("select"):
            return self.subquery()
        items = yield self.expression_list()
        self.close_paren()
        return ValTuple(items)

    def value_expression(self, min_prec: int) -> Step[Node]:
        left: Node = yield self.primary()
        while True:
            tok = self.peek()
            prec = BINARY_OPS.get(tok.val) if tok.kind in ("op", "kw") else None
            if prec is not None and prec > min_prec and (tok.kind == "op" or tok.val in ("div", "mod")):
                self.next()
                left = BinaryExpr(left, tok.val, (yield self.value_expression(prec)))
            elif tok.kind == "kw" and tok.val == "collate" and PREC_COLLATE > min_prec:
                self.next()
                charset = self.next()
                if charset.kind not in ("id", "str") and not (
                    charset.kind == "kw" and charset.val in NON_RESERVED_WORDS
                ):
                    raise self.fail(charset)
                left = CollateExpr(left, charset.val)
            elif tok.kind == "op" and tok.val in ("->", "->>") and isinstance(left, ColName):
                self.next()
                value = self.next()
                if value.kind not in ("str", "int", "float", "hexnum", "hex", "bit", "arg"):
                    raise self.fail(value)
                left = BinaryExpr(left, tok.val, SQLVal(value.kind, value.val))
            else:
                return left

    def primary(self) -> Step[Node]:
        tok = self.next()
        if tok.kind in ("str", "int", "float", "hexnum", "hex", "bit", "arg"):
            return SQLVal(tok.kind, tok.val)
        if tok.kind == "kw" and tok.val == "null":
            return NullVal()
        if tok.kind == "kw" and tok.val in ("true", "false"):
            return BoolVal(tok.val == "true")
        if tok.kind == "op" and tok.val == "(":
            self.nest(tok)
            if self.is_kw("select"):
                return self.subquery()
            items = yield self.expression_list()
            self.close_paren()
            return ParenExpr(items[0]) if len(items) == 1 else ValTuple(items)
        if (tok.kind == "op" and tok.val in ("+", "-", "~", "!")) or (
            tok.kind == "kw" and tok.val in ("binary", "_binary")
        ):
            self.nest(tok)
            operand = yield self.value_expression(PREC_UNARY)
            self.nesting -= 1
            op = tok.val if tok.kind == "op" else tok.val + " "
            if op in ("+", "-") and isinstance(operand, SQLVal) and operand.kind == "int":
                if op == "+":
                    return operand
                return SQLVal("int", operand.val[1:] if operand.val.startswith("-") else "-" + operand.val)
            return UnaryExpr(op, operand)
        if tok.kind == "kw" and tok.val == "case":
            if not self.is_kw("when"):
                yield self.expression()
            if not self.is_kw("when"):
                raise self.fail()
            while self.is_kw("when"):
                self.next()
                yield self.expression()
                self.expect_kw("then")
                yield self.expression()
            if self.is_kw("else"):
                self.next()
                yield self.expression()
            self.expect_kw("end")
            return CaseExpr()
        if tok.kind == "kw" and tok.val == "interval":
            self.nest(tok)
            operand = yield self.value_expression(PREC_UNARY)
            unit = self.next()
            if unit.kind != "id" and not (unit.kind == "kw" and unit.val in NON_RESERVED_WORDS):
                raise self.fail(unit)
            self.nesting -= 1
            return IntervalExpr(operand, unit.val)
        if tok.kind == "kw" and tok.val == "group_concat" and self.is_op("("):
            return GroupConcatExpr("group_concat", (yield self.call_args()))
        if tok.kind == "kw" and tok.val in FUNCTION_WORDS:
            if self.is_op("("):
                return FuncExpr(tok.val, (yield self.call_args()))
            if tok.val in NILADIC_FUNCTIONS:
                return FuncExpr(tok.val)
            raise self.fail()
        if tok.kind == "id" or (tok.kind == "kw" and tok.val in NON_RESERVED_WORDS):
            if self.is_op("("):
                return FuncExpr(tok.val, (yield self.call_args()))
            if not self.is_op("."):
                return ColName(tok.val)
            parts = [tok.val]
            while self.is_op(".") and len(parts) < 3:
                self.next()
                part = self.next()
                if part.kind not in ("id", "kw"):
                    raise self.fail(part)
                parts.append(part.val)
            if self.is_op("("):  # qualified function call
                return FuncExpr(".".join(parts), (yield self.call_args()))
            return ColName(parts[-1], tuple(parts[:-1]))
        raise self.fail(tok)

    def subquery(self) -> Subquery:
        """After `(`, at `select`: skip to the matching `)` (its parentheses count as nesting)."""
        depth = 1
        while depth:
            tok = self.next()
            if tok.kind in ("eof", "err"):
                raise self.fail(tok)
            if tok.kind == "op" and tok.val == "(":
                depth += 1
                self.nest(tok)
            elif tok.kind == "op" and tok.val == ")":
                depth -= 1
                self.nesting -= 1
        return Subquery()

    def call_args(self) -> Step[list[Node]]:
        self.open_paren()
        args: list[Node] = []
        if self.is_kw("distinct"):
            self.next()
        while not self.is_op(")"):
            if self.is_op("*"):
                self.next()
                args.append(StarExpr())
            else:
                args.append((yield self.expression()))
                if self.is_kw("as"):
                    self.next()
                    alias = self.next()
                    if alias.kind not in ("id", "str"):
                        raise self.fail(alias)
                elif self.peek().kind == "id":
                    self.next()
            if not self.is_op(","):
                break
            self.next()
        self.close_paren()
        return args


def parse_filter(query: str) -> Select:
    """Parse a list filter the way the reference does: trimmed, then as the WHERE clause of
    `select * from table1` (or as its GROUP BY / ORDER BY when it starts with one)."""
    text = query.strip()
    lowered = text.lower()
    if text and not lowered.startswith("order by") and not lowered.startswith("group by"):
        text = "where " + text
    sel = run(Parser(STATEMENT_PREFIX + text).parse_select())
    check_ast_depth(sel)
    return sel
