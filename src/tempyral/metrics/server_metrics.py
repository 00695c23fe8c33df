"""The metrics of one server: its CollectorRegistry and every family, named and labelled as the reference's.

One `ServerMetrics` per `Server` (several servers may share a test process); components get it, or the part of it
they record into, passed in. Label values that come from callers are bounded: a namespace the server does not have
is written as `_unknown_` (as the reference writes calls it cannot place), and task queue and workflow type names
are taken only for namespaces the server has, up to `MAX_TASK_QUEUES` (`MAX_WORKFLOW_TYPES`) of them, beyond which
they are `_overflow_`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector

from tempyral.metrics.families import Counter, FamilyCollector, Gauge, Histogram, render

UNKNOWN = "_unknown_"  # the reference's value for a namespace it cannot place
OVERFLOW = "_overflow_"
MAX_TASK_QUEUES = 2000
MAX_WORKFLOW_TYPES = 2000

SERVICE = ("namespace", "operation", "service_name")
ERROR = ("error_type", "namespace", "operation", "service_name")
TASK = ("archetype", "namespace", "operation", "service_name", "task_priority", "task_type")
TASK_PROCESSING = ("archetype", "namespace", "operation", "service_name", "task_type")
TASK_QUEUE = ("archetype", "namespace", "operation", "queue_reader_id", "service_name", "task_priority", "task_type")
POLL = (
    "namespace", "namespace_state", "operation", "partition", "service_name", "task_type", "taskqueue",
    "worker_build_id", "worker_deployment_name", "worker_version",
)  # fmt: skip
BACKLOG = (
    "namespace", "namespace_state", "operation", "partition", "service_name", "task_priority", "task_type",
    "taskqueue", "worker_build_id", "worker_deployment_name", "worker_version",
)  # fmt: skip
WORKFLOW = ("namespace", "namespace_state", "operation", "service_name", "taskqueue", "workflowType")
NEXUS = ("destination", "method", "namespace", "outcome")

WORKFLOW_OUTCOMES = (
    "workflow_success",
    "workflow_failed",
    "workflow_timeout",
    "workflow_terminate",
    "workflow_cancel",
    "workflow_continued_as_new",
)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        # Whether a namespace name is one of the server's (set by the server once its registry exists).
        self.known_namespace: Callable[[str], bool] = lambda name: False
        self.namespace_name: Callable[[str], str | None] = lambda namespace_id: None
        self._namespaces: dict[str, str] = {}
        self._task_queues: dict[tuple[str, str], str] = {}
        self._workflow_types: dict[tuple[str, str], str] = {}
        # frontend
        self.service_requests = Counter("service_requests", SERVICE)
        self.service_errors = Counter("service_errors", SERVICE)
        self.service_error_with_type = Counter("service_error_with_type", ERROR)
        self.service_latency = Histogram("service_latency", SERVICE)
        # persistence
        self.persistence_requests = Counter("persistence_requests", SERVICE)
        self.persistence_errors = Counter("persistence_errors", SERVICE)
        self.persistence_error_with_type = Counter("persistence_error_with_type", ERROR)
        self.persistence_latency = Histogram("persistence_latency", SERVICE)
        # history task queues (transfer, timer, outbound)
        self.task_requests = Counter("task_requests", TASK)
        self.task_errors = Counter("task_errors", TASK)
        self.task_latency = Histogram("task_latency", TASK)
        self.task_latency_processing = Histogram("task_latency_processing", TASK_PROCESSING)
        self.task_latency_queue = Histogram("task_latency_queue", TASK_QUEUE)
        # matching
        self.poll_success = Counter("poll_success", POLL)
        self.poll_success_sync = Counter("poll_success_sync", POLL)
        self.poll_timeouts = Counter("poll_timeouts", POLL)
        self.pending_polls = Gauge("pending_polls", POLL)
        self.approximate_backlog_count = Gauge("approximate_backlog_count", BACKLOG)
        # workflow outcomes
        self.workflow_outcomes = {name: Counter(name, WORKFLOW) for name in WORKFLOW_OUTCOMES}
        # Nexus outbound requests and completion callbacks (the reference's names), and tempyral's own
        self.nexus_outbound_requests = Counter("nexus_outbound_requests", NEXUS)
        self.nexus_outbound_latency = Histogram("nexus_outbound_latency", NEXUS)
        self.nexus_outbound_blocked = Counter("nexus_outbound_blocked", ("destination", "namespace", "reason"))
        self.nexus_circuit_breaker_open = Gauge("nexus_circuit_breaker_open", ("destination",))
        self.nexus_caller_rate_limit = Gauge("nexus_caller_rate_limit", ("destination", "namespace"))
        self.callback_outbound_requests = Counter("callback_outbound_requests", ("namespace", "outcome"))
        # the process
        self.event_loop_lag = Gauge("event_loop_lag_seconds", ())
        self.families = [
            self.service_requests,
            self.service_errors,
            self.service_error_with_type,
            self.service_latency,
            self.persistence_requests,
            self.persistence_errors,
            self.persistence_error_with_type,
            self.persistence_latency,
            self.task_requests,
            self.task_errors,
            self.task_latency,
            self.task_latency_processing,
            self.task_latency_queue,
            self.poll_success,
            self.poll_success_sync,
            self.poll_timeouts,
            self.pending_polls,
            self.approximate_backlog_count,
            *self.workflow_outcomes.values(),
            self.nexus_outbound_requests,
            self.nexus_outbound_latency,
            self.nexus_outbound_blocked,
            self.nexus_circuit_breaker_open,
            self.nexus_caller_rate_limit,
            self.callback_outbound_requests,
            self.event_loop_lag,
        ]
        self.registry.register(FamilyCollector(self.families))
        self.process = ProcessCollector(registry=self.registry)
        # More Prometheus text, written by their owners (history replication's gauges and counters).
        self.more_text: list[Callable[[], str]] = []
        self.replication_names = REPLICATION_METRICS

    # ------------------------------------------------------------------ labels
    def namespace_label(self, name: str) -> str:
        label = self._namespaces.get(name)
        if label is None:
            if not (name and self.known_namespace(name)):
                return UNKNOWN
            label = self._namespaces[name] = sanitize(name)
        return label

    def namespace_label_by_id(self, namespace_id: str) -> str:
        name = self.namespace_name(namespace_id)
        return self.namespace_label(name) if name else UNKNOWN

    def task_queue_label(self, namespace: str, task_queue: str) -> str:
        return self._bounded(self._task_queues, MAX_TASK_QUEUES, namespace, task_queue)

    def workflow_type_label(self, namespace: str, workflow_type: str) -> str:
        return self._bounded(self._workflow_types, MAX_WORKFLOW_TYPES, namespace, workflow_type)

    @staticmethod
    def _bounded(seen: dict[tuple[str, str], str], limit: int, namespace: str, value: str) -> str:
        label = seen.get((namespace, value))
        if label is not None:
            return label
        if namespace == UNKNOWN or len(seen) >= limit:
            return OVERFLOW
        label = seen[(namespace, value)] = sanitize(value)
        return label

    # ------------------------------------------------------------------ exposition
    def render(self) -> str:
        return render(self.registry.collect()) + "".join(more() for more in self.more_text)

    def names(self) -> list[str]:
        """Every metric family name the server exposes (the README lists them)."""
        own = [f.name for f in self.families]
        process = [m.name + ("_total" if m.type == "counter" else "") for m in self.process.collect()]
        return sorted({*own, *process, *self.replication_names})


_NOT_IN_LABELS = re.compile(r"[^A-Za-z0-9_]")


def sanitize(value: str) -> str:
    """A label value as the reference's Prometheus reporter writes it: other characters than letters, digits and
    `_` become `_` (its `temporal-system` is `temporal_system`), so a dashboard's filters match on both servers."""
    return _NOT_IN_LABELS.sub("_", value)


# The replication families cluster/status.py writes (its text is appended as written).
REPLICATION_METRICS = (
    "replication_latency",
    "replication_tasks_applied",
    "replication_tasks_failed",
    "replication_tasks_skipped",
    "replication_tasks_lag",
    "replication_lag_seconds",
    "replication_task_send_backlog",
    "replication_dlq_size",
    "replication_last_applied_task_id",
)


async def measure_loop_lag(gauge: Gauge, interval_s: float = 0.5) -> None:
    """How late the event loop runs a callback due now: the wait every request meets before it is looked at."""
    loop = asyncio.get_running_loop()
    while True:
        t0 = loop.time()
        await asyncio.sleep(interval_s)
        gauge.set((), max(0.0, loop.time() - t0 - interval_s))
