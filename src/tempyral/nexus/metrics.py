"""Outbound Nexus requests and completion callbacks, recorded into the server's metrics (metrics/server_metrics.py).

The reference's names where it has them (`nexus_outbound_requests`, `nexus_outbound_latency`,
`callback_outbound_requests`); tempyral's own for what it has beyond them: `nexus_outbound_blocked` (calls held
back by a rate limit, the circuit breaker or the allowed callers), `nexus_circuit_breaker_open` (1 while a
destination's breaker is not closed) and `nexus_caller_rate_limit` (each per-caller limit in use); the last two are
read from the machinery at scrape time.
"""

from __future__ import annotations

from tempyral.metrics.families import Labels
from tempyral.metrics.server_metrics import ServerMetrics, sanitize
from tempyral.nexus.machinery import Machinery


class NexusMetrics:
    def __init__(self, metrics: ServerMetrics | None = None, machinery: Machinery | None = None) -> None:
        self.metrics = metrics if metrics is not None else ServerMetrics()
        if machinery is not None:
            self.watch(machinery)

    def watch(self, machinery: Machinery) -> None:
        def breakers() -> list[tuple[Labels, float]]:
            return [((sanitize(name),), float(b.state != "closed")) for name, b in sorted(machinery.breakers().items())]

        def caller_limits() -> list[tuple[Labels, float]]:
            return [
                ((sanitize(ep), sanitize(ns)), rate) for (ep, ns), rate in sorted(machinery.caller_limits().items())
            ]

        self.metrics.nexus_circuit_breaker_open.read = breakers
        self.metrics.nexus_caller_rate_limit.read = caller_limits

    def request(self, namespace: str, endpoint: str, method: str, outcome: str, seconds: float = 0.0) -> None:
        labels = (sanitize(endpoint), method, sanitize(namespace), outcome)
        self.metrics.nexus_outbound_requests.inc(labels)
        self.metrics.nexus_outbound_latency.observe(labels, seconds)

    def blocked(self, namespace: str, endpoint: str, reason: str) -> None:
        self.metrics.nexus_outbound_blocked.inc((sanitize(endpoint), sanitize(namespace), reason))

    def callback(self, namespace: str, outcome: str) -> None:
        self.metrics.callback_outbound_requests.inc((sanitize(namespace), outcome))

    def render(self) -> str:
        """The whole server's metrics, as Prometheus text (the HTTP port's /metrics serves them too)."""
        return self.metrics.render()
