"""gRPC plumbing: handlers generated from the service descriptors of the temporalio package.

Every RPC of a service is registered. Those the implementation has answer through it, with
`ServiceError`s turned into the status code and error details the reference sends; the rest
answer UNIMPLEMENTED. No request can take the server down.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import grpc
from google.protobuf import any_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2

from tempyral.common.errors import ServiceError
from tempyral.common.logs import ThrottledLog
from tempyral.frontend.admission import Admission, overloaded_error
from tempyral.frontend.handover import HandoverGate
from tempyral.frontend.intake import decoder, refusal, truncated
from tempyral.frontend.observe import RequestObserver
from tempyral.frontend.redirection import Redirector

log = logging.getLogger(__name__)
_unexpected = ThrottledLog(log)  # a bug that every request meets must not flood the log
Context = grpc.aio.ServicerContext[Any, Any]
# A servicer method; calls forwarded to another cluster answer with its serialized response (frontend/redirection.py).
Handler = Callable[[Any, Context], Awaitable[Message | bytes]]


class NodeWrapper(Protocol):
    """Passes a call to the node that owns its workflow or task queue (nodes/routing.py NodeRouter)."""

    def wrap(self, method: str, handler: Handler, response_class: type[Message]) -> Handler: ...


class AuthWrapper(Protocol):
    """Refuses calls the caller's token does not allow (auth/grpc.py GrpcAuthorization)."""

    def wrap(self, full_method: str, handler: Handler) -> Handler: ...


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


async def abort(context: Context, err: ServiceError) -> None:
    message = truncated(err.message)
    if err.details is None:
        # As grpc-go: no status proto without details, so a long message is not sent twice
        # (together they could pass the client's header size limit).
        await context.abort(err.code, message)
    status = status_pb2.Status(code=err.code.value[0], message=message)
    detail = any_pb2.Any()
    detail.Pack(err.details, type_url_prefix="type.googleapis.com/")
    status.details.append(detail)
    await context.abort(err.code, message, trailing_metadata=(("grpc-status-details-bin", status.SerializeToString()),))


def _wrap(fn: Handler, method: str, admission: Admission | None) -> Handler:
    async def handler(request: Any, context: Context) -> Message | bytes:
        if admission is None:
            return await _call(fn, method, request, context)
        size = request.ByteSize()
        if not admission.admit(method, size):
            await abort(context, overloaded_error())
        try:
            return await _call(fn, method, request, context)
        finally:
            admission.release(method, size)

    return handler


async def _call(fn: Handler, method: str, request: Any, context: Context) -> Message | bytes:
    """The implementation's answer, with its errors turned into statuses."""
    try:
        return await fn(request, context)
    except ServiceError as err:
        await abort(context, err)
        raise  # unreachable: abort raises
    except grpc.aio.AbortError:
        raise
    except Exception as err:
        _unexpected.failure(f"{method} failed", err)
        await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {err}")
        raise


def _unimplemented(method: str) -> Handler:
    async def handler(request: Any, context: Context) -> Message | bytes:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by tempyral")
        raise AssertionError("unreachable")

    return handler


def _refusing_early(handler: Handler) -> Handler:
    """Undecodable requests and over-long namespace names are refused before anything else."""

    async def refusing(request: Any, context: Context) -> Message | bytes:
        err = refusal(request)
        if err is not None:
            await abort(context, err)
        return await handler(request, context)

    return refusing


def generic_handler(
    service: ServiceDescriptor,
    impl: object,
    admission: Admission | None = None,
    redirector: Redirector | None = None,
    handover: HandoverGate | None = None,
    node_router: NodeWrapper | None = None,
    authorizer: AuthWrapper | None = None,
    observer: RequestObserver | None = None,
) -> grpc.GenericRpcHandler[Any, Any]:
    """`redirector`: the DC redirection policy, applied after admission, as the reference's interceptor order has
    it; a method it forwards reaches the other cluster even when this one does not implement it. `handover`: calls
    of a namespace in HANDOVER are held (frontend/handover.py). `authorizer`: checks the caller's token before
    admission and redirection, as the reference's interceptor order has it (after the early refusals: its
    namespace validator comes first). `observer`: metrics and a log line per call, outermost
    (frontend/observe.py)."""
    handlers = {}
    for method in service.methods:
        request_cls = GetMessageClass(method.input_type)
        fn: Handler | None = getattr(impl, snake_case(method.name), None)
        if handover is not None and fn is not None:
            fn = handover.wrap(method.name, fn)  # inside redirection: a forwarded call is held where it lands
        if node_router is not None and fn is not None:
            # the node that owns the workflow or serves the task queue answers (nodes/routing.py)
            fn = node_router.wrap(method.name, fn, GetMessageClass(method.output_type))
        if redirector is not None:
            fn = redirector.wrap(method.name, fn if fn is not None else _unimplemented(method.name))
        handler = _wrap(fn, method.name, admission) if fn is not None else _unimplemented(method.name)
        if authorizer is not None:
            handler = authorizer.wrap(f"/{service.full_name}/{method.name}", handler)
        outermost = _refusing_early(handler)
        if observer is not None:
            outermost = observer.wrap(method.name, outermost)
        handlers[method.name] = grpc.unary_unary_rpc_method_handler(
            outermost,
            request_deserializer=decoder(request_cls),
            response_serializer=_serialize,
        )
    return grpc.method_handlers_generic_handler(service.full_name, handlers)


def _serialize(response: Message | bytes) -> bytes:
    """A response; one another cluster gave is passed on as it came."""
    return response if isinstance(response, bytes) else response.SerializeToString()


def implemented(service: ServiceDescriptor, impl: object) -> list[str]:
    return [m.name for m in service.methods if hasattr(impl, snake_case(m.name))]
