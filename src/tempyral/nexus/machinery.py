"""What keeps outbound Nexus calls well-behaved: backoff between attempts, a circuit breaker per
destination and rate limits per endpoint and per caller namespace. State lives in memory: after
a restart every breaker starts closed and every bucket full, which only ever lets a call through
that would otherwise have waited."""

from __future__ import annotations

import logging
import time

from tempyral.common.retry import jittered_backoff_s
from tempyral.config import NexusLimits

log = logging.getLogger(__name__)


def backoff_s(limits: NexusLimits, attempt: int) -> float:
    """The wait before the next attempt after `attempt` failed ones, with jitter."""
    return jittered_backoff_s(
        attempt, limits.retry_initial_s, limits.retry_max_s, limits.retry_coefficient, limits.retry_jitter
    )


class CircuitBreaker:
    """Closed → open after more than `failures` consecutive failures → half-open after `open_s`
    (one probe goes through) → closed on a success, open again on a failure."""

    def __init__(self, destination: str, failures: int, open_s: float) -> None:
        self.destination = destination
        self.failures = failures
        self.open_s = open_s
        self.consecutive = 0
        self.opened_at = 0.0
        self.probing = False
        self.probe_started = 0.0

    @property
    def state(self) -> str:
        if self.opened_at == 0.0:
            return "closed"
        if time.monotonic() - self.opened_at >= self.open_s:
            return "half-open"
        return "open"

    def allow(self) -> float:
        """0: go ahead. Otherwise the number of seconds until a call may be tried."""
        state = self.state
        if state == "closed":
            return 0.0
        now = time.monotonic()
        # A probe whose verdict never came (its call was never made) does not hold the breaker forever.
        if state == "half-open" and (not self.probing or now - self.probe_started > self.open_s):
            self.probing = True
            self.probe_started = now
            return 0.0
        if state == "half-open":
            return 1.0  # a probe is out: wait for its verdict
        return self.opened_at + self.open_s - time.monotonic()

    def record(self, ok: bool) -> None:
        if ok:
            if self.opened_at:
                log.info("circuit breaker for %s closed", self.destination)
            self.consecutive = 0
            self.opened_at = 0.0
            self.probing = False
            return
        self.consecutive += 1
        if self.probing or (self.opened_at == 0.0 and self.consecutive > self.failures):
            log.warning(
                "circuit breaker for %s opened after %d consecutive failures; next probe in %.0fs",
                self.destination,
                self.consecutive,
                self.open_s,
            )
            self.opened_at = time.monotonic()
            self.probing = False


class TokenBucket:
    """`rate` requests per second with bursts of up to one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def reserve(self) -> float:
        """Take a token: 0 if one was there, else the seconds until one is (nothing taken)."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class Machinery:
    def __init__(self, limits: NexusLimits) -> None:
        self.limits = limits
        self._breakers: dict[str, CircuitBreaker] = {}
        self._endpoint_buckets: dict[str, TokenBucket] = {}
        self._namespace_buckets: dict[str, TokenBucket] = {}

    def breaker(self, destination: str) -> CircuitBreaker:
        breaker = self._breakers.get(destination)
        if breaker is None:
            breaker = self._breakers[destination] = CircuitBreaker(
                destination, self.limits.breaker_failures, self.limits.breaker_open_s
            )
        return breaker

    def breakers(self) -> dict[str, CircuitBreaker]:
        return dict(self._breakers)

    def rate_delay(self, endpoint: str, caller_namespace: str) -> tuple[float, str]:
        """0 if a call may go now, else how long to wait and why."""
        if self.limits.endpoint_rps > 0:
            bucket = self._endpoint_buckets.setdefault(endpoint, TokenBucket(self.limits.endpoint_rps))
            delay = bucket.reserve()
            if delay > 0:
                return delay, f"The endpoint {endpoint} is over its rate limit."
        if self.limits.namespace_rps > 0:
            bucket = self._namespace_buckets.setdefault(caller_namespace, TokenBucket(self.limits.namespace_rps))
            delay = bucket.reserve()
            if delay > 0:
                return delay, f"The namespace {caller_namespace} is over its Nexus rate limit."
        return 0.0, ""

    def allowed(self, endpoint: str, caller_namespace: str) -> bool:
        allowed = self.limits.allowed_callers.get(endpoint)
        return allowed is None or caller_namespace in allowed
