"""What a Nexus start or cancel request came to, and the failures the caller's history records.

A handler worker answers with RespondNexusTaskCompleted (a sync result, an async start with an
operation token, or an operation error) or RespondNexusTaskFailed (a handler error). Failures
pass through as the worker sent them, wrapped the way the reference wraps them.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import NexusHandlerErrorRetryBehavior
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.nexus import links as nexus_links
from tempyral.proto.internal_pb2 import NexusOperationInfo

RetryBehavior = NexusHandlerErrorRetryBehavior
NON_RETRYABLE_HANDLER_ERRORS = frozenset(
    {"BAD_REQUEST", "UNAUTHENTICATED", "UNAUTHORIZED", "NOT_FOUND", "CONFLICT", "NOT_IMPLEMENTED"}
)
MAX_OPERATION_TOKEN_LENGTH = 4096


class Kind(enum.Enum):
    SUCCEEDED = "succeeded"  # sync result
    STARTED = "started"  # async: an operation token, the result comes by callback
    FAILED = "failed"  # the operation failed (operation error, or a non-retryable handler error)
    CANCELED = "canceled"  # the operation was canceled
    RETRY = "retry"  # this attempt failed; try again after a backoff


@dataclass
class Outcome:
    kind: Kind
    failure: failure_pb.Failure | None = None  # the cause (FAILED / CANCELED) or the attempt's failure (RETRY)
    result: common.Payload | None = None
    token: str = ""
    links: list[common.Link] = field(default_factory=list)
    # The destination looks unwell (timeouts, retryable handler errors): counts for the circuit breaker.
    destination_down: bool = False
    label: str = ""  # for logs and metrics


def handler_error(error_type: str, message: str, retryable: bool | None = None) -> failure_pb.Failure:
    failure = failure_pb.Failure(message=message)
    failure.nexus_handler_failure_info.type = error_type
    if retryable is not None:
        failure.nexus_handler_failure_info.retry_behavior = (
            RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE
            if retryable
            else RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE
        )
    return failure


def handler_error_outcome(failure: failure_pb.Failure, label: str) -> Outcome:
    info = failure.nexus_handler_failure_info
    behavior = info.retry_behavior
    if behavior == RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_UNSPECIFIED:
        retryable = info.type not in NON_RETRYABLE_HANDLER_ERRORS
    else:
        retryable = behavior == RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE
    if retryable:
        return Outcome(Kind.RETRY, failure=failure, destination_down=True, label=label)
    return Outcome(Kind.FAILED, failure=failure, label=label)


def upstream_timeout() -> Outcome:
    """No worker answered in time (none polling, or too slow)."""
    return handler_error_outcome(handler_error("UPSTREAM_TIMEOUT", "upstream timeout"), "handler-timeout")


def _from_nexus_failure(failure: nexus_pb.Failure) -> failure_pb.Failure:
    """A Nexus failure (the older wire format) as a Temporal failure, the way the reference keeps
    it: message and stack trace, and any metadata or details as a "NexusFailure" payload."""
    out = failure_pb.Failure(message=failure.message, stack_trace=failure.stack_trace)
    if failure.metadata or failure.details:
        extra: dict[str, object] = {}
        if failure.metadata:
            extra["metadata"] = dict(failure.metadata)
        if failure.details:
            try:
                extra["details"] = json.loads(failure.details)
            except ValueError:
                extra["details"] = failure.details.decode(errors="replace")
        info = out.application_failure_info
        info.type = "NexusFailure"
        info.details.payloads.add(
            metadata={"encoding": b"json/plain"}, data=json.dumps(extra, separators=(",", ":")).encode()
        )
    if failure.HasField("cause"):
        out.cause.CopyFrom(_from_nexus_failure(failure.cause))
    return out


def start_outcome(reply: ws.RespondNexusTaskCompletedRequest | ws.RespondNexusTaskFailedRequest) -> Outcome:
    """Classify a handler worker's answer to a start request."""
    if isinstance(reply, ws.RespondNexusTaskFailedRequest):
        if reply.HasField("failure"):
            return handler_error_outcome(reply.failure, "handler-error")
        err = reply.error
        failure = failure_pb.Failure()  # the handler-error layer carries no message of its own
        failure.nexus_handler_failure_info.type = err.error_type or "INTERNAL"
        failure.nexus_handler_failure_info.retry_behavior = err.retry_behavior
        failure.cause.CopyFrom(_from_nexus_failure(err.failure))
        return handler_error_outcome(failure, "handler-error")
    start = reply.response.start_operation
    variant = start.WhichOneof("variant")
    if variant == "sync_success":
        return Outcome(
            Kind.SUCCEEDED,
            result=start.sync_success.payload,
            links=nexus_links.to_temporal_links(list(start.sync_success.links)),
            label="sync-success",
        )
    if variant == "async_success":
        token = start.async_success.operation_token or start.async_success.operation_id
        if not token:
            return Outcome(
                Kind.FAILED, failure=handler_error("BAD_REQUEST", "invalid operation token: empty"), label="bad-token"
            )
        if len(token) > MAX_OPERATION_TOKEN_LENGTH:
            failure = failure_pb.Failure(
                message=f"invalid operation token: length exceeds allowed limit "
                f"({len(token)}/{MAX_OPERATION_TOKEN_LENGTH})"
            )
            failure.application_failure_info.type = "CallError"
            failure.application_failure_info.non_retryable = True
            return Outcome(Kind.FAILED, failure=failure, label="invalid-operation-token")
        return Outcome(
            Kind.STARTED,
            token=token,
            links=nexus_links.to_temporal_links(list(start.async_success.links)),
            label="async-success",
        )
    if variant == "failure":
        kind = Kind.CANCELED if start.failure.HasField("canceled_failure_info") else Kind.FAILED
        return Outcome(kind, failure=start.failure, label="operation-error")
    if variant == "operation_error":
        op_error = start.operation_error
        cause = _from_nexus_failure(op_error.failure)
        if op_error.operation_state == "canceled":
            cause.canceled_failure_info.SetInParent()
            return Outcome(Kind.CANCELED, failure=cause, label="operation-error")
        return Outcome(Kind.FAILED, failure=cause, label="operation-error")
    return Outcome(
        Kind.RETRY,
        failure=handler_error("INTERNAL", "empty outcome"),
        destination_down=True,
        label="empty-outcome",
    )


def cancel_outcome(reply: ws.RespondNexusTaskCompletedRequest | ws.RespondNexusTaskFailedRequest) -> Outcome:
    """Classify a handler worker's answer to a cancel request: SUCCEEDED, FAILED or RETRY."""
    if isinstance(reply, ws.RespondNexusTaskFailedRequest):
        return start_outcome(reply)
    return Outcome(Kind.SUCCEEDED, label="successful")


def operation_failure(info: NexusOperationInfo, cause: failure_pb.Failure) -> failure_pb.Failure:
    """The failure a caller's NexusOperationFailed / Canceled / TimedOut event carries."""
    failure = failure_pb.Failure(message="nexus operation completed unsuccessfully")
    details = failure.nexus_operation_execution_failure_info
    details.scheduled_event_id = info.scheduled_event_id
    details.endpoint = info.endpoint
    details.service = info.service
    details.operation = info.operation
    details.operation_token = info.operation_token
    details.operation_id = info.operation_token
    failure.cause.CopyFrom(cause)
    return failure


def timeout_failure(timeout_type: int) -> failure_pb.Failure:
    failure = failure_pb.Failure(message="operation timed out")
    failure.timeout_failure_info.timeout_type = timeout_type  # type: ignore[assignment]
    return failure
