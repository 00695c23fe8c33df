"""`tempyral.internal.v1.NexusEndpointAccessService` on the frontend port: read and change an endpoint's access
policy (nexus/access.py) by endpoint name; what `tempyral nexus endpoint allow|deny|open|show` calls.

It is an operator's service, like the OperatorService's endpoint methods: with authorization configured, both
methods need the admin role of the system namespace (a change applies to every caller namespace).
"""

from __future__ import annotations

from typing import Any, Protocol

import grpc

from tempyral.common.errors import InvalidArgument, NotFound, ServiceError
from tempyral.frontend.grpc_handlers import Handler, abort
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto import nexus_replication_pb2 as npb

SERVICE = "tempyral.internal.v1.NexusEndpointAccessService"
GET_METHOD = f"/{SERVICE}/GetNexusEndpointAccess"
UPDATE_METHOD = f"/{SERVICE}/UpdateNexusEndpointAccess"
Context = grpc.aio.ServicerContext[Any, Any]


class EndpointAccessService:
    def __init__(self, endpoints: EndpointRegistry) -> None:
        self.endpoints = endpoints

    async def get(self, request: npb.GetNexusEndpointAccessRequest) -> npb.NexusEndpointAccessResponse:
        if not request.endpoint_name:
            raise InvalidArgument("endpoint name not set")
        await self.endpoints.sync()  # what the database says, even if another node changed it a moment ago
        endpoint = self.endpoints.find_by_name(request.endpoint_name)
        if endpoint is None:
            raise _not_found(request.endpoint_name)
        return _response(endpoint.id, endpoint.spec.name, endpoint.version, self.endpoints.access_of(endpoint.id))

    async def update(self, request: npb.UpdateNexusEndpointAccessRequest) -> npb.NexusEndpointAccessResponse:
        if not request.endpoint_name:
            raise InvalidArgument("endpoint name not set")
        endpoint, policy = await self.endpoints.change_access(
            request.endpoint_name, request.change, list(request.caller_namespaces)
        )
        return _response(endpoint.id, endpoint.spec.name, endpoint.version, policy)


def _not_found(name: str) -> ServiceError:
    return NotFound(f"Nexus endpoint with name `{name}` not found")


def _response(
    endpoint_id: str, name: str, version: int, policy: npb.EndpointAccessPolicy
) -> npb.NexusEndpointAccessResponse:
    return npb.NexusEndpointAccessResponse(
        endpoint_id=endpoint_id, endpoint_name=name, endpoint_version=version, access=policy
    )


class Wrapper(Protocol):
    """The authorization check of the public services (auth/grpc.py GrpcAuthorization)."""

    def wrap(self, full_method: str, handler: Handler) -> Handler: ...


def endpoint_access_handler(
    service: EndpointAccessService, authorization: Wrapper | None = None
) -> grpc.GenericRpcHandler[Any, Any]:
    async def get(request: npb.GetNexusEndpointAccessRequest, context: Context) -> Any:
        try:
            return await service.get(request)
        except ServiceError as err:
            await abort(context, err)

    async def update(request: npb.UpdateNexusEndpointAccessRequest, context: Context) -> Any:
        try:
            return await service.update(request)
        except ServiceError as err:
            await abort(context, err)

    def method(handle: Any, request_type: Any) -> grpc.RpcMethodHandler[Any, Any]:
        if authorization is not None:
            name = GET_METHOD if handle is get else UPDATE_METHOD
            handle = authorization.wrap(name, handle)
        return grpc.unary_unary_rpc_method_handler(
            handle, request_deserializer=request_type.FromString, response_serializer=lambda m: m.SerializeToString()
        )

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "GetNexusEndpointAccess": method(get, npb.GetNexusEndpointAccessRequest),
            "UpdateNexusEndpointAccess": method(update, npb.UpdateNexusEndpointAccessRequest),
        },
    )
