"""Where replication stands on this cluster: what it committed per shard, what it received and applied from each
peer (tasks and seconds behind), what each peer has not acknowledged, and the DLQ, overall and per global
namespace. One computation (`ReplicationStatus.snapshot`) answers the internal GetReplicationStatus RPC,
`GET /replication/status` and the replication gauges on /metrics, so they all show the same numbers.
`fetch_status` asks another cluster for its status once (`tempyral replication status`).

With several nodes, `snapshot` is this node's part (the shards it owns, the streams placed on it: the gauges on its
/metrics), and `cluster_snapshot` the whole cluster's: every live node's part merged (`merge`; the DLQ, one table,
counted from the database), for GetReplicationStatus and GET /replication/status. A shard whose owner did not
answer is left out of `shards`; a remote shard whose stream no node reported makes the peer not `connected`."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from aiohttp import web
from google.protobuf import json_format

from tempyral.cluster.client import ReplicationClient
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.receiver import HistoryReceiver, StreamProgress
from tempyral.cluster.sender import KEEPALIVE_S, HistorySender
from tempyral.common.errors import ServiceError
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto import replication_pb2 as rpb

log = logging.getLogger(__name__)
# A stream that has had no message for this long is not connected (the sender sends one at least every second).
CONNECTED_WITHIN_S = 3 * KEEPALIVE_S


async def fetch_status(address: str, namespace: str = "", timeout: float = 10.0) -> rpb.GetReplicationStatusResponse:
    """GetReplicationStatus of the cluster whose frontend is at `address` (gRPC errors as raised by the call)."""
    client = ReplicationClient(address)
    try:
        return await client.replication_status(namespace, timeout=timeout)
    finally:
        await client.close()


class ReplicationStatus:
    def __init__(
        self,
        clusters: ClusterMetadata,
        namespaces: NamespaceRegistry,
        sender: HistorySender,
        receiver: HistoryReceiver,
        shard_count: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clusters = clusters
        self.namespaces = namespaces
        self.sender = sender
        self.receiver = receiver
        self.shard_count = shard_count
        self.clock = clock
        self.monotonic = monotonic
        # Several nodes (set by the server): the other live nodes' parts, asked with a marked GetReplicationStatus.
        self.gather: Callable[[str], Awaitable[list[rpb.GetReplicationStatusResponse]]] | None = None

    def _owned(self, shard_id: int) -> bool:
        nodes = self.receiver.nodes
        return nodes is None or nodes.owned(shard_id)

    def snapshot(self, namespace: str = "") -> rpb.GetReplicationStatusResponse:
        """The status now (this node's part of it, with several nodes); of one namespace (NotFound if unknown) or
        of every replicated one ("")."""
        wanted = [self.namespaces.get(namespace)] if namespace else self.namespaces.all()
        out = rpb.GetReplicationStatusResponse(cluster_name=self.clusters.name)
        for shard_id in range(self.shard_count):
            if self._owned(shard_id):
                out.shards.add(shard_id=shard_id, last_task_id=self.sender.last_task_id(shard_id))
        inbound: dict[str, rpb.PeerInbound] = {}
        outbound: dict[str, tuple[int, dict[str, int]]] = {}
        for record in self.clusters.remotes():
            peer = record.cluster_name
            inbound[peer] = self._inbound(peer, record.history_shard_count, record.is_connection_enabled)
            out.inbound.append(inbound[peer])
            total, per_namespace = self.sender.backlog(peer)
            outbound[peer] = (total, dict(per_namespace))
            sent = out.outbound.add(cluster_name=peer, backlog=total)
            for shard_id in range(self.shard_count):
                if self._owned(shard_id):
                    sent.acked_task_id[shard_id] = self.sender.acked(peer, shard_id)
        for ns in wanted:
            if not ns.replicated or self.clusters.name not in ns.clusters:
                continue
            for peer in ns.clusters:
                if peer != self.clusters.name:
                    out.namespaces.append(self._namespace(ns, peer, inbound.get(peer), outbound.get(peer)))
        return out

    def _inbound(self, peer: str, shard_count: int, enabled: bool) -> rpb.PeerInbound:
        now, mono = self.clock(), self.monotonic()
        status = rpb.PeerInbound(cluster_name=peer, dlq_size=self._dlq(peer))
        connected = enabled and shard_count > 0
        lag_s = 0.0
        for shard_id in range(shard_count):
            if not self.receiver.placed_here(shard_id):
                continue  # another node's stream
            applied = self.receiver.applied_through.get((peer, shard_id), 0)
            progress = self.receiver.progress.get((peer, shard_id), StreamProgress())
            announced = max(progress.announced, applied)
            status.applied_task_id[shard_id] = applied
            status.announced_task_id[shard_id] = announced
            status.tasks_lag += announced - applied
            if progress.behind_since is not None:
                lag_s = max(lag_s, now - progress.behind_since)
            if mono - progress.last_message > CONNECTED_WITHIN_S:
                connected = False
                # a silent stream announces nothing: whatever the peer wrote since its last message is unknown,
                # so this cluster counts as at least that far behind (a cut link must not read as caught up)
                lag_s = max(lag_s, mono - progress.last_message)
        status.connected = connected
        status.lag_seconds = max(0.0, lag_s)
        applied_at = self.receiver.last_applied_time.get(peer)
        if applied_at is not None:
            status.last_applied_time.FromNanoseconds(int(applied_at * 1e9))
        return status

    # ------------------------------------------------------------------ several nodes
    async def cluster_snapshot(self, namespace: str = "") -> rpb.GetReplicationStatusResponse:
        """The whole cluster's status: this node's snapshot, merged with the other nodes' parts."""
        if self.gather is None:
            return self.snapshot(namespace)
        try:
            await self.receiver.load_dlq_sizes()  # other nodes add rows too: the table is the count
        except Exception as err:  # the counts kept here stand in
            log.warning("could not count the replication DLQ: %s", err)
        local = self.snapshot(namespace)
        return self.merge(local, await self.gather(namespace))

    def merge(
        self, local: rpb.GetReplicationStatusResponse, others: list[rpb.GetReplicationStatusResponse]
    ) -> rpb.GetReplicationStatusResponse:
        """One status from the nodes' parts: each shard from its owner, each stream from the node running it, sums
        of backlogs and task lags, the largest lag in seconds; the DLQ and the namespaces' states from `local`."""
        parts = [local, *others]
        out = rpb.GetReplicationStatusResponse(cluster_name=local.cluster_name)
        last: dict[int, int] = {}
        for part in parts:
            for shard in part.shards:
                last[shard.shard_id] = max(last.get(shard.shard_id, 0), shard.last_task_id)
        for shard_id in sorted(last):
            out.shards.add(shard_id=shard_id, last_task_id=last[shard_id])
        inbound: dict[str, rpb.PeerInbound] = {}
        for mine in local.inbound:
            inbound[mine.cluster_name] = merged = out.inbound.add(
                cluster_name=mine.cluster_name, dlq_size=mine.dlq_size
            )
            _merge_inbound(merged, [i for part in parts for i in part.inbound if i.cluster_name == mine.cluster_name])
            record = self.clusters.get(mine.cluster_name)
            count = record.history_shard_count if record is not None else 0
            merged.connected = merged.connected and all(s in merged.applied_task_id for s in range(count))
        for mine_out in local.outbound:
            sent = out.outbound.add(cluster_name=mine_out.cluster_name)
            for part in parts:
                for o in part.outbound:
                    if o.cluster_name == mine_out.cluster_name:
                        sent.backlog += o.backlog
                        _max_into(sent.acked_task_id, o.acked_task_id)
        for entry in local.namespaces:
            merged_ns = out.namespaces.add()
            merged_ns.CopyFrom(entry)
            merged_ns.backlog = 0
            for part in parts:
                for e in part.namespaces:
                    if (e.namespace, e.peer_cluster) == (entry.namespace, entry.peer_cluster):
                        merged_ns.backlog += e.backlog
                        if e.last_applied_time.ToNanoseconds() > merged_ns.last_applied_time.ToNanoseconds():
                            merged_ns.last_applied_task_id = e.last_applied_task_id
                            merged_ns.last_applied_time.CopyFrom(e.last_applied_time)
            peer_inbound = inbound.get(entry.peer_cluster)
            if peer_inbound is not None and entry.active_cluster == entry.peer_cluster:
                merged_ns.lag_seconds = peer_inbound.lag_seconds
                merged_ns.tasks_lag = peer_inbound.tasks_lag
        return out

    def _dlq(self, peer: str, namespace_id: str | None = None) -> int:
        return sum(
            n for (source, ns), n in self.receiver.dlq_sizes.items() if source == peer and namespace_id in (None, ns)
        )

    def _namespace(
        self,
        ns: Namespace,
        peer: str,
        inbound: rpb.PeerInbound | None,
        outbound: tuple[int, dict[str, int]] | None,
    ) -> rpb.NamespaceReplicationStatus:
        status = rpb.NamespaceReplicationStatus(
            namespace=ns.name,
            active_cluster=ns.active_cluster,
            replication_state="handover" if self.namespaces.in_handover(ns) else "normal",
            peer_cluster=peer,
            backlog=outbound[1].get(ns.id, 0) if outbound else 0,
            dlq_size=self._dlq(peer, ns.id),
        )
        # A namespace's events come from its active cluster: its lag here is that stream's.
        if inbound is not None and ns.active_cluster == peer:
            status.lag_seconds = inbound.lag_seconds
            status.tasks_lag = inbound.tasks_lag
        last = self.receiver.last_applied_ns.get((peer, ns.id))
        if last is not None:
            status.last_applied_task_id = last[0]
            status.last_applied_time.FromNanoseconds(int(last[1] * 1e9))
        return status

    # ------------------------------------------------------------------ /metrics
    def render_metrics(self) -> str:
        """Prometheus text, named as the reference's replication metrics: the receiver's latency and task counts,
        and, per global namespace and peer, the gauges of the status (the same numbers)."""
        receiver = self.receiver
        lines = ["# TYPE replication_latency summary"]
        for remote, lags in sorted(receiver.lags.items()):
            ordered = sorted(lags)
            for q in (0.5, 0.9, 0.99):
                value = ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0
                lines.append(f'replication_latency{{source_cluster="{_label(remote)}",quantile="{q}"}} {value:.6f}')
            lines.append(f'replication_latency_count{{source_cluster="{_label(remote)}"}} {len(ordered)}')
        for metric, counts in (
            ("replication_tasks_applied", receiver.applied_ns),
            ("replication_tasks_failed", receiver.failed_ns),
        ):
            lines.append(f"# TYPE {metric} counter")
            for (remote, namespace_id), n in sorted(counts.items()):
                lines.append(f"{metric}{{{self._labels(namespace_id, 'source_cluster', remote)}}} {n}")
        lines.append("# TYPE replication_tasks_skipped counter")
        for remote, n in sorted(receiver.skipped.items()):
            lines.append(f'replication_tasks_skipped{{source_cluster="{_label(remote)}"}} {n}')
        status = self.snapshot()
        gauges: list[tuple[str, str, Callable[[rpb.NamespaceReplicationStatus], float]]] = [
            ("replication_tasks_lag", "source_cluster", lambda e: e.tasks_lag),
            ("replication_lag_seconds", "source_cluster", lambda e: e.lag_seconds),
            ("replication_task_send_backlog", "target_cluster", lambda e: e.backlog),
            ("replication_dlq_size", "source_cluster", lambda e: e.dlq_size),
            ("replication_last_applied_task_id", "source_cluster", lambda e: e.last_applied_task_id),
        ]
        for metric, peer_label, read in gauges:
            lines.append(f"# TYPE {metric} gauge")
            for entry in status.namespaces:
                labels = f'namespace="{_label(entry.namespace)}",{peer_label}="{_label(entry.peer_cluster)}"'
                lines.append(f"{metric}{{{labels}}} {_number(read(entry))}")
        return "\n".join(lines) + "\n"

    def _labels(self, namespace_id: str, peer_label: str, peer: str) -> str:
        ns = self.namespaces.find_by_id(namespace_id)
        name = ns.name if ns is not None else namespace_id
        return f'namespace="{_label(name)}",{peer_label}="{_label(peer)}"'


def _merge_inbound(merged: rpb.PeerInbound, parts: list[rpb.PeerInbound]) -> None:
    merged.connected = all(p.connected for p in parts)
    for part in parts:
        _max_into(merged.applied_task_id, part.applied_task_id)
        _max_into(merged.announced_task_id, part.announced_task_id)
        merged.lag_seconds = max(merged.lag_seconds, part.lag_seconds)
        if part.last_applied_time.ToNanoseconds() > merged.last_applied_time.ToNanoseconds():
            merged.last_applied_time.CopyFrom(part.last_applied_time)
    merged.tasks_lag = sum(
        max(0, merged.announced_task_id[s] - merged.applied_task_id.get(s, 0)) for s in merged.announced_task_id
    )


def _max_into(into: Any, values: Any) -> None:
    """Per shard, the larger of two task-id maps."""
    for shard_id, task_id in values.items():
        into[shard_id] = max(into.get(shard_id, 0), task_id)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


# ---------------------------------------------------------------------- HTTP
def json_status(status: rpb.GetReplicationStatusResponse) -> dict[str, Any]:
    """The status as `tempyral replication status --output json` and GET /replication/status print it."""
    result: dict[str, Any] = json_format.MessageToDict(status)
    return result


def add_http_route(app: web.Application, status: ReplicationStatus) -> None:
    """`GET /replication/status[?namespace=N]` on the HTTP port of /metrics: the status as JSON."""

    async def handler(request: web.Request) -> web.Response:
        try:
            snapshot = await status.cluster_snapshot(request.query.get("namespace", ""))
        except ServiceError as err:
            http_status = 404 if err.code == grpc.StatusCode.NOT_FOUND else 400
            return web.json_response({"code": err.code.value[0], "message": str(err)}, status=http_status)
        return web.json_response(json_status(snapshot))

    app.router.add_get("/replication/status", handler)
