"""Outbound Nexus over HTTP: start and cancel requests of caller workflows to endpoints with an
external (URL) target, and completions of handler workflows to callback URLs that are not
`temporal://system`. One aiohttp session per server, opened at start and closed at stop.

An answer becomes an Outcome the way the reference's HTTP client reads it: 200 succeeded,
201 started, 424 failed or canceled, handler errors by status code (non-retryable ones fail the
operation, the others and transport errors are retried and count against the destination).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import quote

import aiohttp
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.common import tls
from tempyral.nexus import http_wire as wire
from tempyral.nexus import links as nexus_links
from tempyral.nexus import outcomes
from tempyral.nexus.addresses import AddressRefused, OutboundAddresses
from tempyral.nexus.callbacks import Completion, DeliveryError
from tempyral.nexus.outcomes import Kind, Outcome

log = logging.getLogger(__name__)
USER_AGENT = "tempyral"


class NexusHttpClient:
    def __init__(self, callback_timeout_s: float, addresses: OutboundAddresses) -> None:
        self.callback_timeout_s = callback_timeout_s
        # Checked again right before each request: what was stored under an older configuration
        # (an endpoint, a run's callbacks) must not be called once the configuration no longer allows it.
        self.addresses = addresses
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(headers={"User-Agent": USER_AGENT})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the Nexus HTTP client is not started")
        return self._session

    # ------------------------------------------------------------------ operations (invoker.external)
    async def call(self, endpoint: nexus_pb.Endpoint, request: nexus_pb.Request, timeout_s: float) -> Outcome:
        try:
            self.addresses.check_endpoint(endpoint.spec.target.external.url)
        except AddressRefused as err:
            log.warning("Nexus call to endpoint %s refused: %s", endpoint.spec.name, err)
            return Outcome(
                Kind.FAILED, failure=outcomes.handler_error("UNAUTHORIZED", str(err)), label="address-refused"
            )
        url = endpoint.spec.target.external.url.rstrip("/")
        return await self._call(url, request, timeout_s, {}, self._tls(url, False))

    async def call_cluster(
        self, base: str, request: nexus_pb.Request, timeout_s: float, headers: dict[str, str]
    ) -> Outcome:
        """A request for a namespace active on another cluster, to `base` (that cluster's
        `.../nexus-services` URL, from cluster metadata: no address rule applies) with `headers` added."""
        return await self._call(base, request, timeout_s, headers, self._tls(base, True))

    def _tls(self, url: str, to_cluster: bool) -> dict[str, Any]:
        """aiohttp's TLS arguments: another cluster's HTTP API, or this server's own, is verified as the outbound
        TLS settings say (common/tls.py); any other URL as aiohttp does by default."""
        own = self.addresses.own_base_url
        if to_cluster or (own and url.startswith(own + "/")):
            return {"ssl": tls.cluster_ssl(), "server_hostname": tls.cluster_server_hostname()}
        return {}

    async def _call(
        self, base: str, request: nexus_pb.Request, timeout_s: float, extra: dict[str, str], tls_args: dict[str, Any]
    ) -> Outcome:
        variant = request.WhichOneof("variant")
        if variant == "start_operation":
            return await self._start(base, request, timeout_s, extra, tls_args)
        if variant == "cancel_operation":
            return await self._cancel(base, request, timeout_s, extra, tls_args)
        failure = outcomes.handler_error("BAD_REQUEST", "unknown request")
        return Outcome(Kind.FAILED, failure=failure, label="bad-request")

    async def _start(
        self, base: str, request: nexus_pb.Request, timeout_s: float, extra: dict[str, str], tls_args: dict[str, Any]
    ) -> Outcome:
        start = request.start_operation
        headers = _request_headers(request, timeout_s) | extra
        headers[wire.REQUEST_ID] = start.request_id
        for key, value in start.callback_header.items():
            headers[wire.CALLBACK_PREFIX + key.lower()] = value
        content_type, body = wire.payload_to_body(start.payload if start.HasField("payload") else None)
        if content_type:
            headers["content-type"] = content_type
        link_values = [wire.format_link(link) for link in start.links]
        url = f"{base}/{quote(start.service, safe='')}/{quote(start.operation, safe='')}"
        params = {wire.CALLBACK_QUERY: start.callback} if start.callback else None
        try:
            async with self.session.post(
                url,
                data=body,
                headers=_with_links(headers, link_values),
                params=params,
                timeout=aiohttp.ClientTimeout(total=timeout_s),
                **tls_args,
            ) as resp:
                data = await resp.read()
                return _start_outcome(resp, data)
        except (aiohttp.ClientError, TimeoutError) as err:
            return _transport_failure(err)

    async def _cancel(
        self, base: str, request: nexus_pb.Request, timeout_s: float, extra: dict[str, str], tls_args: dict[str, Any]
    ) -> Outcome:
        cancel = request.cancel_operation
        headers = _request_headers(request, timeout_s) | extra
        headers[wire.OPERATION_TOKEN] = cancel.operation_token or cancel.operation_id
        url = f"{base}/{quote(cancel.service, safe='')}/{quote(cancel.operation, safe='')}/cancel"
        try:
            async with self.session.post(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout_s), **tls_args
            ) as resp:
                data = await resp.read()
                if 200 <= resp.status < 300:
                    return Outcome(Kind.SUCCEEDED, label="successful")
                return _error_outcome(resp, data)
        except (aiohttp.ClientError, TimeoutError) as err:
            return _transport_failure(err)

    # ------------------------------------------------------------------ completions (callbacks.external)
    async def deliver(self, url: str, done: Completion) -> None:
        try:
            self.addresses.check_callback(url)
        except AddressRefused as err:
            log.warning("completion callback refused: %s", err)
            raise DeliveryError(str(err), retryable=False) from err
        await self._deliver(url, done, {}, self._tls(url, False))

    async def deliver_to_cluster(self, url: str, done: Completion, headers: dict[str, str]) -> None:
        """A completion for a caller namespace active on another cluster, to that cluster's callback URL (from
        cluster metadata: no address rule applies), with `headers` added."""
        await self._deliver(url, done, headers, self._tls(url, True))

    async def _deliver(self, url: str, done: Completion, extra: dict[str, str], tls_args: dict[str, Any]) -> None:
        # the callback headers the caller gave, as they were (already lowercase)
        headers = dict(done.headers) | extra
        headers[wire.OPERATION_TOKEN] = done.operation_token
        headers[wire.OPERATION_START_TIME] = wire.format_http_time(done.start_time_ns)
        headers[wire.OPERATION_CLOSE_TIME] = wire.format_rfc3339(done.close_time_ns or time.time_ns())
        link_values = []
        if done.start_link.HasField("workflow_event"):
            link_values.append(wire.format_link(nexus_links.workflow_event_to_nexus(done.start_link.workflow_event)))
        if done.failure is None:
            headers[wire.OPERATION_STATE] = "succeeded"
            content_type, body = wire.payload_to_body(done.result)
            if content_type:
                headers["content-type"] = content_type
        else:
            headers[wire.OPERATION_STATE] = "canceled" if done.canceled else "failed"
            headers["content-type"] = "application/json"
            # The cause alone, as the reference sends it: the state is in the header.
            body = wire.dumps(wire.temporal_to_json(done.failure))
        try:
            async with self.session.post(
                url,
                data=body,
                headers=_with_links(headers, link_values),
                timeout=aiohttp.ClientTimeout(total=self.callback_timeout_s),
                **tls_args,
            ) as resp:
                data = await resp.read()
                if 200 <= resp.status < 300:
                    return
                message = f"callback to {url} answered {resp.status}: {_message(data)}"
                raise DeliveryError(message, retryable=resp.status >= 500 or resp.status in (408, 429))
        except (aiohttp.ClientError, TimeoutError) as err:
            raise DeliveryError(f"callback to {url} failed: {err!r}", retryable=True) from err


# ---------------------------------------------------------------------- answers → outcomes
def _request_headers(request: nexus_pb.Request, timeout_s: float) -> dict[str, str]:
    # Nexus headers are lowercase; keeping ours lowercase too means none is sent twice.
    headers = {key.lower(): value for key, value in request.header.items()}
    headers[wire.REQUEST_TIMEOUT] = wire.format_duration(timeout_s)
    return headers


def _with_links(headers: dict[str, str], link_values: list[str]) -> list[tuple[str, str]]:
    return [*headers.items(), *((wire.LINK, value) for value in link_values)]


def _message(data: bytes) -> str:
    try:
        value = json.loads(data)
    except ValueError:
        return data[:200].decode(errors="replace")
    return str(value.get("message", "")) if isinstance(value, dict) else ""


def _transport_failure(err: BaseException) -> Outcome:
    if isinstance(err, TimeoutError | asyncio.TimeoutError):
        failure = outcomes.handler_error("UPSTREAM_TIMEOUT", "upstream timeout")
        label = "request-timeout"
    else:
        failure = outcomes.handler_error("UNAVAILABLE", f"request failed: {err}")
        label = "connection-error"
    return Outcome(Kind.RETRY, failure=failure, destination_down=True, label=label)


def _links(resp: aiohttp.ClientResponse) -> list[common.Link]:
    try:
        links = wire.parse_links(resp.headers.getall("Nexus-Link", []))
    except ValueError:
        return []  # links are for observability: a bad one does not fail the operation
    return nexus_links.to_temporal_links(links)


def _start_outcome(resp: aiohttp.ClientResponse, data: bytes) -> Outcome:
    if resp.status == 200:
        try:
            payload = wire.body_to_payload(resp.headers.get("Content-Type"), data)
        except ValueError:
            failure = outcomes.handler_error("INTERNAL", "invalid result content in the handler's answer")
            return Outcome(Kind.RETRY, failure=failure, destination_down=True, label="bad-response")
        return Outcome(Kind.SUCCEEDED, result=payload, links=_links(resp), label="sync-success")
    if resp.status == 201:
        try:
            info = json.loads(data)
            token = info["token"] if isinstance(info, dict) else ""
        except (ValueError, KeyError):
            token = ""
        if not isinstance(token, str) or not token:
            failure = outcomes.handler_error("BAD_REQUEST", "invalid operation token: empty")
            return Outcome(Kind.FAILED, failure=failure, label="bad-token")
        if len(token) > outcomes.MAX_OPERATION_TOKEN_LENGTH:
            failure = failure_pb.Failure(message="invalid operation token: length exceeds allowed limit")
            failure.application_failure_info.type = "CallError"
            failure.application_failure_info.non_retryable = True
            return Outcome(Kind.FAILED, failure=failure, label="invalid-operation-token")
        return Outcome(Kind.STARTED, token=token, links=_links(resp), label="async-success")
    if resp.status == 424:
        return _unsuccessful(resp, data)
    return _error_outcome(resp, data)


def _unsuccessful(resp: aiohttp.ClientResponse, data: bytes) -> Outcome:
    """424: the operation failed or was canceled; the body says why."""
    try:
        failure_json = wire.parse_failure(data)
        state = wire.operation_state(failure_json) or resp.headers.get("Nexus-Operation-State", "failed")
        cause = wire.json_to_temporal(wire.unwrap(failure_json))
    except ValueError:
        state = resp.headers.get("Nexus-Operation-State", "failed")
        cause = failure_pb.Failure(message=_message(data) or "operation failed")
    if state == "canceled":
        if cause.WhichOneof("failure_info") is None:
            cause.canceled_failure_info.SetInParent()
        return Outcome(Kind.CANCELED, failure=cause, label="operation-error")
    if cause.WhichOneof("failure_info") is None:
        cause.application_failure_info.type = "OperationError"
        cause.application_failure_info.non_retryable = True
    return Outcome(Kind.FAILED, failure=cause, label="operation-error")


def _error_outcome(resp: aiohttp.ClientResponse, data: bytes) -> Outcome:
    """A handler error: the failure body if it is one, else the status code says which."""
    failure: failure_pb.Failure | None = None
    if wire.is_json(resp.headers.get("Content-Type")):
        try:
            parsed = wire.json_to_temporal(wire.parse_failure(data))
            if parsed.HasField("nexus_handler_failure_info") and parsed.nexus_handler_failure_info.type:
                failure = parsed
        except ValueError:
            pass
    if failure is None:
        error_type = wire.HANDLER_ERROR_BY_STATUS.get(resp.status)
        if error_type is None:
            error_type = "INTERNAL" if resp.status >= 500 else "BAD_REQUEST"
        failure = outcomes.handler_error(error_type, _message(data) or f"handler answered {resp.status}")
        retryable = resp.headers.get("Nexus-Request-Retryable", "").lower()
        if retryable in ("true", "false"):
            behavior = outcomes.RetryBehavior
            failure.nexus_handler_failure_info.retry_behavior = (
                behavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE
                if retryable == "true"
                else behavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE
            )
    return outcomes.handler_error_outcome(failure, "handler-error")
