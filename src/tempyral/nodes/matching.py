"""Matching across nodes: every task queue is served by one live node (`Ownership.queue_owner`), where its pollers
are sent (nodes/routing.py) and its tasks go.

A workflow or activity task is committed by the node owning its workflow's shard, whose outbox row stays until a
worker started it (the durable backlog). That node sends the task to the queue's node and keeps it in a ledger
until the row goes; when the queue's node changes (a node joined, left or died), it sends again whatever the
ledger holds for the queues that moved. A node that stops serving a queue passes on its backlog and ends its polls
so their workers poll again where the queue is now. The queue's node hands a task to a poller and asks the shard's
node to record it as started; that answer (the poll response) goes back to the worker. A task sent twice is
recorded once: the second start finds it started, and is skipped.

Query tasks travel the same way (their caller waits on the shard's node); a Nexus task is dispatched by the
queue's node itself, which waits for the worker's reply and returns it (its caller retries if it is lost).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import grpc
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import ShardNotHere
from tempyral.common.logs import ThrottledLog
from tempyral.history.engine import HistoryEngine
from tempyral.history.queries import QueryTask
from tempyral.history.worker_version import stamp_from_poll
from tempyral.history.workflow_tasks import STICKY
from tempyral.matching.service import ACTIVITY, NEXUS, WORKFLOW, Matching, QueueKey
from tempyral.nexus.dispatch import NexusDispatcher, Reply
from tempyral.nodes.client import error_from_status
from tempyral.nodes.membership import View
from tempyral.nodes.ownership import Ownership
from tempyral.proto import nodes_pb2 as npb
from tempyral.proto.internal_pb2 import Task, TaskType

log = logging.getLogger(__name__)
SERVICE = "tempyral.nodes.v1.NodeService"
MAX_HOPS = 3
SEND_ATTEMPTS = 5
SEND_BACKOFF_MAX_S = 2.0
REQUEUE_DELAY_S = 0.2
CALL_TIMEOUT_S = 10.0

LedgerKey = tuple[int, int]  # shard id, task id


class MatchingRouter:
    def __init__(self, ownership: Ownership, matching: Matching, engine: HistoryEngine) -> None:
        self.ownership = ownership
        self.matching = matching
        self.engine = engine
        # Tasks of shards owned here that were sent to another node's queue: (queue, task, sticky normal name, node).
        self._ledger: dict[LedgerKey, tuple[QueueKey, Task, str, str]] = {}
        self._sends: set[asyncio.Task[None]] = set()
        self._failures = ThrottledLog(log)
        self.sent = 0  # items sent to other nodes, for tests and logs

    # ------------------------------------------------------------------ the sending side
    def forward(self, key: QueueKey, item: Any, sticky_normal_name: str) -> bool:
        if key.task_type == NEXUS or not isinstance(item, Task | QueryTask):
            return False  # Nexus tasks are dispatched on the queue's node (dispatch_nexus)
        owner = self.ownership.queue_owner(key)
        if owner == self.ownership.node:
            return False
        if isinstance(item, Task) and self._owned_here(item):
            self._ledger[(item.shard_id, item.task_id)] = (key, item, sticky_normal_name, owner)
        self._send_later(owner, _add_request(key, item, sticky_normal_name, 0))
        return True

    def _owned_here(self, task: Task) -> bool:
        return 0 <= task.shard_id < len(self.engine.shards) and self.engine.shards[task.shard_id].owned

    def _send_later(self, owner: str, request: npb.AddTaskRequest) -> None:
        send = asyncio.get_running_loop().create_task(self._send(owner, request))
        self._sends.add(send)
        send.add_done_callback(self._sends.discard)

    async def _send(self, owner: str, request: npb.AddTaskRequest) -> None:
        """Deliver the item to the queue's node, following the queue if it moves. A task of a shard held here is
        tried until delivered or its row is gone (a node that cannot be reached now is retried, backing off); a
        query, or a task another node is responsible for, only a few times (its caller or owner covers the rest)."""
        ledger_key = (request.task.shard_id, request.task.task_id) if request.HasField("task") else None
        attempt = 0
        while True:
            channel = self.ownership.channel(owner)
            if channel is not None:
                try:
                    await _call(channel, "AddTask", request, npb.Empty)
                    self.sent += 1
                    return
                except grpc.aio.AioRpcError as err:
                    self._failures.failure(f"could not pass a task to node {owner}", err)
            attempt += 1
            ours = ledger_key is not None and ledger_key in self._ledger
            if not ours and attempt >= SEND_ATTEMPTS:
                return
            await asyncio.sleep(min(0.2 * attempt, SEND_BACKOFF_MAX_S))
            if ledger_key is not None and attempt >= SEND_ATTEMPTS and ledger_key not in self._ledger:
                return  # started, stale, or its shard moved meanwhile
            now = self.ownership.queue_owner(_key_of(request))
            if now != owner:  # the queue moved meanwhile
                if now == self.ownership.node:
                    self.matching.add(_key_of(request), _item_of(request), request.sticky_normal_name, route=False)
                    return
                owner = now
                if ledger_key is not None and ledger_key in self._ledger:
                    key, task, sticky, _ = self._ledger[ledger_key]
                    self._ledger[ledger_key] = (key, task, sticky, now)

    def forget(self, shard_id: int, task_ids: list[int]) -> None:
        """These task rows are gone (started, or stale): nothing to send again."""
        for task_id in task_ids:
            self._ledger.pop((shard_id, task_id), None)

    def shard_released(self, shard_id: int) -> None:
        for key in [k for k in self._ledger if k[0] == shard_id]:
            del self._ledger[key]  # its new owner dispatches them

    def view_changed(self, view: View) -> None:
        """Queues that moved: pass on the backlog of those served here no longer, and send again the tasks sent to
        a node that no longer serves their queue."""
        me = self.ownership.node
        moved = self.matching.drain(lambda key: key.task_type != NEXUS and self.ownership.queue_owner(key) != me)
        for key, item in moved:
            self.matching.add(key, item)
        resent = 0
        for ledger_key, (key, task, sticky, sent_to) in list(self._ledger.items()):
            owner = self.ownership.queue_owner(key)
            if owner == sent_to:
                continue
            resent += 1
            if owner == me:
                del self._ledger[ledger_key]
                self.matching.add(key, task, sticky, route=False)
            else:
                self._ledger[ledger_key] = (key, task, sticky, owner)
                self._send_later(owner, _add_request(key, task, sticky, 0))
        if moved or resent:
            log.info("task queues moved: %d queued tasks passed on, %d sent tasks sent again", len(moved), resent)

    async def close(self) -> None:
        for send in list(self._sends):
            send.cancel()
        await asyncio.gather(*self._sends, return_exceptions=True)

    # ------------------------------------------------------------------ the receiving side (NodeService.AddTask)
    def add_task(self, request: npb.AddTaskRequest) -> None:
        key = _key_of(request)
        item = _item_of(request)
        owner = self.ownership.queue_owner(key)
        if owner != self.ownership.node and request.hops < MAX_HOPS:
            forwarded = npb.AddTaskRequest()
            forwarded.CopyFrom(request)
            forwarded.hops += 1
            self._send_later(owner, forwarded)  # views differ for a moment: on to the node it belongs on
            return
        self.matching.add(key, item, request.sticky_normal_name, route=False)

    # ------------------------------------------------------------------ starting a task on the shard's node
    def elsewhere(self, item: Task | QueryTask) -> bool:
        if isinstance(item, Task):
            return not self._owned_here(item)
        shard_id = self.ownership.shard_of(item.namespace_id, item.workflow_id)
        return not self.engine.shards[shard_id].owned

    async def start_workflow_task(
        self, item: Task | QueryTask, req: ws.PollWorkflowTaskQueueRequest
    ) -> ws.PollWorkflowTaskQueueResponse | None:
        request = npb.RecordTaskStartedRequest(poll_request=req.SerializeToString())
        if isinstance(item, Task):
            request.task.CopyFrom(item)
            owner = self.ownership.shard_owner(item.shard_id)
        else:
            request.query.CopyFrom(_query_info(item))
            owner = self.ownership.workflow_owner(item.namespace_id, item.workflow_id)
        data = await self._start_on(owner, request)
        if data is None:
            self._requeue(QueueKey(item.namespace_id, req.task_queue.name, WORKFLOW), item)
        return ws.PollWorkflowTaskQueueResponse.FromString(data) if data else None

    async def start_activity_task(
        self, task: Task, req: ws.PollActivityTaskQueueRequest
    ) -> ws.PollActivityTaskQueueResponse | None:
        request = npb.RecordTaskStartedRequest(poll_request=req.SerializeToString())
        request.task.CopyFrom(task)
        data = await self._start_on(self.ownership.shard_owner(task.shard_id), request)
        if data is None:
            self._requeue(QueueKey(task.namespace_id, req.task_queue.name, ACTIVITY), task)
        return ws.PollActivityTaskQueueResponse.FromString(data) if data else None

    async def _start_on(self, owner: str, request: npb.RecordTaskStartedRequest) -> bytes | None:
        """The poll response from the shard's node; b"" when the task is stale (started already, or its run moved
        on); None when that node could not be asked or did not hold the shard (this node's view of the shards may
        lag behind): the task goes back to its queue and is asked about again, until the node holding the shard
        answers. A task whose shard really moved is found stale then, as the shard's new owner dispatched it again."""
        channel = None if owner == self.ownership.node else self.ownership.channel(owner)
        if channel is None:
            return None
        try:
            response = await _call(channel, "RecordTaskStarted", request, npb.RecordTaskStartedResponse)
        except grpc.aio.AioRpcError as err:
            if not isinstance(error_from_status(err), ShardNotHere):
                self._failures.failure(f"could not start a task on node {owner}", err)
            return None
        data: bytes = response.poll_response
        return data

    def _requeue(self, key: QueueKey, item: Task | QueryTask) -> None:
        """A task that could not be started now goes back to its queue, after a moment (not lost: it is the only
        copy this queue has)."""
        asyncio.get_running_loop().call_later(REQUEUE_DELAY_S, self.matching.add_front, key, item)

    async def record_task_started(self, request: npb.RecordTaskStartedRequest) -> bytes:
        """NodeService.RecordTaskStarted: start the task here, where its shard is (ShardNotHere if it is not)."""
        if request.HasField("query"):
            wreq = ws.PollWorkflowTaskQueueRequest.FromString(request.poll_request)
            wresp = await self.engine.workflow_tasks._query_task(
                _query_task(request.query), wreq.task_queue.kind == STICKY, wreq.identity
            )
            return wresp.SerializeToString() if wresp is not None else b""
        task = request.task
        # not held here: ShardNotHere, and the caller asks again later
        self.engine.executions.shard_for(task.namespace_id, task.workflow_id)
        if task.type == TaskType.TASK_TYPE_DISPATCH_ACTIVITY_TASK:
            areq = ws.PollActivityTaskQueueRequest.FromString(request.poll_request)
            ns = self.engine.namespaces.get_by_id(task.namespace_id)
            aresp = await self.engine.activities._record_started(ns, task, areq.identity)
            return aresp.SerializeToString() if aresp is not None else b""
        wreq = ws.PollWorkflowTaskQueueRequest.FromString(request.poll_request)
        handler = self.engine.workflow_tasks
        wresp = await handler._record_started(
            task, wreq.task_queue.kind == STICKY, wreq.identity, stamp_from_poll(wreq)
        )
        return wresp.SerializeToString() if wresp is not None else b""

    # ------------------------------------------------------------------ Nexus tasks
    async def dispatch_nexus(
        self, dispatcher: NexusDispatcher, namespace_id: str, task_queue: str, request: nexus_pb.Request, timeout: float
    ) -> Reply | None:
        """Dispatch on the node serving the queue (here, or over NodeService.DispatchNexusTask)."""
        owner = self.ownership.queue_owner(QueueKey(namespace_id, task_queue, NEXUS))
        channel = None if owner == self.ownership.node else self.ownership.channel(owner)
        if channel is None:
            return await dispatcher.dispatch_here(namespace_id, task_queue, request, timeout)
        call = npb.DispatchNexusTaskRequest(
            namespace_id=namespace_id, task_queue=task_queue, request=request.SerializeToString(), timeout_s=timeout
        )
        try:
            response = await _call(channel, "DispatchNexusTask", call, npb.DispatchNexusTaskResponse, timeout + 5.0)
        except grpc.aio.AioRpcError as err:
            self._failures.failure(f"could not dispatch a Nexus task on node {owner}", err)
            return None  # as if no worker answered: the caller retries
        if response.completed:
            return ws.RespondNexusTaskCompletedRequest.FromString(response.completed)
        if response.failed:
            return ws.RespondNexusTaskFailedRequest.FromString(response.failed)
        return None

    async def dispatch_nexus_here(
        self, dispatcher: NexusDispatcher, request: npb.DispatchNexusTaskRequest
    ) -> npb.DispatchNexusTaskResponse:
        """NodeService.DispatchNexusTask."""
        reply = await dispatcher.dispatch_here(
            request.namespace_id, request.task_queue, nexus_pb.Request.FromString(request.request), request.timeout_s
        )
        if isinstance(reply, ws.RespondNexusTaskCompletedRequest):
            return npb.DispatchNexusTaskResponse(completed=reply.SerializeToString())
        if isinstance(reply, ws.RespondNexusTaskFailedRequest):
            return npb.DispatchNexusTaskResponse(failed=reply.SerializeToString())
        return npb.DispatchNexusTaskResponse()


