"""SQLite store: WAL, one writer thread that group-commits, a small pool of reader threads. The SQL is shared with
the PostgreSQL store (sql_ops.py); this module runs it on SQLite's threads.

Group commit is the throughput lever: every transaction queued while the writer is busy
joins the next BEGIN ... COMMIT, each inside its own SAVEPOINT so that one failed condition
does not undo its neighbours.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import queue
import re
import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tempyral.common.errors import StartupError, StorageUnavailable
from tempyral.common.logs import ThrottledLog
from tempyral.persistence import sql_ops
from tempyral.persistence.dialect import SqliteDialect
from tempyral.persistence.schema import VISIBILITY_COLUMNS
from tempyral.persistence.sql_ops import DuplicateKey, Op
from tempyral.persistence.sql_store import SqlStore
from tempyral.persistence.store import (
    VisibilityQuery,
    VisibilityQueryFailed,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import register_functions as register_visibility_functions

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
MAX_BATCH = 512


class SqliteStore(SqlStore):
    def __init__(self, path: str | None, synchronous: str = "NORMAL", pragmas: dict[str, str] | None = None) -> None:
        """path None: a throwaway database that disappears at close (the dev server's default). `pragmas`: more
        PRAGMA settings for every connection, given by the operator (names and values are checked first)."""
        self._tmpdir: str | None = None
        if path is None:
            self._tmpdir = tempfile.mkdtemp(prefix="tempyral-")
            path = os.path.join(self._tmpdir, "tempyral.db")
            synchronous = "OFF"
        self.path = path
        self.synchronous = synchronous
        self.pragmas = dict(pragmas or {})
        self._lock_fd: int | None = None
        self._failures = ThrottledLog(log)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sqlite-read")
        self._local = threading.local()
        # Every reader connection, closed at close: one left open would keep this process's view of the database
        # (its WAL index) after another process changed the file, and a later connection here would share it.
        self._reader_conns: list[sqlite3.Connection] = []
        self._reader_lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dialect = SqliteDialect()

    # ------------------------------------------------------------------ lifecycle
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=10000")
        conn.execute("PRAGMA cache_size=-65536")
        conn.execute("PRAGMA temp_store=MEMORY")
        for name, value in self.pragmas.items():
            conn.execute(f"PRAGMA {name}={value}")  # both checked by check_pragma
        register_visibility_functions(conn)
        return conn

    async def open(self) -> None:
        """Lock the database file for this process, then open and migrate it. Problems the operator must fix
        (a missing directory, a file another server holds, a damaged file, a full disk) raise StartupError."""
        self._loop = asyncio.get_running_loop()
        self._lock()
        try:
            conn = self._connect()
            self._migrate(conn)
        except sqlite3.DatabaseError as err:
            self._unlock()
            raise StartupError(_database_problem(self.path, err)) from err
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="sqlite-writer", daemon=True)
        self._writer.start()

    async def close(self) -> None:
        if self._writer is not None:
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            conns, self._reader_conns = self._reader_conns, []
        for conn in conns:
            conn.close()
        self._unlock()  # last: closing a descriptor of the file would drop SQLite's own locks on it too
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)

    def _lock(self) -> None:
        """One server per database file: a second one is refused here, before it reads or writes anything.

        flock() is independent of SQLite's own (fcntl) locks and goes away with the process, SIGKILL included."""
        directory = os.path.dirname(os.path.abspath(self.path))
        if not os.path.isdir(directory):
            raise StartupError(f"cannot open database {self.path}: the directory {directory} does not exist")
        existed = os.path.exists(self.path)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as err:
            raise StartupError(f"cannot open database {self.path} for writing: {err.strerror}") from err
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            os.close(fd)
            raise StartupError(
                f"database {self.path} is in use by another tempyral server: stop it, or give this one another file"
            ) from err
        self._lock_fd = fd
        if self._tmpdir is None and (not existed or os.fstat(fd).st_size == 0):
            log.info("%s is %s: creating a new database there", self.path, "empty" if existed else "new")

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _migrate(self, conn: sqlite3.Connection) -> None:
        drive(conn, self.dialect, sql_ops.migrate(self.dialect, self.path))

    # ------------------------------------------------------------------ plumbing
    def _write_loop(self, conn: sqlite3.Connection) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            batch = [item]
            stop = False
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                batch.append(nxt)
            results: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
                for op, fut in batch:
                    conn.execute("SAVEPOINT op")
                    try:
                        value = op(conn)
                    except BaseException as err:
                        if not conn.in_transaction:
                            raise  # SQLite rolled the whole transaction back (a full disk, an I/O error)
                        conn.execute("ROLLBACK TO op")  # otherwise each op fails alone
                        conn.execute("RELEASE op")
                        failure = _storage_failure(err)
                        if failure is not err:
                            self._failures.failure("commits failed", failure)
                        results.append((fut, None, failure))
                    else:
                        conn.execute("RELEASE op")
                        results.append((fut, value, None))
                conn.execute("COMMIT")
            except BaseException as err:
                failure = _storage_failure(err)
                self._failures.failure("commits failed", failure)
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                results = [(fut, None, failure) for _, fut in batch]
            loop.call_soon_threadsafe(_resolve_all, results)
            if stop:
                break
        conn.close()

    async def _write(self, op: Callable[[sqlite3.Connection], T]) -> T:
        assert self._loop is not None
        fut: asyncio.Future[T] = self._loop.create_future()
        self._queue.put((op, fut))
        return await fut

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=1")
            self._local.conn = conn
            with self._reader_lock:
                self._reader_conns.append(conn)
        return conn

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._readers, lambda: op(self._reader()))

    async def _write_op(self, op: Op[T]) -> T:
        """A shared operation (sql_ops) in the writer's next group commit, in a SAVEPOINT of its own."""
        return await self._write(lambda conn: drive(conn, self.dialect, op))

    async def _read_op(self, op: Op[T]) -> T:
        return await self._read(lambda conn: drive(conn, self.dialect, op))

    async def list_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[VisibilityRow]:
        sql, params = self.dialect.visibility().select(
            VISIBILITY_COLUMNS, namespace_id, query.filter, query.cursor, query.page_size, query.order_by
        )
        return await self._read(
            lambda conn: _visibility_query(conn, self.dialect, sql_ops.visibility_rows(sql, params))
        )

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[tuple[Any, ...]]:
        sql, params = self.dialect.visibility().count(namespace_id, query.filter, query.group_by)
        return await self._read(
            lambda conn: _visibility_query(conn, self.dialect, sql_ops.visibility_counts(sql, params))
        )


