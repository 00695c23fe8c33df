"""Who started a child workflow: recorded in the child's WorkflowExecutionStarted event."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.api.common.v1 import message_pb2 as common


@dataclass(slots=True)
class ParentInfo:
    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int
    root: common.WorkflowExecution
