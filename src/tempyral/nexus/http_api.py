"""The Nexus HTTP API on the frontend (the Nexus RPC HTTP spec, as the reference serves it):

- `POST /nexus/endpoints/{id}/services/{service}/{operation}` starts an operation on a
  registered endpoint; `.../{operation}/cancel` (token in `Nexus-Operation-Token` or `?token=`)
  cancels one. `/namespaces/{ns}/task-queues/{tq}/nexus-services/...` does the same straight
  to a namespace and task queue. Requests go to a handler worker as Nexus tasks, like the
  requests of caller workflows.
- `POST /namespaces/{ns}/nexus/callback` (and `/nexus/callback`) takes the completion of an
  asynchronous operation that a caller workflow started on an external endpoint.
- `GET /metrics`: the server's metrics, as Prometheus text (also on --metrics-port).

A request of a global namespace that is standby here goes to its active cluster's HTTP API (nexus/forwarding.py)
whatever --dc-redirection-policy says (it governs client API calls, not Nexus traffic between clusters), start
and cancel requests by namespace and task queue as the reference does, unless it carries
`xdc-redirection: false` or another cluster forwarded it here: then it gets UNAVAILABLE "cluster inactive" (and
a cluster that sent it retries).

Errors are Nexus handler errors: a status code from the spec's table and a failure JSON body.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote

from aiohttp import web
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.auth.access import NEXUS_SERVICE
from tempyral.auth.authorizer import Authorizer, Refused
from tempyral.common import xdc
from tempyral.common.clock import timestamp
from tempyral.common.errors import InvalidArgument, NotFound, Unavailable
from tempyral.common.http_body import read_bounded
from tempyral.common.limits import exceeds_blob_limit
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus import access, outcomes
from tempyral.nexus import http_wire as wire
from tempyral.nexus import links as nexus_links
from tempyral.nexus.dispatch import NexusDispatcher, Reply
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.nexus.forwarding import ForwardingError, NexusForwarder
from tempyral.nexus.invoker import CALLBACK_TOKEN_HEADER, decode_callback_token
from tempyral.nexus.machinery import Machinery
from tempyral.nexus.metrics import NexusMetrics
from tempyral.nexus.operations import CompleteOperation, NexusOperations, OperationNotFound

log = logging.getLogger(__name__)

# The longest a request waits for a handler worker (the reference's matching client caps it alike).
MAX_REQUEST_TIMEOUT_S = 60.0
# Not handed to the worker as Nexus headers: they describe this HTTP exchange, not the call.
_TRANSPORT_HEADERS = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "accept-encoding", "nexus-callback"}
)
_ENDPOINT_ROUTE = "/nexus/endpoints/{endpoint_id}/services/{service}/{operation}"
_QUEUE_ROUTE = "/namespaces/{namespace}/task-queues/{task_queue}/nexus-services/{service}/{operation}"


class HandlerError(Exception):
    """Answered as a Nexus handler error: the spec's status code and a failure body."""

    def __init__(self, error_type: str, message: str, retryable: bool | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.close = close  # the connection cannot be reused: part of the request is still unread


@dataclass
class _Target:
    namespace_id: str
    task_queue: str
    endpoint: str  # the endpoint's name, "" when addressed by namespace and task queue


def handler_error_response(error_type: str, message: str, retryable: bool | None = None) -> web.Response:
    return _failure_response(wire.handler_error_json(error_type, message, retryable))


def _failure_response(failure: wire.Json, state: str | None = None) -> web.Response:
    headers: dict[str, str] = {}
    if state is not None:
        status = 424
        headers["Nexus-Operation-State"] = state
    else:
        raw = failure.get("details")
        details: wire.Json = raw if isinstance(raw, dict) else {}
        status = wire.STATUS_BY_HANDLER_ERROR.get(str(details.get("type", "")), 500)
        override = details.get("retryableOverride")
        if isinstance(override, bool):
            headers["Nexus-Request-Retryable"] = "true" if override else "false"
    return web.Response(status=status, body=wire.dumps(failure), content_type="application/json", headers=headers)


class NexusHttpApi:
    def __init__(
        self,
        operations: NexusOperations,
        namespaces: NamespaceRegistry,
        endpoints: EndpointRegistry,
        dispatcher: NexusDispatcher,
        machinery: Machinery,
        metrics: NexusMetrics,
    ) -> None:
        self.operations = operations
        self.namespaces = namespaces
        self.endpoints = endpoints
        self.dispatcher = dispatcher
        self.machinery = machinery
        self.metrics = metrics
        # More Prometheus text for /metrics (history replication's, added by the server).
        self.more_metrics: list[Callable[[], str]] = []
        # The caller namespace of a request, when known (None: unknown). Nothing tells it yet: requests carry no
        # credentials tempyral checks; authorization, once configured, can tell it from the caller's token.
        self.caller_namespace: Callable[[web.Request], str | None] = lambda request: None
        self.forwarder = NexusForwarder(namespaces.clusters)
        # Where a completion for a caller of this cluster goes; None: `operations` (with several nodes the server
        # sets one that passes it to the node of the caller's shard).
        self.complete_operation: CompleteOperation | None = None
        # Checks the caller's token (auth/authorizer.py), set by the server when authorization is on.
        self.authorizer: Authorizer | None = None

    def app(self) -> web.Application:
        # Bodies are read (and limited) by the handlers, which answer the spec's 400, not aiohttp's 413.
        app = web.Application(middlewares=[_errors])
        app.on_cleanup.append(self._close_forwarder)
        app.router.add_post(_ENDPOINT_ROUTE, self.start_on_endpoint)
        app.router.add_post(_ENDPOINT_ROUTE + "/cancel", self.cancel_on_endpoint)
        app.router.add_post(_ENDPOINT_ROUTE + "/{token}/cancel", self.cancel_on_endpoint)  # before the header
        app.router.add_post(_QUEUE_ROUTE, self.start_on_queue)
        app.router.add_post(_QUEUE_ROUTE + "/cancel", self.cancel_on_queue)
        app.router.add_post(_QUEUE_ROUTE + "/{token}/cancel", self.cancel_on_queue)
        app.router.add_post("/namespaces/{namespace}/nexus/callback", self.complete)
        app.router.add_post("/nexus/callback", self.complete)
        app.router.add_get("/metrics", self.render_metrics)
        return app

    # ------------------------------------------------------------------ targets
    def _endpoint_target(self, request: web.Request) -> _Target:
        try:
            endpoint = self.endpoints.get(request.match_info["endpoint_id"])
        except (NotFound, InvalidArgument):  # a malformed id names no endpoint either
            raise HandlerError("NOT_FOUND", "nexus endpoint not found", retryable=False) from None
        name = endpoint.spec.name
        if not endpoint.spec.target.HasField("worker"):
            # As on the reference: the server does not relay HTTP callers to arbitrary URLs (it
            # would make it an open proxy); callers reach external endpoints directly.
            raise HandlerError("BAD_REQUEST", "invalid endpoint target")
        policy = self.endpoints.access_of(endpoint.id)
        caller = self.caller_namespace(request)
        if caller is not None:
            if not access.allows(policy, caller):
                raise HandlerError("UNAUTHORIZED", access.refusal(caller, name))
        elif policy != access.OPEN:
            # The policy names caller namespaces, and this HTTP caller has none we could trust, so an endpoint
            # with a policy serves only callers whose namespace is known.
            raise HandlerError(
                "UNAUTHORIZED", f"endpoint {name!r} admits only callers from its allowed namespaces, not HTTP callers"
            )
        namespace = self.namespaces.find(endpoint.spec.target.worker.namespace)
        if namespace is None:
            raise HandlerError("NOT_FOUND", "invalid endpoint target", retryable=True)
        return _Target(namespace.id, endpoint.spec.target.worker.task_queue, name)

    def _queue_target(self, request: web.Request) -> _Target:
        namespace = self.namespaces.find(request.match_info["namespace"])
        if namespace is None:
            raise HandlerError("NOT_FOUND", f"namespace not found: {request.match_info['namespace']!r}")
        task_queue = request.match_info["task_queue"]
        if not task_queue:
            raise HandlerError("BAD_REQUEST", "invalid URL")
        return _Target(namespace.id, task_queue, "")

    async def _close_forwarder(self, app: web.Application) -> None:
        await self.forwarder.close()

    # ------------------------------------------------------------------ standby
    def _standby(self, namespace_id: str, request: web.Request) -> Namespace | None:
        """The namespace, when it is standby here and the request may go to its active cluster (None: it is
        active here); a request that may not go anywhere else is refused as the reference does."""
        namespace = self.namespaces.find_by_id(namespace_id)
        if namespace is None or self.namespaces.is_active(namespace):
            return None
        if not xdc.may_forward(request.headers.get):
            raise HandlerError("UNAVAILABLE", "cluster inactive")
        return namespace

    async def _forward_operation(self, request: web.Request, namespace: Namespace, target: _Target) -> web.Response:
        """A start or cancel request, to the active cluster by namespace and task queue: `.../{service}/...`."""
        segments = request.raw_path.split("?", 1)[0].split("/")
        tail = segments[5:] if segments[1] == "nexus" else segments[6:]  # after .../services or .../nexus-services
        path = (
            f"/namespaces/{quote(namespace.name, safe='')}/task-queues/{quote(target.task_queue, safe='')}"
            f"/nexus-services/{'/'.join(tail)}"
        )
        return await self._forward(request, namespace, path, "nexus operation", "request forwarding failed")

    async def _forward(
        self, request: web.Request, namespace: Namespace, path: str, what: str, refusal: str
    ) -> web.Response:
        timeout_s = _request_timeout(request, self.machinery.limits.request_timeout_s)
        body = await read_bounded(request, wire.MAX_BODY_BYTES)
        if body is None:  # as the request would be answered here
            raise HandlerError("BAD_REQUEST", "invalid input", close=True)
        try:
            return await self.forwarder.forward(request, namespace.active_cluster, path, body, timeout_s, what)
        except ForwardingError as err:
            log.warning(
                "could not forward a %s of namespace %s to its active cluster %s: %s",
                what,
                namespace.name,
                namespace.active_cluster,
                err,
            )
            raise HandlerError("INTERNAL", refusal) from None

    async def start_on_endpoint(self, request: web.Request) -> web.Response:
        return await self._start(request, await self._authorized(request, self._endpoint_target(request)))

    async def cancel_on_endpoint(self, request: web.Request) -> web.Response:
        return await self._cancel(request, await self._authorized(request, self._endpoint_target(request)))

    async def start_on_queue(self, request: web.Request) -> web.Response:
        return await self._start(request, await self._authorized(request, self._queue_target(request)))

    async def cancel_on_queue(self, request: web.Request) -> web.Response:
        return await self._cancel(request, await self._authorized(request, self._queue_target(request)))

    async def _authorized(self, request: web.Request, target: _Target) -> _Target:
        """As the reference: a request to an endpoint is authorized as DispatchByEndpoint on the endpoint's target
        namespace, one by namespace and task queue as DispatchByNamespaceAndTaskQueue (both need write)."""
        api = "DispatchByEndpoint" if target.endpoint else "DispatchByNamespaceAndTaskQueue"
        namespace = self.namespaces.find_by_id(target.namespace_id)
        await self._authorize(request, api, namespace.name if namespace is not None else "")
        return target

    async def _authorize(self, request: web.Request, api: str, namespace: str) -> None:
        if self.authorizer is None:
            return
        try:
            await self.authorizer.check(NEXUS_SERVICE + api, namespace, request.headers.get("Authorization"))
        except Refused as err:
            # The reference's answers: a token it cannot read, UNAUTHENTICATED "unauthorized"; claims that do not
            # allow the call, UNAUTHORIZED "permission denied" (its AdaptAuthorizeError, with no reason given).
            if err.invalid_token:
                raise HandlerError("UNAUTHENTICATED", "unauthorized") from None
            raise HandlerError("UNAUTHORIZED", "permission denied") from None

    # ------------------------------------------------------------------ start
    async def _start(self, request: web.Request, target: _Target) -> web.Response:
        timeout_s = _request_timeout(request, self.machinery.limits.request_timeout_s)
        try:
            links = wire.parse_links(request.headers.getall("Nexus-Link", []))
        except ValueError as err:
            raise HandlerError("BAD_REQUEST", f'invalid "Nexus-Link" header: {err}') from None
        standby = self._standby(target.namespace_id, request)
        if standby is not None:
            return await self._forward_operation(request, standby, target)
        body = await read_bounded(request, wire.MAX_BODY_BYTES)
        if body is None:  # as the reference, whose reader fails at the limit
            raise HandlerError("BAD_REQUEST", "invalid input", close=True)
        try:
            payload = wire.body_to_payload(request.headers.get("Content-Type"), body)
        except ValueError as err:
            raise HandlerError("BAD_REQUEST", f"invalid input: {err}") from None
        if exceeds_blob_limit(payload.ByteSize()):  # the content headers became metadata, which counts too
            raise HandlerError("BAD_REQUEST", "input exceeds size limit")
        request_pb = self._request(request, target, timeout_s)
        start = request_pb.start_operation
        start.service = request.match_info["service"]
        start.operation = request.match_info["operation"]
        start.request_id = request.headers.get("Nexus-Request-Id") or str(uuid.uuid4())
        start.callback = request.query.get(wire.CALLBACK_QUERY) or request.headers.get("Nexus-Callback") or ""
        for key, value in request.headers.items():
            lowered = key.lower()
            if lowered.startswith(wire.CALLBACK_PREFIX):
                start.callback_header[lowered.removeprefix(wire.CALLBACK_PREFIX)] = value
        start.payload.CopyFrom(payload)
        start.links.extend(links)
        reply = await self.dispatcher.dispatch(target.namespace_id, target.task_queue, request_pb, timeout_s)
        if reply is None:
            raise HandlerError("UPSTREAM_TIMEOUT", "upstream timeout")
        return _start_response(reply)

    def _request(self, request: web.Request, target: _Target, timeout_s: float) -> nexus_pb.Request:
        header: dict[str, str] = {}
        for key, value in request.headers.items():
            lowered = key.lower()
            if lowered in _TRANSPORT_HEADERS or lowered.startswith((wire.CONTENT_PREFIX, wire.CALLBACK_PREFIX)):
                continue
            header.setdefault(lowered, value)  # Nexus headers have one value: the first wins
        header[wire.REQUEST_TIMEOUT] = wire.format_duration(timeout_s)  # the worker's deadline
        request_pb = nexus_pb.Request(header=header, endpoint=target.endpoint)
        request_pb.scheduled_time.CopyFrom(timestamp(time.time_ns()))
        # Our failure JSON carries Temporal failures whole, so workers may answer with them.
        request_pb.capabilities.temporal_failure_responses = True
        return request_pb

    # ------------------------------------------------------------------ cancel
    async def _cancel(self, request: web.Request, target: _Target) -> web.Response:
        timeout_s = _request_timeout(request, self.machinery.limits.request_timeout_s)
        token = (
            request.match_info.get("token")
            or request.headers.get("Nexus-Operation-Token")
            or request.query.get("token", "")
        )
        if not token:
            raise HandlerError("BAD_REQUEST", "missing operation token")
        standby = self._standby(target.namespace_id, request)
        if standby is not None:
            return await self._forward_operation(request, standby, target)
        request_pb = self._request(request, target, timeout_s)
        request_pb.header.pop(wire.OPERATION_TOKEN, None)  # it is an argument, not a header
        cancel = request_pb.cancel_operation
        cancel.service = request.match_info["service"]
        cancel.operation = request.match_info["operation"]
        cancel.operation_token = token
        cancel.operation_id = token  # for workers that still read the old field
        reply = await self.dispatcher.dispatch(target.namespace_id, target.task_queue, request_pb, timeout_s)
        if reply is None:
            raise HandlerError("UPSTREAM_TIMEOUT", "upstream timeout")
        if isinstance(reply, ws.RespondNexusTaskFailedRequest):
            return _handler_failure_response(reply)
        return web.Response(status=202)

    # ------------------------------------------------------------------ completion callbacks
    async def complete(self, request: web.Request) -> web.Response:
        token = decode_callback_token(request.headers.get(CALLBACK_TOKEN_HEADER, ""))
        if token is None:
            raise HandlerError("BAD_REQUEST", "invalid callback token")
        namespace = self.namespaces.find_by_id(token.namespace_id)
        if namespace is None:
            raise HandlerError("NOT_FOUND", f"namespace {token.namespace_id!r} not found")
        if "namespace" in request.match_info and request.match_info["namespace"] != namespace.name:
            # A token is only good on the callback URL of the namespace that issued it.
            raise HandlerError("BAD_REQUEST", "invalid callback token")
        # As the reference: the handler's completion needs write on the caller's namespace; the callback token
        # names the operation, the `Authorization` header the handler sends says who completes it.
        await self._authorize(request, "CompleteNexusOperation", namespace.name)
        if self._standby(namespace.id, request) is not None:
            path = f"/namespaces/{quote(namespace.name, safe='')}/nexus/callback"
            return await self._forward(request, namespace, path, "completion callback", "internal error")
        operation_token = request.headers.get("Nexus-Operation-Token", "")
        if len(operation_token) > outcomes.MAX_OPERATION_TOKEN_LENGTH:
            raise HandlerError(
                "BAD_REQUEST",
                f"operation token length exceeds allowed limit "
                f"({len(operation_token)}/{outcomes.MAX_OPERATION_TOKEN_LENGTH})",
            )
        start_time_ns = time.time_ns()  # the spec: without the header, the time the completion came
        if "Nexus-Operation-Start-Time" in request.headers:
            try:
                start_time_ns = wire.parse_http_time(request.headers["Nexus-Operation-Start-Time"])
            except ValueError:
                raise HandlerError("BAD_REQUEST", "failed to parse operation start time header") from None
        try:
            links = wire.parse_links(request.headers.getall("Nexus-Link", []))
        except ValueError:
            raise HandlerError("BAD_REQUEST", "failed to decode links from request headers") from None
        state = request.headers.get("Nexus-Operation-State", "")
        body = await read_bounded(request, wire.MAX_BODY_BYTES)
        result, failure = self._completion_outcome(request, state, body)
        complete = self.complete_operation or self.operations.complete
        try:
            await complete(
                token,
                operation_token,
                nexus_links.to_temporal_links(links),
                start_time_ns,
                result,
                failure,
                state == "canceled",
            )
        except OperationNotFound:
            raise HandlerError("NOT_FOUND", "operation not found") from None
        except Unavailable as err:  # the caller's shard is moving between nodes, or its node is unreachable
            raise HandlerError("UNAVAILABLE", err.message) from None
        return web.Response(status=200)

    @staticmethod
    def _completion_outcome(
        request: web.Request, state: str, body: bytes | None
    ) -> tuple[common.Payload | None, failure_pb.Failure | None]:
        """`body` is None when it was over the size limit (the reference's reader fails then)."""
        if state == "succeeded":
            if body is None:
                raise HandlerError("BAD_REQUEST", "invalid result content", close=True)
            try:
                result = wire.body_to_payload(request.headers.get("Content-Type"), body)
            except ValueError:
                raise HandlerError("BAD_REQUEST", "invalid result content") from None
            if exceeds_blob_limit(result.ByteSize()):
                raise HandlerError("BAD_REQUEST", "result exceeds size limit")
            return result, None
        if state not in ("failed", "canceled"):
            raise HandlerError("BAD_REQUEST", f"invalid request operation state: {state!r}", close=body is None)
        if not wire.is_json(request.headers.get("Content-Type")):
            raise HandlerError(
                "BAD_REQUEST",
                f"invalid request content type: {request.headers.get('Content-Type')!r}",
                close=body is None,
            )
        if body is None:
            raise HandlerError("BAD_REQUEST", "failed to read Failure from request body", close=True)
        try:
            failure = wire.json_to_temporal(wire.unwrap(wire.parse_failure(body)))
        except ValueError:
            raise HandlerError("BAD_REQUEST", "failed to decode Failure from request body") from None
        if state == "canceled" and failure.WhichOneof("failure_info") is None:
            failure.canceled_failure_info.SetInParent()
        return None, failure

    # ------------------------------------------------------------------ metrics
    async def render_metrics(self, request: web.Request) -> web.Response:
        text = self.metrics.render() + "".join(render() for render in self.more_metrics)
        return web.Response(text=text, content_type="text/plain")


# ---------------------------------------------------------------------- helpers
@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except HandlerError as err:
        if err.error_type in ("INTERNAL", "UPSTREAM_TIMEOUT"):
            log.info("Nexus HTTP %s %s: %s", request.method, request.path, err.message)
        response = handler_error_response(err.error_type, err.message, err.retryable)
        if err.close:
            response.force_close()
        return response
    except web.HTTPException as err:
        if err.status == 404:  # no such route: answered like the spec's NOT_FOUND
            return handler_error_response("NOT_FOUND", "not found")
        if err.status == 405:
            return handler_error_response("BAD_REQUEST", f"invalid request method: {request.method}")
        raise
    except Exception:
        log.exception("Nexus HTTP %s %s failed", request.method, request.path)
        return handler_error_response("INTERNAL", "internal error")


def _request_timeout(request: web.Request, default_s: float) -> float:
    text = request.headers.get("Request-Timeout")
    if text is None:
        return default_s
    try:
        seconds = wire.parse_duration(text)
    except ValueError:
        raise HandlerError("BAD_REQUEST", "invalid request timeout header") from None
    return min(seconds, MAX_REQUEST_TIMEOUT_S)


def _links_headers(links: list[nexus_pb.Link]) -> list[tuple[str, str]]:
    return [("Nexus-Link", wire.format_link(link)) for link in links if link.url and link.type]


def _handler_failure_response(reply: ws.RespondNexusTaskFailedRequest) -> web.Response:
    failure = outcomes.start_outcome(reply).failure
    if failure is None or not failure.HasField("nexus_handler_failure_info"):
        return handler_error_response("INTERNAL", "internal error")
    return _failure_response(wire.temporal_to_json(failure))


def _start_response(reply: Reply) -> web.Response:
    """A handler worker's answer to a start request, as the spec's HTTP answer."""
    if isinstance(reply, ws.RespondNexusTaskFailedRequest):
        return _handler_failure_response(reply)
    start = reply.response.start_operation
    variant = start.WhichOneof("variant")
    if variant == "sync_success":
        content_type, data = wire.payload_to_body(start.sync_success.payload)
        response = web.Response(status=200, body=data, headers={"Nexus-Operation-State": "succeeded"})
        if content_type:
            response.headers["Content-Type"] = content_type
        for key, value in _links_headers(list(start.sync_success.links)):
            response.headers.add(key, value)
        return response
    if variant == "async_success":
        token = start.async_success.operation_token or start.async_success.operation_id
        if not token:
            raise HandlerError("INTERNAL", "empty operation token")
        response = web.Response(
            status=201, body=wire.dumps({"token": token, "state": "running"}), content_type="application/json"
        )
        for key, value in _links_headers(list(start.async_success.links)):
            response.headers.add(key, value)
        return response
    if variant == "failure":
        state = "canceled" if start.failure.HasField("canceled_failure_info") else "failed"
        return _failure_response(wire.operation_error_json(state, wire.temporal_to_json(start.failure)), state)
    if variant == "operation_error":
        op_error = start.operation_error
        state = "canceled" if op_error.operation_state == "canceled" else "failed"
        return _failure_response(wire.operation_error_json(state, wire.nexus_proto_to_json(op_error.failure)), state)
    raise HandlerError("INTERNAL", "empty outcome")
