"""Admission control: how much client work the frontend takes on at once.

Without it, a burst larger than the event loop can take in piles up inside the gRPC transport,
which cancels what does not fit (CANCELLED, which no client retries). Here the transport is told
to queue, and the frontend bounds what it works on by count and by bytes: a request over the
bound is refused at once with RESOURCE_EXHAUSTED, which the SDKs retry with backoff, so nothing
a client sent is lost and memory stays bounded. Long polls hold a slot for up to a minute and
are bounded by the workers polling, so they are not counted.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from temporalio.api.enums.v1 import ResourceExhaustedCause, ResourceExhaustedScope
from temporalio.api.errordetails.v1 import message_pb2 as errordetails

from tempyral.common.errors import ResourceExhausted

log = logging.getLogger(__name__)

# Methods that wait for something to happen rather than work: not counted.
LONG_POLLS = frozenset(
    {
        "PollWorkflowTaskQueue",
        "PollActivityTaskQueue",
        "PollNexusTaskQueue",
        "PollActivityExecution",  # a standalone activity's outcome
        "DescribeActivityExecution",  # with a long-poll token
        "PollWorkflowExecutionUpdate",
        "GetWorkflowExecutionHistory",  # with wait_new_event it is the SDK's result long poll
        "PollNexusOperationExecution",  # a standalone Nexus operation's result
    }
)
# Overload refusals are logged once when they begin, then as a count per interval, with reason=overloaded: a line
# per refused request would flood the log just when the server has the least time for it.
REFUSAL_LOG_INTERVAL_S = 10.0


@dataclass(frozen=True)
class AdmissionLimits:
    max_requests: int = 5000  # requests worked on at once
    max_bytes: int = 512 * 1024 * 1024  # their serialized size together


def rps_limit_error(message: str, scope: ResourceExhaustedScope.ValueType) -> ResourceExhausted:
    """The reference's answer when one of its rate limiters refuses a call: the same cause, its scope."""
    return ResourceExhausted(
        message,
        errordetails.ResourceExhaustedFailure(
            cause=ResourceExhaustedCause.RESOURCE_EXHAUSTED_CAUSE_RPS_LIMIT, scope=scope
        ),
    )


def overloaded_error() -> ResourceExhausted:
    """The service-wide limiter's refusal."""
    return rps_limit_error("service rate limit exceeded", ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_SYSTEM)


class Admission:
    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self.requests = 0
        self.bytes = 0
        self._refused = 0  # since the last log line
        self._flush: asyncio.TimerHandle | None = None

    def admit(self, method: str, size: int) -> bool:
        """Take on a request of `size` bytes, or refuse it (and say so in the log)."""
        if method in LONG_POLLS:
            return True
        if self.requests >= self.limits.max_requests or self.bytes + size > self.limits.max_bytes:
            if self._refused == 0 and self._flush is None:
                log.warning(
                    "overloaded: refusing requests with RESOURCE_EXHAUSTED (clients retry them); working on %d "
                    "requests of %d bytes (limits %d requests, %d bytes)",
                    self.requests,
                    self.bytes,
                    self.limits.max_requests,
                    self.limits.max_bytes,
                    extra={"fields": {"reason": "overloaded", "code": "RESOURCE_EXHAUSTED", "method": method}},
                )
                self._flush = asyncio.get_running_loop().call_later(REFUSAL_LOG_INTERVAL_S, self._log_refusals)
            self._refused += 1
            return False
        self.requests += 1
        self.bytes += size
        return True

    def release(self, method: str, size: int) -> None:
        if method in LONG_POLLS:
            return
        self.requests -= 1
        self.bytes -= size

    def _log_refusals(self) -> None:
        """One line per interval while refusals go on, not one per refused request."""
        self._flush = None
        if self._refused:
            log.warning(
                "overloaded: refused %d request(s) in the last %.0fs",
                self._refused,
                REFUSAL_LOG_INTERVAL_S,
                extra={"fields": {"reason": "overloaded", "code": "RESOURCE_EXHAUSTED", "refused": self._refused}},
            )
            self._refused = 0
            self._flush = asyncio.get_running_loop().call_later(REFUSAL_LOG_INTERVAL_S, self._log_refusals)
