"""The receiving side of history replication: one stream per (connected remote cluster, remote shard), which
applies the remote's replication tasks here and acknowledges them (cluster/sender.py sends them).

Tasks of one workflow are applied in order; different workflows of a message concurrently. A task of a
namespace not known here yet is kept and retried (the namespace is pulled at once); a task that cannot be
applied for lack of storage or of the peer is retried (the stream could not go on anyway). A task that keeps
failing otherwise goes to the replication DLQ and the stream goes on: a malformed task or a conflicting
history at once (trying again cannot help), any other error after APPLY_ATTEMPTS tries. Events the source
no longer has (retention deleted the run there) are skipped. The applied watermark is stored about once a
second: after a restart the stream resumes from there, and what is sent again is recognised by its event ids
and skipped.

With several nodes (`nodes` set, cluster/replication_nodes.py), the stream of (remote cluster, remote shard s) runs on
the node owning local shard s mod this cluster's shard count, started and stopped as shards move (`shard_moved`);
the next owner resumes from the watermark stored in the shared database. A task whose workflow's shard is owned by
another node is applied there (`apply_here` on that node), retried until that node or the next owner takes it.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import re
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import grpc
from google.protobuf.message import DecodeError
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.cluster.client import peer_error, refused_by_peer
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.namespace_replication import NamespaceReplicator
from tempyral.cluster.peers import Peers
from tempyral.common.clock import ts_ns
from tempyral.common.errors import DeadlineExceeded, ServiceError, ShardNotHere, ShardOwnershipLost, Unavailable
from tempyral.common.logs import ThrottledLog
from tempyral.common.retry import jittered_backoff_s
from tempyral.common.tasks import cancel_and_wait
from tempyral.history.replication import ConflictingHistory, NamespaceUnknown, ReplicationApplier
from tempyral.nodes.client import error_from_status
from tempyral.persistence.store import DlqRow, Store
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import TaskType

log = logging.getLogger(__name__)
REAPPLY_TIMEOUT_S = 30.0
_ACTIVE_IN = re.compile(r"is active in cluster: ([^,]+),")
ACK_STORE_S = 1.0
RETRY_FIRST_S = 0.2
RETRY_MAX_S = 5.0
LAG_SAMPLES = 10_000
# Tries of a task whose apply fails with an unexpected error before it goes to the DLQ: about 3 s of backoff,
# enough for a passing conflict with a concurrent writer, short enough that a stuck task does not hold the
# stream's acknowledgement (and every later task of its workflow) for long.
APPLY_ATTEMPTS = 5
MALFORMED = (DecodeError, ValueError, KeyError, IndexError)


@dataclass
class StreamProgress:
    """Where one (remote cluster, remote shard) stream stands, for the replication status."""

    announced: int = 0  # the sender's last task id on the shard, as last announced
    last_message: float = 0.0  # time.monotonic() of the last message
    behind_since: float | None = None  # epoch s: source commit time of the oldest announced task not applied


def applied_key(cluster: str, shard_id: int) -> str:
    return f"replication_applied:{cluster}:{shard_id}"


class Placement(Protocol):
    """Which node does what when several nodes serve this cluster (cluster/replication_nodes.py ReplicationNodes)."""

    @property
    def shard_count(self) -> int: ...

    def owned(self, shard_id: int) -> bool: ...

    def local_shard(self, namespace_id: str, workflow_id: str) -> int: ...

    async def apply_elsewhere(
        self, local_shard: int, source: str, source_shard: int, task: rpb.ReplicationTask, once: bool
    ) -> None: ...

    async def applied_elsewhere(self, remote: str) -> dict[int, int]: ...


ELSEWHERE_POLL_S = 0.2  # how often a wait for watermarks asks the other nodes how far their streams applied


class HistoryReceiver:
    def __init__(
        self,
        clusters: ClusterMetadata,
        peers: Peers,
        applier: ReplicationApplier,
        store: Store,
        namespaces: NamespaceReplicator,
    ) -> None:
        self.clusters = clusters
        self.peers = peers
        self.applier = applier
        applier.forward = self.forward_reapply
        self.store = store
        self.namespaces = namespaces
        self._streams: dict[tuple[str, int], asyncio.Task[None]] = {}
        self._failures = ThrottledLog(log)
        # Replication lag of recently applied tasks, per source cluster (seconds from its commit to the apply here).
        self.lags: dict[str, deque[float]] = {}
        # The task id each (remote cluster, remote shard) stream has applied through; `_progress` is set (and
        # replaced) whenever one moves.
        self.applied_through: dict[tuple[str, int], int] = {}
        self._progress = asyncio.Event()
        self.skipped: Counter[str] = Counter()
        self.progress: dict[tuple[str, int], StreamProgress] = {}
        # Per (remote cluster, namespace id): bounded by the namespaces, for the per-namespace status and metrics.
        self.applied_ns: Counter[tuple[str, str]] = Counter()
        self.failed_ns: Counter[tuple[str, str]] = Counter()
        self.last_applied_ns: dict[tuple[str, str], tuple[int, float]] = {}  # (task id, epoch s)
        self.last_applied_time: dict[str, float] = {}  # remote -> epoch s of its last applied task
        self.dlq_sizes: Counter[tuple[str, str]] = Counter()  # (remote, namespace id) -> DLQ rows here
        # Several nodes serve this cluster (set by the server); None: every stream runs here.
        self.nodes: Placement | None = None
        self._started = False

    def applied_from(self, remote: str) -> int:
        """Tasks from `remote` applied here (all namespaces)."""
        return sum(n for (source, _), n in self.applied_ns.items() if source == remote)

    def failed_from(self, remote: str) -> int:
        """Tasks from `remote` that went to the DLQ (all namespaces)."""
        return sum(n for (source, _), n in self.failed_ns.items() if source == remote)

    async def load_dlq_sizes(self) -> None:
        """The DLQ's size per (source cluster, namespace), counted here from then on."""
        self.dlq_sizes = Counter({(source, ns): n for source, ns, n in await self.store.count_replication_dlq()})

    def start(self) -> None:
        self._started = True
        self.clusters.listeners.append(self._follow)
        self._follow()

    def placed_here(self, remote_shard: int) -> bool:
        """Whether the streams of remote shard `remote_shard` run on this node."""
        return self.nodes is None or self.nodes.owned(remote_shard % self.nodes.shard_count)

    def shard_moved(self, shard_id: int) -> None:
        """HistoryEngine.on_shard_acquired / on_shard_released: the streams follow the local shards."""
        if self._started:
            self._follow()

    def _follow(self) -> None:
        """A stream per shard of every connected remote cluster (with several nodes, those placed here); a
        disabled or removed one's stop at once."""
        wanted = {
            (r.cluster_name, shard_id)
            for r in self.clusters.remotes()
            if r.is_connection_enabled
            for shard_id in range(r.history_shard_count)
            if self.placed_here(shard_id)
        }
        for key in list(self._streams):
            if key not in wanted:
                self._streams.pop(key).cancel()
                if self.nodes is not None:  # its numbers are the next node's now
                    self.progress.pop(key, None)
                    self.applied_through.pop(key, None)
        for key in wanted - set(self._streams):
            self._streams[key] = asyncio.get_running_loop().create_task(
                self._run(*key), name=f"replication-{key[0]}-{key[1]}"
            )

    async def stop(self) -> None:
        self._started = False
        streams, self._streams = list(self._streams.values()), {}
        await cancel_and_wait(streams)

    # ------------------------------------------------------------------ one stream
    async def _run(self, remote: str, shard_id: int) -> None:
        stored = await self.store.get_metadata(applied_key(remote, shard_id))
        applied = int(stored) if stored is not None else 0
        self._moved(remote, shard_id, applied)
        attempt = 0
        while True:
            heard = self.progress.get((remote, shard_id), StreamProgress()).last_message
            try:
                applied = await self._stream(remote, shard_id, applied)
                attempt = 0
            except asyncio.CancelledError:
                await self._store_applied(remote, shard_id, applied)
                raise
            except grpc.aio.AioRpcError as err:
                if refused_by_peer(err):  # said once by namespace replication, which meets it too
                    log.debug("replication stream from cluster %s refused: %s", remote, err.details())
                elif isinstance(error_from_status(err), ShardNotHere):  # the sender's shard moved between its nodes
                    log.info(
                        "replication stream of shard %d from cluster %s moves: %s", shard_id, remote, err.details()
                    )
                else:
                    self._failures.failure(f"replication stream from cluster {remote} broke", peer_error(err))
            except Exception as err:
                self._failures.failure(f"replication stream from cluster {remote} failed", err)
            if self.progress.get((remote, shard_id), StreamProgress()).last_message != heard:
                attempt = 0  # it streamed before it broke (the sender's shard moved): reconnect at once
            attempt += 1
            await asyncio.sleep(jittered_backoff_s(attempt, RETRY_FIRST_S, RETRY_MAX_S, jitter=0.2))

    async def _stream(self, remote: str, shard_id: int, applied: int) -> int:
        client = self.peers.client(remote)
        if client is None:
            raise Unavailable(f"no address for cluster {remote}")
        acks: asyncio.Queue[rpb.ReplicationStreamRequest | None] = asyncio.Queue()  # None: the stream ends
        await acks.put(
            rpb.ReplicationStreamRequest(cluster_name=self.clusters.name, shard_id=shard_id, acked_task_id=applied)
        )

        async def requests() -> AsyncIterator[rpb.ReplicationStreamRequest]:
            while (request := await acks.get()) is not None:
                yield request

        call = client.stream(requests())
        stored_at = time.monotonic()
        progress = self.progress.setdefault((remote, shard_id), StreamProgress())
        try:
            async for response in call:
                progress.last_message = time.monotonic()
                progress.announced = max(
                    progress.announced, response.shard_last_task_id, response.high_watermark_task_id
                )
                if progress.behind_since is None and (response.tasks or progress.announced > applied):
                    progress.behind_since = _created_s(response.tasks[0]) if response.tasks else time.time()
                await self._apply_all(remote, response.tasks, shard_id)
                if response.high_watermark_task_id > applied:
                    applied = response.high_watermark_task_id
                    self._moved(remote, shard_id, applied)
                    await acks.put(
                        rpb.ReplicationStreamRequest(
                            cluster_name=self.clusters.name, shard_id=shard_id, acked_task_id=applied
                        )
                    )
                if applied >= progress.announced:
                    progress.behind_since = None
                if time.monotonic() - stored_at >= ACK_STORE_S:
                    await self._store_applied(remote, shard_id, applied)
                    stored_at = time.monotonic()
        finally:
            acks.put_nowait(None)
            call.cancel()
        await self._store_applied(remote, shard_id, applied)
        return applied

    def _moved(self, remote: str, shard_id: int, applied: int) -> None:
        self.applied_through[(remote, shard_id)] = applied
        self._progress.set()
        self._progress = asyncio.Event()

    async def wait_applied(self, remote: str, watermarks: dict[int, int], timeout: float) -> bool:
        """Wait until every shard's stream from `remote` has applied through its watermark; False after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            applied = {shard: self.applied_through.get((remote, shard), 0) for shard in watermarks}
            elsewhere = [shard for shard in watermarks if not self.placed_here(shard)]
            if self.nodes is not None and elsewhere and any(applied[s] < watermarks[s] for s in elsewhere):
                try:
                    others = await asyncio.wait_for(self.nodes.applied_elsewhere(remote), deadline - time.monotonic())
                except TimeoutError:
                    return False
                for shard in elsewhere:
                    applied[shard] = max(applied[shard], others.get(shard, 0))
            if all(applied[shard] >= mark for shard, mark in watermarks.items()):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if elsewhere and self.nodes is not None:
                remaining = min(remaining, ELSEWHERE_POLL_S)  # the other nodes' progress is asked, not heard
            try:
                await asyncio.wait_for(self._progress.wait(), remaining)
            except TimeoutError:
                if time.monotonic() >= deadline:
                    return False

    async def _store_applied(self, remote: str, shard_id: int, applied: int) -> None:
        if applied:
            await self.store.set_metadata(applied_key(remote, shard_id), str(applied))

    # ------------------------------------------------------------------ applying
    async def _apply_all(self, remote: str, tasks: Sequence[rpb.ReplicationTask], shard_id: int = 0) -> None:
        """Apply a message's tasks: in order per workflow, workflows side by side."""
        by_workflow: dict[tuple[str, str], list[rpb.ReplicationTask]] = {}
        for task in tasks:
            by_workflow.setdefault((task.task.namespace_id, task.task.workflow_id), []).append(task)

        async def apply_in_order(group: list[rpb.ReplicationTask]) -> None:
            for task in group:
                await self._apply_retrying(remote, task, shard_id)

        await asyncio.gather(*(apply_in_order(group) for group in by_workflow.values()))

    def _elsewhere(self, task: rpb.ReplicationTask) -> int | None:
        """The local shard of the task's workflow when another node owns it (None: applied here)."""
        if self.nodes is None:
            return None
        local = self.nodes.local_shard(task.task.namespace_id, task.task.workflow_id)
        return None if self.nodes.owned(local) else local

    async def apply_here(self, remote: str, shard_id: int, task: rpb.ReplicationTask, once: bool) -> None:
        """A task another node of this cluster received (ReplicationNodeService.ApplyReplicationTask): applied here
        once (errors raised), or as its stream would (retried, or put in the DLQ); ShardNotHere once this node does
        not own the workflow's shard."""
        local = self._elsewhere(task)
        if local is not None:
            raise ShardNotHere(local)
        if once:
            await self.apply(remote, task)
        else:
            await self._apply_retrying(remote, task, shard_id, here_only=True)

    async def _apply_once(self, remote: str, shard_id: int, task: rpb.ReplicationTask) -> None:
        """Apply once, on the node owning the workflow's shard (the DLQ's re-apply)."""
        local = self._elsewhere(task)
        if local is None or self.nodes is None:
            await self.apply(remote, task)
        else:
            await self.nodes.apply_elsewhere(local, remote, shard_id, task, once=True)

    async def _apply_retrying(
        self, remote: str, task: rpb.ReplicationTask, shard_id: int = 0, here_only: bool = False
    ) -> None:
        attempt = unexpected = waits = 0
        while True:
            local = self._elsewhere(task)
            if local is not None and self.nodes is not None:
                if here_only:
                    raise ShardNotHere(local)  # the node that passed it asks the shard's new owner
                try:
                    await self.nodes.apply_elsewhere(local, remote, shard_id, task, once=False)
                    return
                except (Unavailable, DeadlineExceeded) as err:  # moving, or the owner died: asked again
                    self._failures.failure("replication tasks wait for the node owning their shard", err)
                except ServiceError as err:  # the owner retries and DLQs itself: this is unexpected there
                    unexpected += 1
                    if unexpected >= APPLY_ATTEMPTS:
                        await self._to_dlq(remote, shard_id, task, err, unexpected)
                        return
                    self._failures.failure("replication tasks could not be applied by their shard's node", err)
                waits += 1
                await asyncio.sleep(jittered_backoff_s(waits, RETRY_FIRST_S, RETRY_MAX_S, jitter=0.2))
                continue
            try:
                await self.apply(remote, task)
                return
            except NamespaceUnknown as err:
                # kept: the namespace's record is on its way (or is pulled now); never dropped
                self._failures.failure(
                    "replication tasks wait for their namespace",
                    Unavailable(f"namespace id {err} is not known here yet"),
                )
                await self.namespaces.pull(remote)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    # the source no longer has what was asked for (retention deleted the run): nothing to wait for
                    self.skipped[remote] += 1
                    log.warning("replication task from cluster %s skipped: %s", remote, err.details())
                    return
                self._failures.failure("replication tasks could not be applied; retrying", peer_error(err))
            except (Unavailable, ShardOwnershipLost) as err:
                self._failures.failure("replication tasks could not be applied; retrying", err)
            except (ConflictingHistory, *MALFORMED) as err:
                # trying again cannot help: kept for an operator, and the stream goes on
                await self._to_dlq(remote, shard_id, task, err, attempt + 1)
                return
            except Exception as err:
                if attempt + 1 >= APPLY_ATTEMPTS:
                    await self._to_dlq(remote, shard_id, task, err, attempt + 1)
                    return
                self._failures.failure("replication tasks could not be applied; retrying", err)
            attempt += 1
            await asyncio.sleep(jittered_backoff_s(attempt, RETRY_FIRST_S, RETRY_MAX_S, jitter=0.2))

    async def _to_dlq(
        self, remote: str, shard_id: int, task: rpb.ReplicationTask, err: Exception, attempts: int
    ) -> None:
        t = task.task
        self.failed_ns[(remote, t.namespace_id)] += 1
        error = _error_text(err)
        row = DlqRow(
            remote,
            shard_id,
            t.task_id,
            t.namespace_id,
            t.workflow_id,
            t.run_id,
            task.SerializeToString(),
            error,
            time.time_ns(),
            attempts,
        )
        while True:
            try:
                await self.store.put_replication_dlq(row)
                break
            except Unavailable as store_err:  # the DLQ is the task's only copy here once acknowledged
                self._failures.failure("could not write the replication DLQ; retrying", store_err)
                await asyncio.sleep(RETRY_MAX_S)
        self.dlq_sizes[(remote, t.namespace_id)] += 1
        log.error(
            "replication task enqueued to the DLQ: source cluster %s, shard %d, workflow %s, run %s, task %d: %s",
            remote,
            shard_id,
            t.workflow_id,
            t.run_id,
            t.task_id,
            error,
        )

    # ------------------------------------------------------------------ the DLQ
    async def dlq_page(self, source: str, after: tuple[int, int], limit: int, namespace_id: str) -> list[DlqRow]:
        return await self.store.list_replication_dlq(source, after, limit, namespace_id)

    async def dlq_rows(self, source: str, task_ids: Sequence[int] = ()) -> list[DlqRow]:
        """The source's DLQ rows (those with these task ids, when given), in (shard, task id) order."""
        rows: list[DlqRow] = []
        after = (-1, -1)
        while page := await self.store.list_replication_dlq(source, after, 1000):
            rows += [row for row in page if not task_ids or row.task_id in task_ids]
            after = (page[-1].source_shard, page[-1].task_id)
        return rows

    async def dlq_reapply(self, source: str, task_ids: Sequence[int] = ()) -> tuple[list[DlqRow], list[DlqRow]]:
        """Apply the source's DLQ tasks again, once each: (those that applied and left the DLQ, those that failed
        again and stay with their new error)."""
        applied: list[DlqRow] = []
        failed: list[DlqRow] = []
        for row in await self.dlq_rows(source, task_ids):
            try:
                await self._apply_once(source, row.source_shard, rpb.ReplicationTask.FromString(row.data))
            except asyncio.CancelledError:
                raise
            except Exception as err:
                row.error, row.attempts = _error_text(err), row.attempts + 1
                await self.store.put_replication_dlq(row)
                failed.append(row)
                continue
            await self.store.delete_replication_dlq(source, [(row.source_shard, row.task_id)])
            self.dlq_sizes[(source, row.namespace_id)] -= 1
            applied.append(row)
        return applied, failed

    async def dlq_purge(self, source: str, task_ids: Sequence[int] = ()) -> int:
        rows = await self.dlq_rows(source, task_ids)
        purged = await self.store.delete_replication_dlq(source, [(r.source_shard, r.task_id) for r in rows])
        await self.load_dlq_sizes()
        return purged

    async def apply(self, remote: str, task: rpb.ReplicationTask) -> None:
        t = task.task
        if t.type == TaskType.TASK_TYPE_REPLICATE_HISTORY:
            events = list(task.events.events)
            _check_contiguous(events)

            async def fetch_missing(first: int, next_event_id: int) -> list[history.HistoryEvent]:
                client = self.peers.client(remote)
                if client is None:
                    raise Unavailable(f"no address for cluster {remote}")
                response = await client.history(
                    rpb.GetReplicationHistoryRequest(
                        namespace_id=t.namespace_id,
                        workflow_id=t.workflow_id,
                        run_id=t.run_id,
                        first_event_id=first,
                        next_event_id=next_event_id,
                        cluster_name=self.clusters.name,
                        branch_id=task.branch_id,
                    )
                )
                missing = list(response.events.events)
                _check_contiguous(missing)
                if not missing or missing[0].event_id != first or missing[-1].event_id != next_event_id - 1:
                    raise Unavailable(f"cluster {remote} did not send events {first}..{next_event_id - 1}")
                log.info("fetched events %d..%d of run %s from cluster %s", first, next_event_id - 1, t.run_id, remote)
                return missing

            await self.applier.apply_events(
                t.namespace_id,
                t.workflow_id,
                t.run_id,
                events,
                fetch_missing,
                source_history=list(task.version_history),
                reapplied=list(task.reapplied_events),
            )
        elif t.type == TaskType.TASK_TYPE_REPLICATE_ACTIVITY:
            await self.applier.apply_activity(t.namespace_id, t.workflow_id, t.run_id, task.activity)
        else:
            raise ValueError(f"unknown replication task type {t.type}")
        self.applied_ns[(remote, t.namespace_id)] += 1
        now = time.time()
        self.last_applied_ns[(remote, t.namespace_id)] = (t.task_id, now)
        self.last_applied_time[remote] = now
        if task.HasField("created_time"):
            lags = self.lags.setdefault(remote, deque(maxlen=LAG_SAMPLES))
            lags.append(max(0.0, (time.time_ns() - ts_ns(task.created_time)) / 1e9))

    async def forward_reapply(
        self, target: str, namespace_id: str, workflow_id: str, run_id: str, events: list[history.HistoryEvent]
    ) -> None:
        """Send losing events to the cluster that re-applies them (ReapplyEvents); one that answers NamespaceNotActive
        is left for the cluster it names. Raises Unavailable to have the replication task tried again."""
        request = rpb.ReapplyEventsRequest(
            cluster_name=self.clusters.name, namespace_id=namespace_id, workflow_id=workflow_id, run_id=run_id
        )
        request.events.events.extend(events)
        for _ in range(3):
            client = self.peers.client(target)
            if target == self.clusters.name or client is None or not self.clusters.connected(target):
                raise Unavailable(f"losing events of run {run_id} wait for cluster {target} to take them")
            try:
                await client.call("ReapplyEvents", request, rpb.ReapplyEventsResponse, timeout=REAPPLY_TIMEOUT_S)
                return
            except grpc.aio.AioRpcError as err:
                moved = _active_cluster_named(err)
                if moved is None or moved == target:
                    raise peer_error(err) from None
                target = moved
        raise Unavailable(f"losing events of run {run_id}: the namespace's active cluster keeps moving")


def _error_text(err: Exception) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return f"{type(err).__name__}: {err}"


def _created_s(task: rpb.ReplicationTask) -> float:
    return ts_ns(task.created_time) / 1e9 if task.HasField("created_time") else time.time()


def _active_cluster_named(err: grpc.aio.AioRpcError) -> str | None:
    """The active cluster a NamespaceNotActive answer names (its text, as the reference words it)."""
    if err.code() != grpc.StatusCode.FAILED_PRECONDITION:
        return None
    found = _ACTIVE_IN.search(err.details() or "")
    return found.group(1) if found else None


def _check_contiguous(events: list[history.HistoryEvent]) -> None:
    for before, after in itertools.pairwise(events):
        if after.event_id != before.event_id + 1:
            raise ValueError(f"events are not contiguous: {before.event_id} then {after.event_id}")
    if events and events[0].event_id < 1:
        raise ValueError(f"event id {events[0].event_id}")
