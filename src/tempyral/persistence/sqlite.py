"""SQLite store: WAL, one writer thread that group-commits, a small pool of reader threads.

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
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from tempyral.common.errors import AlreadyExists, ConditionFailed, ShardOwnershipLost, StartupError, StorageUnavailable
from tempyral.common.logs import ThrottledLog
from tempyral.persistence import branches
from tempyral.persistence.schema import MIGRATIONS, VISIBILITY_COLUMNS, CopyRows
from tempyral.persistence.store import (
    CurrentRow,
    DlqRow,
    EndpointRow,
    ExecutionRow,
    MemberRow,
    ShardRow,
    Transaction,
    VisibilityQuery,
    VisibilityQueryFailed,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import SqliteVisibilitySQL
from tempyral.persistence.visibility_sql import register_functions as register_visibility_functions
from tempyral.proto.internal_pb2 import HistoryBranch

log = logging.getLogger(__name__)
T = TypeVar("T")
_STOP = object()
MAX_BATCH = 512
COPY_CHUNK = 10_000  # rows per statement when a migration copies a table
COPY_PROGRESS_SECONDS = 5.0  # how often a long copy logs its progress


class SqliteStore:
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
        self._loop: asyncio.AbstractEventLoop | None = None

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
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT version FROM schema_version").fetchone()
        current = row[0] if row else 0
        if current > len(MIGRATIONS):
            raise StartupError(
                f"database {self.path} has schema version {current}, written by a newer tempyral than this one "
                f"(which knows {len(MIGRATIONS)}): upgrade tempyral"
            )
        for version in range(current, len(MIGRATIONS)):
            log.info("applying schema migration %d", version + 1)
            conn.execute("BEGIN IMMEDIATE")
            try:
                for step in MIGRATIONS[version]:
                    if isinstance(step, CopyRows):
                        _copy_rows(conn, step)
                    else:
                        conn.execute(step)
                conn.execute("DELETE FROM schema_version")
                conn.execute("INSERT INTO schema_version VALUES (?)", (version + 1,))
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")  # the file stays at the last version that was applied whole
                raise

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
        return conn

    async def _read(self, op: Callable[[sqlite3.Connection], T]) -> T:
        assert self._loop is not None
        return await self._loop.run_in_executor(self._readers, lambda: op(self._reader()))

    # ------------------------------------------------------------------ shards
    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute("SELECT range_id FROM shards WHERE shard_id=?", (shard_id,)).fetchone()
            range_id = (row[0] if row else 0) + 1
            conn.execute(
                "INSERT INTO shards (shard_id, range_id, owner) VALUES (?, ?, ?) "
                "ON CONFLICT (shard_id) DO UPDATE SET range_id=excluded.range_id, owner=excluded.owner",
                (shard_id, range_id, owner),
            )
            return range_id

        return await self._write(op)

    async def extend_shard_range(self, shard_id: int, range_id: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE shards SET range_id=range_id+1 WHERE shard_id=? AND range_id=?", (shard_id, range_id)
            )
            if cur.rowcount != 1:
                raise ShardOwnershipLost(f"shard {shard_id} moved")
            return range_id + 1

        return await self._write(op)

    async def list_shards(self) -> list[ShardRow]:
        return await self._read(
            lambda conn: [
                ShardRow(*r) for r in conn.execute("SELECT shard_id, range_id, owner FROM shards ORDER BY shard_id")
            ]
        )

    async def release_shard(self, shard_id: int, range_id: int) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE shards SET owner='' WHERE shard_id=? AND range_id=?", (shard_id, range_id)
                ).rowcount
                == 1
            )
        )

    # ------------------------------------------------------------------ membership
    async def join_member(self, row: MemberRow, stale_before_ns: int) -> MemberRow | None:
        def op(conn: sqlite3.Connection) -> MemberRow | None:
            held = conn.execute(
                "SELECT node, session, address, http_address, heartbeat_ns, started_ns FROM cluster_members "
                "WHERE node=?",
                (row.node,),
            ).fetchone()
            if held is not None and held[1] != row.session and held[4] >= stale_before_ns:
                return MemberRow(*held)
            conn.execute(
                "INSERT INTO cluster_members (node, session, address, http_address, heartbeat_ns, started_ns) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET session=excluded.session, "
                "address=excluded.address, http_address=excluded.http_address, heartbeat_ns=excluded.heartbeat_ns, "
                "started_ns=excluded.started_ns",
                (row.node, row.session, row.address, row.http_address, row.heartbeat_ns, row.started_ns),
            )
            return None

        return await self._write(op)

    async def heartbeat_member(self, node: str, session: str, heartbeat_ns: int) -> bool:
        return await self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE cluster_members SET heartbeat_ns=? WHERE node=? AND session=?",
                    (heartbeat_ns, node, session),
                ).rowcount
                == 1
            )
        )

    async def list_members(self) -> list[MemberRow]:
        return await self._read(
            lambda conn: [
                MemberRow(*r)
                for r in conn.execute(
                    "SELECT node, session, address, http_address, heartbeat_ns, started_ns FROM cluster_members "
                    "ORDER BY node"
                )
            ]
        )

    async def leave_member(self, node: str, session: str) -> None:
        await self._write(
            lambda conn: conn.execute("DELETE FROM cluster_members WHERE node=? AND session=?", (node, session))
        )

    # ------------------------------------------------------------------ executions
    async def commit(self, txn: Transaction) -> None:
        await self._write(lambda conn: _apply_transaction(conn, txn))

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRow | None:
        def op(conn: sqlite3.Connection) -> ExecutionRow | None:
            row = conn.execute(
                "SELECT state, db_version FROM executions WHERE namespace_id=? AND workflow_id=? AND run_id=?",
                (namespace_id, workflow_id, run_id),
            ).fetchone()
            return ExecutionRow(row[0], row[1]) if row else None

        return await self._read(op)

    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentRow | None:
        def op(conn: sqlite3.Connection) -> CurrentRow | None:
            row = conn.execute(
                "SELECT run_id, status, start_request_id FROM current_executions "
                "WHERE namespace_id=? AND workflow_id=?",
                (namespace_id, workflow_id),
            ).fetchone()
            return CurrentRow(row[0], row[1], row[2]) if row else None

        return await self._read(op)

    async def read_history(
        self,
        namespace_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        branch: HistoryBranch | None = None,
    ) -> list[bytes]:
        if branch is None or not branch.ancestors:
            branch_id = branches.own_branch_id(run_id, branch.branch_id if branch is not None else "")

            def op(conn: sqlite3.Connection) -> list[bytes]:
                rows = conn.execute(
                    "SELECT data FROM history WHERE run_id=? AND branch_id=? AND last_event_id>=? AND first_event_id<? "
                    "ORDER BY first_event_id",
                    (run_id, branch_id, first_event_id, next_event_id),
                ).fetchall()
                return [r[0] for r in rows]

            return await self._read(op)
        pieces = branches.ranges(branch, first_event_id, next_event_id)

        def forked(conn: sqlite3.Connection) -> list[bytes]:
            out: list[bytes] = []
            for branch_id, lo, hi in pieces:
                rows = conn.execute(
                    "SELECT first_event_id, last_event_id, data FROM history "
                    "WHERE run_id=? AND branch_id=? AND last_event_id>=? AND first_event_id<? ORDER BY first_event_id",
                    (run_id, branch_id, lo, hi),
                ).fetchall()
                out.extend(branches.trimmed(first, last, data, lo, hi) for first, last, data in rows)
            return [blob for blob in out if blob]

        return await self._read(forked)

    async def delete_history_branch(self, run_id: str, branch_id: str) -> int:
        def op(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM history WHERE run_id=? AND branch_id=?", (run_id, branch_id)).rowcount

        return await self._write(op)

    async def delete_execution(
        self, shard_id: int, range_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _check_range(conn, shard_id, range_id)
            conn.execute(
                "DELETE FROM executions WHERE namespace_id=? AND workflow_id=? AND run_id=?",
                (namespace_id, workflow_id, run_id),
            )
            conn.execute("DELETE FROM history WHERE run_id=?", (run_id,))  # every branch of the run
            conn.execute("DELETE FROM visibility WHERE namespace_id=? AND run_id=?", (namespace_id, run_id))
            conn.execute(
                "DELETE FROM current_executions WHERE namespace_id=? AND workflow_id=? AND run_id=?",
                (namespace_id, workflow_id, run_id),
            )

        await self._write(op)

    async def load_tasks(self, shard_id: int, category: int) -> list[tuple[int, bytes]]:
        def op(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            rows = conn.execute(
                "SELECT task_id, data FROM tasks WHERE shard_id=? AND category=? ORDER BY task_id",
                (shard_id, category),
            ).fetchall()
            return [(r[0], r[1]) for r in rows]

        return await self._read(op)

    async def delete_tasks(self, shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _check_range(conn, shard_id, range_id)
            conn.executemany(
                "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id=?",
                [(shard_id, c, t) for c, t in keys],
            )

        await self._write(op)

    async def read_tasks(self, shard_id: int, category: int, after_task_id: int, limit: int) -> list[tuple[int, bytes]]:
        def op(conn: sqlite3.Connection) -> list[tuple[int, bytes]]:
            rows = conn.execute(
                "SELECT task_id, data FROM tasks WHERE shard_id=? AND category=? AND task_id>? "
                "ORDER BY task_id LIMIT ?",
                (shard_id, category, after_task_id, limit),
            ).fetchall()
            return [(r[0], r[1]) for r in rows]

        return await self._read(op)

    async def count_tasks(
        self, shard_id: int, category: int, after_task_id: int, before_task_id: int, limit: int
    ) -> int:
        def op(conn: sqlite3.Connection) -> int:
            row = conn.execute(
                "SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE shard_id=? AND category=? AND task_id>? AND task_id<? "
                "LIMIT ?)",
                (shard_id, category, after_task_id, before_task_id, limit),
            ).fetchone()
            return int(row[0])

        return await self._read(op)

    async def delete_tasks_through(self, shard_id: int, range_id: int, category: int, task_id: int) -> int:
        def op(conn: sqlite3.Connection) -> int:
            _check_range(conn, shard_id, range_id)
            return conn.execute(
                "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id<=?", (shard_id, category, task_id)
            ).rowcount

        return await self._write(op)

    # ------------------------------------------------------------------ metadata
    async def get_or_set_metadata(self, key: str, default: str) -> str:
        """The stored value of `key`, storing `default` first if there is none."""

        def op(conn: sqlite3.Connection) -> str:
            conn.execute("INSERT INTO metadata (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (key, default))
            return str(conn.execute("SELECT value FROM metadata WHERE key=?", (key,)).fetchone()[0])

        return await self._write(op)

    async def set_metadata(self, key: str, value: str) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO metadata (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
                (key, value),
            )
        )

    async def get_metadata(self, key: str) -> str | None:
        def op(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT value FROM metadata WHERE key=?", (key,)).fetchone()
            return None if row is None else str(row[0])

        return await self._read(op)

    # ------------------------------------------------------------------ replication DLQ
    async def put_replication_dlq(self, row: DlqRow) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO replication_dlq (source_cluster, source_shard, task_id, namespace_id, "
                "workflow_id, run_id, data, error, enqueue_ns, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    row.source_cluster,
                    row.source_shard,
                    row.task_id,
                    row.namespace_id,
                    row.workflow_id,
                    row.run_id,
                    row.data,
                    row.error,
                    row.enqueue_ns,
                    row.attempts,
                ),
            )
        )

    async def list_replication_dlq(
        self, source_cluster: str, after: tuple[int, int], limit: int, namespace_id: str = ""
    ) -> list[DlqRow]:
        def op(conn: sqlite3.Connection) -> list[DlqRow]:
            sql = (
                "SELECT source_cluster, source_shard, task_id, namespace_id, workflow_id, run_id, data, error, "
                "enqueue_ns, attempts FROM replication_dlq WHERE source_cluster=? AND (source_shard, task_id) > (?, ?)"
            )
            args: list[Any] = [source_cluster, after[0], after[1]]
            if namespace_id:
                sql += " AND namespace_id=?"
                args.append(namespace_id)
            sql += " ORDER BY source_shard, task_id LIMIT ?"
            args.append(limit)
            return [DlqRow(*r) for r in conn.execute(sql, args)]

        return await self._read(op)

    async def delete_replication_dlq(self, source_cluster: str, keys: list[tuple[int, int]] | None) -> int:
        def op(conn: sqlite3.Connection) -> int:
            if keys is None:
                return conn.execute("DELETE FROM replication_dlq WHERE source_cluster=?", (source_cluster,)).rowcount
            return sum(
                conn.execute(
                    "DELETE FROM replication_dlq WHERE source_cluster=? AND source_shard=? AND task_id=?",
                    (source_cluster, shard, task_id),
                ).rowcount
                for shard, task_id in keys
            )

        return await self._write(op)

    async def count_replication_dlq(self) -> list[tuple[str, str, int]]:
        return await self._read(
            lambda conn: [
                (str(r[0]), str(r[1]), int(r[2]))
                for r in conn.execute(
                    "SELECT source_cluster, namespace_id, COUNT(*) FROM replication_dlq "
                    "GROUP BY source_cluster, namespace_id"
                )
            ]
        )

    # ------------------------------------------------------------------ clusters
    async def load_clusters(self) -> list[bytes]:
        return await self._read(lambda conn: [r[0] for r in conn.execute("SELECT data FROM clusters ORDER BY name")])

    async def save_cluster(self, name: str, data: bytes) -> None:
        await self._write(
            lambda conn: conn.execute(
                "INSERT INTO clusters (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data=excluded.data",
                (name, data),
            )
        )

    async def delete_cluster(self, name: str) -> bool:
        return await self._write(lambda conn: conn.execute("DELETE FROM clusters WHERE name=?", (name,)).rowcount == 1)

    # ------------------------------------------------------------------ namespaces
    async def load_namespaces(self) -> list[bytes]:
        return await self._read(lambda conn: [r[0] for r in conn.execute("SELECT data FROM namespaces")])

    async def insert_namespace(self, namespace_id: str, name: str, data: bytes) -> None:
        def op(conn: sqlite3.Connection) -> None:
            try:
                conn.execute("INSERT INTO namespaces (id, name, data) VALUES (?, ?, ?)", (namespace_id, name, data))
            except sqlite3.IntegrityError as err:
                raise AlreadyExists(f"namespace {name} already exists") from err

        await self._write(op)

    async def update_namespace(self, namespace_id: str, data: bytes) -> None:
        await self._write(lambda conn: conn.execute("UPDATE namespaces SET data=? WHERE id=?", (data, namespace_id)))

    # ------------------------------------------------------------------ Nexus endpoints
    async def load_nexus_endpoints(self) -> list[EndpointRow]:
        def op(conn: sqlite3.Connection) -> list[EndpointRow]:
            rows = conn.execute(
                "SELECT id, name, version, data, deleted, seq, stamp, origin, created FROM nexus_endpoints"
            )
            return [EndpointRow(r[0], r[1], r[2], r[3], bool(r[4]), r[5], r[6], r[7], r[8]) for r in rows]

        return await self._read(op)

    async def save_nexus_endpoints(self, rows: list[EndpointRow]) -> None:
        def op(conn: sqlite3.Connection) -> None:
            for row in rows:
                try:
                    conn.execute(
                        # an upsert, not INSERT OR REPLACE: that would delete the live row whose name is taken
                        "INSERT INTO nexus_endpoints (id, name, version, data, deleted, seq, stamp, origin, created) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name=excluded.name, "
                        "version=excluded.version, data=excluded.data, deleted=excluded.deleted, seq=excluded.seq, "
                        "stamp=excluded.stamp, origin=excluded.origin, created=excluded.created",
                        (
                            row.id,
                            row.name,
                            row.version,
                            row.data,
                            int(row.deleted),
                            row.seq,
                            row.stamp,
                            row.origin,
                            row.created,
                        ),
                    )
                except sqlite3.IntegrityError as err:  # the unique index on live names
                    raise AlreadyExists(f"Nexus endpoint name {row.name} is taken") from err

        await self._write(op)

    # ------------------------------------------------------------------ visibility
    async def list_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[VisibilityRow]:
        sql, params = SqliteVisibilitySQL().select(
            VISIBILITY_COLUMNS, namespace_id, query.filter, query.cursor, query.page_size, query.order_by
        )
        return await self._read(lambda conn: [_visibility_row(r) for r in _visibility_query(conn, sql, params)])

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[tuple[Any, ...]]:
        sql, params = SqliteVisibilitySQL().count(namespace_id, query.filter, query.group_by)
        return await self._read(lambda conn: [tuple(r) for r in _visibility_query(conn, sql, params)])


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


def _visibility_query(conn: sqlite3.Connection, sql: str, params: list[Any]) -> list[Any]:
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as err:
        raise VisibilityQueryFailed(str(err)) from err


def _copy_rows(conn: sqlite3.Connection, step: CopyRows) -> None:
    """Copy `step.source` into `step.target` in chunks of rowids, logging progress while it takes long."""
    total, lowest = conn.execute(f"SELECT count(*), min(rowid) FROM {step.source}").fetchone()
    if not total:
        return
    log.info("copying %d rows of table %s", total, step.source)
    started = last_log = time.monotonic()
    copied, after = 0, lowest - 1
    while True:
        # the rowid that ends this chunk (keyset steps: gaps left by deleted rows cost nothing)
        until = conn.execute(
            f"SELECT max(rowid) FROM (SELECT rowid FROM {step.source} WHERE rowid > ? ORDER BY rowid LIMIT ?)",
            (after, COPY_CHUNK),
        ).fetchone()[0]
        if until is None:
            break
        copied += conn.execute(
            f"INSERT INTO {step.target} ({step.columns}) SELECT {step.expressions} FROM {step.source} "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            (after, until),
        ).rowcount
        after = until
        if time.monotonic() - last_log >= COPY_PROGRESS_SECONDS:
            log.info("copied %d of %d rows of table %s (%d%%)", copied, total, step.source, copied * 100 // total)
            last_log = time.monotonic()
    log.info("copied %d rows of table %s in %.1f s", copied, step.source, time.monotonic() - started)


def _resolve_all(results: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for fut, value, err in results:
        if fut.done():
            continue
        if err is not None:
            fut.set_exception(err)
        else:
            fut.set_result(value)


def _check_range(conn: sqlite3.Connection, shard_id: int, range_id: int) -> None:
    row = conn.execute("SELECT range_id FROM shards WHERE shard_id=?", (shard_id,)).fetchone()
    if row is None or row[0] != range_id:
        raise ShardOwnershipLost(f"shard {shard_id}: range {range_id} is stale")


def _apply_transaction(conn: sqlite3.Connection, txn: Transaction) -> None:
    _check_range(conn, txn.shard_id, txn.range_id)
    for cw in txn.current:
        if cw.expected_run_id is None:
            try:
                conn.execute(
                    "INSERT INTO current_executions (namespace_id, workflow_id, run_id, status, start_request_id) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (cw.namespace_id, cw.workflow_id, cw.run_id, cw.status, cw.start_request_id),
                )
            except sqlite3.IntegrityError as err:
                raise ConditionFailed("current execution exists") from err
        else:
            cur = conn.execute(
                "UPDATE current_executions SET run_id=?, status=?, start_request_id=? "
                "WHERE namespace_id=? AND workflow_id=? AND run_id=?",
                (cw.run_id, cw.status, cw.start_request_id, cw.namespace_id, cw.workflow_id, cw.expected_run_id),
            )
            if cur.rowcount != 1:
                raise ConditionFailed("current execution changed")
    for ew in txn.executions:
        if ew.expected_db_version == 0:
            try:
                conn.execute(
                    "INSERT INTO executions (namespace_id, workflow_id, run_id, db_version, state) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (ew.namespace_id, ew.workflow_id, ew.run_id, ew.db_version, ew.state),
                )
            except sqlite3.IntegrityError as err:
                raise ConditionFailed("execution exists") from err
        else:
            cur = conn.execute(
                "UPDATE executions SET db_version=?, state=? "
                "WHERE namespace_id=? AND workflow_id=? AND run_id=? AND db_version=?",
                (ew.db_version, ew.state, ew.namespace_id, ew.workflow_id, ew.run_id, ew.expected_db_version),
            )
            if cur.rowcount != 1:
                raise ConditionFailed(f"execution {ew.workflow_id}/{ew.run_id} changed")
    if txn.history:
        conn.executemany(
            "INSERT INTO history (namespace_id, run_id, branch_id, first_event_id, last_event_id, data) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    h.namespace_id,
                    h.run_id,
                    branches.own_branch_id(h.run_id, h.branch_id),
                    h.first_event_id,
                    h.last_event_id,
                    h.data,
                )
                for h in txn.history
            ],
        )
    if txn.tasks:
        conn.executemany(
            "INSERT INTO tasks (shard_id, category, task_id, visibility_ns, data) VALUES (?, ?, ?, ?, ?)",
            [(txn.shard_id, t.category, t.task_id, t.visibility_ns, t.data) for t in txn.tasks],
        )
    if txn.deleted_tasks:
        conn.executemany(
            "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id=?",
            [(txn.shard_id, c, t) for c, t in txn.deleted_tasks],
        )
    for v in txn.visibility:
        conn.execute(
            f"INSERT OR REPLACE INTO visibility ({VISIBILITY_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                v.namespace_id,
                v.run_id,
                v.workflow_id,
                v.workflow_type,
                v.status,
                v.start_time,
                v.execution_time,
                v.close_time,
                v.task_queue,
                v.history_length,
                v.history_size_bytes,
                v.memo,
                v.search_attributes,
                v.search_attributes_json,
                v.parent_workflow_id,
                v.parent_run_id,
                v.root_workflow_id,
                v.root_run_id,
                v.state_transition_count,
            ),
        )


def _visibility_row(r: Any) -> VisibilityRow:
    return VisibilityRow(
        namespace_id=r[0],
        run_id=r[1],
        workflow_id=r[2],
        workflow_type=r[3],
        status=r[4],
        start_time=r[5],
        execution_time=r[6],
        close_time=r[7],
        task_queue=r[8],
        history_length=r[9],
        history_size_bytes=r[10],
        memo=r[11],
        search_attributes=r[12],
        search_attributes_json=r[13],
        parent_workflow_id=r[14],
        parent_run_id=r[15],
        root_workflow_id=r[16],
        root_run_id=r[17],
        state_transition_count=r[18],
        sort_values=tuple(r[19:]),
    )
