"""PostgreSQL store on asyncpg: the operations of sql_ops.py driven on a connection pool, writes in a transaction.

asyncpg is asyncio-native (no thread per call, unlike psycopg's sync API or SQLite's threads here), speaks the
binary protocol with prepared statements cached per connection, and sends an `executemany` as one pipeline: a
commit's history, task and visibility rows cost one round trip per table.

Fencing: every write of a shard first reads the shard's range `FOR SHARE` in its transaction, so a concurrent
acquire of the shard (an upsert, which needs the row exclusively) waits for it, and it for the acquire: a node that
lost a shard can neither write nor delete its rows, and finds out at that write.

Faults: a database unreachable at open is retried with backoff up to `connect_timeout_s`, with a log line per
attempt, then StartupError; a refused login or a missing database is StartupError at once. Once running, a lost
connection, a database that is shutting down or does not answer within `statement_timeout_s` make the call raise
StorageUnavailable (UNAVAILABLE, retryable): its transaction is rolled back by the server when the connection is
cut, so nothing is half-written, and the pool opens new connections when the database is back.

URL: postgresql://USER[:PASSWORD]@HOST:PORT/DB, with two settings of tempyral's own as query parameters (taken
out before the rest goes to asyncpg): `pool_size` (connections, default 10) and `statement_timeout` (seconds a
call may take, default 30).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from tempyral.common.errors import StartupError, StorageUnavailable
from tempyral.common.logs import ThrottledLog
from tempyral.persistence import sql_ops
from tempyral.persistence.dialect import PostgresDialect
from tempyral.persistence.schema import VISIBILITY_COLUMNS
from tempyral.persistence.sql_ops import DuplicateKey, Op
from tempyral.persistence.sql_store import SqlStore
from tempyral.persistence.store import (
    Transaction,
    VisibilityQuery,
    VisibilityQueryFailed,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import RowValueMisused

log = logging.getLogger(__name__)
T = TypeVar("T")
DEFAULT_POOL_SIZE = 10
DEFAULT_STATEMENT_TIMEOUT_S = 30.0
CONNECT_ATTEMPT_TIMEOUT_S = 5.0
_OWN_PARAMETERS = ("pool_size", "statement_timeout")
# UTC: visibility filters read datetimes without an offset as UTC, as SQLite does (visibility_sql._PG_DATETIME).
SERVER_SETTINGS = {"application_name": "tempyral", "TimeZone": "UTC"}

# Errors that mean "the database cannot answer now": the call fails with StorageUnavailable and may be retried.
_UNAVAILABLE: tuple[type[BaseException], ...] = (
    asyncpg.PostgresConnectionError,  # connection lost or refused (08xxx), ConnectionDoesNotExistError
    asyncpg.OperatorInterventionError,  # shutting down, starting up, statement cancelled (57xxx)
    asyncpg.InsufficientResourcesError,  # disk full, too many connections (53xxx)
    asyncpg.TransactionRollbackError,  # deadlock or serialization failure (40xxx): try again
    OSError,
    TimeoutError,
)

_CLOSE_ERRORS: tuple[type[BaseException], ...] = (*_UNAVAILABLE, asyncpg.InterfaceError)


class PostgresUrl:
    """A postgresql:// URL split into what asyncpg takes and tempyral's own settings."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        own = {k: v for k, v in parse_qsl(parts.query) if k in _OWN_PARAMETERS}
        rest = [(k, v) for k, v in parse_qsl(parts.query) if k not in _OWN_PARAMETERS]
        self.dsn = urlunsplit(parts._replace(query=urlencode(rest)))
        try:
            self.pool_size = int(own.get("pool_size", DEFAULT_POOL_SIZE))
            self.statement_timeout_s = float(own.get("statement_timeout", DEFAULT_STATEMENT_TIMEOUT_S))
        except ValueError as err:
            raise StartupError(f"bad setting in the database URL: {err}") from None
        self.user = parts.username or ""
        self.host = parts.hostname or "localhost"
        self.port = parts.port or 5432
        self.database = parts.path.lstrip("/") or self.user
        netloc = f"{self.user}@" if self.user else ""
        netloc += parts.netloc.rsplit("@", 1)[-1]
        # what logs and messages show: never the password
        self.public = urlunsplit(parts._replace(netloc=netloc))

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


