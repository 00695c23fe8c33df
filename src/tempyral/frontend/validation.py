"""Request validation, with the reference's messages (checked against `temporal server start-dev`)."""

from __future__ import annotations

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.clock import duration_ns
from tempyral.common.errors import InvalidArgument
from tempyral.common.limits import MAX_ID_LENGTH, check_blob_size, check_id
from tempyral.common.retry import normalize_retry_policy
from tempyral.history.commands import validate_search_attributes
from tempyral.namespace.registry import Namespace


def check_task_queue(tq: taskqueue.TaskQueue) -> None:
    if not tq.name:
        raise InvalidArgument("missing task queue name")
    if len(tq.name) > MAX_ID_LENGTH:
        raise InvalidArgument(f"task queue name exceeds length limit of {MAX_ID_LENGTH}")
    if tq.name.startswith("/_sys/"):
        raise InvalidArgument(f"task queue name cannot start with reserved prefix /_sys/: {tq.name}")


def check_run_id(run_id: str) -> None:
    if run_id and not ids.is_uuid(run_id):
        raise InvalidArgument("Invalid RunId.")


def check_execution(execution: common.WorkflowExecution) -> None:
    check_id(execution.workflow_id, "WorkflowId")
    check_run_id(execution.run_id)


def _check_timeout(value: object, name: str) -> None:
    if duration_ns(value) < 0:  # type: ignore[arg-type]
        raise InvalidArgument(f"An invalid {name} is set on request. cause: negative duration")


def validate_start(ns: Namespace, req: ws.StartWorkflowExecutionRequest) -> None:
    """Validate and normalize a start request in place."""
    check_id(req.workflow_id, "WorkflowId")
    if not req.workflow_type.name:
        raise InvalidArgument("WorkflowType is not set on request.")
    if len(req.workflow_type.name) > MAX_ID_LENGTH:
        raise InvalidArgument(
            f"WorkflowType exceeds maximum allowed length ({len(req.workflow_type.name)}/{MAX_ID_LENGTH})"
        )
    check_task_queue(req.task_queue)
    _check_timeout(req.workflow_execution_timeout, "WorkflowExecutionTimeoutSeconds")
    _check_timeout(req.workflow_run_timeout, "WorkflowRunTimeoutSeconds")
    _check_timeout(req.workflow_task_timeout, "WorkflowTaskTimeoutSeconds")
    if duration_ns(req.workflow_start_delay) < 0:
        raise InvalidArgument("An invalid WorkflowStartDelay is set on request. cause: negative duration")
    if len(req.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("RequestId length exceeds limit.")
    if not req.request_id:
        req.request_id = ids.new_id()
    if req.HasField("retry_policy"):
        normalize_retry_policy(req.retry_policy)
    if req.cron_schedule:
        raise InvalidArgument("CronSchedule is not supported by this server yet.")
    check_blob_size(req.input)
    memo_size = sum(len(p.data) for p in req.memo.fields.values())
    check_blob_size(extra=[memo_size])
    if req.HasField("search_attributes"):
        validate_search_attributes(ns, req.search_attributes)


def validate_signal(req: ws.SignalWorkflowExecutionRequest) -> None:
    check_execution(req.workflow_execution)
    if not req.signal_name:
        raise InvalidArgument("SignalName is not set on request.")
    if len(req.signal_name) > MAX_ID_LENGTH:
        raise InvalidArgument("SignalName exceeds length limit.")
    if len(req.request_id) > MAX_ID_LENGTH:
        raise InvalidArgument("RequestId length exceeds limit.")
    check_blob_size(req.input)


def start_request_from_signal_with_start(
    req: ws.SignalWithStartWorkflowExecutionRequest,
) -> ws.StartWorkflowExecutionRequest:
    start = ws.StartWorkflowExecutionRequest(
        namespace=req.namespace,
        workflow_id=req.workflow_id,
        workflow_type=req.workflow_type,
        task_queue=req.task_queue,
        workflow_execution_timeout=req.workflow_execution_timeout,
        workflow_run_timeout=req.workflow_run_timeout,
        workflow_task_timeout=req.workflow_task_timeout,
        identity=req.identity,
        request_id=req.request_id,
        workflow_id_reuse_policy=req.workflow_id_reuse_policy,
        workflow_id_conflict_policy=req.workflow_id_conflict_policy,
        cron_schedule=req.cron_schedule,
        workflow_start_delay=req.workflow_start_delay,
        links=req.links,
    )
    for field in ("input", "retry_policy", "memo", "search_attributes", "header", "user_metadata", "priority"):
        if req.HasField(field):
            getattr(start, field).CopyFrom(getattr(req, field))
    return start
