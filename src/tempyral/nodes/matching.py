"""Matching across nodes: every node serves its own part of each task queue, to the workers connected to it.

A workflow or activity task is committed by the node owning its workflow's shard, whose outbox row stays until a
worker started it (the durable backlog). When a worker polls the task's queue on that node (now, or within the
grace time), the task stays there: matched, started and completed on one node, without a call between nodes. Else
it goes to a node where a worker polls the queue (each node tells the others which queues its workers poll, as
hashes, when that changes and every PRESENCE_REFRESH_S), and the shard's node keeps it in a ledger until its row
goes: when the node it was sent to leaves or dies, the task is placed again. Where no worker polls the queue on any
node, it waits on its shard's node until one does.

A node whose workers stopped polling a queue gives its waiting tasks back: its own ones are placed again, the others
go back to the node owning their shard (AddTask with `reroute`), which places them. The node that hands a task to a
worker asks the shard's node to record it as started (or records it itself when it is that node); a task placed
twice is started once: the second start finds it started, and is skipped.

Query tasks travel the same way (their caller waits on the shard's node). A Nexus task is dispatched by one node per
queue (rendezvous hashing over the live nodes), where the queue's Nexus polls are passed (nodes/routing.py); it
waits for the worker's reply and returns it (its caller retries if it is lost).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections import deque
from typing import Any

import grpc
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb
from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import ShardNotHere
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.history.engine import HistoryEngine
from tempyral.history.queries import QueryTask
from tempyral.history.worker_version import stamp_from_poll
from tempyral.history.workflow_tasks import STICKY
from tempyral.matching.service import ACTIVITY, NEXUS, WORKFLOW, Matching, Poller, QueueKey
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
DESCRIBE_TIMEOUT_S = 5.0
# Every node reports the queues its workers poll this often (and at once when a queue gets its first worker); a
# report older than PRESENCE_TTL_S is forgotten.
PRESENCE_REFRESH_S = 2.0
PRESENCE_TTL_S = 3 * PRESENCE_REFRESH_S + 1.0
# How often tasks waiting where no worker polls their queue any more are given to a node where one does.
SWEEP_S = 1.0
# At most this many queues are reported (a bound on the report's size); the tasks of the others are placed as if
# no worker polled them here, which costs calls, not correctness.
MAX_REPORTED_QUEUES = 20_000

LedgerKey = tuple[int, int]  # shard id, task id


def queue_hash(key: QueueKey) -> int:
    """A task queue as the reports name it: 64 bits of its key."""
    digest = hashlib.blake2b(f"{key.namespace_id}\x00{key.task_type}\x00{key.name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "little")


class MatchingRouter:
    def __init__(
        self, ownership: Ownership, matching: Matching, engine: HistoryEngine, rng: random.Random | None = None
    ) -> None:
        self.ownership = ownership
        self.matching = matching
        self.engine = engine
        self._rng = rng or random.Random()
        # Tasks of shards owned here placed on another node: (queue, task, sticky normal name, node).
        self._ledger: dict[LedgerKey, tuple[QueueKey, Task, str, str]] = {}
        # node -> (the queues its workers poll, as hashes; when that report expires, monotonic)
        self._polling: dict[str, tuple[frozenset[int], float]] = {}
        self._reported: frozenset[int] = frozenset()
        self._reported_at = 0.0
        self._report_pending = False
        self._sweep_pending = False
        self._background: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)
        self.sent = 0  # items sent to other nodes, for tests and logs

    def start(self) -> None:
        self._loop_task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        await cancel_and_wait([*self._background, self._loop_task])
        self._loop_task = None

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # ------------------------------------------------------------------ placing (Matching.router)
    def forward(self, key: QueueKey, item: Any, sticky_normal_name: str) -> bool:
        """No worker polls `key` here: send the item to a node where one does (False: none does, it waits here). An
        item of a shard held elsewhere goes back to that shard's node, which places it."""
        if key.task_type == NEXUS or not isinstance(item, Task | QueryTask):
            return False  # Nexus tasks are dispatched on the queue's node (dispatch_nexus)
        if not self._owns(item):
            return self._give_back(key, item, sticky_normal_name, 0)
        node = self._polling_node(key)
        if node is None:
            return False
        if isinstance(item, Task):
            self._ledger[(item.shard_id, item.task_id)] = (key, item, sticky_normal_name, node)
        self._spawn(self._send(node, _add_request(key, item, sticky_normal_name, 0)))
        return True

    def _owns(self, item: Task | QueryTask) -> bool:
        if isinstance(item, Task):
            shard_id = item.shard_id
        else:
            shard_id = self.ownership.shard_of(item.namespace_id, item.workflow_id)
        return 0 <= shard_id < len(self.engine.shards) and self.engine.shards[shard_id].owned

    def _owner_of(self, item: Task | QueryTask) -> str:
        if isinstance(item, Task):
            return self.ownership.shard_owner(item.shard_id)
        return self.ownership.workflow_owner(item.namespace_id, item.workflow_id)

    def _give_back(self, key: QueueKey, item: Task | QueryTask, sticky_normal_name: str, hops: int) -> bool:
        owner = self._owner_of(item)
        if owner == self.ownership.node or hops >= MAX_HOPS:
            return False  # views differ for a moment: it waits here, and is given back at a later sweep
        request = _add_request(key, item, sticky_normal_name, hops)
        request.reroute = True
        self._spawn(self._send(owner, request))
        return True

    def _polling_node(self, key: QueueKey) -> str | None:
        """A live node other than this one where a worker polls the queue, at random (None: no such node)."""
        h = queue_hash(key)
        now = time.monotonic()
        live = self.ownership.view.names
        nodes = [n for n, (queues, until) in self._polling.items() if h in queues and until > now and n in live]
        return self._rng.choice(nodes) if nodes else None

    async def _send(self, node: str, request: npb.AddTaskRequest) -> None:
        """Deliver the item; a task of the ledger is placed again when its node cannot take it (gone, or
        unreachable SEND_ATTEMPTS times); any other item then waits here, and the sweep gives it back later."""
        # a task given back is its shard's node's to place: only this node's own sends are in its ledger
        ours = request.HasField("task") and not request.reroute
        ledger_key = (request.task.shard_id, request.task.task_id) if ours else None
        attempt = 0
        while True:
            channel = self.ownership.channel(node)
            if channel is not None:
                try:
                    await _call(channel, "AddTask", request, npb.Empty)
                    self.sent += 1
                    return
                except grpc.aio.AioRpcError as err:
                    self._failures.failure(f"could not pass a task to node {node}", err)
            attempt += 1
            if ledger_key is not None:
                entry = self._ledger.get(ledger_key)
                if entry is None or entry[3] != node:
                    return  # started, stale, its shard moved, or placed again meanwhile
                if channel is None or attempt >= SEND_ATTEMPTS:
                    del self._ledger[ledger_key]
                    self.matching.add(entry[0], entry[1], entry[2])
                    return
            elif channel is None or attempt >= SEND_ATTEMPTS:
                self.matching.add(_key_of(request), _item_of(request), request.sticky_normal_name, route=False)
                return
            await asyncio.sleep(min(0.2 * attempt, SEND_BACKOFF_MAX_S))

    def forget(self, shard_id: int, task_ids: list[int]) -> None:
        """These task rows are gone (started, or stale): nothing to place again."""
        for task_id in task_ids:
            self._ledger.pop((shard_id, task_id), None)

    def shard_released(self, shard_id: int) -> None:
        for key in [k for k in self._ledger if k[0] == shard_id]:
            del self._ledger[key]  # its new owner dispatches them

    def view_changed(self, view: View) -> None:
        """Place again the tasks sent to a node that left or died; tell the nodes that joined where workers poll."""
        live = set(view.names)
        for node in [n for n in self._polling if n not in live]:
            del self._polling[node]
        placed = 0
        for ledger_key, (key, task, sticky, node) in list(self._ledger.items()):
            if node not in live:
                del self._ledger[ledger_key]
                self.matching.add(key, task, sticky)
                placed += 1
        if placed:
            log.info("%d tasks sent to nodes that left were placed again", placed)
        self._report_soon(force=True)

    # ------------------------------------------------------------------ the receiving side (NodeService.AddTask)
    def add_task(self, request: npb.AddTaskRequest) -> None:
        key = _key_of(request)
        item = _item_of(request)
        if not request.reroute:
            self.matching.add(key, item, request.sticky_normal_name, route=False)
            return
        if isinstance(item, Task):
            self._ledger.pop((item.shard_id, item.task_id), None)
        if self._owns(item):
            self.matching.add(key, item, request.sticky_normal_name)
        elif not self._give_back(key, item, request.sticky_normal_name, request.hops + 1):
            self.matching.add(key, item, request.sticky_normal_name, route=False)

    # ------------------------------------------------------------------ which queues have workers where
    def pollers_changed(self) -> None:
        self._report_soon(force=False)
        self._sweep_soon()

    def _sweep_soon(self) -> None:
        if not self._sweep_pending:
            self._sweep_pending = True
            asyncio.get_running_loop().call_soon(self._sweep)

    def _report_soon(self, force: bool) -> None:
        if self._report_pending:
            return
        self._report_pending = True

        async def report() -> None:
            self._report_pending = False
            await self._report(force)

        self._spawn(report())

    async def _report(self, force: bool) -> None:
        """Tell the other live nodes which queues this node's workers poll, when that changed (or `force`)."""
        keys = self.matching.live_keys()[:MAX_REPORTED_QUEUES]
        queues = frozenset(queue_hash(k) for k in keys)
        if queues == self._reported and not force:
            return
        self._reported, self._reported_at = queues, time.monotonic()
        request = npb.ReportPollersRequest(node=self.ownership.node, queues=sorted(queues))
        calls = []
        for node in self.ownership.view.names:
            channel = None if node == self.ownership.node else self.ownership.channel(node)
            if channel is not None:
                calls.append(_call(channel, "ReportPollers", request, npb.Empty, PRESENCE_REFRESH_S))
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, Exception):  # that node hears of it at the next refresh
                self._failures.failure("could not report this node's task queues", result)

    def report_pollers(self, request: npb.ReportPollersRequest) -> None:
        """NodeService.ReportPollers: where another node's workers poll; tasks waiting here for a queue that now has
        a worker there go at once."""
        before = self._polling.get(request.node, (frozenset(), 0.0))[0]
        queues = frozenset(request.queues)
        self._polling[request.node] = (queues, time.monotonic() + PRESENCE_TTL_S)
        if queues - before:
            self._sweep_soon()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            try:
                # sweep first: a queue that stops being polled between the two is reported unpolled before its
                # tasks are given back, so the others stop sending it tasks first
                self._sweep()
                await self._report(force=time.monotonic() - self._reported_at >= PRESENCE_REFRESH_S)
            except Exception as err:  # a bug: logged, and the next round tries again
                self._failures.failure("task queue sweep failed", err)

    def _sweep(self) -> None:
        """Tasks waiting on a queue no worker polls here any more go where one polls (or back to their shard)."""
        self._sweep_pending = False
        now = time.monotonic()
        for node in [n for n, (_, until) in self._polling.items() if until <= now]:
            del self._polling[node]
        if len(self.ownership.view.names) < 2:
            return
        stranded = self.matching.take_stranded(self._worth_moving)
        for key, item in stranded:
            self.matching.add(key, item)
        if stranded:
            log.debug("%d tasks waiting where no worker polls their queue were placed again", len(stranded))

    def _worth_moving(self, key: QueueKey, backlog: deque[Any]) -> bool:
        return self._polling_node(key) is not None or any(not self._owns(item) for item in backlog)

    # ------------------------------------------------------------------ describing a queue across nodes
    async def describe_elsewhere(self, key: QueueKey) -> tuple[list[Poller], int]:
        """The workers polling the queue on the other live nodes lately, and the tasks waiting there."""
        request = npb.DescribeQueueRequest(namespace_id=key.namespace_id, task_queue=key.name, kind=key.task_type)
        calls = []
        for node in self.ownership.view.names:
            channel = None if node == self.ownership.node else self.ownership.channel(node)
            if channel is not None:
                calls.append(_call(channel, "DescribeQueue", request, npb.DescribeQueueResponse, DESCRIBE_TIMEOUT_S))
        pollers: list[Poller] = []
        backlog = 0
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, BaseException):
                self._failures.failure("could not describe a task queue on another node", result)
                continue
            backlog += result.backlog
            pollers.extend(Poller(p.identity, p.last_access_ns, p.build_id) for p in result.pollers)
        return pollers, backlog

    def describe_queue(self, request: npb.DescribeQueueRequest) -> npb.DescribeQueueResponse:
        """NodeService.DescribeQueue: this node's part of the queue."""
        key = QueueKey(request.namespace_id, request.task_queue, request.kind)
        response = npb.DescribeQueueResponse(backlog=self.matching.backlog_size(key))
        for p in self.matching.recent_pollers(key):
            response.pollers.add(identity=p.identity, last_access_ns=p.last_access_ns, build_id=p.build_id)
        return response

    # ------------------------------------------------------------------ starting a task on the shard's node
    def elsewhere(self, item: Task | QueryTask) -> bool:
        return not self._owns(item)

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
