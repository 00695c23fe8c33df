"""NodeService, the server side of the internal RPC between the nodes of one cluster (proto/nodes.proto): another
node passes here the work of a workflow whose shard this node owns (a transfer task's start, signal, cancel,
terminate, child notification; a Nexus completion for a caller here) and of a task queue this node serves.

Every call is done by this node's own components, never routed on: the workflow operations by the local history
engine (`WorkflowOps`), a completion by the local `NexusOperations.complete`. When the shard is not (or no longer)
owned here, they raise ShardNotHere and the caller asks again where the shard is now. `ServiceError`s go back as the
frontend sends them (code, message and error details), which nodes/client.py `error_from_status` turns back into
the same exceptions.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import NamespaceNotFound, ServiceError, Unimplemented
from tempyral.common.logs import ThrottledLog
from tempyral.frontend.grpc_handlers import abort
from tempyral.history.starts import ParentInfo
from tempyral.history.tasks import WorkflowOps
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.operations import CompleteOperation
from tempyral.proto import nodes_pb2 as npb

log = logging.getLogger(__name__)
SERVICE = npb.DESCRIPTOR.services_by_name["NodeService"].full_name
Context = grpc.aio.ServicerContext[Any, Any]

# The matching side of NodeService, given by the server (nodes/matching.py MatchingRouter).
AddTask = Callable[[npb.AddTaskRequest], Awaitable[None] | None]
RecordTaskStarted = Callable[[npb.RecordTaskStartedRequest], Awaitable[bytes]]
DispatchNexusTask = Callable[[npb.DispatchNexusTaskRequest], Awaitable[npb.DispatchNexusTaskResponse]]


def _unimplemented(what: str) -> Unimplemented:
    return Unimplemented(f"{what} is not served by this node")


async def _no_add_task(request: npb.AddTaskRequest) -> None:
    raise _unimplemented("AddTask")


async def _no_record_task_started(request: npb.RecordTaskStartedRequest) -> bytes:
    raise _unimplemented("RecordTaskStarted")


async def _no_dispatch_nexus_task(request: npb.DispatchNexusTaskRequest) -> npb.DispatchNexusTaskResponse:
    raise _unimplemented("DispatchNexusTask")


def _no_report_pollers(request: npb.ReportPollersRequest) -> None:
    raise _unimplemented("ReportPollers")


def _no_describe_queue(request: npb.DescribeQueueRequest) -> npb.DescribeQueueResponse:
    raise _unimplemented("DescribeQueue")


class NodeService:
    def __init__(
        self,
        namespaces: NamespaceRegistry,
        workflows: WorkflowOps,
        complete_operation: CompleteOperation,
        *,
        add_task: AddTask = _no_add_task,
        record_task_started: RecordTaskStarted = _no_record_task_started,
        dispatch_nexus_task: DispatchNexusTask = _no_dispatch_nexus_task,
        report_pollers: Callable[[npb.ReportPollersRequest], None] = _no_report_pollers,
        describe_queue: Callable[[npb.DescribeQueueRequest], npb.DescribeQueueResponse] = _no_describe_queue,
    ) -> None:
        """`workflows` and `complete_operation` must be this node's own (the engine, NexusOperations.complete), not
        the routed ones: a call that came from another node is answered here or refused with ShardNotHere."""
        self.namespaces = namespaces
        self.workflows = workflows
        self.complete_operation = complete_operation
        self.add_task = add_task
        self.record_task_started = record_task_started
        self.dispatch_nexus_task = dispatch_nexus_task
        self.report_pollers = report_pollers
        self.describe_queue = describe_queue

    def _namespace(self, namespace_id: str) -> Namespace:
        ns = self.namespaces.find_by_id(namespace_id)
        if ns is None:  # not known here yet (another node just created it), or gone: the caller retries
            raise NamespaceNotFound(namespace_id)
        return ns

    # ------------------------------------------------------------------ workflows
    async def start_workflow(self, request: npb.StartWorkflowRequest, context: Context) -> npb.StartWorkflowResponse:
        ns = self._namespace(request.namespace_id)
        parent = parent_from_proto(request.parent) if request.HasField("parent") else None
        result = await self.workflows.start_workflow(
            ns, ws.StartWorkflowExecutionRequest.FromString(request.request), parent=parent
        )
        return npb.StartWorkflowResponse(run_id=result.run_id, started=result.started, status=result.status)

    async def signal_workflow(self, request: npb.SignalWorkflowRequest, context: Context) -> npb.Empty:
        ns = self._namespace(request.namespace_id)
        await self.workflows.signal(
            ns,
            ws.SignalWorkflowExecutionRequest.FromString(request.request),
            external=_execution(request, "external"),
            child_of=_execution(request, "child_of"),
        )
        return npb.Empty()

    async def request_cancel_workflow(self, request: npb.RequestCancelWorkflowRequest, context: Context) -> npb.Empty:
        ns = self._namespace(request.namespace_id)
        await self.workflows.request_cancel(
            ns,
            ws.RequestCancelWorkflowExecutionRequest.FromString(request.request),
            external=_execution(request, "external"),
            external_initiated_event_id=request.external_initiated_event_id,
            child_of=_execution(request, "child_of"),
        )
        return npb.Empty()

    async def terminate_workflow(self, request: npb.TerminateWorkflowRequest, context: Context) -> npb.Empty:
        ns = self._namespace(request.namespace_id)
        await self.workflows.terminate(ns, ws.TerminateWorkflowExecutionRequest.FromString(request.request))
        return npb.Empty()

    # These two take the namespace by id, as the local operations do (which need no namespace record).
    async def schedule_first_task(self, request: npb.ScheduleFirstTaskRequest, context: Context) -> npb.Empty:
        await self.workflows.schedule_first_task(request.namespace_id, request.workflow_id, request.run_id)
        return npb.Empty()

    async def record_child_closed(self, request: npb.RecordChildClosedRequest, context: Context) -> npb.Empty:
        await self.workflows.record_child_closed(
            request.parent_namespace_id,
            request.parent,
            request.initiated_event_id,
            request.first_execution_run_id,
            request.run_id,
            request.close_event,
        )
        return npb.Empty()

    # ------------------------------------------------------------------ Nexus
    async def complete_nexus_operation(self, request: npb.CompleteNexusOperationRequest, context: Context) -> npb.Empty:
        await self.complete_operation(
            request.token,
            request.operation_token,
            list(request.start_links),
            request.start_time_ns,
            request.result if request.HasField("result") else None,
            request.failure if request.HasField("failure") else None,
            request.canceled,
        )
        return npb.Empty()

    # ------------------------------------------------------------------ matching
    async def add_task_rpc(self, request: npb.AddTaskRequest, context: Context) -> npb.Empty:
        done = self.add_task(request)
        if inspect.isawaitable(done):
            await done
        return npb.Empty()

    async def record_task_started_rpc(
        self, request: npb.RecordTaskStartedRequest, context: Context
    ) -> npb.RecordTaskStartedResponse:
        return npb.RecordTaskStartedResponse(poll_response=await self.record_task_started(request))

    async def dispatch_nexus_task_rpc(
        self, request: npb.DispatchNexusTaskRequest, context: Context
    ) -> npb.DispatchNexusTaskResponse:
        return await self.dispatch_nexus_task(request)

    async def report_pollers_rpc(self, request: npb.ReportPollersRequest, context: Context) -> npb.Empty:
        self.report_pollers(request)
        return npb.Empty()

    async def describe_queue_rpc(
        self, request: npb.DescribeQueueRequest, context: Context
    ) -> npb.DescribeQueueResponse:
        return self.describe_queue(request)


def parent_to_proto(parent: ParentInfo) -> npb.ParentInfo:
    return npb.ParentInfo(
        namespace=parent.namespace,
        namespace_id=parent.namespace_id,
        workflow_id=parent.workflow_id,
        run_id=parent.run_id,
        initiated_event_id=parent.initiated_event_id,
        root=parent.root,
    )


def parent_from_proto(parent: npb.ParentInfo) -> ParentInfo:
    root = common.WorkflowExecution()
    root.CopyFrom(parent.root)
    return ParentInfo(
        parent.namespace, parent.namespace_id, parent.workflow_id, parent.run_id, parent.initiated_event_id, root
    )


def _execution(request: Any, field: str) -> common.WorkflowExecution | None:
    """An optional execution field: unset is None, as the local operation takes it."""
    if not request.HasField(field):
        return None
    execution: common.WorkflowExecution = getattr(request, field)
    return execution


_unexpected = ThrottledLog(log)


def _unary(method: str, fn: Callable[[Any, Context], Awaitable[Any]]) -> Callable[[Any, Context], Awaitable[Any]]:
    async def handler(request: Any, context: Context) -> Any:
        try:
            return await fn(request, context)
        except ServiceError as err:
            await abort(context, err)
        except grpc.aio.AbortError:
            raise
        except Exception as err:  # a bug: the caller sees INTERNAL, the log has the traceback
            _unexpected.failure(f"NodeService.{method} failed", err)
            await context.abort(grpc.StatusCode.INTERNAL, f"{method}: internal error: {err}")

    return handler


def node_handler(service: NodeService) -> grpc.GenericRpcHandler[Any, Any]:
    """NodeService's methods, for the node's gRPC server (the port other nodes know from the membership rows)."""
    methods: dict[str, tuple[Callable[[Any, Context], Awaitable[Any]], Any]] = {
        "StartWorkflow": (service.start_workflow, npb.StartWorkflowRequest),
        "SignalWorkflow": (service.signal_workflow, npb.SignalWorkflowRequest),
        "RequestCancelWorkflow": (service.request_cancel_workflow, npb.RequestCancelWorkflowRequest),
        "TerminateWorkflow": (service.terminate_workflow, npb.TerminateWorkflowRequest),
        "ScheduleFirstTask": (service.schedule_first_task, npb.ScheduleFirstTaskRequest),
        "RecordChildClosed": (service.record_child_closed, npb.RecordChildClosedRequest),
        "CompleteNexusOperation": (service.complete_nexus_operation, npb.CompleteNexusOperationRequest),
        "AddTask": (service.add_task_rpc, npb.AddTaskRequest),
        "RecordTaskStarted": (service.record_task_started_rpc, npb.RecordTaskStartedRequest),
        "DispatchNexusTask": (service.dispatch_nexus_task_rpc, npb.DispatchNexusTaskRequest),
        "ReportPollers": (service.report_pollers_rpc, npb.ReportPollersRequest),
        "DescribeQueue": (service.describe_queue_rpc, npb.DescribeQueueRequest),
    }
    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            name: grpc.unary_unary_rpc_method_handler(
                _unary(name, fn),
                request_deserializer=request.FromString,
                response_serializer=lambda m: m.SerializeToString(),
            )
            for name, (fn, request) in methods.items()
        },
    )
