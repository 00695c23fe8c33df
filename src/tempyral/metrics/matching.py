"""Matching's metrics, labelled as the reference's task queue manager labels them (one partition, unversioned)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from tempyral.metrics.families import Labels
from tempyral.metrics.server_metrics import UNKNOWN, ServerMetrics

TASK_TYPES = {1: "Workflow", 2: "Activity", 3: "Nexus"}  # matching/service.py WORKFLOW, ACTIVITY, NEXUS
DEFAULT_PRIORITY = "3"  # the reference's label for tasks without a priority


# A live queue: namespace id, name, task type, sticky, polls waiting, backlog size.
QueueRow = tuple[str, str, int, bool, int, int]


class MatchingMetrics:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics
        self._labels: dict[tuple[str, str, int, bool], Labels] = {}

    def labels(self, namespace_id: str, task_queue: str, task_type: int, sticky: bool) -> Labels:
        key = (namespace_id, task_queue, task_type, sticky)
        labels = self._labels.get(key)
        if labels is None:
            namespace = self.metrics.namespace_label_by_id(namespace_id)
            labels = (
                namespace,
                "active",
                "TaskQueueMgr",
                "__sticky__" if sticky else "0",
                "matching",
                TASK_TYPES.get(task_type, "Workflow"),
                self.metrics.task_queue_label(namespace, task_queue),
                "",
                "",
                "__unversioned__",
            )
            if namespace != UNKNOWN:  # a namespace registered later gets its name then
                self._labels[key] = labels
        return labels

    def polled(self, labels: Labels, sync: bool) -> None:
        self.metrics.poll_success.inc(labels)
        if sync:
            self.metrics.poll_success_sync.inc(labels)

    def timed_out(self, labels: Labels) -> None:
        self.metrics.poll_timeouts.inc(labels)

    def read_gauges(self, queues: Callable[[], Iterable[QueueRow]]) -> None:
        """pending_polls and approximate_backlog_count are read from matching's live queues at scrape time."""

        def pending() -> list[tuple[Labels, float]]:
            return [(self.labels(*row[:4]), float(row[4])) for row in queues()]

        def backlog() -> list[tuple[Labels, float]]:
            return [(_backlog_labels(self.labels(*row[:4])), float(row[5])) for row in queues()]

        self.metrics.pending_polls.read = pending
        self.metrics.approximate_backlog_count.read = backlog


def _backlog_labels(labels: Labels) -> Labels:
    # approximate_backlog_count has task_priority after service_name (label names sorted)
    return (*labels[:5], DEFAULT_PRIORITY, *labels[5:])
