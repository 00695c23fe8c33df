"""The authorization check in front of each method of the public services, over gRPC (frontend/grpc_handlers.py)
and over HTTP (frontend/http_gateway.py)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from tempyral.auth.authorizer import Authorizer, Refused
from tempyral.frontend.grpc_handlers import Context, Handler, abort


def header(metadata: Any, name: str = "authorization") -> str | None:
    for key, value in metadata or ():
        if key == name and isinstance(value, str):
            return value
    return None


def request_namespace(request: Any) -> str:
    """The namespace the request names ("" for cluster-wide requests), as the reference's GetNamespace()."""
    if "namespace" in request.DESCRIPTOR.fields_by_name:
        return str(request.namespace)
    return ""


class GrpcAuthorization:
    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    def wrap(self, full_method: str, handler: Handler) -> Handler:
        async def authorized(request: Any, context: Context) -> Message | bytes:
            try:
                await self.authorizer.check(
                    full_method, request_namespace(request), header(context.invocation_metadata())
                )
            except Refused as err:
                await abort(context, err)
            return await handler(request, context)

        return authorized


class HttpAuthorization:
    """The same check for the HTTP API (`/api/v1/...`, also the Web UI's): the `Authorization` header, as
    grpc-gateway passes it to the reference's gRPC server."""

    def __init__(self, authorizer: Authorizer) -> None:
        self.authorizer = authorizer

    async def check(self, method: MethodDescriptor, message: Message, request: web.Request) -> None:
        full_method = f"/{method.containing_service.full_name}/{method.name}"
        await self.authorizer.check(full_method, request_namespace(message), request.headers.get("Authorization"))
