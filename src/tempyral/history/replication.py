"""Applying another cluster's replication tasks to this one (the standby side, docs/DESIGN.md §11).

Events are applied through the same appliers as everywhere (rebuild.apply_events): same event ids,
versions and version history as on the active cluster. The change is passive: no replication tasks,
no active check. Its tasks are the difference between what the state needed before and after
(task_generator.regenerate); they are parked while the namespace is standby here, and parked tasks
the new events made pointless are dropped with their rows. A duplicate is recognised by its event
ids and skipped; a gap is filled by asking the source for the missing events first.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from google.protobuf.message import Message
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common import ids
from tempyral.common.errors import NamespaceNotActive, NotFound, Unavailable
from tempyral.history import appliers, rebuild, task_generator, version_history
from tempyral.history import reapply as reapply_marks
from tempyral.history.executions import Executions, fail_workflow_task_of_old_active
from tempyral.history.mutable_state import MutableState
from tempyral.history.reapply import reapply
from tempyral.history.shard import ExecutionEntry, Mutation, Shard
from tempyral.history.standby import task_key
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence import branches
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import ActivityInfo, ExecutionState, VersionHistories, VersionHistoryItem

log = logging.getLogger(__name__)

# Events [first, next) of a run that the source cluster has and this one lacks.
FetchMissing = Callable[[int, int], Awaitable[list[history.HistoryEvent]]]


ForwardReapply = Callable[[str, str, str, str, list[history.HistoryEvent]], Awaitable[None]]


class NamespaceUnknown(Exception):
    """A replication task of a namespace this cluster does not know yet: kept and retried, never dropped."""


class ConflictingHistory(Exception):
    """The run's history here and the incoming events differ at the same event ids (a forced failover with
    unreplicated events): resolving it is conflict resolution's job."""


