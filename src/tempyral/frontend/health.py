"""The standard gRPC health service (grpc.health.v1.Health), which `temporal operator cluster health` calls.

Its two messages are tiny, so they are encoded by hand rather than adding a dependency:
HealthCheckResponse{status: SERVING} is field 1, varint 1.
"""

from __future__ import annotations

from typing import Any

import grpc

SERVING = b"\x08\x01"


async def _check(request: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
    return SERVING


def health_handler() -> grpc.GenericRpcHandler[Any, Any]:
    return grpc.method_handlers_generic_handler(
        "grpc.health.v1.Health",
        {"Check": grpc.unary_unary_rpc_method_handler(_check)},
    )
