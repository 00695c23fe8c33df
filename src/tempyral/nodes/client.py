"""NodeClient: calls to another node's NodeService (nodes/service.py) over the channel `Ownership` keeps to it, each
with a timeout. A failed call raises the tempyral exception the remote raised (`error_from_status`), so a caller
catches the same errors whether the work was done here or on another node.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.symbol_database import Default as default_symbols
from google.rpc import status_pb2
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.errordetails.v1 import message_pb2 as errordetails
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NamespaceNotActive,
    NamespaceNotFound,
    NotFound,
    PermissionDenied,
    QueryFailed,
    ResourceExhausted,
    ServiceError,
    ShardNotHere,
    Unavailable,
    Unimplemented,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.history.starts import ParentInfo, StartResult
from tempyral.nexus.operations import OperationNotFound
from tempyral.nodes.ownership import Ownership
from tempyral.nodes.service import SERVICE, parent_to_proto
from tempyral.proto import nodes_pb2 as npb
from tempyral.proto.internal_pb2 import NexusCallbackToken

STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Long enough for a workflow's lock and a database write on a loaded node; a call that takes longer is retried by
# its transfer task.
CALL_TIMEOUT_S = 10.0

R = TypeVar("R", bound=Message)

# ShardNotHere has no error detail: its own wording tells it (tests/unit/test_node_service.py pins it).
_SHARD_NOT_HERE = re.compile(r"not owned by this host: shard (\d+)$")
_WORKFLOW_COMPLETED = WorkflowCompleted().message
_WORKFLOW_NOT_FOUND = (WorkflowNotFound.for_id("").message, WorkflowNotFound.for_run("", "").message.split('"')[0])
# Errors that carry (message, details) as ServiceError does, by code.
_BY_CODE: dict[grpc.StatusCode, type[ServiceError]] = {
    cls.code: cls
    for cls in (
        InvalidArgument,
        AlreadyExists,
        FailedPrecondition,
        ResourceExhausted,
        DeadlineExceeded,
        Unavailable,
        Unimplemented,
        Internal,
    )
}


def status_details(err: grpc.aio.AioRpcError) -> list[Message]:
    """The error details of a failed call (the google.rpc.Status in its trailers), decoded where their type is
    known to this process (the Temporal error details are)."""
    trailing: Any = err.trailing_metadata() or ()
    blob = next((v for k, v in trailing if k == STATUS_DETAILS_KEY and isinstance(v, bytes)), None)
    if blob is None:
        return []
    try:
        status = status_pb2.Status.FromString(blob)
    except DecodeError:
        return []
    out: list[Message] = []
    for detail in status.details:
        try:
            cls = default_symbols().GetSymbol(detail.TypeName())
        except KeyError:
            continue
        message = cls()
        if detail.Unpack(message):
            out.append(message)
    return out


def error_from_status(err: grpc.aio.AioRpcError) -> ServiceError:
    """The tempyral exception a remote node's answer stands for (nodes/service.py sends `ServiceError`s as the
    frontend does); a call that never reached the node (refused, reset, timed out in the network) is Unavailable."""
    code = err.code()
    message = err.details() or ""
    details = status_details(err)
    detail = details[0] if details else None
    if code == grpc.StatusCode.UNAVAILABLE:
        found = _SHARD_NOT_HERE.search(message)
        return ShardNotHere(int(found.group(1))) if found else Unavailable(message, detail)
    if isinstance(detail, errordetails.WorkflowExecutionAlreadyStartedFailure):
        return WorkflowAlreadyStarted(message, detail.start_request_id, detail.run_id)
    if isinstance(detail, errordetails.NamespaceNotActiveFailure):
        return NamespaceNotActive(detail.namespace, detail.current_cluster, detail.active_cluster)
    if isinstance(detail, errordetails.NamespaceNotFoundFailure):
        return NamespaceNotFound(detail.namespace)
    if isinstance(detail, errordetails.PermissionDeniedFailure):
        return PermissionDenied(message, detail.reason)
    if isinstance(detail, errordetails.QueryFailedFailure):
        return QueryFailed(message, detail.failure if detail.HasField("failure") else None)
    if code == grpc.StatusCode.NOT_FOUND:
        if message == _WORKFLOW_COMPLETED:
            return WorkflowCompleted()
        current, active = "", ""
        if isinstance(detail, errordetails.NotFoundFailure):
            current, active = detail.current_cluster, detail.active_cluster
        cls = WorkflowNotFound if message.startswith(_WORKFLOW_NOT_FOUND) else NotFound
        return cls(message, current, active)
    known = _BY_CODE.get(code)
    if known is not None:
        return known(message, detail)
    other = ServiceError(message, detail)
    other.code = code  # a code tempyral has no class for (CANCELLED, UNKNOWN, ...): kept as it came
    return other


class NodeClient:
    """Typed calls to the NodeService of another live node, by name."""

    def __init__(self, ownership: Ownership, timeout_s: float = CALL_TIMEOUT_S) -> None:
        self.ownership = ownership
        self.timeout_s = timeout_s

    async def _call(self, node: str, method: str, request: Message, response: type[R]) -> R:
        channel = self.ownership.channel(node)
        if channel is None:
            raise Unavailable(f"node {node} is not a live member of this cluster")
        call = channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        try:
            answer: R = await call(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as err:
            raise error_from_status(err) from None
        except grpc.aio.UsageError as err:  # the channel was closed under the call: this node is stopping
            raise Unavailable(f"node {node}: {err}") from None
        return answer

    async def start_workflow(
        self, node: str, namespace_id: str, req: ws.StartWorkflowExecutionRequest, parent: ParentInfo | None
    ) -> StartResult:
        request = npb.StartWorkflowRequest(namespace_id=namespace_id, request=req.SerializeToString())
        if parent is not None:
            request.parent.CopyFrom(parent_to_proto(parent))
        answer = await self._call(node, "StartWorkflow", request, npb.StartWorkflowResponse)
        return StartResult(answer.run_id, answer.started, answer.status)

    async def signal(
        self,
        node: str,
        namespace_id: str,
        req: ws.SignalWorkflowExecutionRequest,
        external: common.WorkflowExecution | None,
        child_of: common.WorkflowExecution | None,
    ) -> None:
        request = npb.SignalWorkflowRequest(namespace_id=namespace_id, request=req.SerializeToString())
        if external is not None:
            request.external.CopyFrom(external)
        if child_of is not None:
            request.child_of.CopyFrom(child_of)
        await self._call(node, "SignalWorkflow", request, npb.Empty)

    async def request_cancel(
        self,
        node: str,
        namespace_id: str,
        req: ws.RequestCancelWorkflowExecutionRequest,
        external: common.WorkflowExecution | None,
        external_initiated_event_id: int,
        child_of: common.WorkflowExecution | None,
    ) -> None:
        request = npb.RequestCancelWorkflowRequest(
            namespace_id=namespace_id,
            request=req.SerializeToString(),
            external_initiated_event_id=external_initiated_event_id,
        )
        if external is not None:
            request.external.CopyFrom(external)
        if child_of is not None:
            request.child_of.CopyFrom(child_of)
        await self._call(node, "RequestCancelWorkflow", request, npb.Empty)

    async def terminate(self, node: str, namespace_id: str, req: ws.TerminateWorkflowExecutionRequest) -> None:
        request = npb.TerminateWorkflowRequest(namespace_id=namespace_id, request=req.SerializeToString())
        await self._call(node, "TerminateWorkflow", request, npb.Empty)

    async def schedule_first_task(self, node: str, namespace_id: str, workflow_id: str, run_id: str) -> None:
        request = npb.ScheduleFirstTaskRequest(namespace_id=namespace_id, workflow_id=workflow_id, run_id=run_id)
        await self._call(node, "ScheduleFirstTask", request, npb.Empty)

    async def record_child_closed(
        self,
        node: str,
        parent_namespace_id: str,
        parent: common.WorkflowExecution,
        initiated_event_id: int,
        first_execution_run_id: str,
        run_id: str,
        close: history.HistoryEvent,
    ) -> None:
        request = npb.RecordChildClosedRequest(
            parent_namespace_id=parent_namespace_id,
            parent=parent,
            initiated_event_id=initiated_event_id,
            first_execution_run_id=first_execution_run_id,
            run_id=run_id,
            close_event=close,
        )
        await self._call(node, "RecordChildClosed", request, npb.Empty)

    async def complete_nexus_operation(
        self,
        node: str,
        token: NexusCallbackToken,
        operation_token: str,
        start_links: list[common.Link],
        start_time_ns: int,
        result: common.Payload | None,
        failure: failure_pb.Failure | None,
        canceled: bool,
    ) -> None:
        """NexusOperations.complete on `node`; OperationNotFound as it raises it."""
        request = npb.CompleteNexusOperationRequest(
            token=token,
            operation_token=operation_token,
            start_links=start_links,
            start_time_ns=start_time_ns,
            canceled=canceled,
        )
        if result is not None:
            request.result.CopyFrom(result)
        if failure is not None:
            request.failure.CopyFrom(failure)
        try:
            await self._call(node, "CompleteNexusOperation", request, npb.Empty)
        except NotFound as err:
            # NexusOperations.complete answers every missing caller or operation with OperationNotFound
            raise OperationNotFound(err.message) from None
