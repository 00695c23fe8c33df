"""The internal ReplicationService other clusters call on this cluster's frontend port: describe this
cluster, hand out changed namespace records, and stream a shard's replication tasks (cluster/sender.py).

With several nodes (`nodes` set, cluster/replication_nodes.py), a call about a shard another node owns is passed
to it, and what other nodes hold (their shards' watermarks, their streams' status) is asked of them. A call another
node passed here (marked `tempyral-node-hop`) is answered for what this node holds, never passed again."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

import grpc

from tempyral import SERVER_VERSION
from tempyral.cluster.client import SERVICE
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.replication_nodes import passed_by_node
from tempyral.common.errors import FailedPrecondition, InvalidArgument, ServiceError, ShardNotHere
from tempyral.frontend.grpc_handlers import abort
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import DlqRow
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import TaskType

log = logging.getLogger(__name__)
Context = grpc.aio.ServicerContext[Any, Any]
DLQ_PAGE = 100
PASS_TIMEOUT_S = 30.0  # a call passed to the shard's owner, when the caller set no deadline
TASK_TYPES = {TaskType.TASK_TYPE_REPLICATE_HISTORY: "history", TaskType.TASK_TYPE_REPLICATE_ACTIVITY: "activity"}


class HistorySource(Protocol):
    """What the sending side of history replication serves (cluster/sender.py)."""

    def stream(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest], context: Context
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]: ...

    async def history(self, request: rpb.GetReplicationHistoryRequest) -> rpb.GetReplicationHistoryResponse: ...


class NodeRelay(Protocol):
    """Replication across the nodes of this cluster (cluster/replication_nodes.py ReplicationNodes)."""

    @property
    def shard_count(self) -> int: ...

    def owned(self, shard_id: int) -> bool: ...

    def local_shard(self, namespace_id: str, workflow_id: str) -> int: ...

    def relay_stream(
        self,
        shard_id: int,
        first: rpb.ReplicationStreamRequest,
        requests: AsyncIterator[rpb.ReplicationStreamRequest],
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]: ...

    async def pass_call(self, shard_id: int, method: str, request: Any, response: Any, timeout: float) -> Any: ...

    async def watermarks_elsewhere(self, cluster_name: str) -> dict[int, int]: ...


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
        # Where replication stands here (cluster/status.py, set by the server): on this node, and on the whole
        # cluster (with several nodes, every node's merged; None: this node's is the cluster's).
        self.status: Callable[[str], rpb.GetReplicationStatusResponse] | None = None
        self.cluster_status: Callable[[str], Awaitable[rpb.GetReplicationStatusResponse]] | None = None
        # Several nodes serve this cluster (set by the server); None: this process owns every shard.
        self.nodes: NodeRelay | None = None
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
        if passed_by_node(context):
            # Another node answers the pull and asks for this node's shards: first see the namespace changes it
            # may have recorded, so a failover away from here is handed off below.
            await self.namespaces.sync()
        # A namespace that failed over away from here first writes what only this cluster has: the watermarks
        # below then include it, so the new active applies it before it takes over.
        await self.handoffs_done()
        if passed_by_node(context):
            return rpb.GetNamespaceReplicationMessagesResponse(shard_watermarks=self.shard_watermarks())
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
        if self.nodes is not None and response.namespaces:
            # The puller waits for them only when a record hands it a namespace; the other nodes' shards are
            # read after their own hand-offs (later than the records: more to wait for, never less).
            for shard_id, task_id in (await self.nodes.watermarks_elsewhere(request.cluster_name)).items():
                if shard_id not in response.shard_watermarks:
                    response.shard_watermarks[shard_id] = task_id
        return response

    async def _on_owner(
        self, namespace_id: str, workflow_id: str, method: str, request: Any, response: Any, context: Context
    ) -> Any | None:
        """With several nodes, the answer of the node owning the workflow's shard (None: it is this node)."""
        if self.nodes is None:
            return None
        shard_id = self.nodes.local_shard(namespace_id, workflow_id)
        if self.nodes.owned(shard_id):
            return None
        if passed_by_node(context):
            raise ShardNotHere(shard_id)  # the caller asks again where the shard is now
        remaining = context.time_remaining() if context is not None else None
        timeout = PASS_TIMEOUT_S if remaining is None else max(remaining, 0.0)
        return await self.nodes.pass_call(shard_id, method, request, response, timeout)

    async def get_replication_history(
        self, request: rpb.GetReplicationHistoryRequest, context: Context
    ) -> rpb.GetReplicationHistoryResponse:
        self.check_connected(request.cluster_name)
        if self.history_source is None:
            raise FailedPrecondition("history replication is not running")
        passed = await self._on_owner(
            request.namespace_id,
            request.workflow_id,
            "GetReplicationHistory",
            request,
            rpb.GetReplicationHistoryResponse,
            context,
        )
        if passed is not None:
            answer: rpb.GetReplicationHistoryResponse = passed
            return answer
        return await self.history_source.history(request)

    async def get_replication_status(
        self, request: rpb.GetReplicationStatusRequest, context: Context
    ) -> rpb.GetReplicationStatusResponse:
        # Anyone may ask (an operator's CLI, a graceful failover run from another cluster): it tells no data.
        if self.status is None:
            raise FailedPrecondition("history replication is not running")
        if self.cluster_status is None or passed_by_node(context):
            return self.status(request.namespace)
        return await self.cluster_status(request.namespace)

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
        passed = await self._on_owner(
            request.namespace_id, request.workflow_id, "ReapplyEvents", request, rpb.ReapplyEventsResponse, context
        )
        if passed is not None:
            answer: rpb.ReapplyEventsResponse = passed
            return answer
        return rpb.ReapplyEventsResponse(reapplied=await self.reapply(request))

    async def stream_replication(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest], context: Context
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        if self.history_source is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "history replication is not running")
            return
        if self.nodes is None:
            async for response in self.history_source.stream(requests, context):
                yield response
            return
        try:
            first = await anext(requests)
        except StopAsyncIteration:
            return
        shard_id = first.shard_id
        if not 0 <= shard_id < self.nodes.shard_count or self.nodes.owned(shard_id):  # the sender refuses a bad id
            async for response in self.history_source.stream(_prepend(first, requests), context):
                yield response
            return
        try:
            if passed_by_node(context):
                raise ShardNotHere(shard_id)  # moved since the relaying node looked: the remote reconnects
            async for response in self.nodes.relay_stream(shard_id, first, requests):
                yield response
        except ServiceError as err:
            await abort(context, err)


async def _nothing() -> None:
    return None


async def _prepend(
    first: rpb.ReplicationStreamRequest, rest: AsyncIterator[rpb.ReplicationStreamRequest]
) -> AsyncIterator[rpb.ReplicationStreamRequest]:
    yield first
    async for request in rest:
        yield request


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
