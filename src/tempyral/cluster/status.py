"""Where replication stands on this cluster: what it committed per shard, what it received and applied from each
peer (tasks and seconds behind), what each peer has not acknowledged, and the DLQ, overall and per global
namespace. One computation (`ReplicationStatus.snapshot`) answers the internal GetReplicationStatus RPC,
`GET /replication/status` and the replication gauges on /metrics, so they all show the same numbers.
`fetch_status` asks another cluster for its status once (`tempyral replication status`)."""

from __future__ import annotations

import time
from collections.abc import Callable
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

    def snapshot(self, namespace: str = "") -> rpb.GetReplicationStatusResponse:
        """The status now; of one namespace (NotFound if unknown) or of every replicated one ("")."""
        wanted = [self.namespaces.get(namespace)] if namespace else self.namespaces.all()
        out = rpb.GetReplicationStatusResponse(cluster_name=self.clusters.name)
        for shard_id in range(self.shard_count):
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
            snapshot = status.snapshot(request.query.get("namespace", ""))
        except ServiceError as err:
            http_status = 404 if err.code == grpc.StatusCode.NOT_FOUND else 400
            return web.json_response({"code": err.code.value[0], "message": str(err)}, status=http_status)
        return web.json_response(json_status(snapshot))

    app.router.add_get("/replication/status", handler)