def describe_url(url: str) -> str:
    """The URL without its password, for logs and messages."""
    return PostgresUrl(url).public


class PostgresStore(SqlStore):
    def __init__(
        self,
        url: str,
        connect_timeout_s: float = 30.0,
        pool_size: int | None = None,
        statement_timeout_s: float | None = None,
    ) -> None:
        self.url = PostgresUrl(url)
        self.connect_timeout_s = connect_timeout_s
        self.pool_size = pool_size if pool_size is not None else self.url.pool_size
        self.timeout_s = statement_timeout_s if statement_timeout_s is not None else self.url.statement_timeout_s
        self.dialect = PostgresDialect()
        self._pool: asyncpg.Pool | None = None
        self._failures = ThrottledLog(log)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Reach the database (retrying while it does not answer), migrate it under the schema lock, then open the
        pool. Problems the operator must fix raise StartupError."""
        conn = await self._connect_at_start()
        try:
            await drive(conn, self.dialect, sql_ops.migrate(self.dialect, self.url.public))
        except asyncpg.PostgresError as err:
            raise StartupError(f"cannot set up database {self.url.public}: {err}") from err
        finally:
            await conn.close()
        self._pool = await asyncpg.create_pool(
            self.url.dsn,
            min_size=1,
            max_size=self.pool_size,
            statement_cache_size=512,
            max_inactive_connection_lifetime=300,
            # Nothing of a session outlives a call (every transaction ends in it, and a connection whose call failed
            # is closed), so a connection needs no reset query, a round trip, when it goes back to the pool.
            reset=_no_reset,
            timeout=CONNECT_ATTEMPT_TIMEOUT_S,
            server_settings=SERVER_SETTINGS,
        )

    async def _connect_at_start(self) -> asyncpg.Connection:
        deadline = time.monotonic() + self.connect_timeout_s
        delay = 0.2
        while True:
            try:
                return await asyncpg.connect(
                    self.url.dsn,
                    timeout=min(CONNECT_ATTEMPT_TIMEOUT_S, max(0.1, deadline - time.monotonic())),
                    server_settings=SERVER_SETTINGS,
                )
            except asyncpg.InvalidAuthorizationSpecificationError as err:  # bad user or password (28xxx)
                raise StartupError(f"the database at {self.url.address} refused user {self.url.user!r}: {err}") from err
            except asyncpg.InvalidCatalogNameError as err:  # 3D000
                raise StartupError(
                    f"database {self.url.database!r} does not exist at {self.url.address}: create it "
                    f"(createdb {self.url.database}) or name another one in --db"
                ) from err
            except _CLOSE_ERRORS as err:
                reason = _reason(err)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise StartupError(
                        f"cannot reach the database at {self.url.address} within {self.connect_timeout_s:g} s: {reason}"
                    ) from err
                log.warning("cannot reach the database at %s: %s; retrying", self.url.address, reason)
                await asyncio.sleep(min(delay, left))
                delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                await asyncio.wait_for(pool.close(), 10)
            except _CLOSE_ERRORS:
                pool.terminate()

    # ------------------------------------------------------------------ plumbing
    async def _run(self, op: Op[T], write: bool, what: str = "database calls failed") -> T:
        """Run the operation on a pool connection (in a transaction when it writes), within the timeout."""
        pool = self._pool
        if pool is None:
            raise StorageUnavailable("the database store is closed")
        conn: Any = None  # a pool's connection proxy
        try:
            async with asyncio.timeout(self.timeout_s):
                conn = await pool.acquire()
                if not write:
                    return await drive(conn, self.dialect, op)
                await conn.execute("BEGIN")
                try:
                    result = await drive(conn, self.dialect, op)
                except BaseException as err:
                    if not _unavailable(err) and not conn.is_closed():
                        await conn.execute("ROLLBACK")
                    raise
                await conn.execute("COMMIT")
                return result
        except BaseException as err:
            if not _unavailable(err):
                raise
            # Cut the connection: the server rolls its transaction back, and a stuck one is not reused.
            if conn is not None:
                _terminate(conn)
            if not isinstance(err, asyncpg.TransactionRollbackError):
                await pool.expire_connections()  # the others are likely dead too: reconnect on next use
            failure = StorageUnavailable(f"the database at {self.url.address} cannot answer now: {_reason(err)}")
            self._failures.failure(what, failure)
            raise failure from err
        finally:
            if conn is not None:
                try:
                    await asyncio.wait_for(pool.release(conn), 5)
                except _CLOSE_ERRORS:
                    _terminate(conn)

    async def _write_op(self, op: Op[T]) -> T:
        return await self._run(op, True, "writes failed")

    async def _read_op(self, op: Op[T]) -> T:
        return await self._run(op, False, "reads failed")

    async def commit(self, txn: Transaction) -> None:
        await self._run(sql_ops.commit(txn), True, "commits failed")

    async def list_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[VisibilityRow]:
        rendered = self._visibility(
            lambda v: v.select(
                VISIBILITY_COLUMNS,
                namespace_id,
                query.filter,
                query.cursor,
                query.page_size,
                query.order_by,
            )
        )
        found = await self._visibility_query(sql_ops.visibility_rows(*rendered))
        for row in found:
            row.sort_values = tuple(_plain(v) for v in row.sort_values)
        return found

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[tuple[Any, ...]]:
        rendered = self._visibility(lambda v: v.count(namespace_id, query.filter, query.group_by))
        counted = await self._visibility_query(sql_ops.visibility_counts(*rendered))
        return [tuple(_plain(v) for v in row) for row in counted]

    def _visibility(self, render: Callable[[Any], tuple[str, list[Any]]]) -> tuple[str, list[Any]]:
        try:
            return render(self.dialect.visibility())
        except RowValueMisused as err:
            raise VisibilityQueryFailed(str(err)) from err

    async def _visibility_query(self, op: Op[T]) -> T:
        try:
            return await self._read_op(op)
        except (asyncpg.PostgresError, asyncpg.InterfaceError, ValueError, TypeError, OverflowError) as err:
            raise VisibilityQueryFailed(str(err).splitlines()[0] if str(err) else type(err).__name__) from err


async def _no_reset(conn: Any) -> None:
    return None


def _terminate(conn: Any) -> None:
    """Close a pool connection at once (no round trip to a database that may not answer)."""
    try:
        conn.terminate()
    except asyncpg.InterfaceError:
        pass  # already released to the pool, which replaces a closed connection


def _unavailable(err: BaseException) -> bool:
    if isinstance(err, _UNAVAILABLE):
        return True
    # asyncpg's own word for a connection that went away under a call
    return isinstance(err, asyncpg.InterfaceError) and "closed" in str(err)


def _plain(value: Any) -> Any:
    """A value as SQLite gives it: a number an int when whole, else a float; a sort key of a number attribute
    (visibility_sql.PostgresVisibilitySQL.sort_key) its number or text."""
    if isinstance(value, tuple | asyncpg.Record):  # a record comes back as a tuple
        value = _plain(value[1]) if value[0] == 0 else bytes(value[2]).decode()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


async def drive(conn: Any, dialect: PostgresDialect, op: Op[T]) -> T:
    """Run a sql_ops operation on the connection: each statement it yields, its result sent back; a violated unique
    key is thrown back into it as DuplicateKey, any other error as it is."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            stmt = op.throw(error) if error is not None else op.send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        sql = dialect.sql(stmt.sql)
        try:
            if stmt.fetch == "count":
                status = await conn.execute(sql, *stmt.params)
                result = int(status.rsplit(" ", 1)[-1]) if status and status[-1].isdigit() else 0
            elif stmt.fetch == "one":
                result = await conn.fetchrow(sql, *stmt.params)
            elif stmt.fetch == "all":
                result = await conn.fetch(sql, *stmt.params)
            elif stmt.fetch == "many":
                await conn.executemany(sql, stmt.params)
                result = None
            else:
                for each in stmt.params:
                    await conn.executemany(dialect.sql(each.sql), each.params)
                result = None
        except Exception as err:
            if dialect.is_duplicate_key(err):
                error = DuplicateKey(str(err))
                error.__cause__ = err
            else:
                error = err
