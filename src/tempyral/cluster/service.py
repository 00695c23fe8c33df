"""The internal ReplicationService other clusters call on this cluster's frontend port: describe this
cluster, hand out changed namespace records, and stream a shard's replication tasks (cluster/sender.py)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc

from tempyral import SERVER_VERSION
from tempyral.cluster.client import SERVICE
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common.errors import FailedPrecondition, InvalidArgument, ServiceError
from tempyral.frontend.grpc_handlers import abort
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import DlqRow
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import TaskType

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
DLQ_PAGE = 100
TASK_TYPES = {TaskType.TASK_TYPE_REPLICATE_HISTORY: "history", TaskType.TASK_TYPE_REPLICATE_ACTIVITY: "activity"}


class HistorySource(Protocol):
    """What the sending side of history replication serves (cluster/sender.py)."""

    def stream(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest], context: Context
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]: ...

    async def history(self, request: rpb.GetReplicationHistoryRequest) -> rpb.GetReplicationHistoryResponse: ...


class ReplicationDlq(Protocol):
    """The receiver's DLQ operations (cluster/receiver.py)."""

    async def dlq_page(self, source: str, after: tuple[int, int], limit: int, namespace_id: str) -> list[DlqRow]: ...

    async def dlq_reapply(self, source: str, task_ids: Sequence[int] = ()) -> tuple[list[DlqRow], list[DlqRow]]: ...

    async def dlq_purge(self, source: str, task_ids: Sequence[int] = ()) -> int: ...


class ReplicationService:
    def __init__(self, clusters: ClusterMetadata, namespaces: NamespaceRegistry) -> None:
        self.clusters = clusters
        self.namespaces = namespaces
        self.history_source: HistorySource | None = None
        # The last task id handed out per shard, and a wait for the history engine's hand-offs (set by the server).
        self.shard_watermarks: Callable[[], dict[int, int]] = dict
        self.handoffs_done: Callable[[], Awaitable[None]] = _nothing
        # Where replication stands here (cluster/status.py, set by the server).
        self.status: Callable[[str], rpb.GetReplicationStatusResponse] | None = None
        self.dlq: ReplicationDlq | None = None
        # Re-applies losing events another cluster sends (history/reapply.py); set by the server.
        self.reapply: Callable[[rpb.ReapplyEventsRequest], Awaitable[int]] | None = None

    def check_connected(self, cluster_name: str) -> None:
        """Only a cluster this one is connected to (and that connection enabled) gets its data."""
        if not self.clusters.connected(cluster_name):
            raise FailedPrecondition(f"cluster {cluster_name!r} is not connected to cluster {self.clusters.name!r}")

    async def describe_cluster(
        self, request: rpb.DescribeClusterRequest, context: Context
    ) -> rpb.DescribeClusterResponse:
        return rpb.DescribeClusterResponse(cluster=self.clusters.current, server_version=SERVER_VERSION)

    async def get_namespace_replication_messages(
        self, request: rpb.GetNamespaceReplicationMessagesRequest, context: Context
    ) -> rpb.GetNamespaceReplicationMessagesResponse:
        self.check_connected(request.cluster_name)
        # A namespace that failed over away from here first writes what only this cluster has: the watermarks
        # below then include it, so the new active applies it before it takes over.
        await self.handoffs_done()
        response = rpb.GetNamespaceReplicationMessagesResponse(
            last_notification_version=self.namespaces.notification_version
        )
        for record in self.namespaces.changed_since(request.after_notification_version):
            clusters = {c.cluster_name for c in record.replication_config.clusters}
            # Global namespaces that list the puller; a HANDOVER state is this cluster's own business.
            if record.is_global_namespace and request.cluster_name in clusters and len(clusters) > 1:
                response.namespaces.append(record)
        # Read with the records, in the same step: a write that passed the active check before a failover was
        # recorded here has its task ids already.
        response.shard_watermarks.update(self.shard_watermarks())
        return response

    async def get_replication_history(
        self, request: rpb.GetReplicationHistoryRequest, context: Context
    ) -> rpb.GetReplicationHistoryResponse:
        self.check_connected(request.cluster_name)
        if self.history_source is None:
            raise FailedPrecondition("history replication is not running")
        return await self.history_source.history(request)

    async def get_replication_status(
        self, request: rpb.GetReplicationStatusRequest, context: Context
    ) -> rpb.GetReplicationStatusResponse:
        # Anyone may ask (an operator's CLI, a graceful failover run from another cluster): it tells no data.
        if self.status is None:
            raise FailedPrecondition("history replication is not running")
        return self.status(request.namespace)

    # The DLQ commands are an operator's (`tempyral replication dlq ...`), like the reference's admin DLQ calls.
    def _dlq_source(self, source_cluster: str) -> ReplicationDlq:
        if not source_cluster:
            raise InvalidArgument("source cluster is not set on request")
        if self.dlq is None:
            raise FailedPrecondition("history replication is not running")
        return self.dlq

    async def list_replication_dlq(
        self, request: rpb.ListReplicationDlqRequest, context: Context
    ) -> rpb.ListReplicationDlqResponse:
        dlq = self._dlq_source(request.source_cluster)
        namespace_id = self.namespaces.get(request.namespace).id if request.namespace else ""
        if request.page_size < 0:
            raise InvalidArgument(f"invalid page size {request.page_size}")
        after = (-1, -1)
        if request.next_page_token:
            try:
                shard, task_id = request.next_page_token.decode().split(":")
                after = (int(shard), int(task_id))
            except ValueError:
                raise InvalidArgument("invalid next page token") from None
        limit = request.page_size or DLQ_PAGE
        rows = await dlq.dlq_page(request.source_cluster, after, limit, namespace_id)
        response = rpb.ListReplicationDlqResponse(tasks=[self.dlq_task(row) for row in rows])
        if len(rows) == limit:
            response.next_page_token = f"{rows[-1].source_shard}:{rows[-1].task_id}".encode()
        return response

    async def reapply_replication_dlq(
        self, request: rpb.ReapplyReplicationDlqRequest, context: Context
    ) -> rpb.ReapplyReplicationDlqResponse:
        applied, failed = await self._dlq_source(request.source_cluster).dlq_reapply(
            request.source_cluster, list(request.task_ids)
        )
        return rpb.ReapplyReplicationDlqResponse(
            applied=[self.dlq_task(r) for r in applied], failed=[self.dlq_task(r) for r in failed]
        )

    async def purge_replication_dlq(
        self, request: rpb.PurgeReplicationDlqRequest, context: Context
    ) -> rpb.PurgeReplicationDlqResponse:
        purged = await self._dlq_source(request.source_cluster).dlq_purge(
            request.source_cluster, list(request.task_ids)
        )
        return rpb.PurgeReplicationDlqResponse(purged=purged)

    def dlq_task(self, row: DlqRow) -> rpb.ReplicationDlqTask:
        task = rpb.ReplicationTask.FromString(row.data)
        ns = self.namespaces.find_by_id(row.namespace_id)
        out = rpb.ReplicationDlqTask(
            source_cluster=row.source_cluster,
            source_shard=row.source_shard,
            task_id=row.task_id,
            namespace=ns.name if ns is not None else "",
            namespace_id=row.namespace_id,
            workflow_id=row.workflow_id,
            run_id=row.run_id,
            task_type=TASK_TYPES.get(task.task.type, str(task.task.type)),
            error=row.error,
            attempts=row.attempts,
        )
        out.enqueue_time.FromNanoseconds(row.enqueue_ns)
        return out

    async def reapply_events(self, request: rpb.ReapplyEventsRequest, context: Context) -> rpb.ReapplyEventsResponse:
        """Losing events a standby met, re-applied here if the namespace is active here (else NamespaceNotActive,
        naming the active cluster)."""
        self.check_connected(request.cluster_name)
        if self.reapply is None:
            raise FailedPrecondition("history replication is not running")
        return rpb.ReapplyEventsResponse(reapplied=await self.reapply(request))

    async def stream_replication(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest], context: Context
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        if self.history_source is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "history replication is not running")
            return
        async for response in self.history_source.stream(requests, context):
            yield response


