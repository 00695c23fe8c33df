"""Membership and shard ownership of several nodes over one store (nodes/membership.py, nodes/shards.py), with a
clock the tests move: who is live, a name held by a live node, eviction, an outage, shards taken, handed over,
taken from a dead node, and a fenced-off node learning at its next write."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import StartWorkflowExecutionRequest

from tempyral.common.errors import ShardNotHere, StartupError
from tempyral.config import NodeSettings
from tempyral.history.engine import EngineConfig, HistoryEngine
from tempyral.matching.service import Matching
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nodes.membership import Membership, View
from tempyral.nodes.ownership import Ownership
from tempyral.nodes.shards import ShardController
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
S = 1_000_000_000
SETTINGS = NodeSettings(member_timeout_s=5.0, heartbeat_s=1.0)
SHARDS = 8


class Clock:
    def __init__(self) -> None:
        self.now = 1_000 * S

    def __call__(self) -> int:
        return self.now


async def joined(store: MemoryStore, name: str, clock: Clock) -> Membership:
    m = Membership(store, SETTINGS, name, clock)
    await m.join(f"{name}:1", f"{name}:2")
    return m


async def beat(*members: Membership) -> None:
    """What each node's heartbeat loop does once."""
    for m in members:
        assert await m.store.heartbeat_member(m.node, m.session, m._clock())
        await m.refresh()


async def test_live_nodes_are_those_heard_from_within_the_timeout() -> None:
    store, clock = MemoryStore(), Clock()
    a = await joined(store, "a", clock)
    b = await joined(store, "b", clock)
    await beat(a, b)
    assert a.view.names == b.view.names == ("a", "b")
    changes: list[View] = []
    a.listeners.append(changes.append)
    clock.now += 4 * S
    await beat(a)  # b is silent, but not for long enough
    assert a.view.names == ("a", "b") and not changes
    clock.now += 2 * S
    await beat(a)
    assert list(a.view.names) == ["a"] and [v.names for v in changes] == [("a",)]


async def test_a_name_held_by_a_live_node_is_refused_and_a_dead_ones_taken_over() -> None:
    store, clock = MemoryStore(), Clock()
    first = await joined(store, "same", clock)
    with pytest.raises(StartupError, match="node name same is taken by a running node"):
        await joined(store, "same", clock)
    clock.now += 6 * S  # the first went silent
    second = await joined(store, "same", clock)
    assert not await store.heartbeat_member(first.node, first.session, clock.now)  # what its loop would see
    assert second.view.names == ("same",)


async def test_after_an_outage_nobody_is_judged_until_heartbeats_ran_a_whole_timeout() -> None:
    store, clock = MemoryStore(), Clock()
    a = await joined(store, "a", clock)
    b = await joined(store, "b", clock)
    await beat(a, b)
    a._healthy_since = None  # the database went away for a while: every row is old now
    clock.now += 30 * S
    assert await store.heartbeat_member("a", a.session, clock.now)
    a._healthy_since = clock.now
    await a.refresh()
    assert a.view.names == ("a", "b")  # b may just not have beaten yet
    clock.now += 5 * S
    assert await store.heartbeat_member("a", a.session, clock.now)
    await a.refresh()
    assert list(a.view.names) == ["a"]  # heard nothing from b for a whole timeout since a came back


async def test_leaving_removes_the_row_at_once() -> None:
    store, clock = MemoryStore(), Clock()
    a = await joined(store, "a", clock)
    b = await joined(store, "b", clock)
    await b.leave()
    await a.refresh()
    assert a.view.names == ("a",)


# ---------------------------------------------------------------------- shards
class Node:
    def __init__(self, store: MemoryStore, name: str, clock: Clock, takeover_s: float = 10.0) -> None:
        self.store, self.name, self.clock = store, name, clock
        self.takeover_s = takeover_s

    async def start(self) -> Node:
        self.namespaces = NamespaceRegistry(self.store, "active")
        await self.namespaces.load()
        self.engine = HistoryEngine(
            self.store, self.namespaces, Matching(), EngineConfig(num_shards=SHARDS, owner=self.name)
        )
        await self.engine.start(acquire_all=False)
        self.membership = await joined(self.store, self.name, self.clock)
        self.ownership = Ownership(self.membership, SHARDS)
        self.controller = ShardController(self.engine, self.store, self.membership, self.ownership, self.takeover_s)
        await self.controller.tick()
        return self

    def owned(self) -> set[int]:
        return {s.shard_id for s in self.engine.shards if s.owned}

    async def stop(self) -> None:
        await self.engine.stop()


async def settle(*nodes: Node) -> None:
    for _ in range(3):
        for node in nodes:
            await beat(node.membership)
            await node.controller.tick()


async def test_shards_spread_over_nodes_as_they_join_and_each_is_owned_once() -> None:
    store, clock = MemoryStore(), Clock()
    a = await Node(store, "a", clock).start()
    assert a.owned() == set(range(SHARDS))
    b = await Node(store, "b", clock).start()
    assert b.owned() == set()  # a still holds them all: b waits for a to hand them over
    await settle(a, b)
    assert a.owned() | b.owned() == set(range(SHARDS)) and not a.owned() & b.owned()
    assert len(a.owned()) == len(b.owned()) == SHARDS // 2
    rows = {r.shard_id: r.owner for r in await store.list_shards()}
    assert {s for s, o in rows.items() if o == "b"} == b.owned()
    await a.stop()
    await b.stop()


async def test_a_dead_nodes_shards_are_taken_once_it_is_gone_and_its_writes_are_fenced() -> None:
    store, clock = MemoryStore(), Clock()
    a = await Node(store, "a", clock).start()
    b = await Node(store, "b", clock).start()
    await settle(a, b)
    ns = await a.namespaces.ensure("default")
    b_shards = b.owned()
    await b.namespaces.load()
    wid = next(w for w in (f"wf-{i}" for i in range(500)) if a.ownership.shard_of(ns.id, w) in b_shards)
    clock.now += 6 * S  # b stopped answering (its process is stuck, not dead)
    await beat(a.membership)
    await a.controller.tick()
    assert a.owned() == set(range(SHARDS))
    # b does not know yet: its next write to one of those shards is refused, and it lets the shard go
    shard = b.engine.shards[a.ownership.shard_of(ns.id, wid)]
    assert shard.owned
    with pytest.raises(ShardNotHere):
        await b.engine.start_workflow(
            ns,
            StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=wid,
                workflow_type=WorkflowType(name="T"),
                task_queue=TaskQueue(name="q"),
            ),
        )
    assert not shard.owned
    await a.stop()
    await b.stop()


async def test_a_live_holder_that_keeps_a_shard_too_long_loses_it() -> None:
    store, clock = MemoryStore(), Clock()
    a = await Node(store, "a", clock, takeover_s=0.0).start()
    b = await Node(store, "b", clock, takeover_s=0.0).start()
    await beat(a.membership, b.membership)
    await b.controller.tick()  # a has not handed over (its controller did not run): b takes what belongs on it
    assert len(b.owned()) == SHARDS // 2
    await a.controller.tick()  # a sees the ranges moved on and lets them go
    assert a.owned() == set(range(SHARDS)) - b.owned()
    await a.stop()
    await b.stop()
