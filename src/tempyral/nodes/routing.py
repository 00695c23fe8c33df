"""Any node's frontend serves any request: a call for a workflow whose shard another node owns, a task completion
of such a workflow, or a Nexus poll of a task queue another node serves is passed to that node, bytes in and bytes out,
with the caller's deadline and headers; its answer (or error, details included) goes back unchanged.

A passed call carries `tempyral-node-hop` and is never passed again: a node that does not own the shard any more
answers UNAVAILABLE (ShardNotHere), and the first node asks again, with a fresh view, until the caller's deadline
(bounded). Everything else (namespaces, visibility lists, cluster calls) is answered where it arrives.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument, ServiceError, Unavailable
from tempyral.common.standalone import activity_key
from tempyral.common.tokens import decode_task_token
from tempyral.frontend.grpc_handlers import Handler, snake_case
from tempyral.frontend.redirection import DEFAULT_FORWARD_TIMEOUT_S, _pass_back, pass_call
from tempyral.matching.service import NEXUS, QueueKey
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.dispatch import decode_task_token as decode_nexus_token
from tempyral.nexus.standalone import operations_namespace_id
from tempyral.nodes.ownership import Ownership

log = logging.getLogger(__name__)
HOP_HEADER = "tempyral-node-hop"
RETRY_FOR_S = 10.0  # how long a call keeps looking for its shard's owner while shards move
EMPTY_POLL_PAUSE_S = 1.0  # a poll whose node is unreachable answers empty after this (the worker polls again)

# What names the node: a workflow (namespace id, workflow id), or a task queue.
Target = tuple[str, str] | QueueKey
Locate = Callable[[Any, str], Target | None]  # (request, namespace id) -> target; None: answered here


def _workflow(field: Callable[[Any], str]) -> Locate:
    return lambda req, ns_id: (ns_id, field(req)) if field(req) else None


def _standalone(req: Any) -> str:
    return activity_key(req.activity_id) if req.activity_id else ""


def _activity_owner(req: Any) -> str:
    if req.workflow_id:
        return str(req.workflow_id)
    return _standalone(req)


def _token(req: Any, ns_id: str) -> Target | None:
    try:
        token = decode_task_token(req.task_token)
    except InvalidArgument:
        return None  # refused where it arrived, with the usual error
    return (token.namespace_id, token.workflow_id)


def _nexus_token(req: Any, ns_id: str) -> Target | None:
    try:
        token = decode_nexus_token(req.task_token)
    except InvalidArgument:
        return None
    return QueueKey(token.namespace_id, token.task_queue, NEXUS)


def _queue(kind: int) -> Locate:
    return lambda req, ns_id: QueueKey(ns_id, req.task_queue.name, kind) if req.task_queue.name else None


def _described_queue(req: ws.DescribeTaskQueueRequest, ns_id: str) -> Target | None:
    """A Nexus queue is described on its node; workflow and activity queues have a part on every node, which the
    node the call reaches gathers (nodes/matching.py describe_elsewhere)."""
    if req.task_queue_type != TaskQueueType.TASK_QUEUE_TYPE_NEXUS or not req.task_queue.name:
        return None
    return QueueKey(ns_id, req.task_queue.name, NEXUS)


def _multi_operation(req: ws.ExecuteMultiOperationRequest, ns_id: str) -> Target | None:
    for op in req.operations:
        if op.HasField("start_workflow") and op.start_workflow.workflow_id:
            return (ns_id, op.start_workflow.workflow_id)
    return None


def _operation(req: Any, ns_id: str) -> Target | None:
    """A standalone Nexus operation: the shard of its own id space (nexus/standalone.py)."""
    return (operations_namespace_id(ns_id), req.operation_id) if req.operation_id else None


LOCATE: dict[str, Locate] = {
    "StartWorkflowExecution": _workflow(lambda r: r.workflow_id),
    "SignalWithStartWorkflowExecution": _workflow(lambda r: r.workflow_id),
    "ExecuteMultiOperation": _multi_operation,
    "SignalWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "RequestCancelWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "TerminateWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "ResetWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "DeleteWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "UpdateWorkflowExecution": _workflow(lambda r: r.workflow_execution.workflow_id),
    "UpdateWorkflowExecutionOptions": _workflow(lambda r: r.workflow_execution.workflow_id),
    "PollWorkflowExecutionUpdate": _workflow(lambda r: r.update_ref.workflow_execution.workflow_id),
    "DescribeWorkflowExecution": _workflow(lambda r: r.execution.workflow_id),
    "GetWorkflowExecutionHistory": _workflow(lambda r: r.execution.workflow_id),
    "GetWorkflowExecutionHistoryReverse": _workflow(lambda r: r.execution.workflow_id),
    "QueryWorkflow": _workflow(lambda r: r.execution.workflow_id),
    "ResetStickyTaskQueue": _workflow(lambda r: r.execution.workflow_id),
    "PauseActivity": _workflow(lambda r: r.execution.workflow_id),
    "UnpauseActivity": _workflow(lambda r: r.execution.workflow_id),
    "ResetActivity": _workflow(lambda r: r.execution.workflow_id),
    "UpdateActivityOptions": _workflow(lambda r: r.execution.workflow_id),
    # by id: a workflow's activity, or without a workflow id a standalone activity's
    "RecordActivityTaskHeartbeatById": _workflow(_activity_owner),
    "RespondActivityTaskCompletedById": _workflow(_activity_owner),
    "RespondActivityTaskFailedById": _workflow(_activity_owner),
    "RespondActivityTaskCanceledById": _workflow(_activity_owner),
    # standalone activities, on the shard of their key (task completions go by their token, above)
    "StartActivityExecution": _workflow(_standalone),
    "DescribeActivityExecution": _workflow(_standalone),
    "PollActivityExecution": _workflow(_standalone),
    "RequestCancelActivityExecution": _workflow(_standalone),
    "TerminateActivityExecution": _workflow(_standalone),
    "DeleteActivityExecution": _workflow(_standalone),
    "StartNexusOperationExecution": _operation,
    "DescribeNexusOperationExecution": _operation,
    "PollNexusOperationExecution": _operation,
    "RequestCancelNexusOperationExecution": _operation,
    "TerminateNexusOperationExecution": _operation,
    "DeleteNexusOperationExecution": _operation,
    "RespondWorkflowTaskCompleted": _token,
    "RespondWorkflowTaskFailed": _token,
    "RespondQueryTaskCompleted": _token,
    "RespondActivityTaskCompleted": _token,
    "RespondActivityTaskFailed": _token,
    "RespondActivityTaskCanceled": _token,
    "RecordActivityTaskHeartbeat": _token,
    "RespondNexusTaskCompleted": _nexus_token,
    "RespondNexusTaskFailed": _nexus_token,
    # Workflow and activity polls (and a worker's ShutdownWorker) are served where they arrive: every node has its
    # own part of each queue (nodes/matching.py). A Nexus queue is served by one node.
    "PollNexusTaskQueue": _queue(NEXUS),
    "DescribeTaskQueue": _described_queue,
    # A batch operation runs on the node holding the shard of its job id (batch/service.py).
    "StartBatchOperation": _workflow(lambda r: r.job_id),
    "StopBatchOperation": _workflow(lambda r: r.job_id),
    "DescribeBatchOperation": _workflow(lambda r: r.job_id),
    # A schedule is served by the node owning its scheduler run's shard (schedules/).
    **{
        name: _workflow(lambda r: "temporal-sys-scheduler:" + r.schedule_id if r.schedule_id else "")
        for name in (
            "CreateSchedule",
            "DescribeSchedule",
            "UpdateSchedule",
            "PatchSchedule",
            "DeleteSchedule",
            "ListScheduleMatchingTimes",
        )
    },
}
POLLS = frozenset({"PollNexusTaskQueue"})


class NodeRouter:
    def __init__(
        self, ownership: Ownership, namespaces: NamespaceRegistry, service_name: str, owned: Callable[[int], bool]
    ) -> None:
        """`owned(shard_id)`: whether this node holds the shard's lease now (then it answers, whatever the view)."""
        self.ownership = ownership
        self.owned = owned
        self.namespaces = namespaces
        self.service_name = service_name
        # (node, method) -> calls passed there
        self.passed: Counter[tuple[str, str]] = Counter()

    def wrap(self, method: str, handler: Handler, response_class: type[Message]) -> Handler:
        locate = LOCATE.get(method)
        if locate is None:
            return handler
        full_method = f"/{self.service_name}/{method}"

        async def routed(request: Any, context: Any) -> Message | bytes:
            metadata = context.invocation_metadata() or ()
            if any(k == HOP_HEADER for k, _ in metadata):
                return await handler(request, context)  # passed here by another node: answered here
            ns = self.namespaces.find(getattr(request, "namespace", ""))
            if ns is None:
                return await handler(request, context)
            target = locate(request, ns.id)
            if target is None:
                return await handler(request, context)
            return await self._call(method, full_method, target, handler, request, context, response_class)

        return routed

    def _node_for(self, target: Target) -> str:
        if isinstance(target, QueueKey):
            return self.ownership.queue_owner(target)
        shard_id = self.ownership.shard_of(*target)
        return self.ownership.node if self.owned(shard_id) else self.ownership.shard_owner(shard_id)

    async def _call(
        self,
        method: str,
        full_method: str,
        target: Target,
        handler: Handler,
        request: Any,
        context: Any,
        response_class: type[Message],
    ) -> Message | bytes:
        remaining = context.time_remaining()
        deadline = time.monotonic() + (DEFAULT_FORWARD_TIMEOUT_S if remaining is None else max(remaining, 0.0))
        give_up = time.monotonic() + RETRY_FOR_S
        while True:
            node = self._node_for(target)
            try:
                if node == self.ownership.node:
                    return await handler(request, context)
                return await self._pass(node, method, full_method, request, context, deadline, response_class)
            except Unavailable as err:  # ShardNotHere here, or the other node unreachable
                failure: ServiceError | grpc.aio.AioRpcError = err
            except grpc.aio.AioRpcError as err:
                if err.code() != grpc.StatusCode.UNAVAILABLE:
                    return await _answer(context, err)
                failure = err
            if method in POLLS:
                await asyncio.sleep(min(EMPTY_POLL_PAUSE_S, max(deadline - time.monotonic(), 0.0)))
                return response_class()  # the worker polls again, where the queue is then
            if time.monotonic() + 0.2 >= min(give_up, deadline):
                if isinstance(failure, ServiceError):
                    raise failure
                return await _answer(context, failure)
            await asyncio.sleep(0.2)  # shards are moving: the controller's view refreshes meanwhile

    async def _pass(
        self,
        node: str,
        method: str,
        full_method: str,
        request: Any,
        context: Any,
        deadline: float,
        response_class: type[Message],
    ) -> Message | bytes:
        channel = self.ownership.channel(node)
        if channel is None:
            raise Unavailable(f"node {node} is not a live member of this cluster")
        self.passed[(node, method)] += 1
        response = await pass_call(
            channel,
            full_method,
            request,
            context,
            [(HOP_HEADER, self.ownership.node)],
            max(deadline - time.monotonic(), 0.0),
        )
        if hasattr(context, "abort"):
            return response  # gRPC: the bytes as they came
        return response_class.FromString(response)  # the HTTP API converts a message


async def _answer(context: Any, err: grpc.aio.AioRpcError) -> bytes:
    """The other node's error, to the caller: over gRPC as it came (details included)."""
    if hasattr(context, "abort"):
        return await _pass_back(context, err)
    raise _RemoteError(err)


class _RemoteError(ServiceError):
    def __init__(self, err: grpc.aio.AioRpcError) -> None:
        super().__init__(err.details() or "")
        self.code = err.code()


def response_class_of(service: ServiceDescriptor, method: str) -> type[Message]:
    return GetMessageClass(service.methods_by_name[method].output_type)


class RoutedServicer:
    """A servicer whose methods go through the router (for the HTTP API, which calls servicers directly)."""

    def __init__(self, service: ServiceDescriptor, servicer: object, router: NodeRouter) -> None:
        self._servicer = servicer
        self._wrapped: dict[str, Any] = {}
        for method in service.methods:
            fn = getattr(servicer, snake_case(method.name), None)
            if fn is not None:
                self._wrapped[snake_case(method.name)] = router.wrap(
                    method.name, fn, response_class_of(service, method.name)
                )

    def __getattr__(self, name: str) -> Any:
        wrapped = self._wrapped.get(name)
        return wrapped if wrapped is not None else getattr(self._servicer, name)
