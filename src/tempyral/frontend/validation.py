"""Request validation, with the reference's messages (checked against `temporal server start-dev`)."""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy as ConflictPolicy
from temporalio.api.enums.v1 import WorkflowIdReusePolicy as ReusePolicy
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import cron, ids
from tempyral.common.durations import InvalidDuration, validate_and_cap
from tempyral.common.errors import InvalidArgument, Unimplemented
from tempyral.common.limits import BLOB_SIZE_LIMIT_WARN, check_blob_size, check_id, exceeds_blob_limit, max_id_length
from tempyral.common.retry import normalize_retry_policy
from tempyral.history.commands import check_and_type_search_attributes
from tempyral.namespace.registry import Namespace
from tempyral.nexus.addresses import AddressRefused, OutboundAddresses

# The reference's limits on completion callbacks (callback.maxPerExecution,
# frontend.callbackURLMaxLength, frontend.callbackHeaderMaxLength).
MAX_CALLBACKS = 2000
MAX_CALLBACK_URL_LENGTH = 1000
MAX_CALLBACK_HEADER_BYTES = 8 * 1024


def check_task_queue(tq: taskqueue.TaskQueue) -> None:
    if not tq.name:
        raise InvalidArgument("missing task queue name")
    if len(tq.name) > max_id_length():
        raise InvalidArgument("taskQueue length exceeds limit")
    if tq.name.startswith("/_sys/"):
        raise InvalidArgument("task queue name cannot start with reserved prefix /_sys/")


def check_run_id(run_id: str) -> None:
    if run_id and not ids.is_uuid(run_id):
        raise InvalidArgument("Invalid RunId.")


def check_execution(execution: common.WorkflowExecution) -> None:
    check_id(execution.workflow_id, "WorkflowId")
    check_run_id(execution.run_id)


def _check_duration(value: Duration, name: str) -> None:
    """Refuse a negative duration, cap one over 100 years in place (as the reference does)."""
    try:
        validate_and_cap(value)
    except InvalidDuration as err:
        raise InvalidArgument(f"An invalid {name} is set on request. cause: {err}") from err


def default_id_policies(req: ws.StartWorkflowExecutionRequest, conflict_default: int) -> None:
    if req.workflow_id_conflict_policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED:
        if req.workflow_id_reuse_policy == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING:
            # the deprecated reuse policy becomes the conflict policy it stands for
            req.workflow_id_conflict_policy = ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
            req.workflow_id_reuse_policy = ReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE
        else:
            req.workflow_id_conflict_policy = conflict_default  # type: ignore[assignment]
    if req.workflow_id_reuse_policy == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED:
        req.workflow_id_reuse_policy = ReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE


def _check_reuse_policy(reuse: int, conflict: int) -> None:
    if (
        conflict != ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED
        and reuse == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING
    ):
        raise InvalidArgument(
            "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING cannot be used "
            "together with a WorkflowIDConflictPolicy"
        )
    if (
        conflict == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
        and reuse == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE
    ):
        raise InvalidArgument(
            "Invalid WorkflowIDReusePolicy: WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE cannot be used together "
            "with WorkflowIdConflictPolicy WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING"
        )


def _check_timeouts(req: ws.StartWorkflowExecutionRequest | ws.SignalWithStartWorkflowExecutionRequest) -> None:
    _check_duration(req.workflow_execution_timeout, "WorkflowExecutionTimeoutSeconds")
    _check_duration(req.workflow_run_timeout, "WorkflowRunTimeoutSeconds")
    _check_duration(req.workflow_task_timeout, "WorkflowTaskTimeoutSeconds")


def _check_start_delay(req: ws.StartWorkflowExecutionRequest | ws.SignalWithStartWorkflowExecutionRequest) -> None:
    if req.cron_schedule and req.HasField("workflow_start_delay"):
        raise InvalidArgument("CronSchedule and WorkflowStartDelay may not be used together.")
    _check_duration(req.workflow_start_delay, "WorkflowStartDelaySeconds")


def _check_request_id(req: ws.StartWorkflowExecutionRequest | ws.SignalWithStartWorkflowExecutionRequest) -> None:
    if not req.request_id:
        req.request_id = ids.new_id()
    if len(req.request_id) > max_id_length():
        raise InvalidArgument("RequestId length exceeds limit.")


def check_start_payloads(ns: Namespace, req: ws.StartWorkflowExecutionRequest) -> None:
    if req.HasField("search_attributes"):
        check_and_type_search_attributes(ns, req.search_attributes)
    check_blob_size(req.input)
    check_blob_size(extra=[sum(len(p.data) for p in req.memo.fields.values())])


def check_completion_callbacks(callbacks: Sequence[common.Callback], addresses: OutboundAddresses) -> None:
    """Refuse callbacks the server may not call, as the reference does; lowercase their header keys
    in place (Nexus headers are case-insensitive)."""
    if len(callbacks) > MAX_CALLBACKS:
        raise InvalidArgument(f"cannot attach more than {MAX_CALLBACKS} callbacks to an execution")
    for callback in callbacks:
        variant = callback.WhichOneof("variant")
        if variant == "internal":
            continue
        if variant != "nexus":
            raise Unimplemented("unknown callback variant: <nil>")
        nexus = callback.nexus
        if len(nexus.url) > MAX_CALLBACK_URL_LENGTH:
            raise InvalidArgument(
                f"invalid url: url length longer than max length allowed of {MAX_CALLBACK_URL_LENGTH}"
            )
        try:
            addresses.check_callback(nexus.url)
        except AddressRefused as err:
            raise InvalidArgument(str(err)) from err
        header = dict(nexus.header)
        if sum(len(k) + len(v) for k, v in header.items()) > MAX_CALLBACK_HEADER_BYTES:
            raise InvalidArgument(
                f"invalid header: header size longer than max allowed size of {MAX_CALLBACK_HEADER_BYTES}"
            )
        nexus.header.clear()
        nexus.header.update({k.lower(): v for k, v in header.items()})
    if any(callback.HasField("internal") for callback in callbacks):
        # past the frontend's checks, the reference's history service has no use for these
        raise InvalidArgument("unsupported callback variant: *common.Callback_Internal_")


