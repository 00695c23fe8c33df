"""The start of a run in the unit tests that drive MutableState directly: workflow type W on the normal
task queue q, attempt 1, a 10 s workflow task timeout."""

from __future__ import annotations

from temporalio.api.enums.v1 import TaskQueueKind
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import TaskQueue

from tempyral.common.clock import duration, seconds


def start_attributes(
    *, backoff_s: float | None = None, run_timeout_s: float | None = None, callbacks: int = 0
) -> history.WorkflowExecutionStartedEventAttributes:
    """`backoff_s` and `run_timeout_s` are set (zero included) when given; `callbacks` completion callbacks."""
    attrs = history.WorkflowExecutionStartedEventAttributes(
        task_queue=TaskQueue(name="q", kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL), attempt=1
    )
    attrs.workflow_type.name = "W"
    attrs.workflow_task_timeout.CopyFrom(duration(seconds(10)))
    if run_timeout_s is not None:
        attrs.workflow_run_timeout.CopyFrom(duration(seconds(run_timeout_s)))
    if backoff_s is not None:
        attrs.first_workflow_task_backoff.CopyFrom(duration(seconds(backoff_s)))
    for i in range(callbacks):
        attrs.completion_callbacks.add().nexus.url = f"http://caller/{i}"
    return attrs
