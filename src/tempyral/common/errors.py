"""Service errors: each carries the gRPC status code and error details the reference uses."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb


class ServiceError(Exception):
    code: grpc.StatusCode = grpc.StatusCode.INTERNAL

    def __init__(self, message: str, details: Message | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    # The reference leaves the clusters empty in the NotFoundFailure of a missing workflow, task or endpoint.
    def __init__(self, message: str, current_cluster: str = "", active_cluster: str = "") -> None:
        super().__init__(
            message, errordetails.NotFoundFailure(current_cluster=current_cluster, active_cluster=active_cluster)
        )


class WorkflowNotFound(NotFound):
    @classmethod
    def for_id(cls, workflow_id: str) -> WorkflowNotFound:
        return cls(f"workflow not found for ID: {workflow_id}")

    @classmethod
    def for_run(cls, workflow_id: str, run_id: str) -> WorkflowNotFound:
        return cls(f'workflow execution not found for workflow ID "{workflow_id}" and run ID "{run_id}"')


class WorkflowCompleted(NotFound):
    def __init__(self) -> None:
        super().__init__("workflow execution already completed")


class NamespaceNotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND

    def __init__(self, namespace: str) -> None:
        super().__init__(
            f"Namespace {namespace} is not found.", errordetails.NamespaceNotFoundFailure(namespace=namespace)
        )


class NamespaceAlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, namespace: str) -> None:
        super().__init__(f'Namespace "{namespace}" already exists', errordetails.NamespaceAlreadyExistsFailure())


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class WorkflowAlreadyStarted(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS

    def __init__(self, message: str, start_request_id: str, run_id: str) -> None:
        super().__init__(
            message,
            errordetails.WorkflowExecutionAlreadyStartedFailure(start_request_id=start_request_id, run_id=run_id),
        )


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message, errordetails.PermissionDeniedFailure(reason=reason))


class QueryFailed(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT

    def __init__(self, message: str, failure: failure_pb.Failure | None = None) -> None:
        details = errordetails.QueryFailedFailure()
        if failure is not None:
            details.failure.CopyFrom(failure)
        super().__init__(message, details)


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL


class ConditionFailed(Exception):
    """A conditional write lost: another writer changed the row first (or the shard moved)."""


class ShardOwnershipLost(ConditionFailed):
    """This node no longer owns the shard: its range_id is stale."""


class ShardNotHere(Unavailable):
    """Another node of this cluster owns the shard (or it is moving): the work goes there. Reaches a client as
    UNAVAILABLE, which it retries, as the reference's ShardOwnershipLostError does."""

    def __init__(self, shard_id: int) -> None:
        super().__init__(f"Shard status unknown or not owned by this host: shard {shard_id}")
        self.shard_id = shard_id


class StartupError(Exception):
    """The server cannot start for a reason the operator must fix (a port in use, a database that is missing,
    locked or damaged). Its message is one line that says what to do; the command prints it and exits 1."""


class StorageUnavailable(Unavailable):
    """The database cannot take writes now (its disk is full, an I/O error): retry later. The reference answers
    persistence failures with UNAVAILABLE too."""


class NamespaceNotActive(ServiceError):
    """A write reached a cluster where the global namespace is standby (the reference's text and detail)."""

    code = grpc.StatusCode.FAILED_PRECONDITION

    def __init__(self, namespace: str, current_cluster: str, active_cluster: str) -> None:
        super().__init__(
            f"Namespace: {namespace} is active in cluster: {active_cluster}, "
            f"while current cluster {current_cluster} is a standby cluster.",
            errordetails.NamespaceNotActiveFailure(
                namespace=namespace, current_cluster=current_cluster, active_cluster=active_cluster
            ),
        )
        self.namespace = namespace
        self.current_cluster = current_cluster
        self.active_cluster = active_cluster
