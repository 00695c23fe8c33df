"""Matching across nodes (nodes/matching.py MatchingRouter over matching/service.py Matching): two or three nodes in
one process over one MemoryStore, built as tests/unit/test_node_service.py builds them (a holds shards 0 and 1, b
shards 2 and 3, c none), each with a MatchingRouter wired as server.py `_wire_nodes` wires it.

A task stays on the node owning its shard when a worker polls its queue there; else it goes to a node whose workers
poll it (learned from ReportPollers), which starts it on the shard's node (RecordTaskStarted); a node whose workers
stopped polling gives its waiting tasks back; tasks sent to a node that left are placed again; a sticky queue no
worker polls gives its backlog to the normal queue; describe gathers pollers and backlogs over the nodes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType, TaskQueueKind
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.history.executions import shard_id_for
from tempyral.matching import service as matching_service
from tempyral.matching.service import ACTIVITY, WORKFLOW, Matching, QueueKey
from tempyral.nodes import matching as node_matching
from tempyral.nodes.matching import LedgerKey, MatchingRouter, queue_hash
from tempyral.proto.internal_pb2 import Task
from tests.support.history_harness import ACTIVITY_QUEUE, schedule_activity
from tests.support.memory_store import MemoryStore
from tests.unit.test_node_service import (
    HOLDERS,
    NAMESPACE,
    SHARDS,
    TQ,
    WAIT_S,
    Node,
    _node,
    event_types,
    events,
    run_workflow_task,
    signal_request,
    start,
    until,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
STICKY_TQ = "sticky-worker-1"


# ---------------------------------------------------------------------------------------------------- the nodes
@dataclass
class Peer:
    """A node with its MatchingRouter."""

    node: Node
    router: MatchingRouter

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def matching(self) -> Matching:
        return self.node.engine.matching

    def key(self, name: str = TQ, kind: int = WORKFLOW) -> QueueKey:
        return QueueKey(self.node.ns.id, name, kind)


@dataclass
class Nodes:
    store: MemoryStore
    peers: dict[str, Peer]
    background: list[asyncio.Task[Any]] = field(default_factory=list)

    def __getitem__(self, name: str) -> Peer:
        return self.peers[name]

    def workflow_id(self, prefix: str, holder: str) -> str:
        """A fresh workflow id whose shard `holder` holds."""
        ns_id = self["a"].node.ns.id
        for i in range(1000):
            wid = f"{prefix}-{i}"
            if HOLDERS[shard_id_for(ns_id, wid, SHARDS)] == holder:
                return wid
        raise AssertionError("no workflow id found")

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A poll in the background, cancelled at the end of the test if it is still waiting."""
        task = asyncio.get_running_loop().create_task(coro)
        self.background.append(task)
        return task


def wire(node: Node) -> MatchingRouter:
    """As server.py `_wire_nodes` wires the matching side of a node."""
    engine = node.engine
    router = MatchingRouter(node.ownership, engine.matching, engine)
    node.service.add_task = router.add_task
    node.service.record_task_started = router.record_task_started
    node.service.report_pollers = router.report_pollers
    node.service.describe_queue = router.describe_queue
    engine.matching.router = router
    engine.workflow_tasks.remote = router
    engine.activities.remote = router
    engine.on_shard_released.append(router.shard_released)
    engine.outbox.on_rows_deleted = router.forget
    for shard in engine.shards:
        shard.on_rows_deleted = router.forget
    node.membership.listeners.append(router.view_changed)
    router.start()
    return router


OpenNodes = Callable[..., Awaitable[Nodes]]


