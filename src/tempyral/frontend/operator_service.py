"""The OperatorService: search attributes, Nexus endpoints and cluster information."""

from __future__ import annotations

from typing import Any

import grpc
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import request_response_pb2 as ops

from tempyral.common.errors import AlreadyExists, InvalidArgument, NotFound
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord
from tempyral.visibility.attributes import SYSTEM_ATTRIBUTES

Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_CUSTOM_ATTRIBUTES = 100


class OperatorService:
    def __init__(self, namespaces: NamespaceRegistry, endpoints: EndpointRegistry) -> None:
        self.namespaces = namespaces
        self.endpoints = endpoints

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

    async def add_search_attributes(
        self, req: ops.AddSearchAttributesRequest, ctx: Ctx
    ) -> ops.AddSearchAttributesResponse:
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
        await self.namespaces.save(record)
        return ops.AddSearchAttributesResponse()

    async def remove_search_attributes(
        self, req: ops.RemoveSearchAttributesRequest, ctx: Ctx
    ) -> ops.RemoveSearchAttributesResponse:
        ns = self.namespaces.get(req.namespace or "default")
        record = NamespaceRecord()
        record.CopyFrom(ns.record)
        for name in req.search_attributes:
            if name not in record.search_attributes:
                raise NotFound(f"Search attribute {name} doesn't exist.")
            del record.search_attributes[name]
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
