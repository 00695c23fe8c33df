"""Sends a caller's Nexus start and cancel requests to the endpoint's target and hands what came
back to the history side (`nexus.operations`).

Runs as the executor of the NEXUS_START / NEXUS_CANCEL outbox tasks. A request for a handler namespace that is
standby here goes to the HTTP API of the cluster where it is active (whatever --dc-redirection-policy says: that
governs client calls), by namespace and task queue as the reference forwards; its completion comes back through
that cluster's callbacks (nexus/callbacks.py). Before a request goes out:
the endpoint must exist and admit the caller's namespace, the destination's circuit breaker
must let it through, and the rate limits must have room; otherwise the operation fails (the first
two) or waits (the last two) without spending an attempt.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import Protocol
from urllib.parse import quote

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.common import xdc
from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.common.errors import NotFound
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus import access, outcomes
from tempyral.nexus import links as nexus_links
from tempyral.nexus.addresses import SYSTEM_CALLBACK_URL
from tempyral.nexus.dispatch import NexusDispatcher
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.nexus.forwarding import ForwardingError, cluster_base_url
from tempyral.nexus.machinery import Machinery
from tempyral.nexus.metrics import NexusMetrics
from tempyral.nexus.operations import NexusOperations, cancel_due, start_due
from tempyral.nexus.outcomes import Kind, Outcome
from tempyral.proto.internal_pb2 import NexusCallbackToken, NexusOperationInfo, Task

log = logging.getLogger(__name__)
CALLBACK_TOKEN_HEADER = "temporal-callback-token"
OPERATION_TOKEN_HEADER = "nexus-operation-token"
BREAKER_OPEN = "The circuit breaker is open."
# Rate-limited calls wait in place up to this long a few times before the operation is marked blocked.
SHORT_WAIT_S = 0.5
SHORT_WAITS = 3

ExternalCall = Callable[[nexus_pb.Endpoint, nexus_pb.Request, float], Awaitable[Outcome]]
# (base URL of another cluster's `.../nexus-services`, request, timeout, headers to add) -> what came back
ClusterCall = Callable[[str, nexus_pb.Request, float, dict[str, str]], Awaitable[Outcome]]


@dataclass
class _Call:
    """What a request needs, read from the caller's state."""

    info: NexusOperationInfo
    namespace: str
    scheduled: common.Payload
    header: dict[str, str]
    # What the handler is given to find the caller again: the callback token and a link to the caller.
    token: NexusCallbackToken = dc_field(default_factory=NexusCallbackToken)
    link: nexus_pb.Link | None = None


class CallerSide(Protocol):
    """Where an operation's caller keeps it: a workflow's history (`WorkflowCaller`) or a standalone operation's
    row (nexus/standalone.py). The invoker loads what a request needs from it and hands it what came back."""

    async def load(self, task: Task, for_cancel: bool) -> _Call | None: ...

    async def record_start(self, task: Task, outcome: Outcome) -> None: ...

    async def record_blocked(self, task: Task, reason: str, delay_s: float) -> None: ...

    async def record_timeout(self, task: Task, timeout_type: int) -> None: ...

    async def record_cancel(self, task: Task, outcome: Outcome) -> None: ...


class WorkflowCaller:
    """The caller side of operations a workflow scheduled: `NexusOperations`, and the scheduled event."""

    def __init__(self, operations: NexusOperations, namespaces: NamespaceRegistry) -> None:
        self.operations = operations
        self.namespaces = namespaces
        self.record_start = operations.record_start
        self.record_blocked = operations.record_blocked
        self.record_timeout = operations.record_timeout
        self.record_cancel = operations.record_cancel

    async def load(self, task: Task, for_cancel: bool) -> _Call | None:
        try:
            async with self.operations.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms = change.ms
                # the same checks the outcome is recorded under: a stale task sends nothing
                info = ms.state.nexus_operations.get(task.event_id) if for_cancel else start_due(ms, task)
                if not ms.running or info is None or (for_cancel and not cancel_due(info, task)):
                    return None
                copy = NexusOperationInfo()
                copy.CopyFrom(info)
                events = await change.events(info.scheduled_event_id, info.scheduled_event_id + 1)
        except NotFound:
            return None
        namespace = self.namespaces.find_by_id(task.namespace_id)
        if not events or namespace is None:
            return None
        attrs = events[0].nexus_operation_scheduled_event_attributes
        token = NexusCallbackToken(
            namespace_id=task.namespace_id,
            workflow_id=task.workflow_id,
            run_id=task.run_id,
            scheduled_event_id=copy.scheduled_event_id,
            request_id=copy.request_id,
        )
        link = nexus_links.scheduled_event_link(namespace.name, task.workflow_id, task.run_id, copy.scheduled_event_id)
        return _Call(copy, namespace.name, attrs.input, dict(attrs.nexus_header), token, link)