class ReplicationApplier:
    def __init__(self, executions: Executions, namespaces: NamespaceRegistry) -> None:
        self.executions = executions
        self.namespaces = namespaces
        # Sends losing events to the cluster that re-applies them (cluster name, namespace id, workflow id, run id,
        # events); set by the receiver. Raises to have the replication task tried again.
        self.forward: ForwardReapply | None = None

    def _retention_ns(self, namespace_id: str) -> int:
        ns = self.namespaces.find_by_id(namespace_id)
        if ns is None:
            raise NamespaceUnknown(namespace_id)
        return ns.retention_ns

    async def apply_events(
        self,
        namespace_id: str,
        workflow_id: str,
        run_id: str,
        events: list[history.HistoryEvent],
        fetch_missing: FetchMissing,
        *,
        source_history: list[VersionHistoryItem] | None = None,
        reapplied: list[str] | None = None,
    ) -> bool:
        """Apply a run's events (in order, contiguous); False if they were all here already.

        `source_history` is the version history of the sender's branch up to the last event: where it and this
        cluster's history fork, the branch whose last version is higher wins (conflict resolution), and the
        losing branch's events are re-applied (history/reapply.py). Without it, events that differ from this
        cluster's raise ConflictingHistory. `reapplied` are the losing events the sender re-applied to the run."""
        retention_ns = self._retention_ns(namespace_id)
        if not events:
            return False
        shard = self.executions.shard_for(namespace_id, workflow_id)
        losers: list[history.HistoryEvent] = []
        beaten: tuple[list[history.HistoryEvent], int] | None = None
        winner_version = 0
        async with shard.locked((namespace_id, workflow_id, run_id)) as entry:
            ms = await shard.load(entry)
            now = time.time_ns()
            if ms is None:
                applied = await self._create(shard, entry, events, fetch_missing, now, retention_ns)
            elif source_history is None:
                applied = await self._append(shard, entry, ms, events, fetch_missing, now, retention_ns, [])
            else:
                _check_history_fits(source_history, events)
                local = list(version_history.current(ms.state).items)
                local_last = local[-1].event_id if local else 0
                fork = version_history.common_ancestor(local, source_history)
                marks = list(reapplied or [])
                if fork >= events[-1].event_id:
                    applied = False  # all here already
                elif fork >= local_last:
                    applied = await self._append(shard, entry, ms, events, fetch_missing, now, retention_ns, marks)
                else:
                    theirs = version_history.last_item_version(source_history)
                    ours = version_history.last_item_version(local)
                    if theirs == ours:
                        raise ConflictingHistory(
                            f"run {run_id}: two branches end with version {ours} (forked after event {fork})"
                        )
                    incoming = await _from(fork + 1, events, fetch_missing)
                    if theirs > ours:
                        losers = await self._switch(shard, entry, ms, fork, incoming, marks, now, retention_ns)
                        winner_version = theirs
                    else:
                        # ours wins: theirs is only re-applied (nothing is committed: a failure retries it)
                        beaten = (incoming, ours)
                    log.info(
                        "run %s of workflow %s: histories forked after event %d; %s branch (last version %d) wins"
                        " over %s (last version %d)",
                        run_id,
                        workflow_id,
                        fork,
                        "the incoming" if theirs > ours else "this cluster's",
                        max(theirs, ours),
                        "this cluster's" if theirs > ours else "the incoming",
                        min(theirs, ours),
                    )
                    applied = theirs > ours
        if beaten is not None:  # outside the run's lock: re-applying here writes to the workflow's current run
            await self._settle(namespace_id, workflow_id, run_id, *beaten)
        if losers:  # re-applied here, into the run the switch just committed
            try:
                await reapply(self.executions, self.namespaces, namespace_id, workflow_id, run_id, losers)
            except (NamespaceNotActive, Unavailable):
                # the namespace moved since the switch was decided: the cluster it moved to takes them
                await self._settle(namespace_id, workflow_id, run_id, losers, winner_version)
        return applied

    def _reapplier(self, namespace_id: str, winner_version: int) -> str | None:
        """Which cluster re-applies losing events: None for this one, if the namespace is active here and this
        cluster is not behind the winning branch; else the namespace's active cluster as known here, or, when this
        cluster still thinks itself active but is behind, the cluster that wrote the winning branch."""
        ns = self.namespaces.find_by_id(namespace_id)
        if ns is None:
            raise NamespaceUnknown(namespace_id)
        if self.namespaces.is_active(ns) and ns.failover_version >= winner_version:
            return None
        if ns.active_cluster != self.namespaces.cluster_name:
            return ns.active_cluster
        return self.namespaces.clusters.cluster_for_version(winner_version)

    async def _settle(
        self, namespace_id: str, workflow_id: str, run_id: str, losers: list[history.HistoryEvent], winner_version: int
    ) -> None:
        """Have the losing events re-applied now: here, or by the cluster `_reapplier` names. Raises to be retried."""
        candidates = reapply_marks.reapplicable(losers)
        if not candidates:
            return
        target = self._reapplier(namespace_id, winner_version)
        if target is None:
            await reapply(self.executions, self.namespaces, namespace_id, workflow_id, run_id, candidates)
            return
        if self.forward is None:
            raise Unavailable(f"no way to send losing events to cluster {target}")
        log.info(
            "run %s of workflow %s: %d losing events sent to cluster %s to be re-applied",
            run_id,
            workflow_id,
            len(candidates),
            target,
        )
        await self.forward(target, namespace_id, workflow_id, run_id, candidates)

    async def _create(
        self,
        shard: Shard,
        entry: ExecutionEntry,
        events: list[history.HistoryEvent],
        fetch_missing: FetchMissing,
        now: int,
        retention_ns: int,
    ) -> bool:
        """A run this cluster has not seen: created from its whole history. It becomes the workflow's current run,
        unless the current run is newer (written under a higher version): then it is kept as a zombie, and its
        events that must not be lost are re-applied to the current run."""
        namespace_id, workflow_id, run_id = entry.key
        if events[0].event_id != 1:
            events = [*(await fetch_missing(1, events[0].event_id)), *events]
        state = rebuild.replay(namespace_id, workflow_id, run_id, events)
        rebuild.reset_bookkeeping_for_rebuild(state, now)
        ms = MutableState(state, now)
        ms.retention_ns = retention_ns
        ms.new_events = list(events)
        row = await self.executions.store.get_current(namespace_id, workflow_id)
        if row is not None and row.run_id != run_id:
            newer = await self._last_version(namespace_id, workflow_id, row.run_id)
            if newer > version_history.last_version(state):
                state.zombie = True
                log.info(
                    "run %s of workflow %s (version %d) arrived after run %s (version %d): kept as a zombie",
                    run_id,
                    workflow_id,
                    version_history.last_version(state),
                    row.run_id,
                    newer,
                )
                await self._settle(namespace_id, workflow_id, run_id, list(events), newer)
                await self.executions.commit_replicated(shard, entry, ms, new=True, was_running=False)
                return True
        ms.new_tasks = task_generator.regenerate(state, now, retention_ns)
        ms.visibility_dirty = True
        current = CurrentWrite(
            namespace_id,
            workflow_id,
            run_id,
            state.status,
            state.start_request_id,
            row.run_id if row is not None else None,
        )
        await self.executions.commit_replicated(shard, entry, ms, new=True, was_running=False, current=[current])
        return True

    async def _current_version(self, namespace_id: str, workflow_id: str, zombie_run_id: str) -> int:
        row = await self.executions.store.get_current(namespace_id, workflow_id)
        if row is None or row.run_id == zombie_run_id:
            return 0
        return await self._last_version(namespace_id, workflow_id, row.run_id)

    async def _last_version(self, namespace_id: str, workflow_id: str, run_id: str) -> int:
        try:
            ms = await self.executions.read_state(namespace_id, workflow_id, run_id)
        except NotFound:
            return 0
        return version_history.last_version(ms.state)

    async def _append(
        self,
        shard: Shard,
        entry: ExecutionEntry,
        ms: MutableState,
        events: list[history.HistoryEvent],
        fetch_missing: FetchMissing,
        now: int,
        retention_ns: int,
        marks: list[str],
    ) -> bool:
        """The incoming events continue this cluster's branch: apply those it does not have."""
        next_event_id = ms.state.next_event_id
        if events[-1].event_id < next_event_id:
            _check_same(ms, events)
            return False
        if events[0].event_id > next_event_id:
            events = [*(await fetch_missing(next_event_id, events[0].event_id)), *events]
        _check_same(ms, [e for e in events if e.event_id < next_event_id])
        new = [e for e in events if e.event_id >= next_event_id]
        before = {task_key(t) for t in task_generator.regenerate(ms.state, now, retention_ns)}
        was_running = ms.running
        ms.begin(now)
        ms.retention_ns = retention_ns
        rebuild.apply_events(ms.state, new)
        ms.state.version = version_history.last_version(ms.state)
        # another cluster's worker ran the run: a sticky queue of this cluster's workers has a stale cache
        appliers.clear_sticky(ms.state)
        reapply_marks.remember(ms.state, marks)
        ms.new_events = list(new)
        if ms.state.zombie:  # more of a run that lost to a newer one: its events are re-applied there
            namespace_id, workflow_id, run_id = entry.key
            current = await self._current_version(namespace_id, workflow_id, run_id)
            await self._settle(namespace_id, workflow_id, run_id, new, current)
            await self.executions.commit_replicated(shard, entry, ms, new=False, was_running=False)
            return True
        await self._commit(shard, entry, ms, before, was_running, now, retention_ns)
        return True

    async def _switch(
        self,
        shard: Shard,
        entry: ExecutionEntry,
        ms: MutableState,
        fork: int,
        incoming: list[history.HistoryEvent],
        marks: list[str],
        now: int,
        retention_ns: int,
    ) -> list[history.HistoryEvent]:
        """The incoming branch wins: the run's state is rebuilt from the shared events and the incoming ones, on a
        new branch forked from this cluster's after event `fork`; this cluster's branch is kept (not current).
        Its events after the fork, and those buffered behind a workflow task, are returned to be re-applied."""
        s_ns, s_wf, s_run = entry.key
        if ms.state.buffered_events and ms.running and ms.wft_started:
            # accepted here and in no history yet: written on this (losing) branch first, so that they replicate
            # and the namespace's active cluster, wherever it is, re-applies them
            await self.executions.write_buffered(shard, entry, ms)
            reloaded = await shard.load(entry)
            assert reloaded is not None
            ms, now = reloaded, time.time_ns()
        old = ms.state
        shared = await self.executions.events(shard, entry, ms, 1, fork + 1)
        losing = await self.executions.events(shard, entry, ms, fork + 1, old.next_event_id)
        winner_version = incoming[-1].version
        reapplied_here = self._reapplier(s_ns, winner_version) is None
        if not reapplied_here:
            # re-applied elsewhere: sent before this cluster's branch stops being current (a failure retries it all)
            await self._settle(s_ns, s_wf, s_run, losing, winner_version)
            losing = []
        state = rebuild.replay(s_ns, s_wf, s_run, [*shared, *incoming])
        rebuild.reset_bookkeeping_for_rebuild(state, now)
        replayed = list(version_history.current(state).items)
        histories = VersionHistories()
        histories.CopyFrom(version_history.ensure(old))
        winner = histories.histories.add()
        winner.branch.CopyFrom(branches.fork(branches.current_branch(old), fork, ids.new_id()))
        winner.items.extend(replayed)
        histories.current_index = len(histories.histories) - 1
        state.version_histories.CopyFrom(histories)
        for name in _KEPT_ACROSS_BRANCHES:
            _copy_state_field(state, old, name)
        _keep_pending_sticky_timeout(state, old)
        reapply_marks.remember(state, marks)
        state.version = version_history.last_version(state)
        before = {task_key(t) for t in task_generator.regenerate(old, now, retention_ns)}
        was_running = ms.running
        switched = MutableState(state, now)
        switched.retention_ns = retention_ns
        switched.new_events = list(incoming)
        current: list[CurrentWrite] = []
        demoted: tuple[ExecutionEntry, MutableState] | None = None
        # Re-applied here into a run that runs on the winning branch: in the switch's own transaction, so that no
        # crash or failure between the two can leave the losing branch replaced and its events never re-applied
        # (the replication task sent again finds its events here and does nothing). A closed winner is reset after.
        inline = reapplied_here and switched.running
        wrote = False  # losing events written into the switched run: its commit is then an active one
        async with contextlib.AsyncExitStack() as stack:
            expected: str | None = None
            if switched.running and not was_running:
                # closed on the losing branch, running on the winning one: it is the workflow's current run again
                row = await self.executions.store.get_current(s_ns, s_wf)
                expected = row.run_id if row is not None else None
                if row is not None and row.run_id != s_run:
                    other = await stack.enter_async_context(shard.locked((s_ns, s_wf, row.run_id)))
                    other_ms = await shard.load(other)
                    if other_ms is not None:
                        demoted = (other, other_ms)
            if inline:
                origins = [(s_run, losing)]
                if demoted is not None:
                    # the run the losing branch continued into holds losing events too
                    d_entry, d_ms = demoted
                    d_events = await self.executions.events(shard, d_entry, d_ms, 1, d_ms.state.next_event_id)
                    origins.append((d_ms.run_id, d_events))
                wrote = self._reapply_inline(switched, origins)
                losing = []
            if switched.running and not was_running:
                current.append(CurrentWrite(s_ns, s_wf, s_run, state.status, state.start_request_id, expected))
            others: list[Mutation] = []
            done: list[tuple[int, int]] = []
            if demoted is not None:
                # the run the losing branch continued into: kept as a zombie, its events re-applied
                other, other_ms = demoted
                other_ms.begin(now)
                other_ms.state.zombie = True
                other_ms.visibility_dirty = True
                gone = self.executions.standby.forget_run(s_ns, s_wf, other_ms.run_id)
                done = [(t.category, t.task_id) for t in gone]
                others.append(Mutation(other, other_ms))
            # the run's cached events are the old branch's: the shard drops them at the commit, since the winner's
            # events do not continue them (even when this caller is cancelled while the database commits)
            await self._commit(
                shard,
                entry,
                switched,
                before,
                was_running,
                now,
                retention_ns,
                current=current,
                others=others,
                done=done,
                active=wrote,
            )
            if demoted is not None:
                shard.evict_state(demoted[0])
        if demoted is not None and reapplied_here and not inline:
            # the run the loser continued into holds losing events too; a standby leaves them to the active cluster,
            # which demotes that run itself when the winning branch reaches it
            losing += await self._all_events(s_ns, s_wf, demoted[1].run_id)
        return losing

    def _reapply_inline(self, ms: MutableState, origins: list[tuple[str, list[history.HistoryEvent]]]) -> bool:
        """Write the losing events of each (run, events) of `origins` into the running run `ms` as this (active)
        cluster, under the namespace's version, as history/reapply.py does in a transaction of its own; whether
        there were any not in the run yet."""
        todo = [
            (run_id, reapply_marks.pending(ms.state, run_id, reapply_marks.reapplicable(events)))
            for run_id, events in origins
        ]
        if not any(events for _, events in todo):
            return False
        s = ms.state
        namespace = self.namespaces.find_by_id(s.namespace_id)
        if namespace is None:
            raise NamespaceUnknown(s.namespace_id)
        s.version = namespace.failover_version
        fail_workflow_task_of_old_active(ms, namespace)
        written = sum(reapply_marks.write(ms, run_id, events) for run_id, events in todo if events)
        if ms.running and not ms.wft_pending:
            ms.schedule_workflow_task()
        log.info(
            "re-applied %d events of a losing history branch to run %s of workflow %s, with the switch to the winner",
            written,
            s.run_id,
            s.workflow_id,
        )
        return True

    async def _all_events(self, namespace_id: str, workflow_id: str, run_id: str) -> list[history.HistoryEvent]:
        async with self.executions.locked(namespace_id, workflow_id, run_id) as (shard, entry, ms):
            return await self.executions.events(shard, entry, ms, 1, ms.state.next_event_id)

    async def apply_activity(self, namespace_id: str, workflow_id: str, run_id: str, info: ActivityInfo) -> bool:
        """Take an activity's attempt state from the active cluster; False if it is stale or unknown here."""
        retention_ns = self._retention_ns(namespace_id)
        shard = self.executions.shard_for(namespace_id, workflow_id)
        async with shard.locked((namespace_id, workflow_id, run_id)) as entry:
            ms = await shard.load(entry)
            if ms is None:
                return False
            ai = ms.state.activities.get(info.scheduled_event_id)
            if ai is None or ai.version != info.version or info.attempt < ai.attempt:
                return False
            now = time.time_ns()
            before = {task_key(t) for t in task_generator.regenerate(ms.state, now, retention_ns)}
            ms.begin(now)
            for name in rebuild.ACTIVITY_NOT_FROM_EVENTS:
                _copy_field(ai, info, name)
            await self._commit(shard, entry, ms, before, ms.running, now, retention_ns)
            return True

    async def _commit(
        self,
        shard: Shard,
        entry: ExecutionEntry,
        ms: MutableState,
        before: set[bytes],
        was_running: bool,
        now: int,
        retention_ns: int,
        *,
        current: list[CurrentWrite] | None = None,
        others: list[Mutation] | None = None,
        done: list[tuple[int, int]] | None = None,
        active: bool = False,
    ) -> None:
        """Commit a replicated change with the tasks its state needs now and did not before. `active`: it also holds
        events this cluster wrote (re-applied losing events): checked as an active write and replicated."""
        after = task_generator.regenerate(ms.state, now, retention_ns)
        ms.new_tasks = [t for t in after if task_key(t) not in before]
        ms.visibility_dirty = True
        s = ms.state
        standby = self.executions.standby
        pointless = standby.not_wanted(s.namespace_id, s.workflow_id, s.run_id, {task_key(t) for t in after})
        done_tasks = [*(done or []), *((t.category, t.task_id) for t in pointless)]
        await self.executions.commit_replicated(
            shard,
            entry,
            ms,
            new=False,
            was_running=was_running,
            current=current,
            others=others,
            done_tasks=done_tasks,
            active=active,
            # only once committed: a commit that failed leaves them parked, for the retry to delete
            on_committed=lambda: standby.drop(pointless),
        )


