"""Search attributes: the system ones every namespace has, and how each maps to a column."""

from __future__ import annotations

from temporalio.api.enums.v1 import IndexedValueType

T = IndexedValueType
SYSTEM_ATTRIBUTES: dict[str, int] = {
    "WorkflowType": T.INDEXED_VALUE_TYPE_KEYWORD,
    "WorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TaskQueue": T.INDEXED_VALUE_TYPE_KEYWORD,
    "ExecutionStatus": T.INDEXED_VALUE_TYPE_KEYWORD,
    "StartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "CloseTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "ExecutionTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "ExecutionDuration": T.INDEXED_VALUE_TYPE_INT,
    "HistoryLength": T.INDEXED_VALUE_TYPE_INT,
    "HistorySizeBytes": T.INDEXED_VALUE_TYPE_INT,
    "StateTransitionCount": T.INDEXED_VALUE_TYPE_INT,
    "ParentWorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "ParentRunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RootWorkflowId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "RootRunId": T.INDEXED_VALUE_TYPE_KEYWORD,
    "BuildIds": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "BinaryChecksums": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "BatcherNamespace": T.INDEXED_VALUE_TYPE_KEYWORD,
    "BatcherUser": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalChangeVersion": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalScheduledStartTime": T.INDEXED_VALUE_TYPE_DATETIME,
    "TemporalScheduledById": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalSchedulePaused": T.INDEXED_VALUE_TYPE_BOOL,
    "TemporalNamespaceDivision": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalPauseInfo": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalReportedProblems": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalWorkerDeployment": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkerDeploymentVersion": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalWorkflowVersioningBehavior": T.INDEXED_VALUE_TYPE_KEYWORD,
    "TemporalUsedWorkerDeploymentVersions": T.INDEXED_VALUE_TYPE_KEYWORD_LIST,
    "TemporalExternalPayloadSizeBytes": T.INDEXED_VALUE_TYPE_INT,
    "TemporalExternalPayloadCount": T.INDEXED_VALUE_TYPE_INT,
}

# System attributes stored in their own columns.
COLUMNS: dict[str, str] = {
    "WorkflowType": "workflow_type",
    "WorkflowId": "workflow_id",
    "RunId": "run_id",
    "TaskQueue": "task_queue",
    "ExecutionStatus": "status",
    "StartTime": "start_time",
    "CloseTime": "close_time",
    "ExecutionTime": "execution_time",
    "HistoryLength": "history_length",
    "HistorySizeBytes": "history_size_bytes",
    "StateTransitionCount": "state_transition_count",
    "ParentWorkflowId": "parent_workflow_id",
    "ParentRunId": "parent_run_id",
    "RootWorkflowId": "root_workflow_id",
    "RootRunId": "root_run_id",
}
