"""Calls to another cluster's internal ReplicationService, on its frontend port."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from tempyral.common import tls
from tempyral.common.errors import Unavailable
from tempyral.common.limits import GRPC_MAX_RECEIVE_BYTES, GRPC_MAX_SEND_BYTES
from tempyral.proto import replication_pb2 as rpb

SERVICE = "tempyral.internal.v1.ReplicationService"


def peer_channel(address: str) -> grpc.aio.Channel:
    """A channel to another cluster's frontend. It takes whatever a frontend may send (the largest message either
    way), and reconnects quickly after the peer restarts, so replication and forwarding resume within seconds."""
    largest = max(GRPC_MAX_RECEIVE_BYTES, GRPC_MAX_SEND_BYTES)
    return tls.channel(  # TLS when the server or command is configured for it (common/tls.py)
        address,
        [
            ("grpc.max_receive_message_length", largest),
            ("grpc.max_send_message_length", largest),
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 2000),
        ],
    )


def refused_by_peer(err: grpc.aio.AioRpcError) -> bool:
    """The peer answered that this cluster is not connected to it: the other half of a connection not made yet
    (`operator cluster upsert` is run on each side, one after the other), or disabled there."""
    return err.code() == grpc.StatusCode.FAILED_PRECONDITION


def peer_error(err: grpc.aio.AioRpcError) -> Unavailable:
    """A failed call to a peer as one log line (no traceback: it is the network or the peer, not a bug here)."""
    return Unavailable(f"{err.code().name}: {err.details()}")


class ReplicationClient:
    """A channel to one peer's frontend. Every call takes a timeout; the stream lives until either side ends it."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = peer_channel(address)
        self._describe = self._unary("DescribeCluster", rpb.DescribeClusterResponse)
        self._namespaces = self._unary("GetNamespaceReplicationMessages", rpb.GetNamespaceReplicationMessagesResponse)
        self._history = self._unary("GetReplicationHistory", rpb.GetReplicationHistoryResponse)
        self._status = self._unary("GetReplicationStatus", rpb.GetReplicationStatusResponse)

    def _unary(self, method: str, response: Any) -> Any:
        return self._channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )

    async def describe_cluster(self, timeout: float = 5.0) -> rpb.DescribeClusterResponse:
        response: rpb.DescribeClusterResponse = await self._describe(
            rpb.DescribeClusterRequest(), timeout=timeout, wait_for_ready=False
        )
        return response

    async def namespace_messages(
        self, cluster_name: str, after_notification_version: int, timeout: float = 5.0
    ) -> rpb.GetNamespaceReplicationMessagesResponse:
        request = rpb.GetNamespaceReplicationMessagesRequest(
            cluster_name=cluster_name, after_notification_version=after_notification_version
        )
        response: rpb.GetNamespaceReplicationMessagesResponse = await self._namespaces(request, timeout=timeout)
        return response

    async def history(
        self, request: rpb.GetReplicationHistoryRequest, timeout: float = 10.0
    ) -> rpb.GetReplicationHistoryResponse:
        response: rpb.GetReplicationHistoryResponse = await self._history(request, timeout=timeout)
        return response

    async def replication_status(self, namespace: str = "", timeout: float = 10.0) -> rpb.GetReplicationStatusResponse:
        response: rpb.GetReplicationStatusResponse = await self._status(
            rpb.GetReplicationStatusRequest(namespace=namespace), timeout=timeout
        )
        return response

    async def call(self, method: str, request: Any, response_type: Any, timeout: float = 60.0) -> Any:
        """Any unary method of the service (the DLQ commands)."""
        return await self._unary(method, response_type)(request, timeout=timeout)

    async def call_other(self, path: str, request: Any, response_type: Any, timeout: float) -> Any:
        """A unary method of another internal service of the peer (`path`: /service/Method), on this channel."""
        call = self._channel.unary_unary(
            path, request_serializer=lambda m: m.SerializeToString(), response_deserializer=response_type.FromString
        )
        return await call(request, timeout=timeout)

    def stream(
        self, requests: AsyncIterator[rpb.ReplicationStreamRequest]
    ) -> grpc.aio.StreamStreamCall[rpb.ReplicationStreamRequest, rpb.ReplicationStreamResponse]:
        call: grpc.aio.StreamStreamCall[rpb.ReplicationStreamRequest, rpb.ReplicationStreamResponse] = (
            self._channel.stream_stream(
                f"/{SERVICE}/StreamReplication",
                request_serializer=lambda m: m.SerializeToString(),
                response_deserializer=rpb.ReplicationStreamResponse.FromString,
            )(requests)
        )
        return call

    async def close(self) -> None:
        await self._channel.close(None)
