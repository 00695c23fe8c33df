"""A history shard: owned through a fenced lease, it caches executions and commits their mutations.

A mutation is one transaction (docs/DESIGN.md, invariant 3): new events, the state snapshot, the
tasks it made and the visibility row. Only after the commit are tasks handed on and
waiters woken.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.query.v1.message_pb2 import WorkflowQuery

from tempyral.common.errors import ShardNotHere, ShardOwnershipLost, Unavailable
from tempyral.history.mutable_state import MutableState
from tempyral.history.update_record import UpdateRecord
from tempyral.persistence.branches import current_branch_id
from tempyral.persistence.store import (
    CurrentWrite,
    ExecutionWrite,
    HistoryWrite,
    Store,
    TaskRow,
    Transaction,
)
from tempyral.proto.internal_pb2 import ExecutionState, Task
from tempyral.visibility.records import row_from_state

log = logging.getLogger(__name__)

RANGE_BITS = 20
# Histories longer than this are read from the database instead of kept in the cache.
MAX_CACHED_EVENTS = 2000

ExecutionKey = tuple[str, str, str]  # namespace id, workflow id, run id
# A commit the database did not answer is read back after this, doubling up to the maximum, until it answers.
READ_BACK_FIRST_S = 0.5
READ_BACK_MAX_S = 10.0


async def _finish(write: asyncio.Future[None]) -> None:
    """Wait for `write` to end, whatever cancels the waiter meanwhile (it is bounded by the store's timeout)."""
    while not write.done():
        try:
            await asyncio.wait([write])
        except asyncio.CancelledError:
            continue
    if not write.cancelled():
        write.exception()  # retrieved: its failure is the caller's cancellation now


def _continues(cached: list[history.HistoryEvent], new: list[history.HistoryEvent]) -> bool:
    last = cached[-1].event_id if cached else 0
    return new[0].event_id == last + 1


@dataclass(eq=False, slots=True)
class ExecutionEntry:
    key: ExecutionKey
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ms: MutableState | None = None
    db_version: int = 0
    # The whole history, when it is short enough to keep (None: read it from the store).
    events: list[history.HistoryEvent] | None = None
    # Futures of history long-polls, resolved after every commit that adds events.
    waiters: list[asyncio.Future[None]] = field(default_factory=list)
    users: int = 0
    # Queries waiting for the next workflow task (query id -> query), and those sent with the
    # running one. They live in memory only: a query is answered or fails, never replayed.
    buffered_queries: dict[str, WorkflowQuery] = field(default_factory=dict)
    inflight_queries: dict[str, WorkflowQuery] = field(default_factory=dict)
    # Updates not yet completed, by update id (see history/updates.py).
    updates: dict[str, UpdateRecord] = field(default_factory=dict)
    # Serialized sizes of the cached state and events: what the cache's byte bound counts.
    state_bytes: int = 0
    events_bytes: int = 0

    def evict_state(self) -> None:
        self.ms = None
        self.events = None
        self.db_version = 0
        self.state_bytes = self.events_bytes = 0


@dataclass(slots=True)
class Mutation:
    entry: ExecutionEntry
    ms: MutableState
    new: bool = False


class Shard:
    def __init__(
        self,
        shard_id: int,
        store: Store,
        owner: str,
        on_tasks: Callable[[list[Task]], None],
        cache_size: int = 20_000,
        cache_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self.shard_id = shard_id
        self.store = store
        self.owner = owner
        self.range_id = 0
        # Whether this node holds the shard's lease (nodes/shards.py moves shards between nodes).
        self.owned = False
        self.on_lost: Callable[[Shard], None] = lambda shard: None
        # Told the task ids whose rows a commit deleted (nodes/matching.py forgets what it would send again).
        self.on_rows_deleted: Callable[[int, list[int]], None] = lambda shard_id, task_ids: None
        self._next_task_id = 0
        self._max_task_id = 0
        self._on_tasks = on_tasks
        self._cache_size = cache_size
        self._cache_bytes = cache_bytes
        self._entries: OrderedDict[ExecutionKey, ExecutionEntry] = OrderedDict()
        self._bytes = 0  # state_bytes + events_bytes of the entries in _entries
        self._current: dict[tuple[str, str], str] = {}
        # First task ids of commits under way: rows with ids from there on may not be visible yet.
        self._inflight: set[int] = set()
        # Read-backs of commits the database did not answer (`_read_back_later`).
        self._read_backs: set[asyncio.Task[None]] = set()

    async def acquire(self) -> None:
        self.range_id = await self.store.acquire_shard(self.shard_id, self.owner)
        self._next_task_id = self.range_id << RANGE_BITS
        self._max_task_id = (self.range_id + 1) << RANGE_BITS
        self.owned = True
        log.info("shard %d acquired with range %d", self.shard_id, self.range_id)

    def lose(self) -> None:
        """This node no longer holds the shard (it found out at a write, or handed it over)."""
        if self.owned:
            self.owned = False
            self.cancel_read_backs()
            log.info("shard %d is no longer owned here (range %d)", self.shard_id, self.range_id)
            self.on_lost(self)

    def cancel_read_backs(self) -> None:
        """They hand tasks to this node's queues: nothing to do once another node owns the shard."""
        for task in self._read_backs:
            task.cancel()

    def release(self) -> list[ExecutionEntry]:
        """Forget everything cached: another node owns the shard's executions now. The entries with in-memory
        waiters (long polls, queries, updates) are returned for the caller to end."""
        self.owned = False
        self.cancel_read_backs()
        entries = list(self._entries.values())
        self._entries.clear()
        self._current.clear()
        self._bytes = 0
        for entry in entries:
            entry.evict_state()
        return [e for e in entries if e.waiters or e.buffered_queries or e.inflight_queries or e.updates]

    async def _task_ids(self, count: int) -> int:
        if self._next_task_id + count >= self._max_task_id:
            try:
                self.range_id = await self.store.extend_shard_range(self.shard_id, self.range_id)
            except ShardOwnershipLost as err:
                self.lose()
                raise ShardNotHere(self.shard_id) from err
            self._next_task_id = self.range_id << RANGE_BITS
            self._max_task_id = (self.range_id + 1) << RANGE_BITS
        first = self._next_task_id
        self._next_task_id += count
        return first

    def committed_through(self) -> int:
        """Every task id up to this one is committed (and announced) or will never be: a reader of the outbox in
        id order (history replication) may go this far without skipping a row that commits later."""
        return (min(self._inflight) if self._inflight else self._next_task_id) - 1

    @property
    def next_task_id(self) -> int:
        return self._next_task_id

    # ------------------------------------------------------------------ cache
    @asynccontextmanager
    async def locked(self, key: ExecutionKey) -> AsyncIterator[ExecutionEntry]:
        entry = self._entries.get(key)
        if entry is None:
            entry = ExecutionEntry(key)
            self._entries[key] = entry
            self._evict()
        else:
            self._entries.move_to_end(key)
        entry.users += 1
        try:
            async with entry.lock:
                yield entry
        finally:
            entry.users -= 1

    def new_entry(self, key: ExecutionKey) -> ExecutionEntry:
        """An entry for a run that is being created (nobody else can know its id yet)."""
        entry = ExecutionEntry(key)
        self._forget(key)
        self._entries[key] = entry
        self._evict()
        return entry

    def peek(self, key: ExecutionKey) -> ExecutionEntry | None:
        return self._entries.get(key)

    @property
    def cached_bytes(self) -> int:
        return self._bytes

    def _resize(self, entry: ExecutionEntry, state_bytes: int, events_bytes: int) -> None:
        """Every change of what an entry holds goes through here, so the byte count stays true."""
        if self._entries.get(entry.key) is entry:
            self._bytes += state_bytes + events_bytes - entry.state_bytes - entry.events_bytes
        entry.state_bytes, entry.events_bytes = state_bytes, events_bytes

    def evict_state(self, entry: ExecutionEntry) -> None:
        """Forget an entry's state (uncommitted changes included); it is read again when next used."""
        self._resize(entry, 0, 0)
        entry.evict_state()

    def cache_events(self, entry: ExecutionEntry, events: list[history.HistoryEvent], size: int) -> None:
        entry.events = events
        self._resize(entry, entry.state_bytes, size)
        self._evict()

    def _evict(self) -> None:
        """Drop the least recently used idle entries while the cache is over its count or its bytes."""
        excess = len(self._entries) - self._cache_size
        excess_bytes = self._bytes - self._cache_bytes
        if excess <= 0 and excess_bytes <= 0:
            return
        victims = []
        for key, entry in self._entries.items():  # oldest first
            if excess <= 0 and excess_bytes <= 0:
                break
            busy = entry.waiters or entry.buffered_queries or entry.inflight_queries or entry.updates
            if entry.users == 0 and not busy:
                victims.append(key)
                excess -= 1
                excess_bytes -= entry.state_bytes + entry.events_bytes
        for key in victims:
            self._forget(key)

    def _forget(self, key: ExecutionKey) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.state_bytes + entry.events_bytes

    async def load(self, entry: ExecutionEntry) -> MutableState | None:
        """The entry's state, read from the store on a cache miss; None if there is no such run."""
        if entry.ms is None:
            row = await self.store.get_execution(*entry.key)
            if row is None:
                return None
            entry.ms = MutableState(ExecutionState.FromString(row.state))
            entry.db_version = row.db_version
            entry.events = None
            self._resize(entry, len(row.state), 0)
            self._evict()
        return entry.ms

    async def reload(self, entry: ExecutionEntry) -> MutableState | None:
        """Drop uncommitted in-memory changes and read the state again."""
        self.evict_state(entry)
        return await self.load(entry)

    async def delete(self, entry: ExecutionEntry) -> None:
        """Remove a run with its history and visibility; the current pointer goes if it is this run."""
        namespace_id, workflow_id, run_id = entry.key
        await self.store.delete_execution(self.shard_id, self.range_id, namespace_id, workflow_id, run_id)
        self.evict_state(entry)
        self._forget(entry.key)
        if self._current.get((namespace_id, workflow_id)) == run_id:
            del self._current[(namespace_id, workflow_id)]

    def current_run_cached(self, namespace_id: str, workflow_id: str) -> str | None:
        return self._current.get((namespace_id, workflow_id))

    def remember_current(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        if len(self._current) > 4 * self._cache_size:
            self._current.clear()
        self._current[(namespace_id, workflow_id)] = run_id

    # ------------------------------------------------------------------ commit
    async def commit(
        self,
        mutations: list[Mutation],
        current: list[CurrentWrite] | None = None,
        deleted_tasks: list[tuple[int, int]] | None = None,
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        """Write `mutations` in one transaction. `on_committed` runs once the database has committed it, even if the
        caller was cancelled meanwhile (then the caller sees CancelledError, but what follows a commit still must)."""
        txn = Transaction(self.shard_id, self.range_id)
        count = sum(len(m.ms.new_events) + len(m.ms.new_tasks) for m in mutations)
        task_id = await self._task_ids(count) if count else 0
        first_task_id = task_id
        if count:
            self._inflight.add(first_task_id)
        try:
            await self._commit(mutations, txn, task_id, current, deleted_tasks, on_committed)
        finally:
            self._inflight.discard(first_task_id)

    async def _commit(
        self,
        mutations: list[Mutation],
        txn: Transaction,
        task_id: int,
        current: list[CurrentWrite] | None,
        deleted_tasks: list[tuple[int, int]] | None,
        on_committed: Callable[[], None] | None,
    ) -> None:
        all_tasks: list[Task] = []
        sizes: list[tuple[int, int]] = []  # (state, new events) bytes of each mutation
        txn.range_id = self.range_id
        for m in mutations:
            ms = m.ms
            s = ms.state
            for event in ms.new_events:
                event.task_id = task_id
                task_id += 1
            events_bytes = 0
            if ms.new_events:
                s.last_event_task_id = ms.new_events[-1].task_id
                blob = history.History(events=ms.new_events).SerializeToString()
                events_bytes = len(blob)
                s.history_size_bytes += len(blob)
                txn.history.append(
                    HistoryWrite(
                        s.namespace_id,
                        s.run_id,
                        ms.new_events[0].event_id,
                        ms.new_events[-1].event_id,
                        blob,
                        branch_id=current_branch_id(s),
                    )
                )
            for task in ms.new_tasks:
                task.task_id = task_id
                task.shard_id = self.shard_id
                task_id += 1
                txn.tasks.append(
                    TaskRow(
                        task.category,
                        task.task_id,
                        task.visibility_time.seconds * 1_000_000_000 + task.visibility_time.nanos,
                        task.SerializeToString(),
                    )
                )
                all_tasks.append(task)
            if ms.visibility_dirty:
                txn.visibility.append(row_from_state(s, s.next_event_id - 1))
            new_version = m.entry.db_version + 1
            s.db_version = new_version
            state = s.SerializeToString()
            sizes.append((len(state), events_bytes))
            txn.executions.append(
                ExecutionWrite(
                    s.namespace_id, s.workflow_id, s.run_id, state, new_version, 0 if m.new else m.entry.db_version
                )
            )
        txn.current = current or []
        txn.deleted_tasks = deleted_tasks or []
        write = asyncio.ensure_future(self._write(mutations, txn, sizes, all_tasks, on_committed))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            # The caller went away while the database committed (a client's deadline passed, or the node that passed
            # the call on died): the transaction may commit all the same, and then its tasks must reach their queues
            # here, or no one would run them until the shard moves. The write ends first, under the run's lock.
            await _finish(write)
            raise

    def _read_back_later(self, tasks: list[Task]) -> None:
        """A commit the database did not answer (a timeout or a lost connection while it committed) may have
        committed: its tasks are read back once the database answers, and those that are there are handed on here,
        as after any commit (else they would wait for the shard's next owner). One not there was never written."""

        async def read_back() -> None:
            delay = READ_BACK_FIRST_S
            while self.owned:
                try:
                    found = await self._committed(tasks)
                except Unavailable:
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, READ_BACK_MAX_S)
                    continue
                if found and self.owned:
                    log.info(
                        "shard %d: %d tasks of a commit the database did not answer were written",
                        self.shard_id,
                        len(found),
                    )
                    self._on_tasks(found)
                return

        task = asyncio.get_running_loop().create_task(read_back())
        self._read_backs.add(task)
        task.add_done_callback(self._read_backs.discard)

    async def _committed(self, tasks: list[Task]) -> list[Task]:
        """Those of `tasks` whose rows are in the store."""
        found: list[Task] = []
        for category in sorted({t.category for t in tasks}):
            mine = {t.task_id: t for t in tasks if t.category == category}
            first = min(mine)
            rows = await self.store.read_tasks(self.shard_id, category, first - 1, max(mine) - first + 1)
            found += [mine[task_id] for task_id, _ in rows if task_id in mine]
        return found

    async def _write(
        self,
        mutations: list[Mutation],
        txn: Transaction,
        sizes: list[tuple[int, int]],
        all_tasks: list[Task],
        on_committed: Callable[[], None] | None,
    ) -> None:
        """Commit `txn`, then cache what it wrote and hand its tasks on (whether or not its caller still waits)."""
        try:
            await self.store.commit(txn)
        except ShardOwnershipLost as err:
            for m in mutations:
                self.evict_state(m.entry)
            self.lose()  # another node acquired it: it learns so here, at its next write
            raise ShardNotHere(self.shard_id) from err
        except BaseException as err:
            for m in mutations:
                self.evict_state(m.entry)
            if isinstance(err, Unavailable) and all_tasks:
                self._read_back_later(all_tasks)
            raise
        for m, (state_bytes, events_bytes) in zip(mutations, sizes, strict=True):
            entry, ms = m.entry, m.ms
            entry.ms = ms
            entry.db_version = ms.state.db_version
            if m.new:
                entry.events = list(ms.new_events)
            elif entry.events is not None and ms.new_events and not _continues(entry.events, ms.new_events):
                # not the next events of the cached ones (a branch switch wrote a fork): the cache is dropped
                entry.events = None
            elif entry.events is not None:
                entry.events.extend(ms.new_events)
                events_bytes += entry.events_bytes
                if len(entry.events) > MAX_CACHED_EVENTS:
                    entry.events = None
            self._resize(entry, state_bytes, events_bytes if entry.events is not None else 0)
            # a standalone activity writes no events: its waiters (outcome and describe long polls) wake on any change
            if (ms.new_events or ms.is_standalone_activity) and entry.waiters:
                waiters, entry.waiters = entry.waiters, []
                for fut in waiters:
                    if not fut.done():
                        fut.set_result(None)
            ms.new_events = []
            ms.new_tasks = []
            ms.visibility_dirty = False
        for cw in txn.current:
            self.remember_current(cw.namespace_id, cw.workflow_id, cw.run_id)
        if txn.deleted_tasks:
            self.on_rows_deleted(self.shard_id, [task_id for _, task_id in txn.deleted_tasks])
        self._evict()
        if all_tasks:
            self._on_tasks(all_tasks)
        if on_committed is not None:
            on_committed()
