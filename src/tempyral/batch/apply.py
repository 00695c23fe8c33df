"""How a batch job applies its operation to one execution: the single-workflow call, made to this node's own gRPC
frontend (so the call is validated, routed to the node holding the workflow's shard and served exactly as a
client's), as the reference's batcher calls its frontend.

What happens when an execution is handled twice (the process died after applying and before recording it):
- terminate, cancel, delete: the second call finds the workflow closed, cancel-requested or gone; NotFound counts
  as done, as on the reference (which counts a workflow that is gone or closed as done);
- signal: the request id is derived from the job and the execution, so the second signal is dropped as a retry;
- reset: a run that was already reset (its describe names the run that replaced it) is not reset again.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import uuid
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import EventType, ResetType
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import tls
from tempyral.namespace.registry import Namespace

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 30.0
ATTEMPTS = 10  # for errors that may pass (the node busy, a shard moving); others fail the execution at once
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
    }
)
DEFAULT_IDENTITY = "tempyral-batcher"
HISTORY_PAGE = 1000
SERVICE = "temporal.api.workflowservice.v1.WorkflowService"
R = TypeVar("R", bound=Message)


class Outcome(enum.Enum):
    DONE = "done"
    FAILED = "failed"


class NoResetPoint(Exception):
    """The run has no workflow task to reset to (the reference fails the execution the same way)."""


class Applier:
    def __init__(self, address: str, authorization: str | None = None) -> None:
        """`authorization`: the server's own credential, when authorization is on (auth/authorizer.py)."""
        self.address = address
        self._channel = tls.channel(address, [])  # this node's own frontend: TLS when it serves TLS
        self._metadata = (("authorization", authorization),) if authorization else None

    async def close(self) -> None:
        await self._channel.close(None)

    async def _call(self, method: str, request: Message, response: type[R]) -> R:
        call: Any = self._channel.unary_unary(
            f"/{SERVICE}/{method}",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response.FromString,
        )
        result: R = await call(request, timeout=CALL_TIMEOUT_S, metadata=self._metadata)
        return result

    async def apply(
        self,
        ns: Namespace,
        request: ws.StartBatchOperationRequest,
        execution: common.WorkflowExecution,
    ) -> Outcome:
        """Apply the job's operation to one execution, retrying what may pass; DONE also for a workflow that is
        gone or closed (NotFound), as the reference counts it."""
        delay = 0.2
        for attempt in range(1, ATTEMPTS + 1):
            try:
                await self._apply_once(ns, request, execution)
                return Outcome.DONE
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:
                    return Outcome.DONE
                if err.code() not in RETRYABLE or attempt == ATTEMPTS:
                    log.info(
                        "batch operation %s: %s %s: %s",
                        request.job_id,
                        execution.workflow_id,
                        execution.run_id,
                        err.details(),
                    )
                    return Outcome.FAILED
            except NoResetPoint:
                return Outcome.FAILED
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
        return Outcome.FAILED

    async def _apply_once(
        self, ns: Namespace, request: ws.StartBatchOperationRequest, execution: common.WorkflowExecution
    ) -> None:
        name = request.WhichOneof("operation")
        if name == "termination_operation":
            op_t = request.termination_operation
            terminate = ws.TerminateWorkflowExecutionRequest(
                namespace=ns.name,
                workflow_execution=execution,
                reason=request.reason,
                identity=op_t.identity or DEFAULT_IDENTITY,
            )
            if op_t.HasField("details"):
                terminate.details.CopyFrom(op_t.details)
            await self._call("TerminateWorkflowExecution", terminate, ws.TerminateWorkflowExecutionResponse)
        elif name == "cancellation_operation":
            await self._call(
                "RequestCancelWorkflowExecution",
                ws.RequestCancelWorkflowExecutionRequest(
                    namespace=ns.name,
                    workflow_execution=execution,
                    identity=request.cancellation_operation.identity or DEFAULT_IDENTITY,
                    request_id=_request_id(request.job_id, execution),
                ),
                ws.RequestCancelWorkflowExecutionResponse,
            )
        elif name == "signal_operation":
            op_s = request.signal_operation
            signal = ws.SignalWorkflowExecutionRequest(
                namespace=ns.name,
                workflow_execution=execution,
                signal_name=op_s.signal,
                identity=op_s.identity or DEFAULT_IDENTITY,
                request_id=_request_id(request.job_id, execution),
            )
            if op_s.HasField("input"):
                signal.input.CopyFrom(op_s.input)
            if op_s.HasField("header"):
                signal.header.CopyFrom(op_s.header)
            await self._call("SignalWorkflowExecution", signal, ws.SignalWorkflowExecutionResponse)
        elif name == "deletion_operation":
            await self._call(
                "DeleteWorkflowExecution",
                ws.DeleteWorkflowExecutionRequest(namespace=ns.name, workflow_execution=execution),
                ws.DeleteWorkflowExecutionResponse,
            )
        elif name == "reset_operation":
            await self._reset(ns, request, execution)
        else:  # refused when the job was started (batch/validation.py)
            raise AssertionError(f"batch operation {name} cannot be applied")

    async def _reset(
        self, ns: Namespace, request: ws.StartBatchOperationRequest, execution: common.WorkflowExecution
    ) -> None:
        reset = request.reset_operation
        target = common.WorkflowExecution()
        target.CopyFrom(execution)
        described = await self._call(
            "DescribeWorkflowExecution",
            ws.DescribeWorkflowExecutionRequest(namespace=ns.name, execution=target),
            ws.DescribeWorkflowExecutionResponse,
        )
        if described.workflow_extended_info.reset_run_id:
            return  # replaced by a reset already (this job's, before the process died, or a listing seeing it again)
        options = reset.options
        if reset.HasField("options"):
            which = options.WhichOneof("target")
            if which == "workflow_task_id":
                event_id = options.workflow_task_id
            elif which == "build_id":
                event_id = self._build_id_point(described, options.build_id, options.current_run_only, target)
            else:
                event_id = await self._workflow_task_event(ns, target, first=which == "first_workflow_task")
            reapply_type = options.reset_reapply_type
            exclude = list(options.reset_reapply_exclude_types)
        else:
            event_id = await self._workflow_task_event(
                ns, target, first=reset.reset_type == ResetType.RESET_TYPE_FIRST_WORKFLOW_TASK
            )
            reapply_type = reset.reset_reapply_type
            exclude = []
        if not target.run_id:
            target.run_id = described.workflow_execution_info.execution.run_id
        await self._call(
            "ResetWorkflowExecution",
            ws.ResetWorkflowExecutionRequest(
                namespace=ns.name,
                workflow_execution=target,
                reason=request.reason,
                request_id=_request_id(request.job_id, target),
                workflow_task_finish_event_id=event_id,
                reset_reapply_type=reapply_type,
                reset_reapply_exclude_types=exclude,
                post_reset_operations=reset.post_reset_operations,
                identity=reset.identity or DEFAULT_IDENTITY,
            ),
            ws.ResetWorkflowExecutionResponse,
        )

    @staticmethod
    def _build_id_point(
        described: ws.DescribeWorkflowExecutionResponse,
        build_id: str,
        current_run_only: bool,
        target: common.WorkflowExecution,
    ) -> int:
        for point in described.workflow_execution_info.auto_reset_points.points:
            if point.build_id != build_id:
                continue
            if not point.resettable:
                raise NoResetPoint(f"Reset point for {build_id} is not resettable")
            if current_run_only and point.run_id != described.workflow_execution_info.execution.run_id:
                raise NoResetPoint(f"Reset point for {build_id} points to previous run and CurrentRunOnly is set")
            target.run_id = point.run_id
            return int(point.first_workflow_task_completed_id)
        raise NoResetPoint(f"Can't find reset point for {build_id}")

    async def _workflow_task_event(self, ns: Namespace, execution: common.WorkflowExecution, first: bool) -> int:
        """The event a reset to the first or the last workflow task finishes at: that task's WorkflowTaskCompleted,
        or the event after the first WorkflowTaskScheduled when no task completed (as the reference's batcher)."""
        first_scheduled = 0
        last_completed = 0
        token = b""
        while True:
            page = await self._call(
                "GetWorkflowExecutionHistory",
                ws.GetWorkflowExecutionHistoryRequest(
                    namespace=ns.name, execution=execution, maximum_page_size=HISTORY_PAGE, next_page_token=token
                ),
                ws.GetWorkflowExecutionHistoryResponse,
            )
            for event in page.history.events:
                if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                    if first:
                        return int(event.event_id)
                    last_completed = event.event_id
                elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED and not first_scheduled:
                    first_scheduled = event.event_id + 1
            token = page.next_page_token
            if not token:
                break
        if last_completed:
            return int(last_completed)
        if first_scheduled:
            return int(first_scheduled)
        raise NoResetPoint("unable to find any scheduled or completed task")


def _request_id(job_id: str, execution: common.WorkflowExecution) -> str:
    """The same for every attempt of one job on one execution, so that a repeat is recognised as a retry."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"tempyral-batch/{job_id}/{execution.workflow_id}/{execution.run_id}"))
