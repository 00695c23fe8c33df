"""The OperatorService: search attributes, Nexus endpoints and the remote clusters this cluster is connected to."""

from __future__ import annotations

from typing import Any

import grpc
from temporalio.api.enums.v1 import IndexedValueType, NamespaceState
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops

from tempyral.cluster.client import ReplicationClient
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.remote import dial_error, remote_cluster_problem
from tempyral.common.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from tempyral.common.tokens import decode_offset_token
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tempyral.visibility.attributes import SYSTEM_ATTRIBUTES
from tempyral.visibility.query import go_quote

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_CUSTOM_ATTRIBUTES = 100
LIST_CLUSTERS_PAGE_SIZE = 100
DESCRIBE_REMOTE_TIMEOUT_S = 10.0  # the reference's admin client default timeout


class OperatorService:
    def __init__(
        self, namespaces: NamespaceRegistry, endpoints: EndpointRegistry, clusters: ClusterMetadata | None = None
    ) -> None:
        self.namespaces = namespaces
        self.endpoints = endpoints
        self.clusters = clusters or namespaces.clusters

    # ------------------------------------------------------------------ clusters
    async def add_or_update_remote_cluster(
        self, req: ops.AddOrUpdateRemoteClusterRequest, ctx: Ctx
    ) -> ops.AddOrUpdateRemoteClusterResponse:
        """Ask the cluster at `frontend_address` who it is, check it can join this one, and store its row as it
        described itself, at the address given (the reference's AddOrUpdateRemoteCluster)."""
        address = req.frontend_address
        remote = await self._describe_remote(address)
        problem = remote_cluster_problem(self.clusters, remote, address, req.enable_remote_cluster_connection)
        if problem is not None:
            raise InvalidArgument(f"Unable connect to remote cluster with invalid config: {problem}.")
        record = ClusterMetadataRecord()
        record.CopyFrom(remote)
        record.ClearField("version")
        record.cluster_address = address
        record.is_connection_enabled = req.enable_remote_cluster_connection
        record.is_replication_enabled = req.enable_replication
        await self.clusters.upsert(record)
        return ops.AddOrUpdateRemoteClusterResponse()

    async def _describe_remote(self, address: str) -> ClusterMetadataRecord:
        def unreachable(error: str) -> Unavailable:
            return Unavailable(f"Unable connect to remote cluster {address} with error: {error}.")

        if not address:
            raise unreachable("dns resolver: missing address")  # grpc-go's words for it
        client = ReplicationClient(address)
        try:
            response = await client.describe_cluster(DESCRIBE_REMOTE_TIMEOUT_S)
        except grpc.aio.AioRpcError as err:
            raise unreachable(dial_error(address, err)) from err
        finally:
            await client.close()
        return response.cluster

    async def remove_remote_cluster(
        self, req: ops.RemoveRemoteClusterRequest, ctx: Ctx
    ) -> ops.RemoveRemoteClusterResponse:
        name = req.cluster_name
        if self.clusters.get(name) is None:
            raise NotFound("The cluster to be deleted cannot be found in clusters cache.")
        current = self.clusters.name
        for ns in self.namespaces.all():
            # A namespace replicated between this cluster and that one needs the link (the reference's
            # validateClusterNotInUseByNamespaces).
            if ns.replicated and ns.record.info.state != NamespaceState.NAMESPACE_STATE_DELETED:
                if current in ns.clusters and name in ns.clusters:
                    raise FailedPrecondition(
                        f"cannot remove cluster {go_quote(name)}: still referenced by namespace {go_quote(ns.name)}"
                    )
        if name == current:
            # The reference would delete its own row; tempyral keeps who it is.
            raise InvalidArgument("Cannot update current cluster metadata from rpc calls")
        await self.clusters.remove(name)
        return ops.RemoveRemoteClusterResponse()

    async def list_clusters(self, req: ops.ListClustersRequest, ctx: Ctx) -> ops.ListClustersResponse:
        """Every cluster this one knows, itself included, by name."""
        size = req.page_size if req.page_size > 0 else LIST_CLUSTERS_PAGE_SIZE
        start = decode_offset_token(req.next_page_token)
        rows = self.clusters.all()
        resp = ops.ListClustersResponse(
            clusters=[
                ops.ClusterMetadata(
                    cluster_name=r.cluster_name,
                    cluster_id=r.cluster_id,
                    address=r.cluster_address,
                    http_address=r.http_address,
                    initial_failover_version=r.initial_failover_version,
                    history_shard_count=r.history_shard_count,
                    is_connection_enabled=r.is_connection_enabled,
                    is_replication_enabled=r.is_replication_enabled,
                )
                for r in rows[start : start + size]
            ]
        )
        if start + size < len(rows):
            resp.next_page_token = str(start + size).encode()
        return resp

    # ------------------------------------------------------------------ Nexus endpoints
    async def create_nexus_endpoint(
        self, req: ops.CreateNexusEndpointRequest, ctx: Ctx
    ) -> ops.CreateNexusEndpointResponse:
        return ops.CreateNexusEndpointResponse(endpoint=await self.endpoints.create(req.spec))

    async def update_nexus_endpoint(
        self, req: ops.UpdateNexusEndpointRequest, ctx: Ctx
    ) -> ops.UpdateNexusEndpointResponse:
        return ops.UpdateNexusEndpointResponse(endpoint=await self.endpoints.update(req.id, req.version, req.spec))

    async def delete_nexus_endpoint(
        self, req: ops.DeleteNexusEndpointRequest, ctx: Ctx
    ) -> ops.DeleteNexusEndpointResponse:
        await self.endpoints.delete(req.id, req.version)
        return ops.DeleteNexusEndpointResponse()

    async def get_nexus_endpoint(self, req: ops.GetNexusEndpointRequest, ctx: Ctx) -> ops.GetNexusEndpointResponse:
        return ops.GetNexusEndpointResponse(endpoint=self.endpoints.get(req.id))

    async def list_nexus_endpoints(
        self, req: ops.ListNexusEndpointsRequest, ctx: Ctx
    ) -> ops.ListNexusEndpointsResponse:
        endpoints, token = self.endpoints.list(req.page_size, req.next_page_token, req.name)
        return ops.ListNexusEndpointsResponse(endpoints=endpoints, next_page_token=token)

    # ------------------------------------------------------------------ search attributes
    # They belong to the namespace record: a change is a configuration change, replicated to the namespace's other
    # clusters (so a custom attribute exists on every cluster of a global namespace).
    async def add_search_attributes(
        self, req: ops.AddSearchAttributesRequest, ctx: Ctx
    ) -> ops.AddSearchAttributesResponse:
        async with self.namespaces.changing:
            await self._add_search_attributes(req)
        return ops.AddSearchAttributesResponse()

    async def _add_search_attributes(self, req: ops.AddSearchAttributesRequest) -> None:
        ns = self.namespaces.get(req.namespace or "default")
        if not req.search_attributes:
            raise InvalidArgument("SearchAttributes are not set on request.")
        record = NamespaceRecord()
        record.CopyFrom(ns.record)
        existing = record.search_attributes
        for name, vtype in req.search_attributes.items():
            if vtype not in IndexedValueType.values() or vtype == IndexedValueType.INDEXED_VALUE_TYPE_UNSPECIFIED:
                raise InvalidArgument(f"Unknown search attribute type: {vtype}.")
            if name in SYSTEM_ATTRIBUTES:
                raise InvalidArgument(f"Search attribute {name} is reserved by system.")
            if name in existing:
                if existing[name] == vtype:
                    continue  # adding what is there is a no-op, like the reference
                raise AlreadyExists(f"Search attribute {name} already exists.")
        for name, vtype in req.search_attributes.items():
            existing[name] = vtype
        if len(existing) > MAX_CUSTOM_ATTRIBUTES:
            raise InvalidArgument("Too many custom search attributes.")
        if dict(existing) != dict(ns.record.search_attributes):
            record.config_version += 1
            await self.namespaces.save(record)

    async def remove_search_attributes(
        self, req: ops.RemoveSearchAttributesRequest, ctx: Ctx
    ) -> ops.RemoveSearchAttributesResponse:
        async with self.namespaces.changing:
            ns = self.namespaces.get(req.namespace or "default")
            record = NamespaceRecord()
            record.CopyFrom(ns.record)
            for name in req.search_attributes:
                if name not in record.search_attributes:
                    raise NotFound(f"Search attribute {name} doesn't exist.")
                del record.search_attributes[name]
            if req.search_attributes:
                record.config_version += 1
                await self.namespaces.save(record)
        return ops.RemoveSearchAttributesResponse()

    async def list_search_attributes(
        self, req: ops.ListSearchAttributesRequest, ctx: Ctx
    ) -> ops.ListSearchAttributesResponse:
        ns = self.namespaces.get(req.namespace or "default")
        resp = ops.ListSearchAttributesResponse()
        resp.system_attributes.update(SYSTEM_ATTRIBUTES)  # type: ignore[arg-type]
        resp.custom_attributes.update(ns.record.search_attributes)  # type: ignore[arg-type]
        resp.storage_schema.update({name: name for name in ns.record.search_attributes})
        return resp
