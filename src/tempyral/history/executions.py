"""The one way to read and change an execution: lock it, load its state, change it, commit.

`Executions.update` is the single update path. It locks a run, loads its mutable state, stamps
the namespace's failover version on it, and yields a `Change`. The handler changes the state
through `MutableState` and calls `Change.commit`, which schedules a workflow task if the handler
asked for one, records a closed run in the current-run pointer, and commits events, state, tasks,
visibility and the next run (if any) in one transaction (docs/DESIGN.md §4). Nothing else calls
`Shard.commit`.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.errors import (
    Internal,
    InvalidArgument,
    NamespaceNotActive,
    NotFound,
    ShardNotHere,
    Unavailable,
    WorkflowNotFound,
)
from tempyral.history import reset_points, task_generator, version_history
from tempyral.history.mutable_state import MutableState
from tempyral.history.next_run import INHERITING, inherit_payloads
from tempyral.history.shard import ExecutionEntry, Mutation, Shard
from tempyral.history.standby import StandbyTasks
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.persistence import branches
from tempyral.persistence.store import CurrentWrite, Store
from tempyral.proto.internal_pb2 import ActivityInfo, ExecutionState, HistoryBranch, Task, VersionHistoryItem

log = logging.getLogger(__name__)
FORCE_CLOSE_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
FAILOVER_CLOSE_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND
RUNNING = wf_enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
# Histories up to this many events are read whole on a cache miss, and kept in the cache.
WHOLE_HISTORY_READ = 1000

# Called after a commit that closed a run: (its cache entry, whether a new run continues it).
ClosedListener = Callable[[ExecutionEntry, bool], None]


def shard_id_for(namespace_id: str, workflow_id: str, shard_count: int) -> int:
    return zlib.crc32(f"{namespace_id}/{workflow_id}".encode()) % shard_count


@dataclass(eq=False, slots=True)
class Change:
    """One locked run being changed. `commit` writes it; leaving the block without committing
    drops what was changed in memory."""

    executions: Executions
    shard: Shard
    entry: ExecutionEntry
    ms: MutableState
    was_running: bool
    # Other executions written in the same transaction (a next run, a reset's runs).
    others: list[Mutation] = field(default_factory=list)
    current: list[CurrentWrite] = field(default_factory=list)
    done_tasks: list[tuple[int, int]] = field(default_factory=list)  # (category, task id) rows to delete
    continued: bool = False  # the run closed into a new run of its chain
    new: bool = False  # the change creates the run
    committed: bool = False
    # Applying another cluster's events (docs/DESIGN.md §11): no active check, no replication tasks.
    passive: bool = False
    # The old active's last write for a run as its namespace fails over away (`hand_off`): no active check, but
    # replicated like an active change.
    handoff: bool = False
    # A replicated namespace: each pending activity's attempt state when the change began, so that the commit
    # replicates the activities whose attempt state it changed.
    activity_marks: dict[int, bytes] | None = None
    # Runs among `others` that this change closes (a run terminated by a start or a reset): the closed listeners
    # hear of them with the change's own run.
    closed_others: list[ExecutionEntry] = field(default_factory=list)
    # What must follow the commit once the database has it, even if the committing caller is cancelled meanwhile.
    on_committed: list[Callable[[], None]] = field(default_factory=list)

    def task_done(self, task: Task) -> None:
        """The task this change acts on: its row is deleted in the same transaction."""
        self.done_tasks.append((task.category, task.task_id))

    async def commit(self, schedule_workflow_task: bool = False) -> None:
        """Commit the change. `schedule_workflow_task`: the workflow has something new to see, so a
        workflow task is scheduled unless one is pending or the run has closed."""
        await self.executions.commit(self, schedule_workflow_task)

    async def events(self, first_event_id: int, next_event_id: int) -> list[history.HistoryEvent]:
        return await self.executions.events(self.shard, self.entry, self.ms, first_event_id, next_event_id)

    async def next_run(self, attrs: history.WorkflowExecutionStartedEventAttributes) -> MutableState:
        """The next run of a chain (retry, continue-as-new, cron), created and committed with this one."""
        return await self.executions.next_run(self, attrs)


class Executions:
    """Shards, the cache of runs, and the update path over them."""

    def __init__(self, store: Store, namespaces: NamespaceRegistry, shards: list[Shard]) -> None:
        self.store = store
        self.namespaces = namespaces
        self.shards = shards
        self.closed_listeners: list[ClosedListener] = []
        # Tasks of namespaces that are standby here, held until a failover makes them active here.
        self.standby = StandbyTasks()
        # Runs of replicated namespaces that may hold buffered events (a superset): what a failover away from
        # this cluster must write before the new active takes over (`hand_off`).
        self.buffering: set[tuple[str, str, str]] = set()
        # History limits by namespace name: (size error bytes, count error events), dynamic config's
        # limit.historySize.error / limit.historyCount.error; set by the server (None: not enforced).
        self.history_limits: Callable[[str], tuple[int, int]] | None = None

    def shard_for(self, namespace_id: str, workflow_id: str) -> Shard:
        """The execution's shard; ShardNotHere when another node owns it (the caller passes the work there)."""
        shard = self.shards[shard_id_for(namespace_id, workflow_id, len(self.shards))]
        if not shard.owned:
            raise ShardNotHere(shard.shard_id)
        return shard

    async def current_run_id(self, namespace_id: str, workflow_id: str) -> str | None:
        shard = self.shard_for(namespace_id, workflow_id)
        cached = shard.current_run_cached(namespace_id, workflow_id)
        if cached is not None:
            return cached
        row = await self.store.get_current(namespace_id, workflow_id)
        if row is None:
            return None
        shard.remember_current(namespace_id, workflow_id, row.run_id)
        return row.run_id

    # ------------------------------------------------------------------ access
    @asynccontextmanager
    async def locked(
        self, namespace_id: str, workflow_id: str, run_id: str = ""
    ) -> AsyncIterator[tuple[Shard, ExecutionEntry, MutableState]]:
        """Lock a run (the current one when run_id is empty) and load its state, to read it.

        Changes go through `update`; uncommitted changes are dropped when the block ends.
        """
        async with self.update(namespace_id, workflow_id, run_id) as change:
            yield change.shard, change.entry, change.ms

    @asynccontextmanager
    async def update(self, namespace_id: str, workflow_id: str, run_id: str = "") -> AsyncIterator[Change]:
        """Lock a run (the current one when run_id is empty), load it and yield it for a change."""
        shard = self.shard_for(namespace_id, workflow_id)
        for _ in range(5):
            target = run_id or await self.current_run_id(namespace_id, workflow_id)
            if not target:
                raise WorkflowNotFound.for_id(workflow_id)
            async with shard.locked((namespace_id, workflow_id, target)) as entry:
                ms = await shard.load(entry)
                if ms is None:
                    if run_id:
                        raise WorkflowNotFound.for_run(workflow_id, run_id)
                    raise WorkflowNotFound.for_id(workflow_id)
                if not run_id and not ms.running:
                    # a newer run may have become current while we waited for the lock
                    latest = await self.current_run_id(namespace_id, workflow_id)
                    if latest and latest != target:
                        continue
                self.prepare(ms, time.time_ns())
                namespace = self.namespaces.find_by_id(namespace_id)
                if (
                    namespace is not None
                    and namespace.is_global
                    and self.namespaces.is_active(namespace)
                    and fail_workflow_task_of_old_active(ms, namespace)
                ):
                    # its own transaction, whatever the handler then does (or does not) commit
                    await self.commit(Change(self, shard, entry, ms, ms.running))
                    self.prepare(ms, time.time_ns())
                change = Change(self, shard, entry, ms, ms.running)
                if namespace is not None and namespace.replicated:
                    change.activity_marks = {k: _activity_mark(ai) for k, ai in ms.state.activities.items()}
                try:
                    yield change
                except version_history.VersionHistoryError:
                    behind = namespace is not None and namespace.is_global and ms.state.version < _last_version(ms)
                    if not behind:
                        raise
                    # The run was last written under a newer version than this cluster's: the cluster that owns it
                    # is active for the namespace, and this one has not heard of that failover yet (the reference
                    # decides a run's activeness by its last write version).
                    assert namespace is not None
                    shard.evict_state(entry)
                    owner = self.namespaces.clusters.cluster_for_version(_last_version(ms))
                    raise NamespaceNotActive(namespace.name, self.namespaces.cluster_name, owner) from None
                finally:
                    if not change.committed and (ms.new_events or ms.new_tasks or ms.visibility_dirty):
                        shard.evict_state(entry)
                return
        raise Internal("the current run of this workflow keeps changing")

    def prepare(self, ms: MutableState, now: int) -> None:
        """Begin a change of `ms` at `now`: the namespace's retention and failover version apply."""
        ms.begin(now)
        namespace = self.namespaces.find_by_id(ms.namespace_id)
        ms.retention_ns = namespace.retention_ns if namespace is not None else 0
        ms.state.version = namespace.failover_version if namespace is not None else 0
        version_history.ensure(ms.state)

    @asynccontextmanager
    async def creating(self, shard: Shard, ms: MutableState) -> AsyncIterator[Change]:
        """A change that creates the run `ms` (nobody else can know its id yet)."""
        s = ms.state
        async with shard.locked((s.namespace_id, s.workflow_id, s.run_id)) as entry:
            change = Change(self, shard, entry, ms, False, new=True)
            try:
                yield change
            finally:
                if not change.committed:
                    shard.evict_state(entry)

    async def commit_replicated(
        self,
        shard: Shard,
        entry: ExecutionEntry,
        ms: MutableState,
        *,
        new: bool,
        was_running: bool,
        current: list[CurrentWrite] | None = None,
        done_tasks: list[tuple[int, int]] | None = None,
        others: list[Mutation] | None = None,
        active: bool = False,
        on_committed: Callable[[], None] | None = None,
    ) -> None:
        """Commit what another cluster's replication tasks changed in `ms` (locked by the caller): a passive change,
        neither checked against the active cluster nor replicated again. `active`: it also holds events this cluster
        wrote (a losing branch's re-applied with the switch), so it is checked and replicated as an active change."""
        change = Change(
            self,
            shard,
            entry,
            ms,
            was_running,
            others=others or [],
            current=current or [],
            done_tasks=done_tasks or [],
            new=new,
            passive=not active,
            on_committed=[on_committed] if on_committed is not None else [],
        )
        await self.commit(change)

    async def read_state(self, namespace_id: str, workflow_id: str, run_id: str = "") -> MutableState:
        async with self.locked(namespace_id, workflow_id, run_id) as (_, _, ms):
            return ms

    # ------------------------------------------------------------------ commit
    async def commit(self, change: Change, schedule_workflow_task: bool = False) -> None:
        ms = change.ms
        namespace = self.namespaces.find_by_id(ms.namespace_id)
        if not change.passive and not change.handoff and namespace is not None:
            # Only the active cluster of a global namespace writes (the reference's closeTransaction check).
            try:
                self.namespaces.check_active(namespace)
                # held writes of a graceful failover (the reference's errorByNamespaceStateLocked)
                self.namespaces.check_handover(namespace)
            except (NamespaceNotActive, Unavailable):
                # whatever the handler changed in memory (a buffered signal is in no new event) is dropped
                change.shard.evict_state(change.entry)
                raise
        if schedule_workflow_task and ms.running and not ms.wft_pending:
            ms.schedule_workflow_task()
        if not change.passive and not change.handoff and not change.new and namespace is not None:
            await self._enforce_history_limits(change, namespace)
        s = ms.state
        names_this_workflow = any(
            cw.namespace_id == s.namespace_id and cw.workflow_id == s.workflow_id for cw in change.current
        )
        if change.was_running and not ms.running and not names_this_workflow:
            change.current.append(close_current(ms))
        mutations = [Mutation(change.entry, ms, new=change.new), *change.others]
        # A standalone activity has no history to replicate: it lives on this cluster only (docs/DESIGN.md §5).
        replicating = (
            not change.passive and namespace is not None and namespace.replicated and not ms.is_standalone_activity
        )
        if replicating:
            _add_replication_tasks(change, mutations)

        def committed() -> None:
            # run by the shard once the database committed, even if this caller was cancelled meanwhile
            change.committed = True
            if replicating:
                for m in mutations:
                    if m.ms.state.buffered_events:
                        self.buffering.add(m.entry.key)
                    else:
                        self.buffering.discard(m.entry.key)
            closed = [(change.entry, change.continued)] if change.was_running and not ms.running else []
            closed += [(entry, False) for entry in change.closed_others]
            for entry, continued in closed:
                for listener in self.closed_listeners:
                    listener(entry, continued)
            for effect in change.on_committed:
                effect()

        await change.shard.commit(
            mutations, current=change.current, deleted_tasks=change.done_tasks, on_committed=committed
        )

    async def _enforce_history_limits(self, change: Change, namespace: Namespace) -> None:
        """As the reference's active update: a running run whose written history is over the error size or count is
        terminated instead ("Workflow history size/count exceeds limit.", by history-service). The
        change is dropped, the termination written on the stored state, and the caller told with INVALID_ARGUMENT."""
        ms = change.ms
        if self.history_limits is None or not (change.was_running and ms.running):
            return
        size_error, count_error = self.history_limits(namespace.name)
        # What is written already, as the reference measures it (its pending events have no ids yet).
        size, count = ms.state.history_size_bytes, ms.state.next_event_id - 1 - len(ms.new_events)
        if size > size_error:
            reason = HISTORY_SIZE_EXCEEDED
        elif count > count_error:
            reason = HISTORY_COUNT_EXCEEDED
        else:
            return
        log.warning(
            "%s: terminating %s/%s (%d events, %d bytes)", reason, ms.state.workflow_id, ms.state.run_id, count, size
        )
        change.shard.evict_state(change.entry)
        stored = await change.shard.load(change.entry)
        if stored is not None and stored.running:
            self.prepare(stored, time.time_ns())
            terminate(stored, reason, None, "history-service")
            forced = Change(self, change.shard, change.entry, stored, True, done_tasks=change.done_tasks)
            await self.commit(forced)
        raise InvalidArgument(reason)

    async def write_buffered(self, shard: Shard, entry: ExecutionEntry, ms: MutableState) -> None:
        """Write what is buffered behind a started workflow task as events of the run's current branch, under its
        last version, replicated like the old active's hand-off: before conflict resolution replaces this branch,
        accepted signals must be in some history for the namespace's active cluster to re-apply them."""
        self.prepare(ms, time.time_ns())
        await _write_as_old_active(Change(self, shard, entry, ms, ms.running))

    async def hand_off(self, namespace_id: str) -> int:
        """The namespace failed over away from this cluster: write, as the old active, what only this cluster has.
        A run whose started workflow task holds buffered events (signals accepted while it ran) fails that task
        (FAILOVER_CLOSE_COMMAND) and writes them, under the run's last version, as the reference does for a run
        that turns passive; replication carries them to the new active. How many runs it wrote."""
        written = 0
        for key in sorted(k for k in self.buffering if k[0] == namespace_id):
            self.buffering.discard(key)
            try:
                async with self.update(*key) as change:
                    ms = change.ms
                    if not (ms.running and ms.wft_started and ms.state.buffered_events):
                        continue
                    await _write_as_old_active(change)
                    written += 1
            except WorkflowNotFound:
                continue
        return written

    # ------------------------------------------------------------------ history
    async def events(
        self, shard: Shard, entry: ExecutionEntry, ms: MutableState, first_event_id: int, next_event_id: int
    ) -> list[history.HistoryEvent]:
        """Committed events in [first_event_id, next_event_id) of the current branch, from the cache
        or the store."""
        s = ms.state
        if entry.events is None and s.next_event_id <= WHOLE_HISTORY_READ:
            branch = branches.current_branch(s)
            blobs = await self.store.read_history(s.namespace_id, s.run_id, 1, s.next_event_id, branch=branch)
            whole: list[history.HistoryEvent] = []
            for blob in blobs:
                whole.extend(history.History.FromString(blob).events)
            if len(whole) == s.next_event_id - 1 - len(ms.new_events):
                shard.cache_events(entry, whole, sum(len(b) for b in blobs))
        if entry.events is not None:
            return entry.events[first_event_id - 1 : next_event_id - 1]
        branch = branches.current_branch(s)
        blobs = await self.store.read_history(s.namespace_id, s.run_id, first_event_id, next_event_id, branch=branch)
        out: list[history.HistoryEvent] = []
        for blob in blobs:
            for event in history.History.FromString(blob).events:
                if first_event_id <= event.event_id < next_event_id:
                    out.append(event)
        return out

    async def committed_events(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        branch_id: str = "",
    ) -> tuple[list[history.HistoryEvent], list[VersionHistoryItem]]:
        """Committed events [first_event_id, next_event_id) of a run's branch (replication; "": the current one),
        and that branch's version history up to the last of them: from the cache without taking the run's lock
        when it holds them, else read under the lock. Raises WorkflowNotFound for a deleted run, NotFound for a
        branch the run does not have."""
        entry = self.shard_for(namespace_id, workflow_id).peek((namespace_id, workflow_id, run_id))
        if (
            entry is not None
            and entry.ms is not None
            and entry.events is not None
            and len(entry.events) >= next_event_id - 1
            and branch_id in ("", branches.current_branch_id(entry.ms.state))
        ):
            events = entry.events[first_event_id - 1 : next_event_id - 1]
            items = version_history.current(entry.ms.state).items
            return events, version_history.truncated(items, events[-1].event_id if events else 0)
        async with self.locked(namespace_id, workflow_id, run_id) as (shard, entry, ms):
            s = ms.state
            if branch_id in ("", branches.current_branch_id(s)):
                events = await self.events(shard, entry, ms, first_event_id, next_event_id)
                items = version_history.current(s).items
            else:
                found = version_history.find(s, branch_id)
                if found is None:
                    raise NotFound(f"run {run_id} has no history branch {branch_id}")
                branch = HistoryBranch()
                branch.CopyFrom(found.branch)
                branch.branch_id = branches.own_branch_id(s.run_id, branch.branch_id)
                blobs = await self.store.read_history(
                    s.namespace_id, s.run_id, first_event_id, next_event_id, branch=branch
                )
                events = [
                    e
                    for blob in blobs
                    for e in history.History.FromString(blob).events
                    if first_event_id <= e.event_id < next_event_id
                ]
                items = found.items
            return events, version_history.truncated(items, events[-1].event_id if events else 0)

    # ------------------------------------------------------------------ runs of a chain
    async def next_run(self, change: Change, attrs: history.WorkflowExecutionStartedEventAttributes) -> MutableState:
        ms = change.ms
        if attrs.initiator in INHERITING:
            (first,) = await change.events(1, 2)
            inherit_payloads(first.workflow_execution_started_event_attributes, attrs)
        prev = ms.state
        new_ms = MutableState(
            ExecutionState(
                namespace_id=prev.namespace_id,
                workflow_id=prev.workflow_id,
                run_id=attrs.original_execution_run_id,
                next_event_id=1,
                start_request_id=prev.start_request_id,
            ),
            ms.now,
        )
        self.prepare(new_ms, ms.now)
        points = reset_points.roll_over(prev.auto_reset_points, prev.run_id, ms.now, ms.retention_ns)
        if points.points:
            attrs.prev_auto_reset_points.CopyFrom(points)
        new_ms.add_workflow_execution_started(attrs)
        new_entry = change.shard.new_entry((prev.namespace_id, prev.workflow_id, attrs.original_execution_run_id))
        change.others.append(Mutation(new_entry, new_ms, new=True))
        change.current.append(
            CurrentWrite(prev.namespace_id, prev.workflow_id, new_ms.run_id, RUNNING, prev.start_request_id, ms.run_id)
        )
        change.continued = True
        return new_ms