@pytest_asyncio.fixture(loop_scope="function")
async def open_nodes(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[OpenNodes]:
    """Opens the nodes once the test set its timings (read by the routers' loops from their first round)."""
    stores: list[MemoryStore] = []
    built: list[Node] = []
    routers: list[MatchingRouter] = []
    background: list[asyncio.Task[Any]] = []

    async def open_(
        names: tuple[str, ...] = ("a", "b"),
        *,
        sweep_s: float | None = None,
        grace_s: float | None = None,
    ) -> Nodes:
        if sweep_s is not None:
            monkeypatch.setattr(node_matching, "SWEEP_S", sweep_s)
        if grace_s is not None:
            monkeypatch.setattr(matching_service, "POLLER_GRACE_S", grace_s)
        store = MemoryStore()
        await store.open()
        stores.append(store)
        for name in names:
            built.append(await _node(store, name))
        mine = built[-len(names) :]
        for node in mine:
            await node.membership.refresh()  # the first ones joined before the others
            assert node.ownership.view.names == names
        peers: dict[str, Peer] = {}
        for node in mine:
            routers.append(wire(node))
            peers[node.name] = Peer(node, routers[-1])
        return Nodes(store, peers, background)

    try:
        yield open_
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        for router in routers:
            await router.close()
        for node in built:
            await node.engine.stop()
            await node.server.stop(None)
            await node.ownership.close()
        for store in stores:
            await store.close()


# ---------------------------------------------------------------------------------------------------- helpers
def holds(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def knows_polling(at: Peer, polling: Peer, key: QueueKey) -> Callable[[], Awaitable[bool]]:
    """`at` has heard (ReportPollers) that a worker polls `key` on `polling`."""
    return holds(lambda: queue_hash(key) in at.router._polling.get(polling.name, (frozenset(), 0.0))[0])


def waiting(peer: Peer, key: QueueKey) -> int:
    """How many polls wait on the queue on this node now."""
    q = peer.matching._queues.get(key)
    return len(q.pollers) if q is not None else 0


def ledger(peer: Peer) -> dict[LedgerKey, str]:
    """The router's ledger: the tasks of its shards sent to another node, and that node."""
    return {k: entry[3] for k, entry in peer.router._ledger.items()}


def backlog_tasks(peer: Peer, key: QueueKey) -> list[Task]:
    q = peer.matching._queues.get(key)
    return [item for item in q.backlog if isinstance(item, Task)] if q is not None else []


def poll_request(identity: str, task_queue: str = TQ, sticky: bool = False) -> ws.PollWorkflowTaskQueueRequest:
    kind = TaskQueueKind.TASK_QUEUE_KIND_STICKY if sticky else TaskQueueKind.TASK_QUEUE_KIND_NORMAL
    return ws.PollWorkflowTaskQueueRequest(
        namespace=NAMESPACE, task_queue=taskqueue.TaskQueue(name=task_queue, kind=kind), identity=identity
    )


async def poll_workflow(
    peer: Peer, identity: str, timeout: float = WAIT_S, task_queue: str = TQ
) -> ws.PollWorkflowTaskQueueResponse:
    return await peer.node.engine.workflow_tasks.poll(peer.node.ns, poll_request(identity, task_queue), timeout)


async def poll_activity(peer: Peer, identity: str, timeout: float = WAIT_S) -> ws.PollActivityTaskQueueResponse:
    req = ws.PollActivityTaskQueueRequest(
        namespace=NAMESPACE, task_queue=taskqueue.TaskQueue(name=ACTIVITY_QUEUE), identity=identity
    )
    return await peer.node.engine.activities.poll(peer.node.ns, req, timeout)


def holding_poll(nodes: Nodes, peer: Peer, key: QueueKey) -> asyncio.Task[Any]:
    """A worker that polls `key` on `peer` but takes nothing (as a standby cluster's query-only polls): the queue
    has a live poller for as long as this waits, and what reaches it stays in its backlog."""
    return nodes.spawn(peer.matching.poll(key, 10 * WAIT_S, accept=lambda item: False))


async def stop_polling(task: asyncio.Task[Any]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def started_events(peer: Peer, workflow_id: str) -> list[history.HistoryEvent]:
    return [
        e for e in await events(peer.node, workflow_id) if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED
    ]


# ---------------------------------------------------------------------------------------------------- staying local
async def test_a_task_with_a_poller_on_its_shards_node_is_handed_over_there(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes()
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    # a worker polls on each node, and a knows of b's: the task could go either way, it stays on a
    b_poll = nodes.spawn(poll_workflow(b, "worker-b"))
    await until(knows_polling(a, b, key), "a hears that a worker polls on b")
    a_poll = nodes.spawn(poll_workflow(a, "worker-a"))
    await until(holds(lambda: waiting(a, key) == 1), "a's poll waits")

    wid = nodes.workflow_id("local", "a")
    await start(a.node, wid)
    got = await asyncio.wait_for(a_poll, WAIT_S)
    assert got.workflow_execution.workflow_id == wid
    assert (a.router.sent, b.router.sent) == (0, 0)
    assert not b_poll.done()
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-a"]
    assert ledger(a) == {}


# ---------------------------------------------------------------------------------------------------- to another node
async def test_a_task_without_a_local_poller_goes_to_a_node_where_one_polls(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes()
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    b_poll = nodes.spawn(poll_workflow(b, "worker-b"))
    await until(knows_polling(a, b, key), "a hears that a worker polls on b")

    wid = nodes.workflow_id("sent", "a")
    await start(a.node, wid)
    got = await asyncio.wait_for(b_poll, WAIT_S)
    assert got.workflow_execution.workflow_id == wid and got.task_token
    assert (a.router.sent, b.router.sent) == (1, 0)
    # started on a, the shard's node, for b's worker; its row's deletion took it out of a's ledger
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-b"]
    await until(holds(lambda: ledger(a) == {}), "a forgets the task sent to b once its row is gone")
    assert a.matching.backlog_size(key) == b.matching.backlog_size(key) == 0


async def test_a_waiting_task_goes_to_the_first_node_where_a_worker_polls(open_nodes: OpenNodes) -> None:
    # no periodic sweep or report within the test: only b's report on its worker's first poll can move the task
    nodes = await open_nodes(sweep_s=3600.0)
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    wid = nodes.workflow_id("waiting", "a")
    await start(a.node, wid)
    await until(holds(lambda: a.matching.backlog_size(key) == 1), "the task waits on a")
    assert a.router.sent == 0 and ledger(a) == {}

    got = await poll_workflow(b, "worker-b")
    assert got.workflow_execution.workflow_id == wid
    assert a.router.sent == 1
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-b"]
    assert a.matching.backlog_size(key) == 0


async def sent_to_b(nodes: Nodes, prefix: str) -> tuple[str, Task, asyncio.Task[Any]]:
    """A workflow of a's shard whose first task a sent to b, where a worker polls and takes nothing: the workflow's
    id, the task in b's backlog (in a's ledger), and b's poll."""
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    b_worker = holding_poll(nodes, b, key)
    await until(knows_polling(a, b, key), "a hears that a worker polls on b")
    wid = nodes.workflow_id(prefix, "a")
    await start(a.node, wid)
    await until(holds(lambda: a.router.sent == 1), "a sends the task to b")
    [task] = backlog_tasks(b, key)
    assert task.workflow_id == wid
    assert ledger(a) == {(task.shard_id, task.task_id): "b"}
    return wid, task, b_worker


# ---------------------------------------------------------------------------------------------------- given back
async def test_a_task_whose_poller_stopped_goes_back_to_its_shards_node(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes(sweep_s=0.1, grace_s=1.0)
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    wid, task, b_worker = await sent_to_b(nodes, "stranded")

    a_worker = holding_poll(nodes, a, key)
    await until(knows_polling(b, a, key), "b hears that a worker polls on a")
    assert backlog_tasks(b, key) == [task]  # b's worker still polls: the task stays there

    await stop_polling(b_worker)  # after the grace time, b gives the task back to a (reroute)
    await until(holds(lambda: backlog_tasks(a, key) == [task]), "b gives the task back to a")
    assert backlog_tasks(b, key) == []
    assert ledger(a) == {}  # a's own task again, placed here where its worker polls
    await until(holds(lambda: b.router.sent == 1), "b's AddTask is answered")
    assert a.router.sent == 1

    got = await poll_workflow(a, "worker-a")
    assert got.workflow_execution.workflow_id == wid
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-a"]
    await stop_polling(a_worker)


async def test_a_task_given_back_goes_where_a_worker_polls(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes(("a", "b", "c"), sweep_s=0.1, grace_s=1.0)
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    key = a.key()
    wid, task, b_worker = await sent_to_b(nodes, "given-back")

    c_poll = nodes.spawn(poll_workflow(c, "worker-c"))
    await until(knows_polling(a, c, key), "a hears that a worker polls on c")
    await until(knows_polling(b, c, key), "b hears that a worker polls on c")
    assert backlog_tasks(b, key) == [task] and not c_poll.done()

    # b gives it back to a, the shard's node (not to c), and a places it: with c's worker
    await stop_polling(b_worker)
    got = await asyncio.wait_for(c_poll, WAIT_S)
    assert got.workflow_execution.workflow_id == wid
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-c"]
    # b's give-backs are answered; a's sends are b's give-backs plus its last, to c (a report of b's in flight when
    # b gives the task back may have a send it to b once more: more hops, the same end)
    await until(holds(lambda: b.router.sent >= 1 and a.router.sent == b.router.sent + 1), "the AddTasks are answered")
    assert c.router.sent == 0
    await until(holds(lambda: ledger(a) == {}), "a forgets the task once its row is gone")


# ---------------------------------------------------------------------------------------------------- view changes
async def test_a_task_sent_to_a_node_that_left_is_placed_again(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes()
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    wid, _, b_worker = await sent_to_b(nodes, "left")

    await b.node.membership.leave()
    assert (await a.node.membership.refresh()).names == ("a",)  # a's router hears of it: the task waits on a
    assert ledger(a) == {}
    assert a.matching.backlog_size(key) == 1
    got = await poll_workflow(a, "worker-a")
    assert got.workflow_execution.workflow_id == wid
    assert a.router.sent == 1

    # the copy b still holds is started once only: b's worker finds it started and gets nothing
    await stop_polling(b_worker)
    late = await poll_workflow(b, "worker-b", timeout=0.5)
    assert not late.task_token
    assert backlog_tasks(b, key) == []
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-a"]


async def test_a_task_sent_to_a_node_that_left_goes_to_another_polling_node(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes(("a", "b", "c"))
    a, b, c = nodes["a"], nodes["b"], nodes["c"]
    key = a.key()
    wid, task, b_worker = await sent_to_b(nodes, "moved")
    ledger_key = (task.shard_id, task.task_id)

    c_worker = holding_poll(nodes, c, key)
    await until(knows_polling(a, c, key), "a hears that a worker polls on c")
    await b.node.membership.leave()
    assert (await a.node.membership.refresh()).names == ("a", "c")
    await until(holds(lambda: a.router.sent == 2), "a sends the task to c")
    assert ledger(a) == {ledger_key: "c"}
    assert backlog_tasks(c, key) == [task]

    got = await poll_workflow(c, "worker-c")  # takes the task from c's backlog; started on a
    assert got.workflow_execution.workflow_id == wid
    assert [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)] == ["worker-c"]
    await until(holds(lambda: ledger(a) == {}), "a forgets the task once its row is gone")
    await stop_polling(b_worker)
    await stop_polling(c_worker)


# ---------------------------------------------------------------------------------------------------- sticky queues
async def test_a_sticky_queue_whose_worker_stopped_gives_its_backlog_to_the_normal_queue(
    open_nodes: OpenNodes,
) -> None:
    nodes = await open_nodes(sweep_s=0.1, grace_s=1.0)
    a = nodes["a"]
    normal, sticky = a.key(), a.key(STICKY_TQ)
    wid = nodes.workflow_id("sticky", "a")
    await start(a.node, wid)
    first = await poll_workflow(a, "worker-1")
    sticky_worker = holding_poll(nodes, a, sticky)
    await until(holds(lambda: waiting(a, sticky) == 1), "the worker polls its sticky queue")
    await a.node.engine.workflow_tasks.respond_completed(
        a.node.ns,
        ws.RespondWorkflowTaskCompletedRequest(
            namespace=NAMESPACE,
            task_token=first.task_token,
            identity="worker-1",
            sticky_attributes=taskqueue.StickyExecutionAttributes(
                worker_task_queue=taskqueue.TaskQueue(name=STICKY_TQ, kind=TaskQueueKind.TASK_QUEUE_KIND_STICKY)
            ),  # no schedule-to-start timeout: only the sweep moves the task
        ),
    )

    await a.node.engine.signal(a.node.ns, signal_request(wid))
    await until(holds(lambda: a.matching.backlog_size(sticky) == 1), "the new task waits on the sticky queue")
    assert a.matching.backlog_size(normal) == 0

    await stop_polling(sticky_worker)
    await until(holds(lambda: a.matching.backlog_size(normal) == 1), "the sweep moves it to the normal queue")
    assert a.matching.backlog_size(sticky) == 0
    got = await poll_workflow(a, "worker-2")
    assert got.workflow_execution.workflow_id == wid
    identities = [e.workflow_task_started_event_attributes.identity for e in await started_events(a, wid)]
    assert identities == ["worker-1", "worker-2"]
    assert nodes["b"].router.sent == a.router.sent == 0


# ---------------------------------------------------------------------------------------------------- describe
async def test_describe_lists_the_pollers_and_sums_the_backlogs_of_every_node(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes()
    a, b = nodes["a"], nodes["b"]
    key = a.key()
    for peer, identity in ((a, "worker-a"), (a, "worker-both"), (b, "worker-both"), (b, "worker-b")):
        assert not (await poll_workflow(peer, identity, timeout=0.01)).task_token
    # each node's queue has a live poller now: a task made on a node waits there
    for i, holder in enumerate(("a", "a", "b")):
        await start(nodes[holder].node, nodes.workflow_id(f"described-{i}", holder))
    await until(holds(lambda: (a.matching.backlog_size(key), b.matching.backlog_size(key)) == (2, 1)), "the tasks wait")

    latest_on_b = {p.identity: p for p in b.matching.recent_pollers(key)}
    for peer in (a, b):
        pollers, backlog = await peer.matching.describe_everywhere(key)
        assert [p.identity for p in pollers] == ["worker-b", "worker-both", "worker-a"], peer.name
        assert pollers[1] == latest_on_b["worker-both"]
        assert backlog == 3
    assert (a.router.sent, b.router.sent) == (0, 0)


# ---------------------------------------------------------------------------------------------------- activities
async def test_an_activity_without_a_local_poller_goes_to_a_node_where_one_polls(open_nodes: OpenNodes) -> None:
    nodes = await open_nodes()
    a, b = nodes["a"], nodes["b"]
    activity_key = a.key(ACTIVITY_QUEUE, ACTIVITY)
    b_poll = nodes.spawn(poll_activity(b, "activity-worker-b"))
    await until(knows_polling(a, b, activity_key), "a hears that an activity worker polls on b")

    wid = nodes.workflow_id("activity", "a")
    await start(a.node, wid)
    await run_workflow_task(a.node, wid, schedule_activity())  # the workflow task stays on a
    got = await asyncio.wait_for(b_poll, WAIT_S)
    assert got.workflow_execution.workflow_id == wid and got.activity_id == "a1" and got.task_token
    assert (a.router.sent, b.router.sent) == (1, 0)
    [info] = (await a.node.engine.read_state(a.node.ns.id, wid)).state.activities.values()
    assert info.started and info.started_identity == "activity-worker-b"
    await until(holds(lambda: ledger(a) == {}), "a forgets the activity task once its row is gone")

    await a.node.engine.activities.complete(
        a.node.ns,
        ws.RespondActivityTaskCompletedRequest(
            namespace=NAMESPACE, task_token=got.task_token, identity="activity-worker-b"
        ),
    )
    types = await event_types(a.node, wid)
    assert types[-3:-1] == ["ACTIVITY_TASK_STARTED", "ACTIVITY_TASK_COMPLETED"]
    started = next(e for e in await events(a.node, wid) if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED)
    assert started.activity_task_started_event_attributes.identity == "activity-worker-b"
