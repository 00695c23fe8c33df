"""The WorkflowService: request validation and namespace lookup, then the history engine."""

from __future__ import annotations

import logging
import time
from typing import Any

import grpc
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    DescribeTaskQueueMode,
    EventType,
    TaskQueueType,
    WorkflowIdConflictPolicy,
)
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral import SERVER_VERSION
from tempyral.batch.service import BatchOperations
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common.clock import timestamp
from tempyral.common.errors import InvalidArgument, PermissionDenied, Unimplemented
from tempyral.common.limits import (
    check_blob_size,
    check_id,
    max_id_length,
)
from tempyral.common.tokens import decode_task_token
from tempyral.history import reads, reset
from tempyral.history.engine import HistoryEngine
from tempyral.matching.service import ACTIVITY, NEXUS, WORKFLOW, Poller, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.addresses import OutboundAddresses
from tempyral.nexus.dispatch import NexusDispatcher
from tempyral.nexus.standalone import StandaloneNexus
from tempyral.schedules.service import ScheduleService
from tempyral.visibility.activities import ActivityVisibility
from tempyral.visibility.attributes import SYSTEM_ATTRIBUTES
from tempyral.visibility.service import Visibility

from .activity_service import StandaloneActivityMethods
from .namespace_handler import NamespaceHandler
from .standby import StandbyPolls
from .validation import (
    check_execution,
    check_start_payloads,
    check_task_queue,
    default_id_policies,
    prepare_activity_failure,
    start_request_from_signal_with_start,
    validate_signal,
    validate_signal_with_start,
    validate_start,
)

log = logging.getLogger(__name__)
Ctx = grpc.aio.ServicerContext[Any, Any]
MAX_LONG_POLL_S = 60.0
QUERY_TIMEOUT_S = 30.0  # a query nobody answers fails after this, as on the reference
LONG_POLL_MARGIN_S = 1.0


def long_poll_timeout(context: Ctx, cap: float = MAX_LONG_POLL_S) -> float:
    """Answer a long poll a little before the caller's deadline, and never after `cap`."""
    remaining = context.time_remaining()
    if remaining is None:
        return cap
    return max(0.0, min(cap, remaining - LONG_POLL_MARGIN_S))


def _is_sdk(ctx: Ctx) -> bool:
    """The CLI and the Web UI are not shown transient workflow-task events (as with the reference)."""
    for key, value in ctx.invocation_metadata() or ():
        if key == "client-name" and value in ("temporal-cli", "temporal-ui"):
            return False
    return True


DEFAULT_POLLER_RATE = 100_000.0  # what the reference reports for workers that set no limit
UNVERSIONED = "__unversioned__"
DEFAULT_TASK_QUEUE_TYPES = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
GO_ZERO_TIME_S = -62_135_596_800  # the reference's "never": Go's zero time
VERSIONING_V1_DISABLED = "Worker versioning v0.1 (Version Set-based, deprecated) is disabled on this namespace."
VERSIONING_V2_DISABLED = "Worker versioning v0.2 (Rules-based, deprecated) is disabled on this namespace."


