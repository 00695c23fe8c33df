"""One log line per client request (debug) and per refused request (warning), with structured fields.

`done` is called by the frontend for every gRPC and HTTP API call; `refused` by whatever turns a request away
(overload, authorization) with the reason, so an operator sees why a client was refused.
"""

from __future__ import annotations

import logging

log = logging.getLogger("tempyral.requests")


def done(method: str, namespace: str, code: str, latency_s: float, transport: str = "grpc") -> None:
    if log.isEnabledFor(logging.DEBUG):  # the common case costs one check
        log.debug(
            "request %s %s",
            method,
            code,
            extra={
                "fields": {
                    "method": method,
                    "namespace": namespace,
                    "code": code,
                    "latency_ms": round(latency_s * 1000, 3),
                    "transport": transport,
                }
            },
        )


def refused(method: str, namespace: str, code: str, reason: str) -> None:
    """A request refused before it reached the service: say which, to whom, with what status, and why."""
    log.warning(
        "request refused: %s%s: %s",
        method,
        f" on namespace {namespace!r}" if namespace else "",
        reason,
        extra={"fields": {"method": method, "namespace": namespace, "code": code, "reason": reason}},
    )
