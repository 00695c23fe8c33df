"""The Temporal HTTP API (`/api/v1/...`): every route the `google.api.http` annotations of the
WorkflowService and OperatorService descriptors declare, translated to the same servicer methods
the gRPC API calls.

JSON is plain protobuf JSON (what the Web UI reads; the reference's payload shorthand is not
used). Routes are matched on the still-encoded path, so an id with a `/` in it (sent as `%2F`)
stays one segment. Query parameters are accepted in camelCase and snake_case.

Limits, as the reference's HTTP API: a body is read whole up to 4 MiB (over that: 400 `http: request body
too large`, and the connection is closed rather than drained); the request it makes must fit the 4 MiB its
gRPC server takes (else 429 RESOURCE_EXHAUSTED). A path or query value that is not UTF-8 once
percent-decoded cannot be a string field: 500 INTERNAL, never a value with U+FFFD in it.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote

import grpc
from aiohttp import web
from google.api import annotations_pb2
from google.protobuf import any_pb2, json_format
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from google.rpc import status_pb2
from temporalio.api.errordetails.v1 import message_pb2 as _errordetails  # noqa: F401  (Any types in errors)

from tempyral.common.errors import ServiceError
from tempyral.common.http_body import read_bounded
from tempyral.common.limits import GRPC_MAX_RECEIVE_BYTES
from tempyral.common.logs import ThrottledLog
from tempyral.frontend.admission import Admission, overloaded_error
from tempyral.frontend.deep_failures import cut_deep_failures
from tempyral.frontend.grpc_handlers import snake_case
from tempyral.frontend.intake import refusal, truncated
from tempyral.frontend.observe import RequestObserver, operation

log = logging.getLogger(__name__)
_unexpected = ThrottledLog(log)
PREFIX = "/api/v1"
MAX_BODY_BYTES = 4 * 1024 * 1024  # as the reference's HTTP API
# The reference's HTTP API hands each request to its gRPC server: the same message limit as tempyral's gRPC port.
MAX_MESSAGE_BYTES = GRPC_MAX_RECEIVE_BYTES
HTTP_TIMEOUT_S = 70.0  # a long poll from the UI (waitNewEvent) must fit in it
# grpc-gateway's mapping of status codes to HTTP statuses.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
}
_VARIABLE = re.compile(r"^\{([^}=]+)(?:=[^}]*)?\}$")


class HttpAuthorization(Protocol):
    async def check(self, method: MethodDescriptor, message: Message, request: web.Request) -> None: ...


class _Fail(Exception):
    def __init__(
        self, code: grpc.StatusCode, message: str, details: Message | None = None, close: bool = False
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details
        self.close = close  # the connection cannot be reused: part of the request is still unread


@dataclass(frozen=True)
class Route:
    http_method: str
    segments: tuple[str, ...]  # literal text, or "{field.path}" for a variable
    body: str  # "*", "" or a field name
    method: MethodDescriptor
    servicer: object

    @property
    def variables(self) -> int:
        return sum(1 for s in self.segments if s.startswith("{"))

    def match(self, parts: list[str]) -> dict[str, str] | None:
        if len(parts) != len(self.segments):
            return None
        found: dict[str, str] = {}
        for want, got in zip(self.segments, parts, strict=True):
            variable = _VARIABLE.match(want)
            if variable is None:
                if want != got:
                    return None
            elif got:
                # Undecodable bytes stay recognisable (lone surrogates) so the field setter refuses them.
                found[variable.group(1)] = unquote(got, errors="surrogateescape")
            else:
                return None
        return found


class CallContext:
    """What the servicers ask of a gRPC context, for a call that came over HTTP."""

    def __init__(self, request: web.Request, timeout_s: float) -> None:
        self._deadline = time.monotonic() + timeout_s
        self._metadata = tuple(
            (name.lower(), value)
            for name, value in request.headers.items()
            # authorization: a call passed to another node is authorized there too (nodes/routing.py)
            if name.lower() in ("client-name", "client-version", "caller-type", "user-agent", "authorization")
        )

    def time_remaining(self) -> float:
        return max(self._deadline - time.monotonic(), 0.0)

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def routes_for(service: ServiceDescriptor, servicer: object) -> list[Route]:
    out: list[Route] = []
    for method in service.methods:
        rule = method.GetOptions().Extensions[annotations_pb2.http]
        for binding in (rule, *rule.additional_bindings):
            kind = binding.WhichOneof("pattern")
            if kind is None:
                continue
            path = binding.custom.path if kind == "custom" else getattr(binding, kind)
            http_method = binding.custom.kind.upper() if kind == "custom" else kind.upper()
            if path.startswith(PREFIX + "/"):
                segments = tuple(path[len(PREFIX) + 1 :].split("/"))
                out.append(Route(http_method, segments, binding.body, method, servicer))
    return out


@dataclass(slots=True)
class _Call:
    """What the observer is told about an HTTP API call."""

    method: str = ""
    namespace: str = ""
    code: grpc.StatusCode = grpc.StatusCode.OK


class HttpGateway:
    def __init__(
        self,
        services: list[tuple[ServiceDescriptor, object]],
        admission: Admission | None = None,
        observer: RequestObserver | None = None,
    ) -> None:
        """`admission`: the bound on work in progress the gRPC frontend shares (None: unbounded, for tests);
        `observer`: metrics and a log line per call, as the gRPC frontend's (frontend/observe.py)."""
        self.admission = admission
        # Checks the caller's token (auth/grpc.py HttpAuthorization), set by the server when authorization is on.
        self.authorizer: HttpAuthorization | None = None
        self.observer = observer
        routes = [route for service, servicer in services for route in routes_for(service, servicer)]
        # More literal segments win: /namespaces/{ns}/workflow-count before /namespaces/{ns}/{...}.
        self.routes = sorted(routes, key=lambda r: r.variables)

    def add_to(self, app: web.Application) -> None:
        app.router.add_route("*", PREFIX + "/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        call = _Call()
        try:
            return await self._handle(request, call)
        except _Fail as err:
            call.code = err.code
            response = _error(err.code, err.message, err.details)
            if err.close:
                response.force_close()
            return response
        except ServiceError as err:
            call.code = err.code
            return _error(err.code, truncated(err.message), err.details)
        except Exception as err:
            call.code = grpc.StatusCode.INTERNAL
            _unexpected.failure("HTTP API requests failed", err)  # one kind: paths are the caller's to choose
            return _error(grpc.StatusCode.INTERNAL, truncated(f"internal error: {err}"))
        finally:
            if self.observer is not None and call.method:  # a path that names no method is no call of one
                self.observer.finished(call.method, call.namespace, call.code, started, "http")

    async def _handle(self, request: web.Request, call: _Call) -> web.StreamResponse:
        raw_path = request.raw_path.split("?", 1)[0]
        if not raw_path.startswith(PREFIX + "/"):
            raise _Fail(grpc.StatusCode.NOT_FOUND, "Not Found")
        parts = raw_path[len(PREFIX) + 1 :].rstrip("/").split("/")
        route, variables = self._find(request.method, parts)
        message_class = GetMessageClass(route.method.input_type)
        message = message_class()
        if route.body:
            await self._read_body(request, message, route.body)
        else:
            _apply_query(message, request.query_string)
        for path, value in variables.items():
            _set_path(message, path.split("."), [value])
        call.method = operation(route.method.name, message)
        call.namespace = getattr(message, "namespace", "")
        size = message.ByteSize()
        if size > MAX_MESSAGE_BYTES:
            raise _Fail(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"grpc: received message larger than max ({size} vs. {MAX_MESSAGE_BYTES})",
            )
        handler = getattr(route.servicer, snake_case(route.method.name), None)
        if handler is None:
            raise _Fail(grpc.StatusCode.UNIMPLEMENTED, f"{route.method.name} is not implemented by tempyral")
        # What the gRPC frontend does before its servicers, so that both doors answer alike.
        cut_deep_failures(message)
        refused = refusal(message)
        if refused is not None:
            raise refused
        name = route.method.name
        if self.authorizer is not None:  # as the gRPC API: after the early refusals, before admission
            await self.authorizer.check(route.method, message, request)
        if self.admission is not None and not self.admission.admit(name, size):
            raise overloaded_error()
        try:
            response: Message = await handler(message, CallContext(request, HTTP_TIMEOUT_S))
        finally:
            if self.admission is not None:
                self.admission.release(name, size)
        return _json(200, json_format.MessageToDict(response))

    def _find(self, http_method: str, parts: list[str]) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self.routes:
            variables = route.match(parts)
            if variables is None:
                continue
            path_matched = True
            if route.http_method == http_method:
                return route, variables
        if path_matched:
            raise _Fail(grpc.StatusCode.UNIMPLEMENTED, "Method Not Allowed")
        raise _Fail(grpc.StatusCode.NOT_FOUND, "Not Found")

    @staticmethod
    async def _read_body(request: web.Request, message: Message, body_field: str) -> None:
        data = await read_bounded(request, MAX_BODY_BYTES)
        if data is None:
            raise _Fail(grpc.StatusCode.INVALID_ARGUMENT, "http: request body too large", close=True)
        if not data.strip():
            return
        try:
            target = message if body_field == "*" else getattr(message, body_field)
            json_format.Parse(data, target, ignore_unknown_fields=True)
        except (json_format.ParseError, ValueError, AttributeError) as err:
            raise _Fail(grpc.StatusCode.INVALID_ARGUMENT, f"invalid JSON body: {err}") from err


# ---------------------------------------------------------------------- request fields from text
def _field(descriptor: Any, name: str) -> FieldDescriptor | None:
    fields: dict[str, FieldDescriptor] = descriptor.fields_by_name
    camel: dict[str, FieldDescriptor] = descriptor.fields_by_camelcase_name
    return fields.get(name) or camel.get(name) or fields.get(snake_case(name))


def _apply_query(message: Message, query_string: str) -> None:
    """Query parameters name fields by dotted paths (`execution.runId`, `next_page_token`);
    unknown ones are ignored, as grpc-gateway does."""
    values: dict[str, list[str]] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True, errors="surrogateescape"):
        if _is_utf8(key):  # an undecodable name names no field: ignored like any unknown one
            values.setdefault(key, []).append(value)
    for key, given in values.items():
        try:
            _set_path(message, key.split("."), given)
        except _Fail:
            raise
        except (KeyError, TypeError):
            continue