_MESSAGE_FIELDS = frozenset(
    name
    for name in rebuild.ACTIVITY_NOT_FROM_EVENTS
    if ActivityInfo.DESCRIPTOR.fields_by_name[name].message_type is not None
)


def _copy_field(target: ActivityInfo, source: ActivityInfo, name: str) -> None:
    if name not in _MESSAGE_FIELDS:
        setattr(target, name, getattr(source, name))
    elif source.HasField(name):
        getattr(target, name).CopyFrom(getattr(source, name))
    else:
        target.ClearField(name)


# What no event carries and the run keeps when its branch changes (storage bookkeeping and request ids).
_KEPT_ACROSS_BRANCHES = tuple(
    name
    for name in rebuild.NOT_FROM_EVENTS
    if name not in ("version", "sticky_task_queue", "sticky_schedule_to_start_timeout", "speculative_workflow_task")
)


def _copy_state_field(target: ExecutionState, source: ExecutionState, name: str) -> None:
    value = getattr(source, name)
    if isinstance(value, (str, int, bool)):
        setattr(target, name, value)
    elif isinstance(value, Message):  # a scheduler run's schedule
        if source.HasField(name):
            getattr(target, name).CopyFrom(value)
        else:
            target.ClearField(name)
    else:  # a repeated field (start_request_ids)
        target.ClearField(name)
        getattr(target, name).extend(value)


