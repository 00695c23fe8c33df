"""An in-memory `Store` for unit tests of the history service: dicts instead of SQLite.

It mirrors `SqliteStore`'s semantics (tests/unit/test_memory_store_contract.py runs the same contract
against both):

- `commit` is atomic: the whole transaction is applied to staged copies of the tables, in the order
  `sqlite._apply_transaction` uses (shard range, current-run writes, executions, history, new tasks,
  deleted tasks, visibility), and the copies replace the tables only if every step succeeded. A stale
  `range_id` raises ShardOwnershipLost; a current-run write whose expectation does not hold (a row exists
  for an insert, or the row does not name the expected run) and an execution write whose `db_version` does
  not hold raise ConditionFailed; a history batch or task row whose key exists raises
  sqlite3.IntegrityError, as SQLite's primary keys do.
- History is kept per (run id, branch id) and read through `branches.ranges`, with an ancestor's batch
  that straddles the fork point trimmed to the events before it (the branch's own rows come back as stored).
- Shards: acquire/extend with the same range arithmetic and fencing; `delete_execution` is fenced too.

For fault tests: `fail_next_commit(error)` makes the next `commit` raise (nothing is written), and
`steal_shard(shard_id)` bumps a shard's range_id as another owner acquiring it would.

What it omits: visibility filters, ORDER BY and GROUP BY (a query with any of them raises
NotImplementedError; listing by namespace in the default order - running runs first, then close time
descending, start time descending, run id - with page size and cursor is supported, as is a plain count);
the file lock, migrations, and group commit (each call is applied alone); `StorageUnavailable` is only
raised when injected.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass, field, replace
from typing import Any

from tempyral.common.clock import int64_ns
from tempyral.common.errors import AlreadyExists, ConditionFailed, ShardOwnershipLost, StorageUnavailable
from tempyral.persistence import branches
from tempyral.persistence.store import (
    BatchRow,
    CurrentRow,
    DlqRow,
    EndpointRow,
    ExecutionRow,
    MemberRow,
    ShardRow,
    Transaction,
    VisibilityQuery,
    VisibilityRow,
)
from tempyral.persistence.visibility_sql import MAX_CLOSE_TIME_NS
from tempyral.proto.internal_pb2 import HistoryBranch

ExecutionKey = tuple[str, str, str]  # namespace id, workflow id, run id
CurrentKey = tuple[str, str]  # namespace id, workflow id
BranchKey = tuple[str, str]  # run id, branch id
TaskKey = tuple[int, int, int]  # shard id, category, task id


@dataclass(slots=True)
class HistoryBatch:
    namespace_id: str
    first_event_id: int
    last_event_id: int
    data: bytes


@dataclass
class _Tables:
    """The tables a commit changes; a commit works on a copy and swaps it in when every step succeeded."""

    executions: dict[ExecutionKey, ExecutionRow] = field(default_factory=dict)
    current: dict[CurrentKey, CurrentRow] = field(default_factory=dict)
    # (run id, branch id) -> first event id -> batch
    history: dict[BranchKey, dict[int, HistoryBatch]] = field(default_factory=dict)
    tasks: dict[TaskKey, tuple[int, bytes]] = field(default_factory=dict)  # -> (visibility ns, data)
    visibility: dict[tuple[str, str], VisibilityRow] = field(default_factory=dict)  # (namespace id, run id)

    def copy(self) -> _Tables:
        return _Tables(
            executions=dict(self.executions),
            current=dict(self.current),
            history={key: dict(batches) for key, batches in self.history.items()},
            tasks=dict(self.tasks),
            visibility=dict(self.visibility),
        )


class MemoryStore:
    """The `Store` protocol over dicts (see the module docstring for what it leaves out)."""

    def __init__(self) -> None:
        self.metadata: dict[str, str] = {}
        self.namespaces: dict[str, tuple[str, bytes]] = {}  # id -> (name, data), in insertion order
        self.shards: dict[int, tuple[int, str]] = {}  # shard id -> (range id, owner)
        self.members: dict[str, MemberRow] = {}
        self.endpoints: dict[str, EndpointRow] = {}
        self.clusters: dict[str, bytes] = {}
        self.replication_dlq: dict[tuple[str, int, int], DlqRow] = {}
        self.batches: dict[tuple[str, str], BatchRow] = {}
        self.tables = _Tables()
        # Every transaction that committed, in order (tests inspect what one change wrote).
        self.committed: list[Transaction] = []
        self._fail_next: BaseException | None = None
        self.opened = False

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        self.opened = True

    async def close(self) -> None:
        self.opened = False

    async def get_or_set_metadata(self, key: str, default: str) -> str:
        return self.metadata.setdefault(key, default)

    async def set_metadata(self, key: str, value: str) -> None:
        self.metadata[key] = value

    async def get_metadata(self, key: str) -> str | None:
        return self.metadata.get(key)

    async def put_replication_dlq(self, row: DlqRow) -> None:
        self.replication_dlq[(row.source_cluster, row.source_shard, row.task_id)] = replace(row)

    async def list_replication_dlq(
        self, source_cluster: str, after: tuple[int, int], limit: int, namespace_id: str = ""
    ) -> list[DlqRow]:
        rows = sorted(
            (
                row
                for key, row in self.replication_dlq.items()
                if key[0] == source_cluster and key[1:] > after and namespace_id in ("", row.namespace_id)
            ),
            key=lambda row: (row.source_shard, row.task_id),
        )
        return [replace(row) for row in rows[:limit]]

    async def delete_replication_dlq(self, source_cluster: str, keys: list[tuple[int, int]] | None) -> int:
        doomed = [key for key in self.replication_dlq if key[0] == source_cluster and (keys is None or key[1:] in keys)]
        for key in doomed:
            del self.replication_dlq[key]
        return len(doomed)

    async def count_replication_dlq(self) -> list[tuple[str, str, int]]:
        counts: dict[tuple[str, str], int] = {}
        for row in self.replication_dlq.values():
            pair = (row.source_cluster, row.namespace_id)
            counts[pair] = counts.get(pair, 0) + 1
        return [(source, ns, n) for (source, ns), n in sorted(counts.items())]

    async def load_clusters(self) -> list[bytes]:
        return [self.clusters[name] for name in sorted(self.clusters)]

    async def save_cluster(self, name: str, data: bytes) -> None:
        self.clusters[name] = data

    async def delete_cluster(self, name: str) -> bool:
        return self.clusters.pop(name, None) is not None

    # ------------------------------------------------------------------ fault injection
    def fail_next_commit(self, error: BaseException | None = None) -> None:
        """The next `commit` raises `error` (StorageUnavailable by default) and writes nothing."""
        self._fail_next = error if error is not None else StorageUnavailable("the database cannot take writes: test")

    def steal_shard(self, shard_id: int, owner: str = "another-node") -> int:
        """Another owner acquires the shard: its range_id goes up, so the current owner's writes are fenced off."""
        range_id = self.shards.get(shard_id, (0, ""))[0] + 1
        self.shards[shard_id] = (range_id, owner)
        return range_id

    # ------------------------------------------------------------------ batch operations
    async def save_batch(self, shard_id: int, range_id: int, row: BatchRow, create: bool) -> None:
        await asyncio.sleep(0)
        self._check_range(shard_id, range_id)
        key = (row.namespace_id, row.job_id)
        if create and key in self.batches:
            raise AlreadyExists(f"batch operation {row.job_id} already exists")
        if create or key in self.batches:
            self.batches[key] = row

    async def get_batch(self, namespace_id: str, job_id: str) -> BatchRow | None:
        await asyncio.sleep(0)
        return self.batches.get((namespace_id, job_id))

    async def list_batches(self, namespace_id: str, after: tuple[int, int, str] | None, limit: int) -> list[BatchRow]:
        await asyncio.sleep(0)
        found = sorted(
            (r for r in self.batches.values() if r.namespace_id == namespace_id),
            key=lambda r: (r.close_time, r.start_time, r.job_id),
            reverse=True,
        )
        if after is not None:
            found = [r for r in found if (r.close_time, r.start_time, r.job_id) < after]
        return found[:limit]

    async def running_batches(self, shard_id: int | None, namespace_id: str = "") -> list[BatchRow]:
        await asyncio.sleep(0)
        return sorted(
            (
                r
                for r in self.batches.values()
                if r.running
                and (shard_id is None or r.shard_id == shard_id)
                and (not namespace_id or r.namespace_id == namespace_id)
            ),
            key=lambda r: (r.start_time, r.job_id),
        )

    # ------------------------------------------------------------------ shards
    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        await asyncio.sleep(0)
        return self.steal_shard(shard_id, owner)

    async def extend_shard_range(self, shard_id: int, range_id: int) -> int:
        await asyncio.sleep(0)
        row = self.shards.get(shard_id)
        if row is None or row[0] != range_id:
            raise ShardOwnershipLost(f"shard {shard_id} moved")
        self.shards[shard_id] = (range_id + 1, row[1])
        return range_id + 1

    async def list_shards(self) -> list[ShardRow]:
        await asyncio.sleep(0)
        return [ShardRow(shard_id, range_id, owner) for shard_id, (range_id, owner) in sorted(self.shards.items())]

    async def release_shard(self, shard_id: int, range_id: int) -> bool:
        await asyncio.sleep(0)
        row = self.shards.get(shard_id)
        if row is None or row[0] != range_id:
            return False
        self.shards[shard_id] = (range_id, "")
        return True

    # ------------------------------------------------------------------ membership
    async def join_member(self, row: MemberRow, stale_before_ns: int) -> MemberRow | None:
        await asyncio.sleep(0)
        held = self.members.get(row.node)
        if held is not None and held.session != row.session and held.heartbeat_ns >= stale_before_ns:
            return held
        self.members[row.node] = row
        return None

    async def heartbeat_member(self, node: str, session: str, heartbeat_ns: int) -> bool:
        await asyncio.sleep(0)
        held = self.members.get(node)
        if held is None or held.session != session:
            return False
        self.members[node] = replace(held, heartbeat_ns=heartbeat_ns)
        return True

    async def list_members(self) -> list[MemberRow]:
        await asyncio.sleep(0)
        return [self.members[node] for node in sorted(self.members)]

    async def leave_member(self, node: str, session: str) -> None:
        await asyncio.sleep(0)
        held = self.members.get(node)
        if held is not None and held.session == session:
            del self.members[node]

    def _check_range(self, shard_id: int, range_id: int) -> None:
        row = self.shards.get(shard_id)
        if row is None or row[0] != range_id:
            raise ShardOwnershipLost(f"shard {shard_id}: range {range_id} is stale")

    # ------------------------------------------------------------------ executions
    async def commit(self, txn: Transaction) -> None:
        await asyncio.sleep(0)  # a suspension point, as a real store has; what follows runs without one
        if self._fail_next is not None:
            error, self._fail_next = self._fail_next, None
            raise error
        self._check_range(txn.shard_id, txn.range_id)
        staged = self.tables.copy()
        for cw in txn.current:
            key = (cw.namespace_id, cw.workflow_id)
            existing = staged.current.get(key)
            if cw.expected_run_id is None:
                if existing is not None:
                    raise ConditionFailed("current execution exists")
            elif existing is None or existing.run_id != cw.expected_run_id:
                raise ConditionFailed("current execution changed")
            staged.current[key] = CurrentRow(cw.run_id, cw.status, cw.start_request_id)
        for ew in txn.executions:
            ekey = (ew.namespace_id, ew.workflow_id, ew.run_id)
            row = staged.executions.get(ekey)
            if ew.expected_db_version == 0:
                if row is not None:
                    raise ConditionFailed("execution exists")
            elif row is None or row.db_version != ew.expected_db_version:
                raise ConditionFailed(f"execution {ew.workflow_id}/{ew.run_id} changed")
            staged.executions[ekey] = ExecutionRow(ew.state, ew.db_version)
        for h in txn.history:
            batches = staged.history.setdefault((h.run_id, branches.own_branch_id(h.run_id, h.branch_id)), {})
            if h.first_event_id in batches:
                raise sqlite3.IntegrityError("UNIQUE constraint failed: history.run_id, branch_id, first_event_id")
            batches[h.first_event_id] = HistoryBatch(h.namespace_id, h.first_event_id, h.last_event_id, h.data)
        for t in txn.tasks:
            tkey = (txn.shard_id, t.category, t.task_id)
            if tkey in staged.tasks:
                raise sqlite3.IntegrityError("UNIQUE constraint failed: tasks.shard_id, tasks.category, tasks.task_id")
            staged.tasks[tkey] = (t.visibility_ns, t.data)
        for category, task_id in txn.deleted_tasks:
            staged.tasks.pop((txn.shard_id, category, task_id), None)
        for v in txn.visibility:
            staged.visibility[(v.namespace_id, v.run_id)] = replace(v, sort_values=())
        self.tables = staged
        self.committed.append(txn)

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRow | None:
        await asyncio.sleep(0)
        row = self.tables.executions.get((namespace_id, workflow_id, run_id))
        return ExecutionRow(row.state, row.db_version) if row is not None else None

    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentRow | None:
        await asyncio.sleep(0)
        row = self.tables.current.get((namespace_id, workflow_id))
        return CurrentRow(row.run_id, row.status, row.start_request_id) if row is not None else None

    def _rows(self, run_id: str, branch_id: str, lo: int, hi: int) -> list[HistoryBatch]:
        """A branch's own batches that hold any event in [lo, hi), by first event id (SQLite's query)."""
        batches = self.tables.history.get((run_id, branch_id), {})
        return [b for _, b in sorted(batches.items()) if b.last_event_id >= lo and b.first_event_id < hi]

    async def read_history(
        self,
        namespace_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        branch: HistoryBranch | None = None,
    ) -> list[bytes]:
        await asyncio.sleep(0)
        # Like SqliteStore: rows are keyed by run and branch; the namespace id is not part of the key.
        if branch is None or not branch.ancestors:
            branch_id = branches.own_branch_id(run_id, branch.branch_id if branch is not None else "")
            return [b.data for b in self._rows(run_id, branch_id, first_event_id, next_event_id)]
        out: list[bytes] = []
        for branch_id, lo, hi in branches.ranges(branch, first_event_id, next_event_id):
            rows = self._rows(run_id, branch_id, lo, hi)
            out.extend(branches.trimmed(b.first_event_id, b.last_event_id, b.data, lo, hi) for b in rows)
        return [blob for blob in out if blob]

    async def delete_history_branch(self, run_id: str, branch_id: str) -> int:
        await asyncio.sleep(0)
        return len(self.tables.history.pop((run_id, branch_id), {}))

    async def delete_execution(
        self, shard_id: int, range_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        await asyncio.sleep(0)
        self._check_range(shard_id, range_id)
        t = self.tables
        t.executions.pop((namespace_id, workflow_id, run_id), None)
        for key in [k for k in t.history if k[0] == run_id]:  # every branch of the run
            del t.history[key]
        t.visibility.pop((namespace_id, run_id), None)
        current = t.current.get((namespace_id, workflow_id))
        if current is not None and current.run_id == run_id:
            del t.current[(namespace_id, workflow_id)]

    async def load_tasks(self, shard_id: int, category: int) -> list[tuple[int, bytes]]:
        await asyncio.sleep(0)
        rows = [(k[2], data) for k, (_, data) in self.tables.tasks.items() if k[0] == shard_id and k[1] == category]
        return sorted(rows)

    async def load_tasks_due(
        self, shard_id: int, category: int, from_ns: int, before_ns: int
    ) -> list[tuple[int, bytes]]:
        await asyncio.sleep(0)
        from_ns, before_ns = int64_ns(from_ns), int64_ns(before_ns)  # as a 64-bit column compares them
        rows = [
            (k[2], data)
            for k, (visibility_ns, data) in self.tables.tasks.items()
            if k[0] == shard_id and k[1] == category and from_ns <= visibility_ns < before_ns
        ]
        return sorted(rows)

    async def delete_tasks(self, shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> None:
        await asyncio.sleep(0)
        self._check_range(shard_id, range_id)
        for category, task_id in keys:
            self.tables.tasks.pop((shard_id, category, task_id), None)

    async def read_tasks(self, shard_id: int, category: int, after_task_id: int, limit: int) -> list[tuple[int, bytes]]:
        rows = await self.load_tasks(shard_id, category)
        return [row for row in rows if row[0] > after_task_id][:limit]

    async def count_tasks(
        self, shard_id: int, category: int, after_task_id: int, before_task_id: int, limit: int
    ) -> int:
        rows = await self.load_tasks(shard_id, category)
        return min(limit, sum(1 for task_id, _ in rows if after_task_id < task_id < before_task_id))

    async def delete_tasks_through(self, shard_id: int, range_id: int, category: int, task_id: int) -> int:
        await asyncio.sleep(0)
        self._check_range(shard_id, range_id)
        keys = [k for k in self.tables.tasks if k[0] == shard_id and k[1] == category and k[2] <= task_id]
        for key in keys:
            del self.tables.tasks[key]
        return len(keys)

    # ------------------------------------------------------------------ namespaces
    async def load_namespaces(self) -> list[bytes]:
        await asyncio.sleep(0)
        return [data for _, data in self.namespaces.values()]

    async def insert_namespace(self, namespace_id: str, name: str, data: bytes) -> None:
        await asyncio.sleep(0)
        if namespace_id in self.namespaces or any(n == name for n, _ in self.namespaces.values()):
            raise AlreadyExists(f"namespace {name} already exists")
        self.namespaces[namespace_id] = (name, data)

    async def update_namespace(self, namespace_id: str, data: bytes) -> None:
        await asyncio.sleep(0)
        if namespace_id in self.namespaces:
            self.namespaces[namespace_id] = (self.namespaces[namespace_id][0], data)

    # ------------------------------------------------------------------ Nexus endpoints
    async def load_nexus_endpoints(self) -> list[EndpointRow]:
        await asyncio.sleep(0)
        return list(self.endpoints.values())

    async def save_nexus_endpoints(self, rows: list[EndpointRow]) -> None:
        await asyncio.sleep(0)
        staged = dict(self.endpoints)
        for row in rows:
            taken = any(e.name == row.name and not e.deleted and i != row.id for i, e in staged.items())
            if taken and not row.deleted:
                raise AlreadyExists(f"Nexus endpoint name {row.name} is taken")
            staged[row.id] = row
        self.endpoints = staged

    # ------------------------------------------------------------------ visibility
    @staticmethod
    def _unsupported(query: VisibilityQuery) -> None:
        if query.filter is not None or query.order_by or query.group_by:
            raise NotImplementedError("MemoryStore lists and counts visibility rows without filters or ordering")

    async def list_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[VisibilityRow]:
        await asyncio.sleep(0)
        self._unsupported(query)
        rows = [v for (ns, _), v in self.tables.visibility.items() if ns == namespace_id]
        rows.sort(key=lambda v: (-_close(v.close_time), -v.start_time, v.run_id))
        cursor = query.cursor
        if cursor is not None:
            after = (-_close(cursor.close_time), -cursor.start_time, cursor.run_id)
            rows = [v for v in rows if (-_close(v.close_time), -v.start_time, v.run_id) > after]
        return [replace(v) for v in rows[: query.page_size]]

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[tuple[Any, ...]]:
        await asyncio.sleep(0)
        self._unsupported(query)
        return [(sum(1 for ns, _ in self.tables.visibility if ns == namespace_id),)]


def _close(close_time: int | None) -> int:
    """The close time as the listing orders it: a running run (None) sorts as the last instant."""
    return MAX_CLOSE_TIME_NS if close_time is None else close_time
