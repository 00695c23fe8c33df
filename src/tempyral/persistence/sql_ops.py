"""The store's SQL, written once for every database: each operation is a generator that yields statements and
receives their results.

A statement is SQL with `?` placeholders, its parameters, and what to fetch. `SqliteStore` drives an operation
synchronously in its writer thread (inside that transaction's SAVEPOINT of its group commit) or a reader thread;
`PostgresStore` drives it on an asyncpg connection, inside a transaction for writes. What differs between the
databases (placeholders, column types, copying rows in a migration, visibility SQL) is the `Dialect`'s
(persistence/dialect.py). The SQL here is what SQLite and PostgreSQL both take: upserts are `ON CONFLICT`, and a
conditional insert is `ON CONFLICT DO NOTHING` whose row count says whether it happened (in PostgreSQL an error
aborts the whole transaction, so conditions are never tested by provoking one).

A statement's error is raised into the operation at its `yield` (so that it can undo what it began); a violated
unique key comes as `DuplicateKey`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias, TypeVar

from tempyral.common.clock import int64_ns
from tempyral.common.errors import AlreadyExists, ConditionFailed, ShardOwnershipLost, StartupError
from tempyral.persistence import branches
from tempyral.persistence.schema import MIGRATIONS, VISIBILITY_COLUMNS, CopyRows, FillSearchAttributeTokens
from tempyral.persistence.store import (
    BatchRow,
    CurrentRow,
    DlqRow,
    EndpointRow,
    ExecutionRow,
    MemberRow,
    ShardRow,
    Transaction,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import search_attribute_tokens
from tempyral.proto.internal_pb2 import HistoryBranch

if TYPE_CHECKING:
    from tempyral.persistence.dialect import Dialect

log = logging.getLogger(__name__)
T = TypeVar("T")
Fetch: TypeAlias = Literal["count", "one", "all", "many", "batch"]
COPY_CHUNK = 10_000  # rows per statement when a migration copies or fills a table
PROGRESS_SECONDS = 5.0  # how often a long migration step logs its progress


class Stmt(NamedTuple):
    """One statement. fetch: "count" -> rows changed; "one" -> the first row or None; "all" -> every row;
    "many" -> `params` is a list of parameter rows, the statement runs once per row (-> None); "batch" -> `params`
    is a list of "many" statements whose results nobody needs, run in order (-> None: one step for the driver).
    (A tuple: a commit makes several, and this is the cheapest object to make.)"""

    sql: str
    params: Sequence[Any] = ()
    fetch: Fetch = "count"


Op: TypeAlias = Generator[Stmt, Any, T]


class DuplicateKey(sqlite3.IntegrityError):
    """A statement would have duplicated a unique key (a history batch or task row written twice). It derives from
    sqlite3.IntegrityError, what SqliteStore raised for it before the stores shared their SQL."""


def count(sql: str, *params: Any) -> Stmt:
    return Stmt(sql, params, "count")


def one(sql: str, *params: Any) -> Stmt:
    return Stmt(sql, params, "one")


def rows(sql: str, *params: Any) -> Stmt:
    return Stmt(sql, params, "all")


def many(sql: str, param_rows: Sequence[Sequence[Any]]) -> Stmt:
    return Stmt(sql, param_rows, "many")


# ---------------------------------------------------------------------- schema
SCHEMA_LOCK_KEY = 0x74656D7079726C  # "tempyrl": the advisory lock held while one node migrates a database


def migrate(dialect: Dialect, where: str) -> Op[None]:
    """Create or bring the schema up to date, one version per transaction (a failed step leaves the database at the
    last version applied whole). `where` names the database in messages."""
    yield from dialect.before_migrate()
    try:
        yield from _migrate(dialect, where)
    except GeneratorExit:
        raise  # abandoned by its driver: it cannot run statements any more
    except BaseException:
        try:
            yield from dialect.after_migrate()
        except Exception:
            pass  # the connection is gone, and its lock with it
        raise
    yield from dialect.after_migrate()


def _migrate(dialect: Dialect, where: str) -> Op[None]:
    yield count(dialect.ddl("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"))
    row = yield one("SELECT version FROM schema_version")
    current = int(row[0]) if row else 0
    if current > len(MIGRATIONS):
        raise StartupError(
            f"database {where} has schema version {current}, written by a newer tempyral than this one "
            f"(which knows {len(MIGRATIONS)}): upgrade tempyral"
        )
    for version in range(current, len(MIGRATIONS)):
        log.info("applying schema migration %d", version + 1)
        yield count(dialect.begin)
        try:
            for step in MIGRATIONS[version]:
                if isinstance(step, CopyRows):
                    yield from dialect.copy_rows(step)
                elif isinstance(step, FillSearchAttributeTokens):
                    yield from fill_search_attribute_tokens()
                else:
                    yield count(dialect.ddl(step))
            yield count("DELETE FROM schema_version")
            yield count("INSERT INTO schema_version (version) VALUES (?)", version + 1)
            yield count("COMMIT")
        except GeneratorExit:
            raise
        except BaseException:
            try:
                yield count("ROLLBACK")  # the database stays at the last version that was applied whole
            except Exception:
                pass  # already rolled back (SQLite does on a full disk), or the connection is gone
            raise


def copy_rows_in_chunks(step: CopyRows) -> Op[None]:
    """Copy `step.source` into `step.target` in chunks of rowids (SQLite), logging progress while it takes long."""
    total, lowest = yield one(f"SELECT count(*), min(rowid) FROM {step.source}")
    if not total:
        return
    log.info("copying %d rows of table %s", total, step.source)
    started = last_log = time.monotonic()
    copied, after = 0, lowest - 1
    while True:
        # the rowid that ends this chunk (keyset steps: gaps left by deleted rows cost nothing)
        (until,) = yield one(
            f"SELECT max(rowid) FROM (SELECT rowid FROM {step.source} WHERE rowid > ? ORDER BY rowid LIMIT ?) AS c",
            after,
            COPY_CHUNK,
        )
        if until is None:
            break
        copied += yield count(
            f"INSERT INTO {step.target} ({step.columns}) SELECT {step.expressions} FROM {step.source} "
            "WHERE rowid > ? AND rowid <= ? ORDER BY rowid",
            after,
            until,
        )
        after = until
        if time.monotonic() - last_log >= PROGRESS_SECONDS:
            log.info("copied %d of %d rows of table %s (%d%%)", copied, total, step.source, copied * 100 // total)
            last_log = time.monotonic()
    log.info("copied %d rows of table %s in %.1f s", copied, step.source, time.monotonic() - started)


def fill_search_attribute_tokens() -> Op[None]:
    """Compute the search-attribute tokens of the visibility rows written before the column existed, by key order
    in chunks (the tokens are computed here, in Python, so that every database matches text alike)."""
    total = (yield one("SELECT count(*) FROM visibility"))[0]
    if not total:
        return
    log.info("indexing the search attributes of %d visibility rows", total)
    done, after = 0, ("", "")
    while True:
        chunk = yield rows(
            "SELECT namespace_id, run_id, search_attributes_json FROM visibility WHERE (namespace_id, run_id) > (?, ?) "
            "ORDER BY namespace_id, run_id LIMIT ?",
            after[0],
            after[1],
            COPY_CHUNK,
        )
        if not chunk:
            break
        yield many(
            "UPDATE visibility SET search_attributes_tokens=? WHERE namespace_id=? AND run_id=?",
            [(search_attribute_tokens(r[2]), r[0], r[1]) for r in chunk],
        )
        done += len(chunk)
        after = (chunk[-1][0], chunk[-1][1])
    log.info("indexed the search attributes of %d visibility rows", done)


# ---------------------------------------------------------------------- shards
def acquire_shard(shard_id: int, owner: str) -> Op[int]:
    # One statement: two nodes acquiring at once get different ranges (the upsert locks the row).
    row = yield one(
        "INSERT INTO shards (shard_id, range_id, owner) VALUES (?, 1, ?) "
        "ON CONFLICT (shard_id) DO UPDATE SET range_id=shards.range_id+1, owner=excluded.owner RETURNING range_id",
        shard_id,
        owner,
    )
    return int(row[0])


def extend_shard_range(shard_id: int, range_id: int) -> Op[int]:
    changed = yield count("UPDATE shards SET range_id=range_id+1 WHERE shard_id=? AND range_id=?", shard_id, range_id)
    if changed != 1:
        raise ShardOwnershipLost(f"shard {shard_id} moved")
    return range_id + 1


def list_shards() -> Op[list[ShardRow]]:
    found = yield rows("SELECT shard_id, range_id, owner FROM shards ORDER BY shard_id")
    return [ShardRow(r[0], r[1], r[2]) for r in found]


def release_shard(shard_id: int, range_id: int) -> Op[bool]:
    changed = yield count("UPDATE shards SET owner='' WHERE shard_id=? AND range_id=?", shard_id, range_id)
    return bool(changed == 1)


RANGE_SQL = "SELECT range_id FROM shards WHERE shard_id=? FOR SHARE"


def check_range(shard_id: int, range_id: int) -> Op[None]:
    """The shard is still held under `range_id`. FOR SHARE (PostgreSQL): a concurrent acquire of the shard waits for
    this transaction, and this one for it, so a write is fenced exactly."""
    range_row(shard_id, range_id, (yield Stmt(RANGE_SQL, (shard_id,), "one")))


def range_row(shard_id: int, range_id: int, row: Any) -> None:
    if row is None or row[0] != range_id:
        raise ShardOwnershipLost(f"shard {shard_id}: range {range_id} is stale")


# ---------------------------------------------------------------------- membership
MEMBER_COLUMNS = "node, session, address, http_address, heartbeat_ns, started_ns"


def join_member(row: MemberRow, stale_before_ns: int) -> Op[MemberRow | None]:
    # The condition is part of the upsert: two processes joining with one name at once cannot both win.
    changed = yield count(
        f"INSERT INTO cluster_members ({MEMBER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (node) DO UPDATE SET "
        "session=excluded.session, address=excluded.address, http_address=excluded.http_address, "
        "heartbeat_ns=excluded.heartbeat_ns, started_ns=excluded.started_ns "
        "WHERE cluster_members.session=excluded.session OR cluster_members.heartbeat_ns<?",
        row.node,
        row.session,
        row.address,
        row.http_address,
        row.heartbeat_ns,
        row.started_ns,
        stale_before_ns,
    )
    if changed == 1:
        return None
    held = yield one(f"SELECT {MEMBER_COLUMNS} FROM cluster_members WHERE node=?", row.node)
    return MemberRow(*held)


def heartbeat_member(node: str, session: str, heartbeat_ns: int) -> Op[bool]:
    changed = yield count(
        "UPDATE cluster_members SET heartbeat_ns=? WHERE node=? AND session=?", heartbeat_ns, node, session
    )
    return bool(changed == 1)


def list_members() -> Op[list[MemberRow]]:
    found = yield rows(f"SELECT {MEMBER_COLUMNS} FROM cluster_members ORDER BY node")
    return [MemberRow(*r) for r in found]


def leave_member(node: str, session: str) -> Op[None]:
    yield count("DELETE FROM cluster_members WHERE node=? AND session=?", node, session)


# ---------------------------------------------------------------------- executions
VISIBILITY_WRITE_COLUMNS = VISIBILITY_COLUMNS + ", search_attributes_tokens"
_VISIBILITY_UPSERT = (
    f"INSERT INTO visibility ({VISIBILITY_WRITE_COLUMNS}) VALUES ({', '.join('?' * 20)}) "
    "ON CONFLICT (namespace_id, run_id) DO UPDATE SET "
    + ", ".join(f"{c.strip()}=excluded.{c.strip()}" for c in VISIBILITY_WRITE_COLUMNS.split(",")[2:])
)


def visibility_params(v: VisibilityRow) -> tuple[Any, ...]:
    return (
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
        search_attribute_tokens(v.search_attributes_json),
    )


def commit(txn: Transaction) -> Op[None]:
    """One transaction's writes, in a fixed order; a failed condition raises and the caller undoes them all. (The
    hot path of every workflow: statements are made directly, the range check inline.)"""
    range_row(txn.shard_id, txn.range_id, (yield Stmt(RANGE_SQL, (txn.shard_id,), "one")))
    for cw in txn.current:
        if cw.expected_run_id is None:
            inserted = yield count(
                "INSERT INTO current_executions (namespace_id, workflow_id, run_id, status, start_request_id) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace_id, workflow_id) DO NOTHING",
                cw.namespace_id,
                cw.workflow_id,
                cw.run_id,
                cw.status,
                cw.start_request_id,
            )
            if inserted != 1:
                raise ConditionFailed("current execution exists")
        else:
            changed = yield count(
                "UPDATE current_executions SET run_id=?, status=?, start_request_id=? "
                "WHERE namespace_id=? AND workflow_id=? AND run_id=?",
                cw.run_id,
                cw.status,
                cw.start_request_id,
                cw.namespace_id,
                cw.workflow_id,
                cw.expected_run_id,
            )
            if changed != 1:
                raise ConditionFailed("current execution changed")
    for ew in txn.executions:
        if ew.expected_db_version == 0:
            inserted = yield count(
                "INSERT INTO executions (namespace_id, workflow_id, run_id, db_version, state) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (namespace_id, workflow_id, run_id) DO NOTHING",
                ew.namespace_id,
                ew.workflow_id,
                ew.run_id,
                ew.db_version,
                ew.state,
            )
            if inserted != 1:
                raise ConditionFailed("execution exists")
        else:
            changed = yield Stmt(
                "UPDATE executions SET db_version=?, state=? "
                "WHERE namespace_id=? AND workflow_id=? AND run_id=? AND db_version=?",
                (ew.db_version, ew.state, ew.namespace_id, ew.workflow_id, ew.run_id, ew.expected_db_version),
            )
            if changed != 1:
                raise ConditionFailed(f"execution {ew.workflow_id}/{ew.run_id} changed")
    # the rest needs no results: one step
    tail: list[Stmt] = []
    if txn.history:
        tail.append(
            Stmt(
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
                "many",
            )
        )
    if txn.tasks:
        tail.append(
            Stmt(
                "INSERT INTO tasks (shard_id, category, task_id, visibility_ns, data) VALUES (?, ?, ?, ?, ?)",
                [(txn.shard_id, t.category, t.task_id, t.visibility_ns, t.data) for t in txn.tasks],
                "many",
            )
        )
    if txn.deleted_tasks:
        tail.append(
            Stmt(
                "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id=?",
                [(txn.shard_id, c, t) for c, t in txn.deleted_tasks],
                "many",
            )
        )
    if txn.visibility:
        tail.append(Stmt(_VISIBILITY_UPSERT, [visibility_params(v) for v in txn.visibility], "many"))
    if tail:
        yield Stmt("", tail, "batch")


def get_execution(namespace_id: str, workflow_id: str, run_id: str) -> Op[ExecutionRow | None]:
    row = yield one(
        "SELECT state, db_version FROM executions WHERE namespace_id=? AND workflow_id=? AND run_id=?",
        namespace_id,
        workflow_id,
        run_id,
    )
    return ExecutionRow(bytes(row[0]), row[1]) if row else None


def get_current(namespace_id: str, workflow_id: str) -> Op[CurrentRow | None]:
    row = yield one(
        "SELECT run_id, status, start_request_id FROM current_executions WHERE namespace_id=? AND workflow_id=?",
        namespace_id,
        workflow_id,
    )
    return CurrentRow(row[0], row[1], row[2]) if row else None


def read_history(
    namespace_id: str, run_id: str, first_event_id: int, next_event_id: int, branch: HistoryBranch | None
) -> Op[list[bytes]]:
    if branch is None or not branch.ancestors:
        branch_id = branches.own_branch_id(run_id, branch.branch_id if branch is not None else "")
        found = yield rows(
            "SELECT data FROM history WHERE run_id=? AND branch_id=? AND last_event_id>=? AND first_event_id<? "
            "ORDER BY first_event_id",
            run_id,
            branch_id,
            first_event_id,
            next_event_id,
        )
        return [bytes(r[0]) for r in found]
    out: list[bytes] = []
    for piece_branch, lo, hi in branches.ranges(branch, first_event_id, next_event_id):
        found = yield rows(
            "SELECT first_event_id, last_event_id, data FROM history "
            "WHERE run_id=? AND branch_id=? AND last_event_id>=? AND first_event_id<? ORDER BY first_event_id",
            run_id,
            piece_branch,
            lo,
            hi,
        )
        out.extend(branches.trimmed(first, last, bytes(data), lo, hi) for first, last, data in found)
    return [blob for blob in out if blob]


def delete_history_branch(run_id: str, branch_id: str) -> Op[int]:
    deleted = yield count("DELETE FROM history WHERE run_id=? AND branch_id=?", run_id, branch_id)
    return int(deleted)


def delete_execution(shard_id: int, range_id: int, namespace_id: str, workflow_id: str, run_id: str) -> Op[None]:
    yield from check_range(shard_id, range_id)
    yield count(
        "DELETE FROM executions WHERE namespace_id=? AND workflow_id=? AND run_id=?", namespace_id, workflow_id, run_id
    )
    yield count("DELETE FROM history WHERE run_id=?", run_id)  # every branch of the run
    yield count("DELETE FROM visibility WHERE namespace_id=? AND run_id=?", namespace_id, run_id)
    yield count(
        "DELETE FROM current_executions WHERE namespace_id=? AND workflow_id=? AND run_id=?",
        namespace_id,
        workflow_id,
        run_id,
    )


# ---------------------------------------------------------------------- tasks
def load_tasks(shard_id: int, category: int) -> Op[list[tuple[int, bytes]]]:
    found = yield rows(
        "SELECT task_id, data FROM tasks WHERE shard_id=? AND category=? ORDER BY task_id", shard_id, category
    )
    return [(r[0], bytes(r[1])) for r in found]


def load_tasks_due(shard_id: int, category: int, from_ns: int, before_ns: int) -> Op[list[tuple[int, bytes]]]:
    from_ns, before_ns = int64_ns(from_ns), int64_ns(before_ns)
    found = yield rows(
        "SELECT task_id, data FROM tasks WHERE shard_id=? AND category=? AND visibility_ns>=? AND visibility_ns<? "
        "ORDER BY task_id",
        shard_id,
        category,
        from_ns,
        before_ns,
    )
    return [(r[0], bytes(r[1])) for r in found]


def delete_tasks(shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> Op[None]:
    yield from check_range(shard_id, range_id)
    if keys:
        yield many(
            "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id=?", [(shard_id, c, t) for c, t in keys]
        )


def read_tasks(shard_id: int, category: int, after_task_id: int, limit: int) -> Op[list[tuple[int, bytes]]]:
    found = yield rows(
        "SELECT task_id, data FROM tasks WHERE shard_id=? AND category=? AND task_id>? ORDER BY task_id LIMIT ?",
        shard_id,
        category,
        after_task_id,
        limit,
    )
    return [(r[0], bytes(r[1])) for r in found]


def count_tasks(shard_id: int, category: int, after_task_id: int, before_task_id: int, limit: int) -> Op[int]:
    row = yield one(
        "SELECT COUNT(*) FROM (SELECT 1 FROM tasks WHERE shard_id=? AND category=? AND task_id>? AND task_id<? "
        "LIMIT ?) AS counted",
        shard_id,
        category,
        after_task_id,
        before_task_id,
        limit,
    )
    return int(row[0])


def delete_tasks_through(shard_id: int, range_id: int, category: int, task_id: int) -> Op[int]:
    yield from check_range(shard_id, range_id)
    deleted = yield count(
        "DELETE FROM tasks WHERE shard_id=? AND category=? AND task_id<=?", shard_id, category, task_id
    )
    return int(deleted)


# ---------------------------------------------------------------------- metadata
def get_or_set_metadata(key: str, default: str) -> Op[str]:
    """The stored value of `key`, storing `default` first if there is none."""
    yield count("INSERT INTO metadata (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, default)
    row = yield one("SELECT value FROM metadata WHERE key=?", key)
    return str(row[0])


def set_metadata(key: str, value: str) -> Op[None]:
    yield count(
        "INSERT INTO metadata (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value=excluded.value",
        key,
        value,
    )


def get_metadata(key: str) -> Op[str | None]:
    row = yield one("SELECT value FROM metadata WHERE key=?", key)
    return None if row is None else str(row[0])


# ---------------------------------------------------------------------- batch operations
BATCH_COLUMNS = "namespace_id, job_id, shard_id, running, start_time, close_time, data"


def save_batch(shard_id: int, range_id: int, row: BatchRow, create: bool) -> Op[None]:
    yield from check_range(shard_id, range_id)
    values = (row.namespace_id, row.job_id, row.shard_id, int(row.running), row.start_time, row.close_time, row.data)
    if create:
        inserted = yield count(
            f"INSERT INTO batch_operations ({BATCH_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            *values,
        )
        if inserted != 1:
            raise AlreadyExists(f"batch operation {row.job_id} already exists")
        return
    yield count(
        "UPDATE batch_operations SET shard_id=?, running=?, start_time=?, close_time=?, data=? "
        "WHERE namespace_id=? AND job_id=?",
        *values[2:],
        row.namespace_id,
        row.job_id,
    )


def _batch_row(r: Any) -> BatchRow:
    return BatchRow(r[0], r[1], r[2], bool(r[3]), r[4], r[5], bytes(r[6]))


def get_batch(namespace_id: str, job_id: str) -> Op[BatchRow | None]:
    r = yield one(
        f"SELECT {BATCH_COLUMNS} FROM batch_operations WHERE namespace_id=? AND job_id=?", namespace_id, job_id
    )
    return None if r is None else _batch_row(r)


def list_batches(namespace_id: str, after: tuple[int, int, str] | None, limit: int) -> Op[list[BatchRow]]:
    sql = f"SELECT {BATCH_COLUMNS} FROM batch_operations WHERE namespace_id=?"
    args: list[Any] = [namespace_id]
    if after is not None:
        sql += " AND (close_time, start_time, job_id) < (?, ?, ?)"
        args.extend(after)
    sql += " ORDER BY close_time DESC, start_time DESC, job_id DESC LIMIT ?"
    found = yield rows(sql, *args, limit)
    return [_batch_row(r) for r in found]


def running_batches(shard_id: int | None, namespace_id: str) -> Op[list[BatchRow]]:
    sql = f"SELECT {BATCH_COLUMNS} FROM batch_operations WHERE running=1"
    args: list[Any] = []
    if shard_id is not None:
        sql += " AND shard_id=?"
        args.append(shard_id)
    if namespace_id:
        sql += " AND namespace_id=?"
        args.append(namespace_id)
    found = yield rows(sql + " ORDER BY start_time, job_id", *args)
    return [_batch_row(r) for r in found]


# ---------------------------------------------------------------------- replication DLQ
DLQ_COLUMNS = (
    "source_cluster, source_shard, task_id, namespace_id, workflow_id, run_id, data, error, enqueue_ns, attempts"
)


def put_replication_dlq(row: DlqRow) -> Op[None]:
    yield count(
        f"INSERT INTO replication_dlq ({DLQ_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (source_cluster, source_shard, task_id) DO UPDATE SET namespace_id=excluded.namespace_id, "
        "workflow_id=excluded.workflow_id, run_id=excluded.run_id, data=excluded.data, error=excluded.error, "
        "enqueue_ns=excluded.enqueue_ns, attempts=excluded.attempts",
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
    )


def list_replication_dlq(
    source_cluster: str, after: tuple[int, int], limit: int, namespace_id: str
) -> Op[list[DlqRow]]:
    sql = f"SELECT {DLQ_COLUMNS} FROM replication_dlq WHERE source_cluster=? AND (source_shard, task_id) > (?, ?)"
    args: list[Any] = [source_cluster, after[0], after[1]]
    if namespace_id:
        sql += " AND namespace_id=?"
        args.append(namespace_id)
    sql += " ORDER BY source_shard, task_id LIMIT ?"
    args.append(limit)
    found = yield rows(sql, *args)
    return [DlqRow(r[0], r[1], r[2], r[3], r[4], r[5], bytes(r[6]), r[7], r[8], r[9]) for r in found]


def delete_replication_dlq(source_cluster: str, keys: list[tuple[int, int]] | None) -> Op[int]:
    if keys is None:
        deleted = yield count("DELETE FROM replication_dlq WHERE source_cluster=?", source_cluster)
        return int(deleted)
    total = 0
    for shard, task_id in keys:
        total += yield count(
            "DELETE FROM replication_dlq WHERE source_cluster=? AND source_shard=? AND task_id=?",
            source_cluster,
            shard,
            task_id,
        )
    return total


def count_replication_dlq() -> Op[list[tuple[str, str, int]]]:
    found = yield rows(
        "SELECT source_cluster, namespace_id, COUNT(*) FROM replication_dlq GROUP BY source_cluster, namespace_id"
    )
    return [(str(r[0]), str(r[1]), int(r[2])) for r in found]


# ---------------------------------------------------------------------- clusters
def load_clusters() -> Op[list[bytes]]:
    found = yield rows("SELECT data FROM clusters ORDER BY name")
    return [bytes(r[0]) for r in found]


def save_cluster(name: str, data: bytes) -> Op[None]:
    yield count(
        "INSERT INTO clusters (name, data) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET data=excluded.data",
        name,
        data,
    )


def delete_cluster(name: str) -> Op[bool]:
    deleted = yield count("DELETE FROM clusters WHERE name=?", name)
    return bool(deleted == 1)


# ---------------------------------------------------------------------- namespaces
def load_namespaces() -> Op[list[bytes]]:
    # in creation order, as SQLite's rowid order gave them
    found = yield rows("SELECT data FROM namespaces")
    return [bytes(r[0]) for r in found]


def insert_namespace(namespace_id: str, name: str, data: bytes) -> Op[None]:
    # no conflict target: a taken id and a taken name both leave the row unwritten
    inserted = yield count(
        "INSERT INTO namespaces (id, name, data) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", namespace_id, name, data
    )
    if inserted != 1:
        raise AlreadyExists(f"namespace {name} already exists")


def update_namespace(namespace_id: str, data: bytes) -> Op[None]:
    yield count("UPDATE namespaces SET data=? WHERE id=?", data, namespace_id)


# ---------------------------------------------------------------------- Nexus endpoints
def load_nexus_endpoints() -> Op[list[EndpointRow]]:
    found = yield rows("SELECT id, name, version, data, deleted, seq, stamp, origin, created FROM nexus_endpoints")
    return [EndpointRow(r[0], r[1], r[2], bytes(r[3]), bool(r[4]), r[5], r[6], r[7], r[8]) for r in found]


def save_nexus_endpoints(endpoints: list[EndpointRow]) -> Op[None]:
    for row in endpoints:
        try:
            yield count(
                # an upsert, not a replace: that would delete the live row whose name is taken
                "INSERT INTO nexus_endpoints (id, name, version, data, deleted, seq, stamp, origin, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET name=excluded.name, "
                "version=excluded.version, data=excluded.data, deleted=excluded.deleted, seq=excluded.seq, "
                "stamp=excluded.stamp, origin=excluded.origin, created=excluded.created",
                row.id,
                row.name,
                row.version,
                row.data,
                int(row.deleted),
                row.seq,
                row.stamp,
                row.origin,
                row.created,
            )
        except DuplicateKey as err:  # the unique index on live names
            raise AlreadyExists(f"Nexus endpoint name {row.name} is taken") from err


# ---------------------------------------------------------------------- visibility
def visibility_rows(sql: str, params: Sequence[Any]) -> Op[list[VisibilityRow]]:
    found = yield Stmt(sql, params, "all")
    return [visibility_row(r) for r in found]


def visibility_counts(sql: str, params: Sequence[Any]) -> Op[list[tuple[Any, ...]]]:
    found = yield Stmt(sql, params, "all")
    return [tuple(r) for r in found]


def visibility_row(r: Any) -> VisibilityRow:
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
        memo=bytes(r[11]),
        search_attributes=bytes(r[12]),
        search_attributes_json=r[13],
        parent_workflow_id=r[14],
        parent_run_id=r[15],
        root_workflow_id=r[16],
        root_run_id=r[17],
        state_transition_count=r[18],
        sort_values=tuple(r[19:]),
    )
