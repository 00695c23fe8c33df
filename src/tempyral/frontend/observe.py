"""What every client request leaves behind: the reference's service_* metrics and a debug log line.

`RequestObserver.wrap` goes outermost around each gRPC method, so it sees every answer, aborts included (their
status is read back from the call's context); the HTTP API calls `finished` itself. Metric label values are
bounded: a namespace the server does not have is `_unknown_`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from tempyral.frontend import request_log
from tempyral.metrics.server_metrics import ServerMetrics

Context = grpc.aio.ServicerContext[Any, Any]
Handler = Callable[[Any, Context], Awaitable[Message | bytes]]

# Codes a caller causes: counted in service_error_with_type, not in service_errors (as the reference).
EXPECTED = frozenset(
    {
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNAUTHENTICATED,
    }
)
# The reference's error_type values: its serviceerror type names.
ERROR_TYPES = {
    code: "serviceerror_" + "".join(part.capitalize() for part in code.name.split("_")) for code in grpc.StatusCode
}
ERROR_TYPES[grpc.StatusCode.CANCELLED] = "serviceerror_Canceled"
ERROR_TYPES[grpc.StatusCode.ALREADY_EXISTS] = "serviceerror_WorkflowExecutionAlreadyStarted"
SERVICE_NAME = "frontend"


def operation(method: str, request: Any) -> str:
    """The reference's operation name: a history long poll is PollWorkflowExecutionHistory."""
    if method == "GetWorkflowExecutionHistory" and getattr(request, "wait_new_event", False):
        return "PollWorkflowExecutionHistory"
    return method


class RequestObserver:
    def __init__(self, metrics: ServerMetrics | None) -> None:
        self.metrics = metrics

    def wrap(self, method: str, handler: Handler) -> Handler:
        async def observed(request: Any, context: Context) -> Message | bytes:
            started = time.perf_counter()
            code: grpc.StatusCode | None = grpc.StatusCode.OK
            try:
                return await handler(request, context)
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN
                raise
            except asyncio.CancelledError:
                code = None  # the caller went away (a worker stopping its polls): no error of the server's
                raise
            except Exception:
                code = grpc.StatusCode.UNKNOWN
                raise
            finally:
                self.finished(operation(method, request), getattr(request, "namespace", ""), code, started)

        return observed

    def finished(
        self, method: str, namespace: str, code: grpc.StatusCode | None, started: float, transport: str = "grpc"
    ) -> None:
        """`code` None: the caller cancelled the call (counted, not as an error)."""
        latency = time.perf_counter() - started
        metrics = self.metrics
        if metrics is not None:
            labels = (metrics.namespace_label(namespace), method, SERVICE_NAME)
            metrics.service_requests.inc(labels)
            metrics.service_latency.observe(labels, latency)
            if code is not None and code != grpc.StatusCode.OK:
                metrics.service_error_with_type.inc((ERROR_TYPES[code], *labels))
                if code not in EXPECTED:
                    metrics.service_errors.inc(labels)
        request_log.done(method, namespace, code.name if code is not None else "CANCELLED", latency, transport)
