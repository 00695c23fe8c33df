"""Counters of outbound Nexus requests, in the Prometheus text format (served on /metrics)."""

from __future__ import annotations

from collections import Counter

from tempyral.nexus.machinery import Machinery


class NexusMetrics:
    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, str, str]] = Counter()
        self.latency_s: dict[tuple[str, str, str], float] = {}
        self.blocks: Counter[tuple[str, str, str]] = Counter()
        self.callbacks: Counter[tuple[str, str]] = Counter()

    def request(self, namespace: str, endpoint: str, method: str, outcome: str, seconds: float = 0.0) -> None:
        self.requests[(namespace, endpoint, method, outcome)] += 1
        key = (namespace, endpoint, method)
        self.latency_s[key] = self.latency_s.get(key, 0.0) + seconds

    def blocked(self, namespace: str, endpoint: str, reason: str) -> None:
        self.blocks[(namespace, endpoint, reason)] += 1

    def callback(self, namespace: str, outcome: str) -> None:
        self.callbacks[(namespace, outcome)] += 1

    def render(self, machinery: Machinery) -> str:
        lines = ["# TYPE nexus_outbound_requests_total counter"]
        for (ns, ep, method, outcome), n in sorted(self.requests.items()):
            lines.append(
                f'nexus_outbound_requests_total{{namespace="{ns}",destination="{ep}",method="{method}",'
                f'outcome="{outcome}"}} {n}'
            )
        lines.append("# TYPE nexus_outbound_request_seconds_total counter")
        for (ns, ep, method), secs in sorted(self.latency_s.items()):
            labels = f'namespace="{ns}",destination="{ep}",method="{method}"'
            lines.append(f"nexus_outbound_request_seconds_total{{{labels}}} {secs:.6f}")
        lines.append("# TYPE nexus_outbound_blocked_total counter")
        for (ns, ep, reason), n in sorted(self.blocks.items()):
            lines.append(f'nexus_outbound_blocked_total{{namespace="{ns}",destination="{ep}",reason="{reason}"}} {n}')
        lines.append("# TYPE nexus_callbacks_total counter")
        for (ns, outcome), n in sorted(self.callbacks.items()):
            lines.append(f'nexus_callbacks_total{{namespace="{ns}",outcome="{outcome}"}} {n}')
        lines.append("# TYPE nexus_circuit_breaker_open gauge")
        for name, breaker in sorted(machinery.breakers().items()):
            lines.append(f'nexus_circuit_breaker_open{{destination="{name}"}} {int(breaker.state != "closed")}')
        return "\n".join(lines) + "\n"
