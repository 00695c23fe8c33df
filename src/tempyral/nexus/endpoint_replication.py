"""Nexus endpoint replication, pulled like namespace records (cluster/namespace_replication.py): every connected
cluster is asked about twice a second for the endpoints written there since its last answer, and each is merged
into the registry (EndpointRegistry.apply_replicated). So an endpoint created, updated or deleted on one cluster
is usable on all, with the same id. The reference replicates no endpoint: operators create them on each cluster.

The answering side is `NexusEndpointReplicationService` on the frontend port, next to the ReplicationService, and
like it answers connected clusters only. A change merged here takes a change number here too, so a third cluster
connected only to this one gets it as well. A restart asks again from the beginning: a merged state merges to
itself.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.peers import Peers
from tempyral.cluster.pull_loops import PullLoops
from tempyral.common.errors import FailedPrecondition, ServiceError
from tempyral.frontend.grpc_handlers import abort
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto import nexus_replication_pb2 as npb

log = logging.getLogger(__name__)
SERVICE = "tempyral.internal.v1.NexusEndpointReplicationService"
METHOD = f"/{SERVICE}/GetNexusEndpointChanges"
CALL_TIMEOUT_S = 5.0
Context = grpc.aio.ServicerContext[Any, Any]


# ---------------------------------------------------------------------- answering
class EndpointChangesService:
    def __init__(self, clusters: ClusterMetadata, endpoints: EndpointRegistry) -> None:
        self.clusters = clusters
        self.endpoints = endpoints

    async def get_changes(
        self, request: npb.GetNexusEndpointChangesRequest, context: Context
    ) -> npb.GetNexusEndpointChangesResponse:
        # Only a cluster this one is connected to (that connection enabled) reads the registry.
        if not self.clusters.connected(request.cluster_name):
            raise FailedPrecondition(
                f"cluster {request.cluster_name!r} is not connected to cluster {self.clusters.name!r}"
            )
        changed, last = self.endpoints.changes_since(request.after_sequence)
        return npb.GetNexusEndpointChangesResponse(endpoints=changed, last_sequence=last)


def endpoint_replication_handler(service: EndpointChangesService) -> grpc.GenericRpcHandler[Any, Any]:
    async def handle(request: npb.GetNexusEndpointChangesRequest, context: Context) -> Any:
        try:
            return await service.get_changes(request, context)
        except ServiceError as err:
            await abort(context, err)

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetNexusEndpointChanges": grpc.unary_unary_rpc_method_handler(
                handle,
                request_deserializer=npb.GetNexusEndpointChangesRequest.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
        },
    )


# ---------------------------------------------------------------------- asking
Fetch = Callable[[str, npb.GetNexusEndpointChangesRequest], Awaitable[npb.GetNexusEndpointChangesResponse]]


class EndpointReplicator:
    def __init__(
        self,
        clusters: ClusterMetadata,
        endpoints: EndpointRegistry,
        peers: Peers | None = None,
        fetch: Fetch | None = None,
    ) -> None:
        self.clusters = clusters
        self.endpoints = endpoints
        self.peers = peers  # the channels replication keeps per remote cluster
        # How a remote is asked (remote cluster name, request); tests give their own.
        self.fetch = fetch or self._call
        self._seen: dict[str, int] = {}  # remote cluster -> the change number it last answered with
        self.loops = PullLoops(clusters, "Nexus endpoint replication", self.pull, log)

    def start(self) -> None:
        self.loops.start()

    async def stop(self) -> None:
        await self.loops.stop()

    async def pull(self, remote: str) -> int:
        """Ask `remote` once for what changed; how many endpoints changed something here."""
        if not self.clusters.connected(remote):
            return 0
        request = npb.GetNexusEndpointChangesRequest(
            cluster_name=self.clusters.name, after_sequence=self._seen.get(remote, 0)
        )
        response = await self.fetch(remote, request)
        applied = await self.endpoints.apply_replicated(list(response.endpoints), remote)
        # Fewer changes than it answered before: a new database under the same name; ask it for everything.
        self._seen[remote] = response.last_sequence if response.last_sequence >= request.after_sequence else 0
        self.loops.answered(remote)
        return applied

    async def _call(
        self, remote: str, request: npb.GetNexusEndpointChangesRequest
    ) -> npb.GetNexusEndpointChangesResponse:
        client = self.peers.client(remote) if self.peers is not None else None
        if client is None:  # no address for it (yet)
            return npb.GetNexusEndpointChangesResponse(last_sequence=request.after_sequence)
        response: npb.GetNexusEndpointChangesResponse = await client.call_other(
            METHOD, request, npb.GetNexusEndpointChangesResponse, CALL_TIMEOUT_S
        )
        return response
