"""The WorkflowService methods of standalone activities (history/standalone_activities.py): start, describe, poll
for the outcome, cancel, terminate, delete, list and count. Pause, unpause, reset and update-options of standalone
activities are not served (UNIMPLEMENTED)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.errors import InvalidArgument
from tempyral.common.limits import check_blob_size, check_id
from tempyral.history.standalone_activities import normalize_start
from tempyral.visibility.activities import ActivityVisibility

from .validation import check_task_queue

if TYPE_CHECKING:
    from tempyral.history.engine import HistoryEngine
    from tempyral.namespace.registry import Namespace, NamespaceRegistry

Ctx = grpc.aio.ServicerContext[Any, Any]
DESCRIBE_LONG_POLL_S = 20.0  # a describe long poll answers, changed or not, within this
OUTCOME_LONG_POLL_S = 60.0
LONG_POLL_MARGIN_S = 1.0
# the requests about one activity, by its id and (optional) run id
ActivityRequest = (
    ws.DescribeActivityExecutionRequest
    | ws.PollActivityExecutionRequest
    | ws.RequestCancelActivityExecutionRequest
    | ws.TerminateActivityExecutionRequest
    | ws.DeleteActivityExecutionRequest
)


class StandaloneActivityMethods:
    engine: HistoryEngine
    namespaces: NamespaceRegistry
    activity_visibility: ActivityVisibility

    def _long_poll(self, ctx: Ctx, cap: float) -> float:
        """Answer a little before the caller's deadline (workflow_service.long_poll_timeout)."""
        remaining = ctx.time_remaining()
        if remaining is None:
            return cap
        return max(0.0, min(cap, remaining - LONG_POLL_MARGIN_S))

    def _activity_namespace(self, req: ActivityRequest, write: bool = False) -> Namespace:
        """The namespace of a request about one activity, once its activity and run ids are valid; one that changes
        the activity needs the namespace active here."""
        ns = self.namespaces.get(req.namespace)
        if not req.activity_id:
            raise InvalidArgument("activity id is required")
        if req.run_id and not ids.is_uuid(req.run_id):
            raise InvalidArgument("invalid run id: must be a valid UUID")
        if write:
            self.namespaces.check_active(ns)
        return ns

    async def start_activity_execution(
        self, req: ws.StartActivityExecutionRequest, ctx: Ctx
    ) -> ws.StartActivityExecutionResponse:
        ns = self.namespaces.get(req.namespace)
        normalize_start(req)
        check_id(req.activity_id, "ActivityId")
        check_task_queue(req.task_queue)
        check_blob_size(req.input)
        self.namespaces.check_active(ns)
        return await self.engine.standalone_activities.start(ns, req)

    async def describe_activity_execution(
        self, req: ws.DescribeActivityExecutionRequest, ctx: Ctx
    ) -> ws.DescribeActivityExecutionResponse:
        ns = self._activity_namespace(req)
        if req.long_poll_token and not req.run_id:
            raise InvalidArgument("run id is required when long poll token is provided")
        timeout = self._long_poll(ctx, DESCRIBE_LONG_POLL_S) if req.long_poll_token else 0.0
        return await self.engine.standalone_activities.describe(ns, req, timeout)

    async def poll_activity_execution(
        self, req: ws.PollActivityExecutionRequest, ctx: Ctx
    ) -> ws.PollActivityExecutionResponse:
        ns = self._activity_namespace(req)
        return await self.engine.standalone_activities.poll(ns, req, self._long_poll(ctx, OUTCOME_LONG_POLL_S))

    async def request_cancel_activity_execution(
        self, req: ws.RequestCancelActivityExecutionRequest, ctx: Ctx
    ) -> ws.RequestCancelActivityExecutionResponse:
        ns = self._activity_namespace(req, write=True)
        await self.engine.standalone_activities.request_cancel(ns, req)
        return ws.RequestCancelActivityExecutionResponse()

    async def terminate_activity_execution(
        self, req: ws.TerminateActivityExecutionRequest, ctx: Ctx
    ) -> ws.TerminateActivityExecutionResponse:
        ns = self._activity_namespace(req, write=True)
        await self.engine.standalone_activities.terminate(ns, req)
        return ws.TerminateActivityExecutionResponse()

    async def delete_activity_execution(
        self, req: ws.DeleteActivityExecutionRequest, ctx: Ctx
    ) -> ws.DeleteActivityExecutionResponse:
        ns = self._activity_namespace(req, write=True)
        await self.engine.standalone_activities.delete(ns, req)
        return ws.DeleteActivityExecutionResponse()

    async def list_activity_executions(
        self, req: ws.ListActivityExecutionsRequest, ctx: Ctx
    ) -> ws.ListActivityExecutionsResponse:
        return await self.activity_visibility.list(self.namespaces.get(req.namespace), req)

    async def count_activity_executions(
        self, req: ws.CountActivityExecutionsRequest, ctx: Ctx
    ) -> ws.CountActivityExecutionsResponse:
        return await self.activity_visibility.count(self.namespaces.get(req.namespace), req)
