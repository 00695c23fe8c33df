"""Workflow tasks: long polls, starting a task, and the worker's completion or failure."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import NoReturn

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.enums.v1 import task_queue_pb2 as tq_enums
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.protocol.v1 import message_pb2 as protocol
from temporalio.api.query.v1.message_pb2 import WorkflowQuery, WorkflowQueryResult
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.errors import InvalidArgument, NamespaceNotActive, NotFound, ShardNotHere
from tempyral.common.limits import HISTORY_PAGE_BYTES
from tempyral.common.tokens import decode_task_token, encode_page_token, encode_task_token
from tempyral.history.activities import activity_task_response
from tempyral.history.commands import CommandProcessor, WorkflowTaskFailure, validate_command_sequence
from tempyral.history.executions import Change, Executions
from tempyral.history.mutable_state import MutableState
from tempyral.history.outbox import Outbox
from tempyral.history.queries import QueryRegistry, QueryTask
from tempyral.history.remote_starts import RemoteStarts
from tempyral.history.task_generator import task_is_current
from tempyral.history.updates import UpdateHandler
from tempyral.history.worker_version import stamp_from_completion, stamp_from_poll
from tempyral.matching.service import WORKFLOW, Matching, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.internal_pb2 import HistoryPageToken, Task, TaskToken

log = logging.getLogger(__name__)
STICKY = tq_enums.TASK_QUEUE_KIND_STICKY
INLINE_REQUEST_ID = "request-from-RespondWorkflowTaskCompleted"
POLL_PAGE_EVENTS = 1000


class WorkflowTaskHandler:
    def __init__(
        self,
        executions: Executions,
        matching: Matching,
        queries: QueryRegistry,
        outbox: Outbox,
        namespaces: NamespaceRegistry,
        find_endpoint_id: Callable[[str], str | None],
        max_pending_nexus: int,
    ) -> None:
        self.executions = executions
        self.matching = matching
        self.queries = queries
        self.outbox = outbox
        self.namespaces = namespaces
        self.find_endpoint_id = find_endpoint_id
        self.max_pending_nexus = max_pending_nexus
        # Per namespace, from dynamic config (component.nexusoperations.limit.operation.concurrency); set by the server.
        self.max_pending_nexus_for: Callable[[str], int] | None = None
        # With several nodes: tasks of workflows another node owns are started there (nodes/matching.py).
        self.remote: RemoteStarts | None = None

    # ------------------------------------------------------------------ poll
    async def poll(
        self, ns: Namespace, req: ws.PollWorkflowTaskQueueRequest, timeout: float, queries_only: bool = False
    ) -> ws.PollWorkflowTaskQueueResponse:
        """`queries_only`: take query tasks only (a standby cluster's polls, frontend/standby.py)."""
        key = QueueKey(ns.id, req.task_queue.name, WORKFLOW)
        sticky = req.task_queue.kind == STICKY
        self.matching.note_poller(key, req.identity, req.worker_version_capabilities.build_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return ws.PollWorkflowTaskQueueResponse()
            item = await self.matching.poll(key, remaining, _is_query if queries_only else None)
            if item is None:
                return ws.PollWorkflowTaskQueueResponse()
            if self.remote is not None and self.remote.elsewhere(item):
                resp = await asyncio.shield(self.remote.start_workflow_task(item, req))
            elif isinstance(item, QueryTask):
                resp = await asyncio.shield(self._query_task(item, sticky, req.identity))
            else:
                resp = await asyncio.shield(self._record_started(item, sticky, req.identity, stamp_from_poll(req)))
            if resp is not None:
                return resp

    async def _record_started(
        self, task: Task, sticky_poll: bool, identity: str, worker_version: common.WorkerVersionStamp | None
    ) -> ws.PollWorkflowTaskQueueResponse | None:
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                ms, entry = change.ms, change.entry
                wt = ms.state.workflow_task
                if (
                    not ms.running
                    or not wt.scheduled
                    or wt.stamp != task.stamp
                    or wt.started_event_id
                    or not task_is_current(ms.state, task)
                ):
                    self.outbox.ack(task)
                    return None
                ms.start_workflow_task(ids.new_id(), identity, worker_version)
                queries = self.queries.attach(entry)
                messages = UpdateHandler.messages_for_task(entry, ms)
                change.task_done(task)
                await change.commit()
                return await self.task_response(change, sticky_poll, identity, queries, messages)
        except NotFound:
            self.outbox.ack(task)
            return None
        except NamespaceNotActive:
            self.executions.standby.park(task)  # failed over away: the new active dispatches it
            return None
        except ShardNotHere:
            return None  # the shard moved: its new owner dispatches the task again
        except Exception as err:
            self.outbox.failures.failure("could not start workflow tasks", err)
            # leave the task to its outbox row: put it back so that another poller gets it
            self.matching.add_front(QueueKey(task.namespace_id, task.task_queue.name, WORKFLOW), task)
            await asyncio.sleep(0.1)
            return None

    async def task_response(
        self,
        change: Change,
        sticky_poll: bool,
        identity: str,
        queries: dict[str, WorkflowQuery] | None = None,
        messages: list[protocol.Message] | None = None,
    ) -> ws.PollWorkflowTaskQueueResponse:
        ms = change.ms
        s = ms.state
        wt = s.workflow_task
        token = TaskToken(
            namespace_id=s.namespace_id,
            workflow_id=s.workflow_id,
            run_id=s.run_id,
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            attempt=wt.attempt,
            stamp=wt.stamp,
        )
        resp = ws.PollWorkflowTaskQueueResponse(
            task_token=encode_task_token(token),
            workflow_execution=common.WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
            workflow_type=s.start.workflow_type,
            previous_started_event_id=s.last_completed_wft_started_event_id,
            started_event_id=wt.started_event_id,
            attempt=wt.attempt,
            workflow_execution_task_queue=s.start.task_queue,
            scheduled_time=wt.scheduled_time,
            started_time=wt.started_time,
        )
        first = s.last_completed_wft_started_event_id + 1 if sticky_poll else 1
        await self._fill_history(resp, change, first, ms.transient_workflow_task_events(identity))
        for query_id, query in (queries or {}).items():
            resp.queries[query_id].CopyFrom(query)
        resp.messages.extend(messages or [])
        return resp

    async def _fill_history(
        self,
        resp: ws.PollWorkflowTaskQueueResponse,
        change: Change,
        first: int,
        transient: list[history.HistoryEvent],
    ) -> None:
        """The events a task shows, first page only when the history is long."""
        ms = change.ms
        end = ms.state.next_event_id
        last = min(end, first + POLL_PAGE_EVENTS)
        events = await change.events(first, last)
        size = 0
        cut = len(events)
        for i, event in enumerate(events):
            size += event.ByteSize()
            if size > HISTORY_PAGE_BYTES and i > 0:
                cut = i
                break
        if cut < len(events) or last < end:
            next_id = events[cut].event_id if cut < len(events) else last
            page = HistoryPageToken(run_id=ms.run_id, next_event_id=next_id, end_event_id=end)
            page.transient_events.events.extend(transient)
            resp.next_page_token = encode_page_token(page)
            resp.history.events.extend(events[:cut])
        else:
            resp.history.events.extend(events)
            resp.history.events.extend(transient)

    async def _query_task(
        self, task: QueryTask, sticky_poll: bool, identity: str
    ) -> ws.PollWorkflowTaskQueueResponse | None:
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id) as change:
                s = change.ms.state
                token = TaskToken(
                    namespace_id=task.namespace_id,
                    workflow_id=task.workflow_id,
                    run_id=task.run_id,
                    query_id=task.query_id,
                )
                resp = ws.PollWorkflowTaskQueueResponse(
                    task_token=encode_task_token(token),
                    workflow_execution=common.WorkflowExecution(workflow_id=s.workflow_id, run_id=s.run_id),
                    workflow_type=s.start.workflow_type,
                    previous_started_event_id=s.last_completed_wft_started_event_id,
                    attempt=1,
                    query=task.query,
                    workflow_execution_task_queue=s.start.task_queue,
                )
                first = s.last_completed_wft_started_event_id + 1 if sticky_poll else 1
                await self._fill_history(resp, change, first, [])
                return resp
        except NotFound:
            return None

    # ------------------------------------------------------------------ completion
    def _validate_token(self, ns: Namespace, ms: MutableState, token: TaskToken) -> None:
        wt = ms.state.workflow_task
        if (
            not ms.running
            or not wt.scheduled
            or not wt.started_event_id
            or wt.stamp != token.stamp
            or wt.started_event_id != token.started_event_id
        ):
            raise NotFound("Workflow task not found.")

    def _token(self, ns: Namespace, data: bytes) -> TaskToken:
        token = decode_task_token(data)
        if token.namespace_id != ns.id:
            raise InvalidArgument("Operation requested with a token from a different namespace.")
        return token

    async def respond_completed(
        self, ns: Namespace, req: ws.RespondWorkflowTaskCompletedRequest
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        token = self._token(ns, req.task_token)
        async with self.executions.update(token.namespace_id, token.workflow_id, token.run_id) as change:
            ms, entry = change.ms, change.entry
            self._validate_token(ns, ms, token)
            commands = list(req.commands)
            validate_command_sequence(commands)
            attempt = ms.state.workflow_task.attempt
            stamp = ms.state.workflow_task.stamp
            has_buffered = bool(ms.state.buffered_events)
            sticky = req.sticky_attributes.worker_task_queue
            ms.set_sticky(sticky if sticky.name else None, req.sticky_attributes.schedule_to_start_timeout)
            effects: list[Callable[[], None]] = []
            if (
                ms.state.speculative_workflow_task
                and not has_buffered
                and not req.force_create_new_workflow_task
                and UpdateHandler.only_rejections(req)
            ):
                return await self._discard_speculative(change, req, stamp, effects)
            completed = ms.add_workflow_task_completed(
                req.identity,
                req.sdk_metadata if req.HasField("sdk_metadata") else None,
                req.metering_metadata if req.HasField("metering_metadata") else None,
                stamp_from_completion(req),
            )
            messages = {m.id: m for m in req.messages}

            def on_message(message_id: str) -> None:
                message = messages.pop(message_id, None)
                if message is not None:
                    UpdateHandler.apply_message(entry, ms, message, effects)

            try:
                result = CommandProcessor(
                    ms,
                    ns,
                    completed.event_id,
                    req.identity,
                    has_buffered,
                    self.namespaces.find,
                    on_message,
                    find_endpoint=self.find_endpoint_id,
                    max_pending_nexus=(
                        self.max_pending_nexus
                        if self.max_pending_nexus_for is None
                        else self.max_pending_nexus_for(ns.name)
                    ),
                ).process(commands)
                for message_id in list(messages):
                    if ms.running:
                        on_message(message_id)
            except WorkflowTaskFailure as failure:
                await self._fail_for_commands(change, token, failure, req.identity, attempt)
            UpdateHandler.reject_unprocessed(entry, stamp, effects)
            ms.flush_buffered_events()
            if result.next_run is not None:
                await change.next_run(result.next_run)

            inline = False
            if ms.running and (
                req.force_create_new_workflow_task or has_buffered or result.activity_cancelled_before_start
            ):
                inline = req.return_new_workflow_task
                ms.schedule_workflow_task(dispatch=not inline)
            elif ms.running and UpdateHandler.has_admitted(entry):
                inline = req.return_new_workflow_task
                ms.schedule_speculative_workflow_task()
            if inline:
                stamp_in = stamp_from_completion(req)
                ms.start_workflow_task(
                    INLINE_REQUEST_ID, req.identity, None if stamp_in is None or stamp_in.use_versioning else stamp_in
                )
            eager = []
            if ms.running:
                for ai in result.eager_activities:
                    ms.start_activity(ai, ids.new_id(), req.identity)
                    eager.append(ai)
            self.queries.complete_inflight(entry, dict(req.query_results))
            attached = self.queries.attach(entry) if inline else {}
            update_messages = UpdateHandler.messages_for_task(entry, ms) if inline else []
            # the updates' waiters hear once the database has it, even if this worker's call is cancelled meanwhile
            change.on_committed.extend(effects)
            await change.commit()
            if not ms.wft_pending and entry.buffered_queries:
                self.queries.redirect_buffered(entry, ms.current_task_queue().name, _normal_name(ms))
            resp = ws.RespondWorkflowTaskCompletedResponse()
            if inline:
                resp.workflow_task.CopyFrom(
                    await self.task_response(change, True, req.identity, attached, update_messages)
                )
            for ai in eager:
                resp.activity_tasks.append(activity_task_response(ns, ms, ai))
            return resp

    async def _discard_speculative(
        self,
        change: Change,
        req: ws.RespondWorkflowTaskCompletedRequest,
        stamp: int,
        effects: list[Callable[[], None]],
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        """A speculative task whose worker only rejected updates: nothing enters history."""
        ms, entry = change.ms, change.entry
        for message in req.messages:
            UpdateHandler.apply_message(entry, ms, message, effects)
        UpdateHandler.reject_unprocessed(entry, stamp, effects)
        ms.discard_speculative_workflow_task()
        if UpdateHandler.has_admitted(entry):
            ms.schedule_speculative_workflow_task()
        self.queries.complete_inflight(entry, dict(req.query_results))
        change.on_committed.extend(effects)
        await change.commit()
        if not ms.wft_pending and entry.buffered_queries:
            self.queries.redirect_buffered(entry, ms.current_task_queue().name, _normal_name(ms))
        # the worker rolls its view of history back to the last task it completed
        return ws.RespondWorkflowTaskCompletedResponse(
            reset_history_event_id=ms.state.last_completed_wft_started_event_id
        )

    async def _fail_for_commands(
        self,
        change: Change,
        token: TaskToken,
        failure: WorkflowTaskFailure,
        identity: str,
        attempt: int,
    ) -> NoReturn:
        """Discard what the commands did and fail the workflow task with their cause."""
        log.info(
            "failing workflow task of %s/%s: %s %s",
            token.workflow_id,
            token.run_id,
            WorkflowTaskFailedCause.Name(failure.cause),  # type: ignore[arg-type]
            failure.message,
        )
        entry = change.entry
        ms = await change.shard.reload(entry)
        assert ms is not None
        self.executions.prepare(ms, time.time_ns())
        change.ms = ms
        change.others.clear()
        change.current.clear()
        change.continued = False
        message = failure.full_message()
        if attempt > 1 and failure.cause != WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND:
            # a task that keeps failing is dropped and left to time out, like the reference
            raise InvalidArgument(message)
        fail_info = failure_pb.Failure(message=message)
        fail_info.server_failure_info.SetInParent()
        ms.add_workflow_task_failed(failure.cause, fail_info, identity)
        ms.flush_buffered_events()
        self.queries.requeue_inflight(entry)
        UpdateHandler.resend_after_failure(entry)
        if failure.terminate:
            # payloads over the size limits cannot enter history: the workflow is terminated
            ms.add_terminated(message, None, "history-service")
            await change.commit()
        else:
            await change.commit(schedule_workflow_task=True)
        # Like the reference: the failure is committed, and the worker is told, so that it drops
        # the state its commands built (it would otherwise carry on from a history that never was).
        raise InvalidArgument(message)

    async def respond_failed(self, ns: Namespace, req: ws.RespondWorkflowTaskFailedRequest) -> None:
        token = self._token(ns, req.task_token)
        async with self.executions.update(token.namespace_id, token.workflow_id, token.run_id) as change:
            ms = change.ms
            self._validate_token(ns, ms, token)
            ms.add_workflow_task_failed(req.cause, req.failure if req.HasField("failure") else None, req.identity)
            ms.flush_buffered_events()
            ms.schedule_workflow_task()
            self.queries.requeue_inflight(change.entry)
            UpdateHandler.resend_after_failure(change.entry)
            await change.commit()

    async def respond_query(self, ns: Namespace, req: ws.RespondQueryTaskCompletedRequest) -> None:
        token = self._token(ns, req.task_token)
        if not token.query_id:
            raise InvalidArgument("Invalid query task token.")
        result = WorkflowQueryResult(
            result_type=req.completed_type,
            answer=req.query_result,
            error_message=req.error_message,
        )
        if req.HasField("failure"):
            result.failure.CopyFrom(req.failure)
        if not self.queries.resolve(token.query_id, result):
            raise NotFound("query task not found, or already expired")


def _is_query(item: object) -> bool:
    return isinstance(item, QueryTask)


def _normal_name(ms: MutableState) -> str:
    return ms.normal_task_queue.name if ms.state.sticky_task_queue.name else ""