async def _nothing() -> None:
    return None


def _unary(fn: Callable[[Any, Context], Awaitable[Any]]) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handler(request: Any, context: Context) -> Any:
        try:
            return await fn(request, context)
        except ServiceError as err:
            await abort(context, err)

    return handler


def replication_handler(service: ReplicationService) -> grpc.GenericRpcHandler[Any, Any]:
    def unary(fn: Callable[[Any, Context], Awaitable[Any]], request: Any) -> Any:
        return grpc.unary_unary_rpc_method_handler(
            _unary(fn), request_deserializer=request.FromString, response_serializer=lambda m: m.SerializeToString()
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "DescribeCluster": unary(service.describe_cluster, rpb.DescribeClusterRequest),
            "GetNamespaceReplicationMessages": unary(
                service.get_namespace_replication_messages, rpb.GetNamespaceReplicationMessagesRequest
            ),
            "GetReplicationHistory": unary(service.get_replication_history, rpb.GetReplicationHistoryRequest),
            "GetReplicationStatus": unary(service.get_replication_status, rpb.GetReplicationStatusRequest),
            "ListReplicationDlq": unary(service.list_replication_dlq, rpb.ListReplicationDlqRequest),
            "ReapplyReplicationDlq": unary(service.reapply_replication_dlq, rpb.ReapplyReplicationDlqRequest),
            "PurgeReplicationDlq": unary(service.purge_replication_dlq, rpb.PurgeReplicationDlqRequest),
            "ReapplyEvents": unary(service.reapply_events, rpb.ReapplyEventsRequest),
            "StreamReplication": grpc.stream_stream_rpc_method_handler(
                service.stream_replication,
                request_deserializer=rpb.ReplicationStreamRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            ),
        },
    )