async def _call(
    channel: grpc.aio.Channel, method: str, request: Any, response: Any, timeout: float = CALL_TIMEOUT_S
) -> Any:
    call = channel.unary_unary(
        f"/{SERVICE}/{method}",
        request_serializer=lambda m: m.SerializeToString(),
        response_deserializer=response.FromString,
    )
    return await call(request, timeout=timeout)


def _add_request(key: QueueKey, item: Task | QueryTask, sticky_normal_name: str, hops: int) -> npb.AddTaskRequest:
    request = npb.AddTaskRequest(
        namespace_id=key.namespace_id,
        task_queue=key.name,
        kind=key.task_type,
        sticky_normal_name=sticky_normal_name,
        hops=hops,
    )
    if isinstance(item, Task):
        request.task.CopyFrom(item)
    else:
        request.query.CopyFrom(_query_info(item))
    return request


def _key_of(request: npb.AddTaskRequest) -> QueueKey:
    kind = request.kind if request.kind in (WORKFLOW, ACTIVITY) else WORKFLOW
    return QueueKey(request.namespace_id, request.task_queue, kind)


def _item_of(request: npb.AddTaskRequest) -> Task | QueryTask:
    return _query_task(request.query) if request.HasField("query") else request.task


def _query_info(task: QueryTask) -> npb.QueryTaskInfo:
    return npb.QueryTaskInfo(
        query_id=task.query_id,
        namespace_id=task.namespace_id,
        workflow_id=task.workflow_id,
        run_id=task.run_id,
        query=task.query.SerializeToString(),
    )


def _query_task(info: npb.QueryTaskInfo) -> QueryTask:
    return QueryTask(
        info.query_id, info.namespace_id, info.workflow_id, info.run_id, query_pb.WorkflowQuery.FromString(info.query)
    )
