"""The sending side of history replication: each remote cluster pulls each shard's replication tasks over a
gRPC stream (ReplicationService.StreamReplication), from the task id it has applied on.

Replication tasks are outbox rows written with the change they replicate (history/executions.py). They are
read in task-id order, never past a commit still under way (Shard.committed_through), from memory while the
stream keeps up and from the database when it is behind. Each is turned into what the receiver applies when
it is sent: the run's events, or the activity's current attempt state. The receiver acknowledges what it
applied; rows every remote cluster has acknowledged are deleted.

With several nodes, a node serves the streams of the shards it owns (cluster/service.py relays the others): when it
gives a shard up (`shard_released`) the shard's streams end with UNAVAILABLE and its in-memory tasks are dropped;
when it takes one (`shard_acquired`) the tasks before its new range are read from the database, and the
acknowledgements the last owner stored are loaded. Acknowledgements are stored, and rows deleted, only for shards
owned here.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import grpc
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common.errors import NotFound, ShardNotHere
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.frontend.grpc_handlers import abort
from tempyral.history.executions import Executions
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import Store
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import Task, TaskCategory, TaskType, VersionHistoryItem

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
REPLICATION = TaskCategory.TASK_CATEGORY_REPLICATION
BATCH = 100
KEEPALIVE_S = 1.0  # an empty message at least this often: the receiver's watermark moves, a dead peer shows
RECENT_PER_SHARD = 20_000  # replication tasks kept in memory per shard for streams that keep up
ACK_FLUSH_S = 2.0
LINGER_S = 0.01
STORED_BACKLOG_MAX = 100_000  # the most rows counted for a peer's backlog in the database (beyond: "at least")
NOT_OWNED_FLOOR = 1 << 62  # the floor of a shard owned elsewhere: any read of it goes to the database


def ack_key(cluster: str, shard_id: int) -> str:
    return f"replication_acked:{cluster}:{shard_id}"


def version_items(events: list[history.HistoryEvent]) -> list[VersionHistoryItem]:
    """The version history of a contiguous run of events: one item per run of one version."""
    items: list[VersionHistoryItem] = []
    for event in events:
        if items and items[-1].version == event.version:
            items[-1].event_id = event.event_id
        else:
            items.append(VersionHistoryItem(event_id=event.event_id, version=event.version))
    return items


class HistorySender:
    def __init__(
        self, executions: Executions, store: Store, namespaces: NamespaceRegistry, clusters: ClusterMetadata
    ) -> None:
        self.executions = executions
        self.store = store
        self.namespaces = namespaces
        self.clusters = clusters
        shards = executions.shards
        self._recent: list[list[Task]] = [[] for _ in shards]  # sorted by task id
        self._recent_ids: list[list[int]] = [[] for _ in shards]
        # Every task with an id from here on reaches `notify`: below it, read the database.
        self._floor = [0 for _ in shards]
        self._wakeup = [asyncio.Event() for _ in shards]
        self._acks: dict[tuple[str, int], int] = {}
        self._flushed: dict[tuple[str, int], int] = {}
        self._deleted_through = [0 for _ in shards]
        self._flusher: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)
        self.sent = 0
        self._stored_backlog: dict[tuple[str, int], int] = {}
        self._loading: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for shard in self.executions.shards:
            self._floor[shard.shard_id] = shard.next_task_id if shard.owned else NOT_OWNED_FLOOR
        for shard in self.executions.shards:
            await self._load_acks(shard.shard_id)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="replication-acks")

    async def _load_acks(self, shard_id: int) -> None:
        """The acknowledgements stored for the shard (by this node before, or by its last owner)."""
        for record in self.clusters.remotes():
            key = (record.cluster_name, shard_id)
            stored = await self.store.get_metadata(ack_key(*key))
            if stored is not None and int(stored) > self._acks.get(key, 0):
                self._acks[key] = int(stored)
                self._flushed[key] = int(stored)

    # ------------------------------------------------------------------ shards moving between nodes
    def shard_acquired(self, shard_id: int) -> None:
        """HistoryEngine.on_shard_acquired: tasks of the new range reach `notify`; those before are read from the
        database."""
        shard = self.executions.shards[shard_id]
        self._floor[shard_id] = shard.next_task_id
        ids = self._recent_ids[shard_id]
        below = bisect.bisect_left(ids, shard.next_task_id)
        del ids[:below], self._recent[shard_id][:below]
        self._deleted_through[shard_id] = 0
        loading = asyncio.get_running_loop().create_task(self._load_acks_logged(shard_id))
        self._loading.add(loading)
        loading.add_done_callback(self._loading.discard)

    async def _load_acks_logged(self, shard_id: int) -> None:
        try:
            await self._load_acks(shard_id)
        except Exception as err:  # the acknowledgements of the shard's streams come in again anyway
            self._failures.failure("could not load replication acknowledgements", err)

    def shard_released(self, shard_id: int) -> None:
        """HistoryEngine.on_shard_released: the shard's streams end (the remotes reconnect, reaching the new owner),
        and what this node kept of the shard is dropped."""
        self._floor[shard_id] = NOT_OWNED_FLOOR
        self._recent_ids[shard_id].clear()
        self._recent[shard_id].clear()
        for key in [k for k in self._acks if k[1] == shard_id]:
            self._acks.pop(key, None)
            self._flushed.pop(key, None)
            self._stored_backlog.pop(key, None)
        self._wakeup[shard_id].set()

    async def stop(self) -> None:
        for loading in list(self._loading):
            loading.cancel()
        await cancel_and_wait([self._flusher])
        self._flusher = None

    def notify(self, tasks: list[Task]) -> None:
        """Replication tasks just committed (HistoryEngine.on_replication_tasks)."""
        for task in tasks:
            shard_id = task.shard_id
            ids, recent = self._recent_ids[shard_id], self._recent[shard_id]
            at = bisect.bisect(ids, task.task_id)
            ids.insert(at, task.task_id)
            recent.insert(at, task)
            if len(ids) > RECENT_PER_SHARD:
                self._floor[shard_id] = ids[0] + 1
                del ids[0], recent[0]
            self._wakeup[shard_id].set()

    # ------------------------------------------------------------------ the stream
    async def stream(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest], context: Context
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        cluster, shard_id = first.cluster_name, first.shard_id
        if not self.clusters.connected(cluster):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"cluster {cluster!r} is not connected to cluster {self.clusters.name!r}",
            )
        if not 0 <= shard_id < len(self.executions.shards):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"no shard {shard_id} here")
        log.info("cluster %s streams shard %d from task %d", cluster, shard_id, first.acked_task_id)
        shard = self.executions.shards[shard_id]
        if not shard.owned:
            await abort(context, ShardNotHere(shard_id))  # given up since the call was routed here
        self._ack(cluster, shard_id, first.acked_task_id)
        reader = asyncio.get_running_loop().create_task(self._read_acks(cluster, shard_id, requests))
        cursor = first.acked_task_id
        try:
            while self.clusters.connected(cluster) and not reader.done() and shard.owned:
                tasks, high = await self._next(shard_id, cursor)
                if high <= cursor:
                    wakeup = self._wakeup[shard_id]
                    wakeup.clear()
                    try:
                        await asyncio.wait_for(wakeup.wait(), KEEPALIVE_S)
                    except TimeoutError:
                        yield rpb.ReplicationStreamResponse(
                            high_watermark_task_id=cursor, shard_last_task_id=self.last_task_id(shard_id)
                        )
                        continue
                    # a moment for the commits under way to join this one: fewer, fuller messages cost both sides
                    # less than one message per commit (the lag grows by at most this)
                    await asyncio.sleep(LINGER_S)
                    continue
                response = rpb.ReplicationStreamResponse(
                    high_watermark_task_id=high, shard_last_task_id=self.last_task_id(shard_id)
                )
                for task in tasks:
                    converted = await self._convert(task, cluster)
                    if converted is not None:
                        response.tasks.append(converted)
                self.sent += len(response.tasks)
                yield response
                cursor = high
        finally:
            reader.cancel()
            log.info("stream of shard %d to cluster %s ended at task %d", shard_id, cluster, cursor)
        if not shard.owned:
            await abort(context, ShardNotHere(shard_id))  # the remote reconnects, reaching the new owner

    async def _read_acks(
        self, cluster: str, shard_id: int, requests: AsyncIterator[rpb.ReplicationStreamRequest]
    ) -> None:
        async for request in requests:
            self._ack(cluster, shard_id, request.acked_task_id)

    def _ack(self, cluster: str, shard_id: int, task_id: int) -> None:
        key = (cluster, shard_id)
        if task_id > self._acks.get(key, 0) and self.executions.shards[shard_id].owned:
            self._acks[key] = task_id

    async def _next(self, shard_id: int, cursor: int) -> tuple[list[Task], int]:
        """The next tasks after `cursor`, and the id up to which the answer is complete."""
        limit = self.executions.shards[shard_id].committed_through()
        if limit <= cursor:
            return [], cursor
        if cursor + 1 >= self._floor[shard_id]:
            ids = self._recent_ids[shard_id]
            lo = bisect.bisect_right(ids, cursor)
            hi = bisect.bisect_right(ids, limit)
            if hi - lo > BATCH:
                hi = lo + BATCH
                return self._recent[shard_id][lo:hi], ids[hi - 1]
            return self._recent[shard_id][lo:hi], limit
        # Behind: the database has every task below the floor (and those above it, committed up to `limit`).
        rows = await self.store.read_tasks(shard_id, REPLICATION, cursor, BATCH)
        rows = [(task_id, data) for task_id, data in rows if task_id <= limit]
        tasks = [Task.FromString(data) for _, data in rows]
        if len(rows) == BATCH:
            return tasks, rows[-1][0]
        complete_through = min(limit, self._floor[shard_id] - 1)  # no row is missing up to here
        return tasks, max(rows[-1][0] if rows else cursor, complete_through)

    async def _convert(self, task: Task, cluster: str) -> rpb.ReplicationTask | None:
        """What the receiver applies, as the run is now; None when it is not for `cluster` or the run is gone."""
        ns = self.namespaces.find_by_id(task.namespace_id)
        if ns is None or cluster not in ns.clusters:
            return None
        out = rpb.ReplicationTask(task=task, created_time=task.visibility_time)
        try:
            if task.type == TaskType.TASK_TYPE_REPLICATE_HISTORY:
                events, items = await self.executions.committed_events(
                    task.namespace_id, task.workflow_id, task.run_id, task.event_id, task.next_event_id, task.branch_id
                )
                if not events:
                    return None
                out.events.events.extend(events)
                out.version_history.extend(items)
                out.branch_id = task.branch_id
                out.reapplied_events.extend(await self._reapplied(task))
            elif task.type == TaskType.TASK_TYPE_REPLICATE_ACTIVITY:
                ms = await self.executions.read_state(task.namespace_id, task.workflow_id, task.run_id)
                ai = ms.state.activities.get(task.event_id)
                if ai is None:
                    return None
                out.activity.CopyFrom(ai)
            else:
                return None
        except NotFound:
            return None  # deleted since (retention): nothing to replicate
        return out

    async def _reapplied(self, task: Task) -> list[str]:
        shard = self.executions.shard_for(task.namespace_id, task.workflow_id)
        entry = shard.peek((task.namespace_id, task.workflow_id, task.run_id))
        if entry is not None and entry.ms is not None:  # cached: no lock needed to read one field
            return list(entry.ms.state.reapplied_events)
        ms = await self.executions.read_state(task.namespace_id, task.workflow_id, task.run_id)
        return list(ms.state.reapplied_events)

    async def history(self, request: rpb.GetReplicationHistoryRequest) -> rpb.GetReplicationHistoryResponse:
        events, items = await self.executions.committed_events(
            request.namespace_id,
            request.workflow_id,
            request.run_id,
            request.first_event_id,
            request.next_event_id,
            request.branch_id,
        )
        response = rpb.GetReplicationHistoryResponse()
        response.events.events.extend(events)
        response.version_history.extend(items)
        return response

    # ------------------------------------------------------------------ status
    def last_task_id(self, shard_id: int) -> int:
        """Every task of the shard up to this id is committed (or never will be): a peer that applied through it
        has every replication task this cluster wrote on the shard."""
        return self.executions.shards[shard_id].committed_through()

    def acked(self, cluster: str, shard_id: int) -> int:
        return self._acks.get((cluster, shard_id), 0)

    def backlog(self, cluster: str) -> tuple[int, Counter[str]]:
        """Replication tasks committed here that `cluster` has not acknowledged: in all, and per namespace id.
        Counted from memory; tasks only in the database (a peer far behind, or a restart) are counted in all by
        the flush loop, without a namespace."""
        total = 0
        per_namespace: Counter[str] = Counter()
        for shard_id, tasks in enumerate(self._recent):
            ack = self._acks.get((cluster, shard_id), 0)
            limit = self.last_task_id(shard_id)
            ids = self._recent_ids[shard_id]
            for task in tasks[bisect.bisect_right(ids, ack) : bisect.bisect_right(ids, limit)]:
                ns = self.namespaces.find_by_id(task.namespace_id)
                if ns is not None and cluster in ns.clusters:
                    per_namespace[task.namespace_id] += 1
                    total += 1
            total += self._stored_backlog.get((cluster, shard_id), 0)
        return total, per_namespace

    async def _count_stored_backlog(self) -> None:
        """Rows below the in-memory floor that a peer has not acknowledged (it is far behind, or this cluster
        restarted): counted in the database, not read, at most once per flush."""
        for record in self.clusters.remotes():
            for shard in self.executions.shards:
                key = (record.cluster_name, shard.shard_id)
                ack, floor = self._acks.get(key, 0), self._floor[shard.shard_id]
                self._stored_backlog[key] = (
                    await self.store.count_tasks(shard.shard_id, REPLICATION, ack, floor, STORED_BACKLOG_MAX)
                    if ack + 1 < floor and shard.owned
                    else 0
                )

    # ------------------------------------------------------------------ acknowledgements
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(ACK_FLUSH_S)
            try:
                await self.flush_acks()
                await self._count_stored_backlog()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                self._failures.failure("could not store replication acknowledgements", err)

    async def flush_acks(self) -> None:
        """Store the acknowledgements that moved, and delete the rows every remote cluster has acknowledged."""
        for key, task_id in list(self._acks.items()):
            if self._flushed.get(key) != task_id and self.executions.shards[key[1]].owned:
                await self.store.set_metadata(ack_key(*key), str(task_id))
                self._flushed[key] = task_id
        remotes = [r.cluster_name for r in self.clusters.remotes()]
        if not remotes:
            return
        for shard in self.executions.shards:
            shard_id = shard.shard_id
            through = min(self._acks.get((name, shard_id), 0) for name in remotes)
            if through > self._deleted_through[shard_id] and shard.owned:
                await self.store.delete_tasks_through(shard_id, shard.range_id, REPLICATION, through)
                self._deleted_through[shard_id] = through
                ids = self._recent_ids[shard_id]
                keep = bisect.bisect_right(ids, through)
                del ids[:keep], self._recent[shard_id][:keep]