def validate_start(ns: Namespace, req: ws.StartWorkflowExecutionRequest, addresses: OutboundAddresses) -> None:
    """Validate and normalize a start request in place, in the reference's order."""
    default_id_policies(req, ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL)
    check_id(req.workflow_id, "WorkflowId")
    if req.HasField("retry_policy"):
        normalize_retry_policy(req.retry_policy)
    _check_start_delay(req)
    cron.validate(req.cron_schedule)
    if not req.workflow_type.name:
        raise InvalidArgument("WorkflowType is not set on request.")
    if len(req.workflow_type.name) > max_id_length():
        raise InvalidArgument("WorkflowType length exceeds limit.")
    check_task_queue(req.task_queue)
    _check_timeouts(req)
    _check_request_id(req)
    _check_reuse_policy(req.workflow_id_reuse_policy, req.workflow_id_conflict_policy)
    check_completion_callbacks(req.completion_callbacks, addresses)
    check_start_payloads(ns, req)


def validate_signal_with_start(ns: Namespace, req: ws.SignalWithStartWorkflowExecutionRequest) -> None:
    """Validate and normalize a signal-with-start request in place, in the reference's order."""
    check_id(req.workflow_id, "WorkflowId")
    if not req.signal_name:
        raise InvalidArgument("signal not set")
    if len(req.signal_name) > max_id_length():
        raise InvalidArgument(f"signal name exceeds maximum allowed length ({len(req.signal_name)}/{max_id_length()})")
    if not req.workflow_type.name:
        raise InvalidArgument("workflow type not set")
    if len(req.workflow_type.name) > max_id_length():
        raise InvalidArgument(
            f"workflow type name exceeds maximum allowed length ({len(req.workflow_type.name)}/{max_id_length()})"
        )
    check_task_queue(req.task_queue)
    _check_request_id(req)
    _check_timeouts(req)
    if req.HasField("retry_policy"):
        normalize_retry_policy(req.retry_policy)
    _check_start_delay(req)
    _check_reuse_policy(req.workflow_id_reuse_policy, req.workflow_id_conflict_policy)
    if req.workflow_id_conflict_policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
        raise InvalidArgument(
            "Invalid WorkflowIDConflictPolicy: WORKFLOW_ID_CONFLICT_POLICY_FAIL is not supported for this operation."
        )
    cron.validate(req.cron_schedule)
    check_blob_size(req.signal_input)


def validate_signal(req: ws.SignalWorkflowExecutionRequest) -> None:
    check_execution(req.workflow_execution)
    if not req.signal_name:
        raise InvalidArgument("SignalName is not set on request.")
    if len(req.signal_name) > max_id_length():
        raise InvalidArgument("SignalName exceeds length limit.")
    if len(req.request_id) > max_id_length():
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
        identity=req.identity,
        request_id=req.request_id,
        workflow_id_reuse_policy=req.workflow_id_reuse_policy,
        workflow_id_conflict_policy=req.workflow_id_conflict_policy,
        cron_schedule=req.cron_schedule,
        links=req.links,
    )
    # Only what the request has: a timeout it leaves out is absent from the started event too.
    for field in (
        "input",
        "retry_policy",
        "memo",
        "search_attributes",
        "header",
        "user_metadata",
        "priority",
        "workflow_execution_timeout",
        "workflow_run_timeout",
        "workflow_task_timeout",
        "workflow_start_delay",
    ):
        if req.HasField(field):
            getattr(start, field).CopyFrom(getattr(req, field))
    return start


def prepare_activity_failure(
    req: ws.RespondActivityTaskFailedRequest | ws.RespondActivityTaskFailedByIdRequest,
) -> list[failure_pb.Failure]:
    """Validate an activity failure and shrink what is too large, as the reference does.

    Returns the failures to report back to the worker (heartbeat details that were dropped).
    """
    if req.HasField("failure") and not req.failure.HasField("application_failure_info"):
        raise InvalidArgument("Failure must have ApplicationFailureInfo.")
    reported: list[failure_pb.Failure] = []
    if req.HasField("last_heartbeat_details") and exceeds_blob_limit(req.last_heartbeat_details.ByteSize()):
        reported.append(_server_failure("Heartbeat details exceed size limit."))
        req.ClearField("last_heartbeat_details")
    if exceeds_blob_limit(req.failure.ByteSize()):
        original = req.failure
        replacement = _server_failure("Failure exceeds size limit.")
        replacement.cause.message = original.message[:BLOB_SIZE_LIMIT_WARN]
        replacement.cause.application_failure_info.type = original.application_failure_info.type
        req.failure.CopyFrom(replacement)
        reported.append(replacement)
    return reported


def _server_failure(message: str) -> failure_pb.Failure:
    failure = failure_pb.Failure(message=message)
    failure.server_failure_info.non_retryable = True
    return failure