class WorkflowService(StandaloneActivityMethods):
    def __init__(
        self,
        engine: HistoryEngine,
        namespaces: NamespaceRegistry,
        visibility: Visibility,
        clusters: ClusterMetadata,
        persistence_store: str,
        nexus_dispatcher: NexusDispatcher | None = None,
        addresses: OutboundAddresses | None = None,
        standalone_nexus: StandaloneNexus | None = None,
        batches: BatchOperations | None = None,
        schedules: ScheduleService | None = None,
    ) -> None:
        self.engine = engine
        self.standalone_nexus = standalone_nexus
        self.batches = batches
        self.schedules = schedules
        # Which completion callback URLs start requests may name (default: the internal ones only).
        self.addresses = addresses or OutboundAddresses()
        self.nexus_dispatcher = nexus_dispatcher or NexusDispatcher(engine.matching)
        self.namespaces = namespaces
        self.visibility = visibility
        self.activity_visibility = ActivityVisibility(visibility.store)
        self.clusters = clusters
        self.persistence_store = persistence_store
        # Worker polls where a namespace is standby: query tasks only, until it fails over here.
        self.standby = StandbyPolls(namespaces, engine.matching)
        self.namespace_handler = NamespaceHandler(namespaces, clusters)

    # ------------------------------------------------------------------ cluster
    async def get_system_info(self, req: ws.GetSystemInfoRequest, ctx: Ctx) -> ws.GetSystemInfoResponse:
        resp = ws.GetSystemInfoResponse(server_version=SERVER_VERSION)
        caps = resp.capabilities
        # Only what tempyral really does.
        caps.signal_and_query_header = True
        caps.internal_error_differentiation = True
        caps.activity_failure_include_heartbeat = True
        caps.encoded_failure_attributes = True
        caps.upsert_memo = True
        caps.eager_workflow_start = True
        caps.sdk_metadata = True
        caps.count_group_by_execution_status = True
        caps.nexus = True  # the Web UI shows its Nexus pages only to servers that claim it
        caps.supports_schedules = True  # schedules/
        # Build ids are recorded on task events and in BuildIds, as on the reference, which claims
        # this too while refusing the deprecated versioning APIs (below); SDKs send their build id
        # with every task response only to servers that claim it.
        caps.build_id_based_versioning = True
        return resp

    # The deprecated worker-versioning APIs: refused as the reference's dev server refuses them.
    async def update_worker_build_id_compatibility(
        self, req: ws.UpdateWorkerBuildIdCompatibilityRequest, ctx: Ctx
    ) -> ws.UpdateWorkerBuildIdCompatibilityResponse:
        raise PermissionDenied(VERSIONING_V1_DISABLED)

    async def get_worker_build_id_compatibility(
        self, req: ws.GetWorkerBuildIdCompatibilityRequest, ctx: Ctx
    ) -> ws.GetWorkerBuildIdCompatibilityResponse:
        raise PermissionDenied(VERSIONING_V1_DISABLED)

    async def update_worker_versioning_rules(
        self, req: ws.UpdateWorkerVersioningRulesRequest, ctx: Ctx
    ) -> ws.UpdateWorkerVersioningRulesResponse:
        raise PermissionDenied(VERSIONING_V2_DISABLED)

    async def get_worker_versioning_rules(
        self, req: ws.GetWorkerVersioningRulesRequest, ctx: Ctx
    ) -> ws.GetWorkerVersioningRulesResponse:
        raise PermissionDenied(VERSIONING_V2_DISABLED)

    async def get_worker_task_reachability(
        self, req: ws.GetWorkerTaskReachabilityRequest, ctx: Ctx
    ) -> ws.GetWorkerTaskReachabilityResponse:
        raise PermissionDenied(VERSIONING_V2_DISABLED)

    async def get_cluster_info(self, req: ws.GetClusterInfoRequest, ctx: Ctx) -> ws.GetClusterInfoResponse:
        return ws.GetClusterInfoResponse(
            supported_clients={
                "Nexus-go-sdk": "<2.0.0",
                "temporal-cli": "<2.0.0",
                "temporal-go": "<2.0.0",
                "temporal-java": "<2.0.0",
                "temporal-php": "<2.0.0",
                "temporal-server": "<2.0.0",
                "temporal-typescript": "<2.0.0",
                "temporal-ui": "<3.0.0",
            },
            server_version=SERVER_VERSION,
            cluster_id=self.clusters.current.cluster_id,
            cluster_name=self.clusters.name,
            history_shard_count=len(self.engine.shards),
            persistence_store=self.persistence_store,
            visibility_store=self.persistence_store,
            initial_failover_version=self.clusters.current.initial_failover_version,
            failover_version_increment=self.clusters.increment,
        )

    async def get_search_attributes(
        self, req: ws.GetSearchAttributesRequest, ctx: Ctx
    ) -> ws.GetSearchAttributesResponse:
        resp = ws.GetSearchAttributesResponse()
        resp.keys.update(SYSTEM_ATTRIBUTES)  # type: ignore[arg-type]
        for ns in self.namespaces.all():
            resp.keys.update(ns.record.search_attributes)  # type: ignore[arg-type]
        return resp

    # ------------------------------------------------------------------ namespaces (frontend/namespace_handler.py)
    async def register_namespace(self, req: ws.RegisterNamespaceRequest, ctx: Ctx) -> ws.RegisterNamespaceResponse:
        return await self.namespace_handler.register(req)

    async def describe_namespace(self, req: ws.DescribeNamespaceRequest, ctx: Ctx) -> ws.DescribeNamespaceResponse:
        return self.namespace_handler.describe(req)

    async def list_namespaces(self, req: ws.ListNamespacesRequest, ctx: Ctx) -> ws.ListNamespacesResponse:
        return self.namespace_handler.list(req)

    async def update_namespace(self, req: ws.UpdateNamespaceRequest, ctx: Ctx) -> ws.UpdateNamespaceResponse:
        return await self.namespace_handler.update(req)

    # ------------------------------------------------------------------ workflows
    async def start_workflow_execution(
        self, req: ws.StartWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.StartWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        validate_start(ns, req, self.addresses)
        self.namespaces.check_active(ns)
        result = await self.engine.start_workflow(ns, req)
        resp = ws.StartWorkflowExecutionResponse(
            run_id=result.run_id,
            started=result.started,
            status=result.status,  # type: ignore[arg-type]
            first_execution_run_id=result.first_execution_run_id,
        )
        if result.eager_task is not None:
            resp.eager_workflow_task.CopyFrom(result.eager_task)
        link = resp.link.workflow_event
        link.namespace = ns.name
        link.workflow_id = req.workflow_id
        link.run_id = result.run_id
        link.event_ref.event_id = 1
        link.event_ref.event_type = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        return resp

    async def signal_workflow_execution(
        self, req: ws.SignalWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.SignalWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        validate_signal(req)
        self.namespaces.check_active(ns)
        await self.engine.signal(ns, req)
        return ws.SignalWorkflowExecutionResponse()

    async def signal_with_start_workflow_execution(
        self, req: ws.SignalWithStartWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.SignalWithStartWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        validate_signal_with_start(ns, req)
        start = start_request_from_signal_with_start(req)
        default_id_policies(start, WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING)
        check_start_payloads(ns, start)
        self.namespaces.check_active(ns)
        result = await self.engine.start_workflow(ns, start, signal=req)
        return ws.SignalWithStartWorkflowExecutionResponse(run_id=result.run_id, started=result.started)

    async def request_cancel_workflow_execution(
        self, req: ws.RequestCancelWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.RequestCancelWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.workflow_execution)
        self.namespaces.check_active(ns)
        await self.engine.request_cancel(ns, req)
        return ws.RequestCancelWorkflowExecutionResponse()

    async def terminate_workflow_execution(
        self, req: ws.TerminateWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.TerminateWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.workflow_execution)
        # marks user terminations apart from the server's own, as the reference does
        req.reason = req.reason or "terminated by user via frontend"
        req.identity = req.identity or "frontend-service"
        self.namespaces.check_active(ns)
        await self.engine.terminate(ns, req)
        return ws.TerminateWorkflowExecutionResponse()

    async def get_workflow_execution_history(
        self, req: ws.GetWorkflowExecutionHistoryRequest, ctx: Ctx
    ) -> ws.GetWorkflowExecutionHistoryResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.execution)
        timeout = long_poll_timeout(ctx, 20.0) if req.wait_new_event else 0.0
        return await reads.get_history(self.engine.executions, ns, req, timeout, with_transient=_is_sdk(ctx))

    async def get_workflow_execution_history_reverse(
        self, req: ws.GetWorkflowExecutionHistoryReverseRequest, ctx: Ctx
    ) -> ws.GetWorkflowExecutionHistoryReverseResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.execution)
        return await reads.get_history_reverse(self.engine.executions, ns, req)

    async def describe_workflow_execution(
        self, req: ws.DescribeWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.DescribeWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.execution)
        ms = await self.engine.read_state(ns.id, req.execution.workflow_id, req.execution.run_id)
        return reads.describe(ns, ms)

    async def query_workflow(self, req: ws.QueryWorkflowRequest, ctx: Ctx) -> ws.QueryWorkflowResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.execution)
        if not req.query.query_type:
            raise InvalidArgument("QueryType is not set on request.")
        check_blob_size(req.query.query_args)
        return await reads.query(
            self.engine.executions,
            self.engine.queries,
            ns,
            req,
            long_poll_timeout(ctx, QUERY_TIMEOUT_S),
            standby=not self.namespaces.is_active(ns),
        )

    async def update_workflow_execution(
        self, req: ws.UpdateWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.UpdateWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.workflow_execution)
        meta = req.request.meta
        if not meta.update_id:
            raise InvalidArgument("Update ID is not set on request.")
        if len(meta.update_id) > max_id_length():
            raise InvalidArgument("UpdateId length exceeds limit.")
        if not req.request.input.name:
            raise InvalidArgument("Update name is not set on request.")
        check_blob_size(req.request.input.args)
        self.namespaces.check_active(ns)
        return await self.engine.updates.update(ns, req, long_poll_timeout(ctx))

    async def poll_workflow_execution_update(
        self, req: ws.PollWorkflowExecutionUpdateRequest, ctx: Ctx
    ) -> ws.PollWorkflowExecutionUpdateResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.update_ref.workflow_execution)
        if not req.update_ref.update_id:
            raise InvalidArgument("Update ID is not set on request.")
        return await self.engine.updates.poll(ns, req, long_poll_timeout(ctx))

    async def delete_workflow_execution(
        self, req: ws.DeleteWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.DeleteWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.workflow_execution)
        await self.engine.delete(ns, req.workflow_execution)
        return ws.DeleteWorkflowExecutionResponse()

    async def reset_workflow_execution(
        self, req: ws.ResetWorkflowExecutionRequest, ctx: Ctx
    ) -> ws.ResetWorkflowExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.workflow_execution)
        if len(req.request_id) > max_id_length():
            raise InvalidArgument("RequestId length exceeds limit.")
        self.namespaces.check_active(ns)
        return ws.ResetWorkflowExecutionResponse(run_id=await reset.reset(self.engine.executions, ns, req))

    # ------------------------------------------------------------------ workers
    async def poll_workflow_task_queue(
        self, req: ws.PollWorkflowTaskQueueRequest, ctx: Ctx
    ) -> ws.PollWorkflowTaskQueueResponse:
        ns = self.namespaces.get(req.namespace)
        check_task_queue(req.task_queue)
        tasks = self.engine.workflow_tasks

        async def queries_only(current: Namespace, timeout: float) -> ws.PollWorkflowTaskQueueResponse | None:
            resp = await tasks.poll(current, req, timeout, queries_only=True)
            return resp if resp.task_token else None

        async def active(current: Namespace, timeout: float) -> ws.PollWorkflowTaskQueueResponse:
            return await tasks.poll(current, req, timeout)

        resp = await self.standby.poll(ns, long_poll_timeout(ctx), active, queries_only)
        return resp or ws.PollWorkflowTaskQueueResponse()

    async def describe_task_queue(self, req: ws.DescribeTaskQueueRequest, ctx: Ctx) -> ws.DescribeTaskQueueResponse:
        """The workers polling a queue lately and, when asked, its backlog (the reference's
        classic answer; tempyral has no task queue partitions or rate limits to report). With several nodes, each
        node's part of the queue is counted."""
        ns = self.namespaces.get(req.namespace)
        check_task_queue(req.task_queue)
        resp = ws.DescribeTaskQueueResponse()
        if req.api_mode == DescribeTaskQueueMode.DESCRIBE_TASK_QUEUE_MODE_ENHANCED:
            # Only unversioned workers exist here: one version, "", with each requested type.
            version = resp.versions_info[""]
            for task_queue_type in req.task_queue_types or (
                TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
                TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
            ):
                info = version.types_info[task_queue_type]
                pollers, backlog = await self.engine.matching.describe_everywhere(
                    self._queue_key(ns.id, req.task_queue.name, task_queue_type)
                )
                if req.report_pollers:
                    self._add_pollers(info.pollers, pollers)
                if req.report_stats:
                    info.stats.approximate_backlog_count = backlog
                    info.stats.approximate_backlog_age.SetInParent()
            return resp
        key = self._queue_key(ns.id, req.task_queue.name, req.task_queue_type)
        pollers, backlog = await self.engine.matching.describe_everywhere(key)
        self._add_pollers(resp.pollers, pollers)
        resp.versioning_info.current_version = UNVERSIONED
        resp.versioning_info.update_time.seconds = GO_ZERO_TIME_S
        if req.include_task_queue_status:
            resp.task_queue_status.backlog_count_hint = backlog
        return resp

    @staticmethod
    def _queue_key(namespace_id: str, name: str, task_queue_type: int) -> QueueKey:
        kinds: dict[int, int] = {
            TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY: ACTIVITY,
            TaskQueueType.TASK_QUEUE_TYPE_NEXUS: NEXUS,
        }
        return QueueKey(namespace_id, name, kinds.get(task_queue_type, WORKFLOW))

    @staticmethod
    def _add_pollers(target: Any, pollers: list[Poller]) -> None:
        for poller in pollers:
            info = target.add(identity=poller.identity, rate_per_second=DEFAULT_POLLER_RATE)
            info.last_access_time.CopyFrom(timestamp(poller.last_access_ns))
            if poller.build_id:
                info.worker_version_capabilities.build_id = poller.build_id

    # Nexus handlers: tasks handed out by the dispatcher, which waits for the worker's reply.
    async def poll_nexus_task_queue(self, req: ws.PollNexusTaskQueueRequest, ctx: Ctx) -> ws.PollNexusTaskQueueResponse:
        ns = self.namespaces.get(req.namespace)
        check_task_queue(req.task_queue)
        key = QueueKey(ns.id, req.task_queue.name, NEXUS)
        self.engine.matching.note_poller(key, req.identity, req.worker_version_capabilities.build_id)

        async def active(current: Namespace, timeout: float) -> ws.PollNexusTaskQueueResponse | None:
            deadline = time.monotonic() + timeout
            while True:
                task = await self.engine.matching.poll(key, max(deadline - time.monotonic(), 0.0))
                if task is None:
                    return None
                if self.nexus_dispatcher.claim(task, req.identity):
                    return ws.PollNexusTaskQueueResponse(
                        task_token=self.nexus_dispatcher.token_for(task), request=task.request
                    )

        async def idle(current: Namespace, timeout: float) -> None:
            await self.standby.wait_idle(key, timeout)

        resp = await self.standby.poll(ns, long_poll_timeout(ctx), active, idle)
        return resp or ws.PollNexusTaskQueueResponse()

    async def respond_nexus_task_completed(
        self, req: ws.RespondNexusTaskCompletedRequest, ctx: Ctx
    ) -> ws.RespondNexusTaskCompletedResponse:
        ns = self.namespaces.get(req.namespace)
        self.nexus_dispatcher.respond(ns.id, req.task_token, req)
        return ws.RespondNexusTaskCompletedResponse()

    async def respond_nexus_task_failed(
        self, req: ws.RespondNexusTaskFailedRequest, ctx: Ctx
    ) -> ws.RespondNexusTaskFailedResponse:
        ns = self.namespaces.get(req.namespace)
        self.nexus_dispatcher.respond(ns.id, req.task_token, req)
        return ws.RespondNexusTaskFailedResponse()

    async def respond_workflow_task_completed(
        self, req: ws.RespondWorkflowTaskCompletedRequest, ctx: Ctx
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        return await self.engine.workflow_tasks.respond_completed(ns, req)

    async def respond_workflow_task_failed(
        self, req: ws.RespondWorkflowTaskFailedRequest, ctx: Ctx
    ) -> ws.RespondWorkflowTaskFailedResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self.engine.workflow_tasks.respond_failed(ns, req)
        return ws.RespondWorkflowTaskFailedResponse()

    async def respond_query_task_completed(
        self, req: ws.RespondQueryTaskCompletedRequest, ctx: Ctx
    ) -> ws.RespondQueryTaskCompletedResponse:
        ns = self.namespaces.get(req.namespace)
        await self.engine.workflow_tasks.respond_query(ns, req)
        return ws.RespondQueryTaskCompletedResponse()

    async def poll_activity_task_queue(
        self, req: ws.PollActivityTaskQueueRequest, ctx: Ctx
    ) -> ws.PollActivityTaskQueueResponse:
        ns = self.namespaces.get(req.namespace)
        check_task_queue(req.task_queue)
        activities = self.engine.activities

        metadata = dict(ctx.invocation_metadata() or ())
        sdk = (str(metadata.get("client-name", "")), str(metadata.get("client-version", "")))

        async def active(current: Namespace, timeout: float) -> ws.PollActivityTaskQueueResponse:
            return await activities.poll(current, req, timeout, sdk)

        async def idle(current: Namespace, timeout: float) -> None:
            key = QueueKey(current.id, req.task_queue.name, ACTIVITY)
            self.engine.matching.note_poller(key, req.identity, req.worker_version_capabilities.build_id)
            await self.standby.wait_idle(key, timeout)

        resp = await self.standby.poll(ns, long_poll_timeout(ctx), active, idle)
        return resp or ws.PollActivityTaskQueueResponse()

    async def respond_activity_task_completed(
        self, req: ws.RespondActivityTaskCompletedRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskCompletedResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self.engine.activities.complete(ns, req)
        return ws.RespondActivityTaskCompletedResponse()

    async def respond_activity_task_completed_by_id(
        self, req: ws.RespondActivityTaskCompletedByIdRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskCompletedByIdResponse:
        ns = self.namespaces.get(req.namespace)
        _check_activity_id(req.workflow_id, req.run_id, req.activity_id)
        self.namespaces.check_active(ns)
        await self.engine.activities.complete_by_id(ns, req)
        return ws.RespondActivityTaskCompletedByIdResponse()

    async def respond_activity_task_failed(
        self, req: ws.RespondActivityTaskFailedRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskFailedResponse:
        ns = self.namespaces.get(req.namespace)
        decode_task_token(req.task_token)  # a bad token is reported before a bad failure
        resp = ws.RespondActivityTaskFailedResponse(failures=prepare_activity_failure(req))
        self.namespaces.check_active(ns)
        await self.engine.activities.fail(ns, req)
        return resp

    async def respond_activity_task_failed_by_id(
        self, req: ws.RespondActivityTaskFailedByIdRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskFailedByIdResponse:
        ns = self.namespaces.get(req.namespace)
        _check_activity_id(req.workflow_id, req.run_id, req.activity_id)
        resp = ws.RespondActivityTaskFailedByIdResponse(failures=prepare_activity_failure(req))
        self.namespaces.check_active(ns)
        await self.engine.activities.fail_by_id(ns, req)
        return resp

    async def respond_activity_task_canceled(
        self, req: ws.RespondActivityTaskCanceledRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskCanceledResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self.engine.activities.cancel(ns, req)
        return ws.RespondActivityTaskCanceledResponse()

    async def respond_activity_task_canceled_by_id(
        self, req: ws.RespondActivityTaskCanceledByIdRequest, ctx: Ctx
    ) -> ws.RespondActivityTaskCanceledByIdResponse:
        ns = self.namespaces.get(req.namespace)
        _check_activity_id(req.workflow_id, req.run_id, req.activity_id)
        self.namespaces.check_active(ns)
        await self.engine.activities.cancel_by_id(ns, req)
        return ws.RespondActivityTaskCanceledByIdResponse()

    async def record_activity_task_heartbeat(
        self, req: ws.RecordActivityTaskHeartbeatRequest, ctx: Ctx
    ) -> ws.RecordActivityTaskHeartbeatResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        cancel = await self.engine.activities.heartbeat(ns, req)
        return ws.RecordActivityTaskHeartbeatResponse(cancel_requested=cancel)

    async def record_activity_task_heartbeat_by_id(
        self, req: ws.RecordActivityTaskHeartbeatByIdRequest, ctx: Ctx
    ) -> ws.RecordActivityTaskHeartbeatByIdResponse:
        ns = self.namespaces.get(req.namespace)
        _check_activity_id(req.workflow_id, req.run_id, req.activity_id)
        self.namespaces.check_active(ns)
        cancel = await self.engine.activities.heartbeat_by_id(ns, req)
        return ws.RecordActivityTaskHeartbeatByIdResponse(cancel_requested=cancel)

    async def reset_sticky_task_queue(
        self, req: ws.ResetStickyTaskQueueRequest, ctx: Ctx
    ) -> ws.ResetStickyTaskQueueResponse:
        ns = self.namespaces.get(req.namespace)
        check_execution(req.execution)
        await self.engine.reset_sticky(ns, req.execution.workflow_id, req.execution.run_id)
        return ws.ResetStickyTaskQueueResponse()

    async def shutdown_worker(self, req: ws.ShutdownWorkerRequest, ctx: Ctx) -> ws.ShutdownWorkerResponse:
        ns = self.namespaces.get(req.namespace)
        if req.sticky_task_queue:
            self.engine.matching.shutdown_sticky(ns.id, req.sticky_task_queue)
        if req.identity:
            self.engine.matching.worker_left(ns.id, req.identity)
        return ws.ShutdownWorkerResponse()

    async def record_worker_heartbeat(
        self, req: ws.RecordWorkerHeartbeatRequest, ctx: Ctx
    ) -> ws.RecordWorkerHeartbeatResponse:
        self.namespaces.get(req.namespace)
        return ws.RecordWorkerHeartbeatResponse()

    # ------------------------------------------------------------------ batch operations (batch/)
    def _batches(self) -> BatchOperations:
        if self.batches is None:
            raise Unimplemented("batch operations are not served here")
        return self.batches

    async def start_batch_operation(
        self, req: ws.StartBatchOperationRequest, ctx: Ctx
    ) -> ws.StartBatchOperationResponse:
        return await self._batches().start_operation(self.namespaces.get(req.namespace), req)

    async def describe_batch_operation(
        self, req: ws.DescribeBatchOperationRequest, ctx: Ctx
    ) -> ws.DescribeBatchOperationResponse:
        return await self._batches().describe(self.namespaces.get(req.namespace), req)

    async def list_batch_operations(
        self, req: ws.ListBatchOperationsRequest, ctx: Ctx
    ) -> ws.ListBatchOperationsResponse:
        return await self._batches().list(self.namespaces.get(req.namespace), req)

    async def stop_batch_operation(self, req: ws.StopBatchOperationRequest, ctx: Ctx) -> ws.StopBatchOperationResponse:
        return await self._batches().stop_operation(self.namespaces.get(req.namespace), req)

    # ------------------------------------------------------------------ schedules (schedules/service.py)
    def _schedules(self) -> ScheduleService:
        if self.schedules is None:
            raise Unimplemented("schedules are not served here")
        return self.schedules

    async def create_schedule(self, req: ws.CreateScheduleRequest, ctx: Ctx) -> ws.CreateScheduleResponse:
        return await self._schedules().create_schedule(req, ctx)

    async def describe_schedule(self, req: ws.DescribeScheduleRequest, ctx: Ctx) -> ws.DescribeScheduleResponse:
        return await self._schedules().describe_schedule(req, ctx)

    async def update_schedule(self, req: ws.UpdateScheduleRequest, ctx: Ctx) -> ws.UpdateScheduleResponse:
        return await self._schedules().update_schedule(req, ctx)

    async def patch_schedule(self, req: ws.PatchScheduleRequest, ctx: Ctx) -> ws.PatchScheduleResponse:
        return await self._schedules().patch_schedule(req, ctx)

    async def delete_schedule(self, req: ws.DeleteScheduleRequest, ctx: Ctx) -> ws.DeleteScheduleResponse:
        return await self._schedules().delete_schedule(req, ctx)

    async def list_schedules(self, req: ws.ListSchedulesRequest, ctx: Ctx) -> ws.ListSchedulesResponse:
        return await self._schedules().list_schedules(req, ctx)

    async def count_schedules(self, req: ws.CountSchedulesRequest, ctx: Ctx) -> ws.CountSchedulesResponse:
        return await self._schedules().count_schedules(req, ctx)

    async def list_schedule_matching_times(
        self, req: ws.ListScheduleMatchingTimesRequest, ctx: Ctx
    ) -> ws.ListScheduleMatchingTimesResponse:
        return await self._schedules().list_schedule_matching_times(req, ctx)

    # ------------------------------------------------------------------ visibility
    async def list_workflow_executions(
        self, req: ws.ListWorkflowExecutionsRequest, ctx: Ctx
    ) -> ws.ListWorkflowExecutionsResponse:
        ns = self.namespaces.get(req.namespace)
        executions, token = await self.visibility.list(ns, req.query, req.page_size, req.next_page_token)
        return ws.ListWorkflowExecutionsResponse(executions=executions, next_page_token=token)

    async def count_workflow_executions(
        self, req: ws.CountWorkflowExecutionsRequest, ctx: Ctx
    ) -> ws.CountWorkflowExecutionsResponse:
        ns = self.namespaces.get(req.namespace)
        return await self.visibility.count(ns, req.query)

    async def scan_workflow_executions(
        self, req: ws.ScanWorkflowExecutionsRequest, ctx: Ctx
    ) -> ws.ScanWorkflowExecutionsResponse:
        return await self.visibility.scan(self.namespaces.get(req.namespace), req)

    async def list_open_workflow_executions(
        self, req: ws.ListOpenWorkflowExecutionsRequest, ctx: Ctx
    ) -> ws.ListOpenWorkflowExecutionsResponse:
        return await self.visibility.list_open(self.namespaces.get(req.namespace), req)

    async def list_closed_workflow_executions(
        self, req: ws.ListClosedWorkflowExecutionsRequest, ctx: Ctx
    ) -> ws.ListClosedWorkflowExecutionsResponse:
        return await self.visibility.list_closed(self.namespaces.get(req.namespace), req)

    # ------------------------------------------------------------------ standalone Nexus operations
    def _operations(self) -> StandaloneNexus:
        if self.standalone_nexus is None:
            raise Unimplemented("Standalone Nexus operation is disabled")
        return self.standalone_nexus

    async def start_nexus_operation_execution(
        self, req: ws.StartNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.StartNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        return await self._operations().start(ns, req)

    async def describe_nexus_operation_execution(
        self, req: ws.DescribeNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.DescribeNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        timeout = long_poll_timeout(ctx, 20.0) if req.long_poll_token else 0.0
        return await self._operations().describe(ns, req, timeout)

    async def poll_nexus_operation_execution(
        self, req: ws.PollNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.PollNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        return await self._operations().poll(ns, req, long_poll_timeout(ctx))

    async def request_cancel_nexus_operation_execution(
        self, req: ws.RequestCancelNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.RequestCancelNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self._operations().request_cancel(ns, req)
        return ws.RequestCancelNexusOperationExecutionResponse()

    async def terminate_nexus_operation_execution(
        self, req: ws.TerminateNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.TerminateNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self._operations().terminate(ns, req)
        return ws.TerminateNexusOperationExecutionResponse()

    async def delete_nexus_operation_execution(
        self, req: ws.DeleteNexusOperationExecutionRequest, ctx: Ctx
    ) -> ws.DeleteNexusOperationExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        self.namespaces.check_active(ns)
        await self._operations().delete(ns, req)
        return ws.DeleteNexusOperationExecutionResponse()

    async def list_nexus_operation_executions(
        self, req: ws.ListNexusOperationExecutionsRequest, ctx: Ctx
    ) -> ws.ListNexusOperationExecutionsResponse:
        return await self._operations().list_operations(self.namespaces.get(req.namespace), req)

    async def count_nexus_operation_executions(
        self, req: ws.CountNexusOperationExecutionsRequest, ctx: Ctx
    ) -> ws.CountNexusOperationExecutionsResponse:
        return await self._operations().count_operations(self.namespaces.get(req.namespace), req)


def _check_activity_id(workflow_id: str, run_id: str, activity_id: str) -> None:
    if workflow_id or not activity_id:  # without a workflow id: a standalone activity
        check_execution(common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id))
    check_id(activity_id, "ActivityId")
