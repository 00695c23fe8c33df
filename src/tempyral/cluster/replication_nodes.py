"""History replication when several nodes serve this cluster (one PostgreSQL database, nodes/): a shard's
replication runs on the node that owns the shard, and what reaches another node is passed to it.

Sending. A remote cluster dials one address of this cluster. `ReplicationService.StreamReplication` for a shard
another node owns is relayed there (`relay_stream`: a bidirectional proxy, the call marked with `tempyral-node-hop`;
a node that gets a marked call for a shard it does not own answers UNAVAILABLE ShardNotHere, so nothing is relayed
twice). When the shard moves, the owner's stream ends with UNAVAILABLE and the remote reconnects, reaching the new
owner. GetReplicationHistory and ReapplyEvents go to the owner of the workflow's shard (`pass_call`).

Receiving. The stream of (remote cluster, remote shard s) runs on the node owning local shard s mod this cluster's
shard count (with equal counts every task of it lands on local shard s); a task whose workflow is on a shard owned
elsewhere (unequal counts, or a shard moving) is applied by its owner (`apply_elsewhere`, ReplicationNodeService).

What a node alone does not know (the last task ids of shards owned elsewhere, what streams elsewhere applied) is
asked of the other live nodes (`ask_others`) with the same ReplicationService calls, marked: a marked call is
answered for what the answering node holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from tempyral.cluster.client import SERVICE
from tempyral.cluster.receiver import HistoryReceiver
from tempyral.common.errors import Internal, ServiceError, ShardNotHere, Unavailable
from tempyral.common.logs import ThrottledLog
from tempyral.frontend.grpc_handlers import abort
from tempyral.nodes.client import error_from_status
from tempyral.nodes.ownership import Ownership
from tempyral.nodes.routing import HOP_HEADER
from tempyral.proto import replication_nodes_pb2 as npb
from tempyral.proto import replication_pb2 as rpb

log = logging.getLogger(__name__)
NODE_SERVICE = npb.DESCRIPTOR.services_by_name["ReplicationNodeService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]
M = TypeVar("M", bound=Message)

ASK_TIMEOUT_S = 3.0  # another node's answer about what it holds (status, watermarks)
APPLY_ONCE_TIMEOUT_S = 30.0
# A task passed to its shard's owner is retried there until applied (or put in the DLQ): longer than any backoff,
# and the call is made again (applying twice is harmless) should the owner take longer.
APPLY_RETRYING_TIMEOUT_S = 120.0


def passed_by_node(context: Any) -> bool:
    """Whether another node of this cluster passed the call here (answer for what this node holds)."""
    metadata = context.invocation_metadata() if context is not None else None
    return any(key == HOP_HEADER for key, _ in metadata or ())


class ReplicationNodes:
    """This node's view of where each shard's replication runs, and the calls to the other nodes."""

    def __init__(self, ownership: Ownership, owned: Callable[[int], bool]) -> None:
        self.ownership = ownership
        self._owned = owned
        self._failures = ThrottledLog(log)

    @property
    def node(self) -> str:
        return self.ownership.node

    @property
    def shard_count(self) -> int:
        return self.ownership.shard_count

    def owned(self, shard_id: int) -> bool:
        """Whether this node holds the shard's lease now."""
        return self._owned(shard_id)

    def local_shard(self, namespace_id: str, workflow_id: str) -> int:
        return self.ownership.shard_of(namespace_id, workflow_id)

    def owner(self, shard_id: int) -> str:
        """Another live node to pass the shard's work to; ShardNotHere while nobody else is known to hold it."""
        node = self.ownership.shard_owner(shard_id)
        if node == self.node or self.ownership.channel(node) is None:
            raise ShardNotHere(shard_id)
        return node

    def _channel(self, node: str) -> grpc.aio.Channel:
        channel = self.ownership.channel(node)
        if channel is None:
            raise Unavailable(f"node {node} is not a live member of this cluster")
        return channel

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        return ((HOP_HEADER, self.node),)

    # ------------------------------------------------------------------ calls for one shard
    async def relay_stream(
        self,
        shard_id: int,
        first: rpb.ReplicationStreamRequest,
        requests: AsyncIterator[rpb.ReplicationStreamRequest],
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        """The shard's stream from its owner, the remote's acknowledgements passed on; the owner's error (its
        shard moved, it died) raised as the ServiceError it stands for."""
        node = self.owner(shard_id)
        call = self._channel(node).stream_stream(
            f"/{SERVICE}/StreamReplication",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=rpb.ReplicationStreamResponse.FromString,
        )

        async def upstream() -> AsyncIterator[rpb.ReplicationStreamRequest]:
            yield first
            async for request in requests:
                yield request

        stream = call(upstream(), metadata=self._metadata())
        log.info("stream of shard %d to cluster %s relayed to node %s", shard_id, first.cluster_name, node)
        try:
            async for response in stream:
                yield response
        except grpc.aio.AioRpcError as err:
            raise error_from_status(err) from None
        finally:
            stream.cancel()

    async def pass_call(self, shard_id: int, method: str, request: Message, response: type[M], timeout: float) -> M:
        """A ReplicationService call, made on the node owning `shard_id`."""
        node = self.owner(shard_id)
        return await self._unary(node, f"/{SERVICE}/{method}", request, response, timeout)

    async def _unary(self, node: str, path: str, request: Message, response: type[M], timeout: float) -> M:
        call = self._channel(node).unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response.FromString
        )
        try:
            answer: M = await call(request, timeout=timeout, metadata=self._metadata())
        except grpc.aio.AioRpcError as err:
            raise error_from_status(err) from None
        except grpc.aio.UsageError as err:  # the channel closed under the call: this node is stopping
            raise Unavailable(f"node {node}: {err}") from None
        return answer

    async def apply_elsewhere(
        self, local_shard: int, source: str, source_shard: int, task: rpb.ReplicationTask, once: bool
    ) -> None:
        """Apply `task` on the node owning `local_shard` (ReplicationNodeService.ApplyReplicationTask)."""
        node = self.owner(local_shard)
        request = npb.ApplyReplicationTaskRequest(
            source_cluster=source, source_shard=source_shard, task=task, once=once
        )
        timeout = APPLY_ONCE_TIMEOUT_S if once else APPLY_RETRYING_TIMEOUT_S
        await self._unary(
            node, f"/{NODE_SERVICE}/ApplyReplicationTask", request, npb.ApplyReplicationTaskResponse, timeout
        )

    # ------------------------------------------------------------------ asking every other node
    def others(self) -> list[str]:
        return [n for n in self.ownership.live() if n != self.node]

    async def ask_others(self, method: str, request: Message, response: type[M]) -> list[M]:
        """The answers of every other live node to a marked ReplicationService call; a node that fails to answer
        is left out (and logged)."""

        async def one(node: str) -> M | None:
            try:
                return await self._unary(node, f"/{SERVICE}/{method}", request, response, ASK_TIMEOUT_S)
            except ServiceError as err:
                self._failures.failure(f"node {node} did not answer {method}", err)
                return None

        answers = await asyncio.gather(*(one(node) for node in self.others()))
        return [a for a in answers if a is not None]

    async def statuses_elsewhere(self, namespace: str) -> list[rpb.GetReplicationStatusResponse]:
        """The replication status each other node holds (its shards, its streams)."""
        return await self.ask_others(
            "GetReplicationStatus",
            rpb.GetReplicationStatusRequest(namespace=namespace),
            rpb.GetReplicationStatusResponse,
        )

    async def watermarks_elsewhere(self, cluster_name: str) -> dict[int, int]:
        """The last task id handed out on each shard another node owns, once that node has seen the latest
        namespace changes and handed off what a failover away from here leaves it."""
        request = rpb.GetNamespaceReplicationMessagesRequest(cluster_name=cluster_name)
        marks: dict[int, int] = {}
        for answer in await self.ask_others(
            "GetNamespaceReplicationMessages", request, rpb.GetNamespaceReplicationMessagesResponse
        ):
            for shard_id, task_id in answer.shard_watermarks.items():
                marks[shard_id] = max(marks.get(shard_id, 0), task_id)
        return marks

    async def applied_elsewhere(self, remote: str) -> dict[int, int]:
        """How far the streams from `remote` that run on other nodes applied, per remote shard."""
        applied: dict[int, int] = {}
        for status in await self.statuses_elsewhere(""):
            for inbound in status.inbound:
                if inbound.cluster_name == remote:
                    for shard_id, task_id in inbound.applied_task_id.items():
                        applied[shard_id] = max(applied.get(shard_id, 0), task_id)
        return applied


# ---------------------------------------------------------------------- the server side
def replication_node_handler(receiver: HistoryReceiver) -> grpc.GenericRpcHandler[Any, Any]:
    """ReplicationNodeService, served on the node's gRPC port next to NodeService."""

    async def apply_task(
        request: npb.ApplyReplicationTaskRequest, context: Context
    ) -> npb.ApplyReplicationTaskResponse:
        try:
            await receiver.apply_here(request.source_cluster, request.source_shard, request.task, request.once)
        except ServiceError as err:
            await abort(context, err)
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # applied once (the DLQ's re-apply): the caller keeps the text
            await abort(context, Internal(f"{type(err).__name__}: {err}"))
        return npb.ApplyReplicationTaskResponse()

    return grpc.method_handlers_generic_handler(
        NODE_SERVICE,
        {
            "ApplyReplicationTask": grpc.unary_unary_rpc_method_handler(
                apply_task,
                request_deserializer=npb.ApplyReplicationTaskRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        },
    )