def _set_path(message: Message, path: list[str], values: list[str]) -> None:
    field = _field(message.DESCRIPTOR, path[0])
    if field is None:
        return
    if len(path) > 1:
        if field.type != FieldDescriptor.TYPE_MESSAGE or field.is_repeated:
            return
        _set_path(getattr(message, field.name), path[1:], values)
        return
    try:
        converted = [_convert(field, v) for v in values]
        if field.is_repeated:
            getattr(message, field.name).extend(converted)
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            getattr(message, field.name).CopyFrom(converted[-1])
        else:
            setattr(message, field.name, converted[-1])
    except (ValueError, TypeError, json_format.ParseError) as err:
        raise _Fail(grpc.StatusCode.INVALID_ARGUMENT, f"invalid value for {'.'.join(path)}: {err}") from err


def _convert(field: FieldDescriptor, text: str) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        if not text.isascii() and not _is_utf8(text):
            # The reference answers INTERNAL too: its gRPC marshaling refuses the string.
            raise _Fail(grpc.StatusCode.INTERNAL, "string field contains invalid UTF-8")
        return text
    if t == FieldDescriptor.TYPE_BOOL:
        if text.lower() in ("true", "1", ""):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if t == FieldDescriptor.TYPE_ENUM:
        if text.lstrip("-").isdigit():
            return int(text)
        assert field.enum_type is not None
        value = field.enum_type.values_by_name.get(text)
        if value is None:
            raise ValueError(f"unknown enum value {text!r}")
        return value.number
    if t == FieldDescriptor.TYPE_BYTES:
        padded = text + "=" * (-len(text) % 4)
        return base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return float(text)
    if t == FieldDescriptor.TYPE_MESSAGE:
        # well-known types (Timestamp, Duration, FieldMask...) take their JSON string form
        assert field.message_type is not None
        message = GetMessageClass(field.message_type)()
        json_format.Parse(json.dumps(text), message)
        return message
    return int(text)


def _is_utf8(text: str) -> bool:
    """False for text holding bytes that did not decode (surrogateescape's lone surrogates)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


# ---------------------------------------------------------------------- errors
def _error(code: grpc.StatusCode, message: str, details: Message | None = None) -> web.Response:
    status = status_pb2.Status(code=code.value[0], message=message)
    if details is not None:
        packed = any_pb2.Any()
        packed.Pack(details, type_url_prefix="type.googleapis.com/")
        status.details.append(packed)
    return _json(HTTP_STATUS.get(code, 500), json_format.MessageToDict(status))


def _json(status: int, value: object) -> web.Response:
    body = json.dumps(value, separators=(",", ":")).encode()
    return web.Response(status=status, body=body, content_type="application/json")