PRAGMA_NAME = re.compile(r"[A-Za-z_]+")
PRAGMA_VALUE = re.compile(r"-?[A-Za-z0-9_]+")


def check_pragma(name: str, value: str) -> None:
    """PRAGMA takes no bound parameters, so what goes into one is held to plain names and numbers."""
    if not PRAGMA_NAME.fullmatch(name) or not PRAGMA_VALUE.fullmatch(value):
        raise ValueError(f"invalid pragma {name}={value}: expected a name and a plain value (letters, digits, _)")


def _storage_failure(err: BaseException) -> BaseException:
    """What the callers of a failed batch get: StorageUnavailable (UNAVAILABLE, retryable) when the database cannot
    take writes now, the error itself when it is something else."""
    if isinstance(err, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        err, sqlite3.IntegrityError | sqlite3.ProgrammingError
    ):
        return StorageUnavailable(f"the database cannot take writes: {err}")
    return err


def _database_problem(path: str, err: sqlite3.DatabaseError) -> str:
    """One line for an operator, from what SQLite said while opening the file."""
    code = getattr(err, "sqlite_errorcode", 0) & 0xFF  # the primary code of an extended one
    if code == sqlite3.SQLITE_FULL:
        return f"cannot write database {path}: the disk is full"
    if code in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return f"{path} is not a tempyral database or is damaged (SQLite: {err}); move it away to start afresh"
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return f"cannot write database {path} or its directory (SQLite: {err})"
    return f"cannot open database {path} (SQLite: {err})"


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, err in results:
        if fut.done():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(value)


def _visibility_query(conn: sqlite3.Connection, dialect: SqliteDialect, op: Op[T]) -> T:
    try:
        return drive(conn, dialect, op)
    except sqlite3.OperationalError as err:
        raise VisibilityQueryFailed(str(err)) from err


def drive(conn: sqlite3.Connection, dialect: SqliteDialect, op: Op[T]) -> T:
    """Run a sql_ops operation on the connection: each statement it yields, its result sent back; a violated unique
    key is thrown back into it as DuplicateKey, any other error as it is. (Every commit runs through here: it is
    written for speed.)"""
    result: Any = None
    error: BaseException | None = None
    translated = dialect.translated
    send = op.send
    while True:
        try:
            sql, params, fetch = op.throw(error) if error is not None else send(result)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        error = None
        sql = translated.get(sql) or dialect.sql(sql)
        try:
            if fetch == "count":
                result = conn.execute(sql, params).rowcount
            elif fetch == "batch":
                for each in params:
                    conn.executemany(translated.get(each.sql) or dialect.sql(each.sql), each.params)
                result = None
            elif fetch == "many":
                conn.executemany(sql, params)
                result = None
            elif fetch == "one":
                found = conn.execute(sql, params).fetchall()  # to the end: RETURNING writes as it steps
                result = found[0] if found else None
            else:
                result = conn.execute(sql, params).fetchall()
        except Exception as err:
            if dialect.is_duplicate_key(err):
                error = DuplicateKey(str(err))
                error.__cause__ = err
            else:
                error = err
