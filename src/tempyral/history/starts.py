"""What a workflow start is given besides its request (the parent of a child) and what it answers."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

RUNNING = wf_enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


@dataclass(slots=True)
class ParentInfo:
    """Who started a child workflow: recorded in the child's WorkflowExecutionStarted event."""

    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int
    root: common.WorkflowExecution


@dataclass(slots=True)
class StartResult:
    """The run a start resolved to; `started`: this request started it (or an earlier try of it did)."""

    run_id: str
    started: bool
    status: int = RUNNING
    first_execution_run_id: str = ""
    # Eager workflow start: the run's first workflow task, already started for the caller's own worker.
    eager_task: ws.PollWorkflowTaskQueueResponse | None = None
