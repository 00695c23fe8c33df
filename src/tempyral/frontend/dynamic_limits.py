"""Dynamic config on client calls: the namespace's blob size limits and its request rate.

A servicer wrapped here sets, for the length of each call, the blob limits of the call's namespace
(common/limits.py CALL_LIMITS, read by the size checks wherever they are), and refuses calls over the
namespace's `frontend.namespaceRPS` with the reference's RESOURCE_EXHAUSTED. Both the gRPC API and the HTTP
API call the wrapped servicer, so both see the same limits.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from temporalio.api.enums.v1 import ResourceExhaustedScope

from tempyral.common.dynamic_config import DynamicConfig
from tempyral.common.errors import ResourceExhausted
from tempyral.common.limits import CALL_LIMITS, CallLimits
from tempyral.common.logs import ThrottledLog
from tempyral.frontend import request_log
from tempyral.frontend.admission import LONG_POLLS, rps_limit_error

log = logging.getLogger(__name__)
REFUSAL_LOG_INTERVAL_S = 10.0


def namespace_rate_error() -> ResourceExhausted:
    """The reference's answer when a namespace's rate limiter refuses a call."""
    return rps_limit_error("namespace rate limit exceeded", ResourceExhaustedScope.RESOURCE_EXHAUSTED_SCOPE_NAMESPACE)


class _Bucket:
    """A token bucket whose rate and size follow the current configuration."""

    __slots__ = ("stamp", "tokens")

    def __init__(self, burst: float, now: float) -> None:
        self.tokens = burst
        self.stamp = now

    def take(self, rps: float, burst: float, now: float) -> bool:
        self.tokens = min(burst, self.tokens + (now - self.stamp) * rps)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class NamespaceRates:
    """`frontend.namespaceRPS` (with `frontend.namespaceBurstRatio`) per namespace; unset: unlimited (the
    reference's default is 2400, which tempyral leaves off rather than refuse what it used to accept). Long polls
    are not counted: they wait for work rather than make it (the reference makes them wait for a token)."""

    def __init__(self, config: DynamicConfig, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._refusals = ThrottledLog(log, REFUSAL_LOG_INTERVAL_S)  # per namespace

    def refused(self, namespace: str, method: str) -> None:
        """Say so in the log, at most once per interval and namespace: a flood of refusals must not flood it."""
        left_out = self._refusals.due(namespace)
        if left_out is None:
            return
        rps, _ = self.config.namespace_rps(namespace)
        more = f"; {left_out} more refused since the last report" if left_out else ""
        request_log.refused(
            method, namespace, "RESOURCE_EXHAUSTED", f"namespace rate limit exceeded ({rps} per second{more})"
        )

    def admit(self, namespace: str, method: str) -> bool:
        if not namespace or method in LONG_POLLS:
            return True
        rps, ratio = self.config.namespace_rps(namespace)
        if rps is None:
            return True
        if rps <= 0:
            return False  # as the reference: a rate of 0 refuses every call
        burst = max(1.0, rps * max(ratio, 1.0))  # the reference keeps the ratio at 1 or more
        now = self._clock()
        bucket = self._buckets.get(namespace)
        if bucket is None:
            bucket = self._buckets[namespace] = _Bucket(burst, now)
        return bucket.take(float(rps), burst, now)


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


class DynamicLimits:
    """Wraps a servicer: each method runs with its namespace's limits (see the module's doc)."""

    def __init__(self, impl: object, config: DynamicConfig, rates: NamespaceRates) -> None:
        self._impl = impl
        self._config = config
        self._rates = rates

    def __getattr__(self, name: str) -> Any:
        fn = getattr(self._impl, name)
        if name.startswith("_") or not callable(fn):
            return fn
        method = _camel(name)
        config, rates = self._config, self._rates

        async def limited(request: Any, context: Any) -> Any:
            namespace = getattr(request, "namespace", "")
            namespace = namespace if isinstance(namespace, str) else ""
            if not rates.admit(namespace, method):
                rates.refused(namespace, method)
                raise namespace_rate_error()
            token = CALL_LIMITS.set(
                CallLimits(
                    config.blob_size_error(namespace),
                    config.blob_size_warn(namespace),
                    namespace,
                    config.max_id_length(),
                    *config.min_retention_s(),
                )
            )
            try:
                return await fn(request, context)
            finally:
                CALL_LIMITS.reset(token)

        wrapped: Callable[[Any, Any], Awaitable[Any]] = limited
        setattr(self, name, wrapped)  # made once per method
        return wrapped
