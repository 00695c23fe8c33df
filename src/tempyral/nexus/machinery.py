"""What keeps outbound Nexus calls well-behaved: backoff between attempts, a circuit breaker per
destination and rate limits per endpoint, per caller namespace and per (endpoint, caller namespace) pair.
State lives in memory: after
a restart every breaker starts closed and every bucket full, which only ever lets a call through
that would otherwise have waited."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from tempyral.common.retry import jittered_backoff_s
from tempyral.config import NexusLimits

log = logging.getLogger(__name__)

# The rate limit of one (endpoint, caller namespace) pair, looked up on every call (so a new value applies at once):
# requests per second, 0 for none.
CallerRps = Callable[[str, str], float]
# At most this many pair buckets are kept: beyond, the least recently used goes (it then starts full again, which
# only ever lets a call through early). Idle ones go sooner: a full bucket is no different from a new one.
MAX_PAIR_BUCKETS = 10_000
CALLER_RATE_LIMIT = "caller_rate_limit"  # the metric reason of a call held back by its pair's limit


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

    def idle(self, now: float) -> bool:
        """Full again by now: dropping it changes nothing."""
        return self.tokens + (now - self.updated) * self.rate >= self.capacity


class RateVerdict(NamedTuple):
    delay_s: float  # 0: the call may go now
    message: str  # why it waits (shown as the operation's blocked reason)
    metric_reason: str  # the `reason` of nexus_outbound_blocked_total


class Machinery:
    def __init__(self, limits: NexusLimits, caller_rps: CallerRps | None = None) -> None:
        self.limits = limits
        # Per (endpoint, caller namespace); until dynamic config provides it, --nexus-caller-rps does.
        self.caller_rps: CallerRps = caller_rps or (lambda endpoint, ns: limits.caller_rps.get((endpoint, ns), 0.0))
        self._breakers: dict[str, CircuitBreaker] = {}
        self._endpoint_buckets: dict[str, TokenBucket] = {}
        self._namespace_buckets: dict[str, TokenBucket] = {}
        self._pair_buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()
        self._next_sweep = 0.0

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
        verdict = self.rate_check(endpoint, caller_namespace)
        return verdict.delay_s, verdict.message

    def rate_check(self, endpoint: str, caller_namespace: str) -> RateVerdict:
        # The pair's own limit first: a caller over it takes no token from the endpoint's or its namespace's
        # budget, which the other callers share.
        delay = self._pair_delay(endpoint, caller_namespace)
        if delay > 0:
            message = f"The namespace {caller_namespace} is over its Nexus rate limit for the endpoint {endpoint}."
            return RateVerdict(delay, message, CALLER_RATE_LIMIT)
        delay, message = self._shared_delay(endpoint, caller_namespace)
        # The shared limits keep the message as their metric reason, as they always have.
        return RateVerdict(delay, message, message)

    def _pair_delay(self, endpoint: str, caller_namespace: str) -> float:
        rate = self.caller_rps(endpoint, caller_namespace)
        key = (endpoint, caller_namespace)
        now = time.monotonic()
        if now >= self._next_sweep:
            self._sweep(now)
        if rate <= 0:
            self._pair_buckets.pop(key, None)
            return 0.0
        bucket = self._pair_buckets.get(key)
        if bucket is None or bucket.rate != rate:  # a changed limit starts a bucket of its own size
            bucket = self._pair_buckets[key] = TokenBucket(rate)
            while len(self._pair_buckets) > MAX_PAIR_BUCKETS:
                self._pair_buckets.popitem(last=False)
        self._pair_buckets.move_to_end(key)
        return bucket.reserve()

    def _sweep(self, now: float) -> None:
        """Drop the pair buckets that have filled up again (about once a second)."""
        self._next_sweep = now + 1.0
        for key in [k for k, b in self._pair_buckets.items() if b.idle(now)]:
            del self._pair_buckets[key]

    def caller_limits(self) -> dict[tuple[str, str], float]:
        """The limits the metrics show: of the pairs configured by flag, and of those with calls in the last
        moments (a limit from a rule the callable knows shows while its pair is busy)."""
        limits = {key: bucket.rate for key, bucket in self._pair_buckets.items()}
        for endpoint, ns in self.limits.caller_rps:
            limits[(endpoint, ns)] = self.caller_rps(endpoint, ns)
        return {key: rate for key, rate in limits.items() if rate > 0}

    def _shared_delay(self, endpoint: str, caller_namespace: str) -> tuple[float, str]:
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