def _last_version(ms: MutableState) -> int:
    return version_history.last_version(ms.state)


def _activity_mark(ai: ActivityInfo) -> bytes:
    """The attempt state of an activity that no event carries and a standby cluster needs."""
    return b"%d/%d/%d/%d.%d/%d" % (
        ai.attempt,
        ai.started,
        ai.version,
        ai.last_heartbeat_time.seconds,
        ai.last_heartbeat_time.nanos,
        ai.stamp,
    )


def _add_replication_tasks(change: Change, mutations: list[Mutation]) -> None:
    """A replicated namespace's change also writes what its other clusters pull: the new events of every run it
    writes, and the attempt state of the activities it changed (the outbox of replication, docs/DESIGN.md §11)."""
    for m in mutations:
        ms = m.ms
        if ms.new_events:
            first, last = ms.new_events[0].event_id, ms.new_events[-1].event_id
            ms.new_tasks.append(task_generator.replicate_history(ms.state, first, last + 1, ms.now))
    marks = change.activity_marks
    if marks is None:
        return
    ms = change.ms
    for scheduled_event_id, ai in ms.state.activities.items():
        if marks.get(scheduled_event_id) != _activity_mark(ai) and (ai.started or ai.attempt > 1):
            ms.new_tasks.append(task_generator.replicate_activity(ms.state, ai, ms.now))