def encode_callback_token(token: NexusCallbackToken) -> str:
    data = base64.b64encode(token.SerializeToString()).decode()
    return json.dumps({"v": 1, "d": data}, separators=(",", ":"))


def decode_callback_token(text: str) -> NexusCallbackToken | None:
    try:
        envelope = json.loads(text)
        token = NexusCallbackToken.FromString(base64.b64decode(envelope["d"], validate=True))
    except Exception:  # any malformed token is just "not a token of ours"
        return None
    if not (token.namespace_id and token.workflow_id and token.run_id and token.scheduled_event_id):
        return None
    return token


def external_callback_url(base_url: str, namespace: str) -> str:
    """The callback URL of the HTTP API, for handlers that are not workers of this server."""
    if not base_url:
        return ""
    return f"{base_url}/namespaces/{quote(namespace, safe='')}/nexus/callback"


def format_timeout(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 0)}ms"


class NexusInvoker:
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
        self.workflow_caller = WorkflowCaller(operations, namespaces)
        # Whose tasks are a standalone operation's (nexus/standalone.py sets both).
        self.standalone_caller: CallerSide | None = None
        self.is_standalone: Callable[[Task], bool] = lambda task: False
        self.external: ExternalCall | None = None  # set by the HTTP module
        self.other_cluster: ClusterCall | None = None  # likewise
        # Where external handlers deliver completions: http://<ip>:<http port> (set by the server).
        self.callback_base_url = ""
        # The timeout of one request by (caller namespace, endpoint name): dynamic config's
        # component.nexusoperations.request.timeout when the server sets it, else the --nexus-request-timeout flag.
        self.request_timeout: Callable[[str, str], float] = lambda namespace, endpoint: (
            machinery.limits.request_timeout_s
        )

    def _side(self, task: Task) -> CallerSide:
        if self.standalone_caller is not None and self.is_standalone(task):
            return self.standalone_caller
        return self.workflow_caller

    # ------------------------------------------------------------------ start
    async def start(self, task: Task) -> None:
        ops = self._side(task)
        call = await ops.load(task, for_cancel=False)
        if call is None:
            return
        info = call.info
        endpoint = self._endpoint(info)
        if endpoint is None:
            outcome = Outcome(
                Kind.FAILED, failure=outcomes.handler_error("NOT_FOUND", "endpoint not registered"), label="no-endpoint"
            )
            await ops.record_start(task, outcome)
            return
        if not access.allows(self.endpoints.access_of(endpoint.id), call.namespace):
            message = access.refusal(call.namespace, endpoint.spec.name)
            log.warning("Nexus call refused: %s", message)
            self.metrics.request(call.namespace, endpoint.spec.name, "StartOperation", "permission-denied")
            await ops.record_start(
                task, Outcome(Kind.FAILED, failure=outcomes.handler_error("UNAUTHORIZED", message), label="denied")
            )
            return
        if await self._held_back(ops, task, endpoint.spec.name, call.namespace):
            return
        timeout_s, timeout_type = self._call_timeout(info, self.request_timeout(call.namespace, endpoint.spec.name))
        if timeout_type and timeout_s < self.machinery.limits.min_request_timeout_s:
            # not enough time left before the operation's own timeout for another request
            await ops.record_timeout(task, timeout_type)
            return
        request = self._start_request(call, endpoint, timeout_s)
        started = time.monotonic()
        outcome = await self._send(endpoint, request, timeout_s, outcomes.start_outcome)
        self._observe(call, endpoint, "StartOperation", outcome, started)
        await ops.record_start(task, outcome)

    def _start_request(self, call: _Call, endpoint: nexus_pb.Endpoint, timeout_s: float) -> nexus_pb.Request:
        info = call.info
        header = dict(call.header)
        header["request-timeout"] = format_timeout(timeout_s)
        header["nexus-request-id"] = info.request_id
        s2c = duration_ns(info.schedule_to_close_timeout)
        if s2c and "operation-timeout" not in header:
            remaining = (ts_ns(info.scheduled_time) + s2c - time.time_ns()) / 1e9
            header["operation-timeout"] = format_timeout(remaining)
        request = nexus_pb.Request(header=header, endpoint=endpoint.spec.name)
        request.scheduled_time.CopyFrom(timestamp(time.time_ns()))
        request.capabilities.temporal_failure_responses = True
        start = request.start_operation
        start.service = info.service
        start.operation = info.operation
        start.request_id = info.request_id
        start.callback = (
            SYSTEM_CALLBACK_URL
            if endpoint.spec.target.HasField("worker")
            else external_callback_url(self.callback_base_url, call.namespace)
        )
        start.callback_header[CALLBACK_TOKEN_HEADER] = encode_callback_token(call.token)
        start.payload.CopyFrom(call.scheduled)
        if call.link is not None:
            start.links.append(call.link)
        return request

    # ------------------------------------------------------------------ cancel
    async def cancel(self, task: Task) -> None:
        ops = self._side(task)
        call = await ops.load(task, for_cancel=True)
        if call is None:
            return
        info = call.info
        endpoint = self._endpoint(info)
        if endpoint is None:
            failure = outcomes.handler_error("NOT_FOUND", "endpoint not registered")
            await ops.record_cancel(task, Outcome(Kind.FAILED, failure=failure))
            return
        timeout_s = self.request_timeout(call.namespace, endpoint.spec.name)
        request = nexus_pb.Request(header={"request-timeout": format_timeout(timeout_s)}, endpoint=endpoint.spec.name)
        request.scheduled_time.CopyFrom(timestamp(time.time_ns()))
        cancel = request.cancel_operation
        cancel.service = info.service
        cancel.operation = info.operation
        cancel.operation_token = info.operation_token
        cancel.operation_id = info.operation_token
        started = time.monotonic()
        outcome = await self._send(endpoint, request, timeout_s, outcomes.cancel_outcome)
        self._observe(call, endpoint, "CancelOperation", outcome, started)
        await ops.record_cancel(task, outcome)

    # ------------------------------------------------------------------ shared
    def _endpoint(self, info: NexusOperationInfo) -> nexus_pb.Endpoint | None:
        # by id, then by name: an endpoint re-created under the same name still serves the call
        if info.endpoint_id:
            try:
                return self.endpoints.get(info.endpoint_id)
            except NotFound:
                pass
        return self.endpoints.find_by_name(info.endpoint)

    async def _held_back(self, ops: CallerSide, task: Task, endpoint_name: str, caller_namespace: str) -> bool:
        """Circuit breaker open or rate limit reached: the operation waits, attempt unspent."""
        # Rate limits first: a probe the breaker lets through must then really be sent.
        wait, reason, metric_reason = 0.0, "", ""
        for _ in range(SHORT_WAITS):
            wait, reason, metric_reason = self.machinery.rate_check(endpoint_name, caller_namespace)
            if not 0 < wait <= SHORT_WAIT_S:
                break
            await asyncio.sleep(wait)  # a short wait is cheaper in place than through a timer
        if wait <= 0:
            wait, reason = self.machinery.breaker(endpoint_name).allow(), BREAKER_OPEN
            metric_reason = reason
        if wait <= 0:
            return False
        log.info("Nexus call to %s held back for %.1fs: %s", endpoint_name, wait, reason)
        self.metrics.blocked(caller_namespace, endpoint_name, metric_reason)
        await ops.record_blocked(task, reason, wait)
        return True

    def _call_timeout(self, info: NexusOperationInfo, timeout: float) -> tuple[float, int]:
        """The request's timeout: `timeout`, or less when the operation's own timeouts come sooner."""
        timeout_type = TimeoutType.TIMEOUT_TYPE_UNSPECIFIED
        now = time.time_ns()
        scheduled = ts_ns(info.scheduled_time)
        for field, kind in (
            ("schedule_to_close_timeout", TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE),
            ("schedule_to_start_timeout", TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START),
        ):
            limit = duration_ns(getattr(info, field))
            if limit:
                remaining = (scheduled + limit - now) / 1e9
                if remaining < timeout:
                    timeout, timeout_type = remaining, kind
        return timeout, timeout_type

    async def _send(
        self,
        endpoint: nexus_pb.Endpoint,
        request: nexus_pb.Request,
        timeout_s: float,
        classify: Callable[..., Outcome],
    ) -> Outcome:
        target = endpoint.spec.target
        if target.HasField("worker"):
            namespace = self.namespaces.find(target.worker.namespace)
            if namespace is None:
                return Outcome(
                    Kind.FAILED,
                    failure=outcomes.handler_error("NOT_FOUND", f"namespace not found: {target.worker.namespace!r}"),
                    label="no-namespace",
                )
            if not self.namespaces.is_active(namespace):
                return await self._to_active_cluster(namespace, target.worker.task_queue, request, timeout_s)
            reply = await self.dispatcher.dispatch(namespace.id, target.worker.task_queue, request, timeout_s)
            return outcomes.upstream_timeout() if reply is None else classify(reply)
        if self.external is None:
            return Outcome(
                Kind.RETRY,
                failure=outcomes.handler_error("UNAVAILABLE", "external endpoints are not served"),
                destination_down=True,
                label="no-http-client",
            )
        return await self.external(endpoint, request, timeout_s)

    async def _to_active_cluster(
        self, namespace: Namespace, task_queue: str, request: nexus_pb.Request, timeout_s: float
    ) -> Outcome:
        """The handler namespace is standby here: the request goes to its active cluster, marked as forwarded
        (that cluster answers it or refuses it as inactive, and never sends it on: no loop while two clusters
        disagree). Failing to reach it is retried, as failing to reach any handler is."""
        try:
            base = cluster_base_url(self.namespaces.clusters, namespace.active_cluster)
        except ForwardingError as err:
            failure = outcomes.handler_error("UNAVAILABLE", str(err))
            return Outcome(Kind.RETRY, failure=failure, destination_down=True, label="no-cluster-address")
        if self.other_cluster is None:
            failure = outcomes.handler_error("UNAVAILABLE", "no HTTP client for other clusters")
            return Outcome(Kind.RETRY, failure=failure, destination_down=True, label="no-http-client")
        path = f"/namespaces/{quote(namespace.name, safe='')}/task-queues/{quote(task_queue, safe='')}/nexus-services"
        headers = dict(xdc.forwarded_headers(self.namespaces.clusters.name))
        # A refusal as inactive (the clusters disagree during a failover) is UNAVAILABLE: retried like any.
        return await self.other_cluster(base + path, request, timeout_s, headers)

    def _observe(self, call: _Call, endpoint: nexus_pb.Endpoint, method: str, outcome: Outcome, started: float) -> None:
        name = endpoint.spec.name
        breaker = self.machinery.breaker(name)
        breaker.record(not outcome.destination_down)
        self.metrics.request(
            call.namespace, name, method, outcome.label or outcome.kind.value, time.monotonic() - started
        )
        if outcome.kind == Kind.RETRY:
            log.info(
                "Nexus %s to %s (%s/%s, attempt %d) failed, will retry: %s",
                method,
                name,
                call.info.service,
                call.info.operation,
                call.info.attempt + 1,
                outcome.failure.message if outcome.failure else "",
            )
