"""StartBatchOperation's checks, in the reference's order and with its messages, and what a request names: its
operation type, its identity, its targets and the query the job lists."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import BatchOperationType, ExecutionType, ResetType
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument, Unimplemented
from tempyral.common.trampoline import run
from tempyral.visibility.sqlparse import Parser, SyntaxErr

# Which operation a request carries (its oneof), and the type Describe and List report for it (the reference reports
# the *_WORKFLOW names).
OPERATION_TYPES: dict[str, int] = {
    "termination_operation": BatchOperationType.BATCH_OPERATION_TYPE_TERMINATE_WORKFLOW,
    "cancellation_operation": BatchOperationType.BATCH_OPERATION_TYPE_CANCEL_WORKFLOW,
    "signal_operation": BatchOperationType.BATCH_OPERATION_TYPE_SIGNAL_WORKFLOW,
    "deletion_operation": BatchOperationType.BATCH_OPERATION_TYPE_DELETE_WORKFLOW,
    "reset_operation": BatchOperationType.BATCH_OPERATION_TYPE_RESET_WORKFLOW,
}
# Operations the reference's batcher only applies to running workflows: it adds this to their query.
RUNNING_ONLY = frozenset({"termination_operation", "cancellation_operation", "signal_operation"})
RUNNING_FILTER = "ExecutionStatus='Running'"
REQUIRED = (
    "must provide required parameters: BatchType,Reason,Namespace, AND one of (Query OR Executions OR TargetExecutions)"
)
# The reference checks a query's syntax as the WHERE clause of this statement (positions in errors count from it).
QUERY_PREFIX = "select * from dummy where "
ACTIVITY_OPERATIONS = frozenset(
    {"terminate_activities_operation", "delete_activities_operation", "cancel_activities_operation"}
)


def operation_name(req: ws.StartBatchOperationRequest) -> str:
    return req.WhichOneof("operation") or ""


def identity(req: ws.StartBatchOperationRequest) -> str:
    name = operation_name(req)
    return str(getattr(req, name).identity) if name and hasattr(getattr(req, name), "identity") else ""


def listed_query(req: ws.StartBatchOperationRequest) -> str:
    """The query the job lists: the request's, limited to running workflows for the operations only they take."""
    if req.visibility_query and operation_name(req) in RUNNING_ONLY:
        return f"({req.visibility_query}) AND ({RUNNING_FILTER})"
    return req.visibility_query


def targets(req: ws.StartBatchOperationRequest) -> list[common.WorkflowExecution]:
    """The executions a request names (either list form), in its order."""
    if req.target_executions:
        return [common.WorkflowExecution(workflow_id=e.business_id, run_id=e.run_id) for e in req.target_executions]
    return list(req.executions)


def described_executions(req: ws.StartBatchOperationRequest) -> list[common.Execution]:
    """The targets as DescribeBatchOperation gives them back."""
    if req.target_executions:
        return list(req.target_executions)
    return [
        common.Execution(type=ExecutionType.EXECUTION_TYPE_WORKFLOW, business_id=e.workflow_id, run_id=e.run_id)
        for e in req.executions
    ]


def validate_start(req: ws.StartBatchOperationRequest) -> None:
    name = operation_name(req)
    selectors = sum(1 for present in (req.visibility_query, req.executions, req.target_executions) if present)
    if not name or not req.reason or not req.namespace or selectors == 0:
        raise InvalidArgument(REQUIRED)
    if not req.job_id:
        raise InvalidArgument("JobId is not set on request.")
    if selectors > 1:
        raise InvalidArgument("visibility query, executions, and target executions are mutually exclusive")
    expected = (
        ExecutionType.EXECUTION_TYPE_ACTIVITY if name in ACTIVITY_OPERATIONS else ExecutionType.EXECUTION_TYPE_WORKFLOW
    )
    for i, execution in enumerate(req.target_executions):
        if execution.type != expected:
            raise InvalidArgument(
                f"target_executions[{i}] has type {ExecutionType.Name(execution.type)}, but operation "
                f"{_go_type(name)} requires {ExecutionType.Name(expected)}"
            )
    if name == "signal_operation" and not req.signal_operation.signal:
        raise InvalidArgument("must provide signal name")
    if name == "reset_operation":
        reset = req.reset_operation
        if reset.HasField("options"):
            if not reset.options.WhichOneof("target"):
                raise InvalidArgument("batch reset missing target")
        elif reset.reset_type not in (
            ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK,
            ResetType.RESET_TYPE_LAST_WORKFLOW_TASK,
        ):
            raise InvalidArgument(f"unknown batch reset type {_reset_type_text(reset.reset_type)}")
    if name not in OPERATION_TYPES:
        # The reference also updates options and pauses, unpauses and resets activities in batches; tempyral
        # serves none of those single-workflow operations, so it cannot batch them either.
        raise Unimplemented(f"batch operation {name} is not supported by this server")
    if req.visibility_query:
        try:
            run(Parser(QUERY_PREFIX + req.visibility_query).parse_select())
        except SyntaxErr as err:
            raise InvalidArgument(f"invalid visibility query: {err}") from None


def _go_type(name: str) -> str:
    """How the reference's message names the oneof wrapper type (Go's %T)."""
    camel = "".join(part.capitalize() for part in name.split("_"))
    return f"*workflowservice.StartBatchOperationRequest_{camel}"


def _reset_type_text(value: int) -> str:
    """Go's %v of the enum: its short name when it has one, else the number."""
    if value == ResetType.RESET_TYPE_UNSPECIFIED:
        return "Unspecified"
    if value == ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK:
        return "FirstWorkflowTask"
    if value == ResetType.RESET_TYPE_LAST_WORKFLOW_TASK:
        return "LastWorkflowTask"
    return str(value)