def _keep_pending_sticky_timeout(state: ExecutionState, old: ExecutionState) -> None:
    """A workflow task the branches share, still scheduled on a sticky queue and not started (the same task: same
    event and stamp), keeps the schedule-to-start timeout its timer was armed with (appliers.clear_sticky)."""
    wt, was = state.workflow_task, old.workflow_task
    same = (wt.scheduled, wt.scheduled_event_id, wt.stamp) == (was.scheduled, was.scheduled_event_id, was.stamp)
    if same and old.HasField("sticky_schedule_to_start_timeout"):
        state.sticky_schedule_to_start_timeout.CopyFrom(old.sticky_schedule_to_start_timeout)
        appliers.clear_sticky(state)  # kept only while that task is pending there


def _check_history_fits(items: list[VersionHistoryItem], events: list[history.HistoryEvent]) -> None:
    """A task's version history must end at its last event and give each event its version (else it is malformed)."""
    if not items or items[-1].event_id != events[-1].event_id:
        raise ValueError("the version history sent does not end at the last event sent")
    at = 0
    for event in events:
        while items[at].event_id < event.event_id:
            at += 1
        if items[at].version != event.version:
            raise ValueError(
                f"event {event.event_id} has version {event.version}, its history says {items[at].version}"
            )


async def _from(
    first_event_id: int, events: list[history.HistoryEvent], fetch_missing: FetchMissing
) -> list[history.HistoryEvent]:
    """The incoming branch's events from `first_event_id` on: those sent, after the missing ones fetched."""
    kept = [e for e in events if e.event_id >= first_event_id]
    if kept[0].event_id > first_event_id:
        kept = [*(await fetch_missing(first_event_id, kept[0].event_id)), *kept]
    return kept


def _check_same(ms: MutableState, events: list[history.HistoryEvent]) -> None:
    """Events this cluster has already: they must carry the versions it has for them."""
    for event in events:
        try:
            have = version_history.version_at(ms.state, event.event_id)
        except version_history.VersionHistoryError:
            continue
        if have != event.version:
            raise ConflictingHistory(
                f"event {event.event_id} of run {ms.run_id} has version {have} here and {event.version} at the source"
            )
