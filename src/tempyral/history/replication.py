"""Applying another cluster's replication tasks to this one (the standby side, docs/DESIGN.md §11).

Events are applied through the same appliers as everywhere (rebuild.apply_events): same event ids,
versions and version history as on the active cluster. The change is passive: no replication tasks,
no active check. Its tasks are the difference between what the state needed before and after
(task_generator.regenerate); they are parked while the namespace is standby here, and parked tasks
the new events made pointless are dropped with their rows. A duplicate is recognised by its event
ids and skipped; a gap is filled by asking the source for the missing events first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from temporalio.api.history.v1 import message_pb2 as history

from tempyral.history import rebuild, task_generator, version_history
from tempyral.history.executions import Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import ExecutionEntry, Shard
from tempyral.history.standby import task_key
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import ActivityInfo, VersionHistoryItem

log = logging.getLogger(__name__)

# Events [first, next) of a run that the source cluster has and this one lacks.
FetchMissing = Callable[[int, int], Awaitable[list[history.HistoryEvent]]]


class NamespaceUnknown(Exception):
    """A replication task of a namespace this cluster does not know yet: kept and retried, never dropped."""


class ConflictingHistory(Exception):
    """The run's history here and the incoming events differ at the same event ids (a forced failover with
    unreplicated events): resolving it is conflict resolution's job."""


class ReplicationApplier:
    def __init__(self, executions: Executions, namespaces: NamespaceRegistry) -> None:
        self.executions = executions
        self.namespaces = namespaces

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

        `source_history` is the version history of the sender's branch up to the last event (conflicts are found
        by comparing it with this cluster's); `reapplied` the losing events the sender re-applied to the run."""
        retention_ns = self._retention_ns(namespace_id)
        if not events:
            return False
        shard = self.executions.shard_for(namespace_id, workflow_id)
        async with shard.locked((namespace_id, workflow_id, run_id)) as entry:
            ms = await shard.load(entry)
            now = time.time_ns()
            if ms is None:
                if events[0].event_id != 1:
                    events = [*(await fetch_missing(1, events[0].event_id)), *events]
                state = rebuild.replay(namespace_id, workflow_id, run_id, events)
                rebuild.reset_bookkeeping_for_rebuild(state, now)
                ms = MutableState(state, now)
                ms.retention_ns = retention_ns
                ms.new_events = list(events)
                ms.new_tasks = task_generator.regenerate(state, now, retention_ns)
                ms.visibility_dirty = True
                row = await self.executions.store.get_current(namespace_id, workflow_id)
                current = CurrentWrite(
                    namespace_id,
                    workflow_id,
                    run_id,
                    state.status,
                    state.start_request_id,
                    row.run_id if row is not None else None,
                )
                await self.executions.commit_replicated(
                    shard, entry, ms, new=True, was_running=False, current=[current]
                )
                return True
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
            ms.new_events = list(new)
            await self._commit(shard, entry, ms, before, was_running, now, retention_ns)
            return True

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
    ) -> None:
        after = task_generator.regenerate(ms.state, now, retention_ns)
        ms.new_tasks = [t for t in after if task_key(t) not in before]
        ms.visibility_dirty = True
        s = ms.state
        standby = self.executions.standby
        pointless = standby.not_wanted(s.namespace_id, s.workflow_id, s.run_id, {task_key(t) for t in after})
        await self.executions.commit_replicated(
            shard,
            entry,
            ms,
            new=False,
            was_running=was_running,
            done_tasks=[(t.category, t.task_id) for t in pointless],
        )
        standby.drop(pointless)  # only now: a commit that failed leaves them parked, for the retry to delete


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
