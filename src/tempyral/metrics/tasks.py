"""Metrics of the history task queues (transfer, timer, outbound) and of closed workflow runs, named and labelled
as the reference's history service names them."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import WorkflowExecutionStatus

from tempyral.common.clock import ts_ns
from tempyral.metrics.families import Labels
from tempyral.metrics.server_metrics import ServerMetrics
from tempyral.proto.internal_pb2 import Task, TaskType

if TYPE_CHECKING:
    from tempyral.history.shard import ExecutionEntry

T = TaskType
# The reference's task type names (its operation and task_type labels).
TASK_NAMES = {
    T.TASK_TYPE_CLOSE_EXECUTION: "TransferActiveTaskCloseExecution",
    T.TASK_TYPE_START_CHILD: "TransferActiveTaskStartChildExecution",
    T.TASK_TYPE_SIGNAL_EXTERNAL: "TransferActiveTaskSignalExecution",
    T.TASK_TYPE_CANCEL_EXTERNAL: "TransferActiveTaskCancelExecution",
    T.TASK_TYPE_NEXUS_START: "OutboundActiveTaskNexusStartOperation",
    T.TASK_TYPE_NEXUS_CANCEL: "OutboundActiveTaskNexusCancelOperation",
    T.TASK_TYPE_CALLBACK: "OutboundActiveTaskCallback",
    T.TASK_TYPE_WORKFLOW_TASK_TIMEOUT: "TimerActiveTaskWorkflowTaskTimeout",
    T.TASK_TYPE_ACTIVITY_TIMEOUT: "TimerActiveTaskActivityTimeout",
    T.TASK_TYPE_USER_TIMER: "TimerActiveTaskUserTimer",
    T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT: "TimerActiveTaskWorkflowRunTimeout",
    T.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT: "TimerActiveTaskWorkflowExecutionTimeout",
    T.TASK_TYPE_ACTIVITY_RETRY_TIMER: "TimerActiveTaskActivityRetryTimer",
    T.TASK_TYPE_WORKFLOW_BACKOFF_TIMER: "TimerActiveTaskWorkflowBackoffTimer",
    T.TASK_TYPE_DELETE_HISTORY: "TimerActiveTaskDeleteHistoryEvent",
    T.TASK_TYPE_NEXUS_BACKOFF: "TimerActiveTaskStateMachineTimer",
    T.TASK_TYPE_NEXUS_TIMEOUT: "TimerActiveTaskStateMachineTimer",
    T.TASK_TYPE_NEXUS_CANCEL_BACKOFF: "TimerActiveTaskStateMachineTimer",
    T.TASK_TYPE_CALLBACK_BACKOFF: "TimerActiveTaskStateMachineTimer",
    T.TASK_TYPE_SCHEDULE_WAKE: "TimerActiveTaskStateMachineTimer",
}
OUTBOUND = frozenset({T.TASK_TYPE_NEXUS_START, T.TASK_TYPE_NEXUS_CANCEL, T.TASK_TYPE_CALLBACK})
S = WorkflowExecutionStatus
OUTCOMES: dict[int, str] = {
    S.WORKFLOW_EXECUTION_STATUS_COMPLETED: "workflow_success",
    S.WORKFLOW_EXECUTION_STATUS_FAILED: "workflow_failed",
    S.WORKFLOW_EXECUTION_STATUS_TIMED_OUT: "workflow_timeout",
    S.WORKFLOW_EXECUTION_STATUS_TERMINATED: "workflow_terminate",
    S.WORKFLOW_EXECUTION_STATUS_CANCELED: "workflow_cancel",
    S.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW: "workflow_continued_as_new",
}


class TaskMetrics:
    def __init__(self, metrics: ServerMetrics) -> None:
        self.metrics = metrics
        self._labels: dict[tuple[str, int], tuple[Labels, Labels, Labels]] = {}

    def _of(self, task: Task) -> tuple[Labels, Labels, Labels]:
        key = (task.namespace_id, task.type)
        labels = self._labels.get(key)
        if labels is None:
            namespace = self.metrics.namespace_label_by_id(task.namespace_id)
            name = TASK_NAMES.get(task.type, "TransferActiveTask" + TaskType.Name(task.type).title().replace("_", ""))
            timer = task.type not in OUTBOUND and name.startswith("Timer")
            priority = "low" if timer else "high"
            labels = (
                ("workflow", namespace, name, "history", priority, name),
                ("workflow", namespace, name, "history", name),
                ("workflow", namespace, name, "0", "history", priority, name),
            )
            self._labels[key] = labels
        return labels

    def attempt(self, task: Task, started: float, ok: bool) -> None:
        """One try at a task: task_requests, task_latency_processing, and task_errors when it failed."""
        full, processing, _ = self._of(task)
        m = self.metrics
        m.task_requests.inc(full)
        m.task_latency_processing.observe(processing, time.perf_counter() - started)
        if not ok:
            m.task_errors.inc(full)

    def done(self, task: Task, started: float) -> None:
        """The task is done: task_latency (all its tries), task_latency_queue (since it was due)."""
        full, _, queue = self._of(task)
        now = time.time_ns()
        self.metrics.task_latency.observe(full, time.perf_counter() - started)
        due = ts_ns(task.visibility_time)
        if due:
            self.metrics.task_latency_queue.observe(queue, max(0, now - due) / 1e9)

    def workflow_closed(self, entry: ExecutionEntry, continued: bool) -> None:
        """A run closed (Executions.closed_listeners): workflow_success, _failed, _timeout, _terminate, _cancel or
        _continued_as_new. Schedules' and standalone activities' and operations' hidden runs are no workflows."""
        ms = entry.ms
        if ms is None:
            return
        state = ms.state
        if state.HasField("schedule") or state.HasField("standalone_activity") or state.HasField("standalone_nexus"):
            return
        outcome = OUTCOMES.get(state.status)
        if outcome is None:
            return
        m = self.metrics
        namespace = m.namespace_label_by_id(state.namespace_id)
        labels = (
            namespace,
            "active",
            "CompletionStats",
            "history",
            m.task_queue_label(namespace, state.start.task_queue.name),
            m.workflow_type_label(namespace, state.start.workflow_type.name),
        )
        m.workflow_outcomes[outcome].inc(labels)