def fail_workflow_task_of_old_active(ms: MutableState, namespace: Namespace) -> bool:
    """A workflow task started on the cluster that was active before a failover can no longer complete: the
    first change on the new active fails it (cause FAILOVER_CLOSE_COMMAND) and schedules another, as the
    reference does when it starts a transaction."""
    if not ms.running or not ms.wft_started:
        return False
    wt = ms.state.workflow_task
    try:
        started_version = version_history.version_at(ms.state, wt.started_event_id)
    except version_history.VersionHistoryError:
        started_version = wt.version  # a transient task: its start is not in history
    if started_version >= namespace.failover_version:
        return False
    _close_for_failover(ms)
    return True


async def _write_as_old_active(change: Change) -> None:
    """Fail the run's started workflow task and write what was buffered behind it, under the run's last version (not
    this cluster's, which may have moved on), replicated but not checked against the active cluster."""
    ms = change.ms
    ms.state.version = version_history.last_version(ms.state)
    _close_for_failover(ms)
    change.handoff = True
    await change.commit()


def _close_for_failover(ms: MutableState) -> None:
    """Fail the started workflow task with FAILOVER_CLOSE_COMMAND, write what was buffered behind it, and schedule
    the next task: not the worker's failure, so a first attempt, written."""
    ms.add_workflow_task_failed(FAILOVER_CLOSE_COMMAND, None, "history-service")
    ms.flush_buffered_events()
    ms.state.workflow_task.attempt = 1
    ms.schedule_workflow_task()


HISTORY_SIZE_EXCEEDED = "Workflow history size exceeds limit."
HISTORY_COUNT_EXCEEDED = "Workflow history count exceeds limit."


def terminate(ms: MutableState, reason: str, details: common.Payloads | None, identity: str) -> None:
    """Terminate a running run; a started workflow task can no longer complete, so it fails first,
    as on the reference."""
    if ms.wft_started:
        ms.add_workflow_task_failed(FORCE_CLOSE_COMMAND, None, "history-service")
        ms.flush_buffered_events()
    ms.add_terminated(reason, details, identity)


def close_current(ms: MutableState) -> CurrentWrite:
    """The current-run pointer of a run that closed (it stays current, with its close status)."""
    s = ms.state
    return CurrentWrite(s.namespace_id, s.workflow_id, s.run_id, s.status, s.start_request_id, s.run_id)
