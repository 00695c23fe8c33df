"""Standalone activities' keys and statuses, shared by the engine, visibility and node routing.

A standalone activity is stored as an execution row (docs/DESIGN.md §5, "Standalone activities"). Its key's
workflow id is the activity id behind a prefix no workflow id starts with in practice, so the two id spaces never
meet in the `executions` and `current_executions` tables.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import ActivityExecutionStatus as AS
from temporalio.api.enums.v1 import WorkflowExecutionStatus as WS

KEY_PREFIX = "\x1factivity\x1f"
# The reference's division of standalone activities in visibility: workflow lists leave these rows out.
NAMESPACE_DIVISION = "3332429922"

# Each closed activity status is stored as the workflow status of the same name in the execution and visibility
# rows, so the current-run pointer, retention and list filters (ExecutionStatus = 'TimedOut') work unchanged.
TO_WORKFLOW_STATUS: dict[int, int] = {
    AS.ACTIVITY_EXECUTION_STATUS_RUNNING: WS.WORKFLOW_EXECUTION_STATUS_RUNNING,
    AS.ACTIVITY_EXECUTION_STATUS_COMPLETED: WS.WORKFLOW_EXECUTION_STATUS_COMPLETED,
    AS.ACTIVITY_EXECUTION_STATUS_FAILED: WS.WORKFLOW_EXECUTION_STATUS_FAILED,
    AS.ACTIVITY_EXECUTION_STATUS_CANCELED: WS.WORKFLOW_EXECUTION_STATUS_CANCELED,
    AS.ACTIVITY_EXECUTION_STATUS_TERMINATED: WS.WORKFLOW_EXECUTION_STATUS_TERMINATED,
    AS.ACTIVITY_EXECUTION_STATUS_TIMED_OUT: WS.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
}
FROM_WORKFLOW_STATUS: dict[int, int] = {w: a for a, w in TO_WORKFLOW_STATUS.items()}
# How the reference names a closed status in its errors ("invalid transition from Canceled").
STATUS_NAMES: dict[int, str] = {
    AS.ACTIVITY_EXECUTION_STATUS_COMPLETED: "Completed",
    AS.ACTIVITY_EXECUTION_STATUS_FAILED: "Failed",
    AS.ACTIVITY_EXECUTION_STATUS_CANCELED: "Canceled",
    AS.ACTIVITY_EXECUTION_STATUS_TERMINATED: "Terminated",
    AS.ACTIVITY_EXECUTION_STATUS_TIMED_OUT: "TimedOut",
}


def not_found_message(activity_id: str) -> str:
    return f"activity not found for ID: {activity_id}"


def activity_key(activity_id: str) -> str:
    """The workflow-id column of a standalone activity's rows."""
    return KEY_PREFIX + activity_id


def is_activity_key(workflow_id: str) -> bool:
    return workflow_id.startswith(KEY_PREFIX)


def activity_id_of(workflow_id: str) -> str:
    return workflow_id.removeprefix(KEY_PREFIX)
