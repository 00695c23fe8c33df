"""What differs between the databases the store runs on, one class each: the SQL written once in sql_ops.py (and
schema.py) is turned into each database's here, and nowhere else.

- placeholders: `?` stays for SQLite; PostgreSQL numbers them `$1, $2, ...` (converted once per text and cached);
- column types in DDL: PostgreSQL takes BIGINT for INTEGER (64-bit values), BYTEA for BLOB, and TEXT COLLATE "C"
  for TEXT, so that text compares and sorts by bytes as in SQLite;
- `FOR SHARE` (a read that fences against a concurrent shard acquire) only where there is such a lock;
- a migration's CopyRows: SQLite copies by rowid in chunks; PostgreSQL has no rowid, and copies in one INSERT ...
  SELECT with `row_number() OVER ()` for it;
- migrations under a lock: on PostgreSQL several nodes may start at once against a new database, and an advisory
  lock lets one migrate while the others wait (then find the schema current);
- which driver errors are a violated unique key, and the visibility SQL rendering (visibility_sql.py).
"""

from __future__ import annotations

import re
import sqlite3
from abc import abstractmethod

from tempyral.persistence.schema import CopyRows
from tempyral.persistence.sql_ops import SCHEMA_LOCK_KEY, Op, copy_rows_in_chunks, count, one
from tempyral.persistence.visibility_sql import PostgresVisibilitySQL, SqliteVisibilitySQL


class Dialect:
    name = ""
    begin = "BEGIN"  # how a migration's transaction starts

    def __init__(self) -> None:
        self.translated: dict[str, str] = {}  # drivers look here first

    def sql(self, text: str) -> str:
        """The statement as this database takes it (cached: the store's statements are a fixed set)."""
        done = self.translated.get(text)
        if done is None:
            done = self._translate(text)
            if len(self.translated) < 10_000:  # visibility filters make new texts: keep the cache bounded
                self.translated[text] = done
        return done

    def _translate(self, text: str) -> str:
        return text

    def ddl(self, text: str) -> str:
        return text

    def copy_rows(self, step: CopyRows) -> Op[None]:
        yield from copy_rows_in_chunks(step)

    def before_migrate(self) -> Op[None]:
        return
        yield

    def after_migrate(self) -> Op[None]:
        return
        yield

    def visibility(self) -> SqliteVisibilitySQL:
        return SqliteVisibilitySQL()

    @abstractmethod
    def is_duplicate_key(self, err: BaseException) -> bool:
        """Whether a driver error is a violated unique key (sql_ops raise DuplicateKey for it)."""


class SqliteDialect(Dialect):
    name = "sqlite"
    begin = "BEGIN IMMEDIATE"

    def _translate(self, text: str) -> str:
        # SQLite has one writer at a time: a read inside the write transaction needs no row lock
        return text.replace(" FOR SHARE", "")

    def is_duplicate_key(self, err: BaseException) -> bool:
        return isinstance(err, sqlite3.IntegrityError) and getattr(err, "sqlite_errorname", "") in (
            "SQLITE_CONSTRAINT_UNIQUE",
            "SQLITE_CONSTRAINT_PRIMARYKEY",
        )


_DDL_TYPES = re.compile(r"\b(INTEGER|BLOB|TEXT)\b")
_ROWID = re.compile(r"\browid\b")


class PostgresDialect(Dialect):
    name = "postgresql"

    def _translate(self, text: str) -> str:
        return numbered_placeholders(text)

    def ddl(self, text: str) -> str:
        if not text.lstrip().upper().startswith(("CREATE TABLE", "ALTER TABLE")):
            return text
        return _DDL_TYPES.sub(lambda m: {"INTEGER": "BIGINT", "BLOB": "BYTEA", "TEXT": 'TEXT COLLATE "C"'}[m[1]], text)

    def copy_rows(self, step: CopyRows) -> Op[None]:
        expressions = _ROWID.sub("row_number() OVER ()", step.expressions)
        yield count(f"INSERT INTO {step.target} ({step.columns}) SELECT {expressions} FROM {step.source}")

    def before_migrate(self) -> Op[None]:
        # Held by this session until after_migrate (or until its connection ends): other nodes wait here.
        yield one("SELECT pg_advisory_lock(?)", SCHEMA_LOCK_KEY)

    def after_migrate(self) -> Op[None]:
        yield one("SELECT pg_advisory_unlock(?)", SCHEMA_LOCK_KEY)

    def visibility(self) -> SqliteVisibilitySQL:
        return PostgresVisibilitySQL()

    def is_duplicate_key(self, err: BaseException) -> bool:
        import asyncpg  # here: the SQLite store does not need the driver

        return isinstance(err, asyncpg.UniqueViolationError)


def numbered_placeholders(text: str) -> str:
    """`?` -> `$1, $2, ...`, outside quoted literals and identifiers."""
    out: list[str] = []
    n = 0
    quote = ""
    for ch in text:
        if quote:
            if ch == quote:
                quote = ""  # a doubled quote closes and reopens: same result
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)
