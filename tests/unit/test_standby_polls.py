"""Worker polls where a namespace is standby: matching's selective polls (query tasks only) and their early end,
and StandbyPolls (frontend/standby.py), which turns a standby poll into an ordinary one when the namespace
fails over here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest_asyncio

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.frontend.standby import StandbyPolls
from tempyral.matching.service import ACTIVITY, WORKFLOW, Matching, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord
from tests.support.memory_store import MemoryStore

Q = QueueKey("ns", "q", WORKFLOW)


def is_query(item: Any) -> bool:
    return isinstance(item, str) and item.startswith("query")


async def settle() -> None:
    """Let the tasks started so far run up to their first wait."""
    for _ in range(3):
        await asyncio.sleep(0)


# ---------------------------------------------------------------------- matching
async def test_a_selective_poll_takes_only_what_it_accepts_from_the_backlog() -> None:
    m = Matching()
    for item in ("task-1", "query-1", "task-2"):
        m.add(Q, item)
    assert await m.poll(Q, 1, accept=is_query) == "query-1"
    assert await m.poll(Q, 0.01, accept=is_query) is None
    assert [await m.poll(Q, 1), await m.poll(Q, 1)] == ["task-1", "task-2"]  # the others kept their order


async def test_an_item_goes_to_the_first_waiting_poller_that_takes_it() -> None:
    m = Matching()
    selective = asyncio.create_task(m.poll(Q, 5, accept=is_query))
    await settle()
    m.add(Q, "task")  # the selective poller passes: it goes to the backlog
    assert m.backlog_size(Q) == 1
    ordinary = asyncio.create_task(m.poll(Q, 5))
    assert await ordinary == "task"
    ordinary = asyncio.create_task(m.poll(Q, 5))
    await settle()
    m.add(Q, "query")  # the selective poller waited longer and takes it
    assert await selective == "query"
    m.add(Q, "task-2")
    assert await ordinary == "task-2"


async def test_wake_selective_ends_only_the_selective_polls_of_the_namespace() -> None:
    m = Matching()
    other = QueueKey("other", "q", WORKFLOW)
    selective = asyncio.create_task(m.poll(Q, 5, accept=is_query))
    activity = asyncio.create_task(m.poll(QueueKey("ns", "q", ACTIVITY), 5, accept=lambda _: False))
    ordinary = asyncio.create_task(m.poll(Q, 5))
    elsewhere = asyncio.create_task(m.poll(other, 5, accept=is_query))
    await settle()
    assert m.wake_selective("ns") == 2
    assert await selective is None and await activity is None
    assert not ordinary.done() and not elsewhere.done()
    m.add(Q, "task")
    assert await ordinary == "task"
    m.add(other, "query")
    assert await elsewhere == "query"


# ---------------------------------------------------------------------- StandbyPolls
@dataclass
class Standby:
    namespaces: NamespaceRegistry
    matching: Matching
    polls: StandbyPolls
    ns: Namespace

    async def fail_over(self, to: str) -> None:
        record = NamespaceRecord()
        record.CopyFrom(self.namespaces.get("g").record)
        record.replication_config.active_cluster_name = to
        record.failover_version += 1
        self.ns = await self.namespaces.save(record)

    async def poll(self, timeout: float) -> Any:
        key = QueueKey(self.ns.id, "q", WORKFLOW)

        async def active(ns: Namespace, t: float) -> Any:
            return await self.matching.poll(key, t)

        async def standby(ns: Namespace, t: float) -> Any:
            return await self.matching.poll(key, t, accept=is_query)

        return await self.polls.poll(self.ns, timeout, active, standby)


@pytest_asyncio.fixture(loop_scope="session")
async def standby() -> AsyncIterator[Standby]:
    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity("a", 1, 10), 4, "a.db")
    namespaces = NamespaceRegistry(store, clusters)
    record = namespaces.new_record("g")
    record.is_global_namespace = True
    record.failover_version = 2
    record.replication_config.active_cluster_name = "b"
    record.replication_config.clusters.add(cluster_name="b")
    ns = await namespaces.create(record)
    matching = Matching()
    yield Standby(namespaces, matching, StandbyPolls(namespaces, matching), ns)


async def test_a_standby_poll_gets_queries_only_and_nothing_at_its_deadline(standby: Standby) -> None:
    key = QueueKey(standby.ns.id, "q", WORKFLOW)
    standby.matching.add(key, "task")
    standby.matching.add(key, "query")
    assert await standby.poll(5) == "query"
    assert await standby.poll(0.05) is None
    assert standby.matching.backlog_size(key) == 1  # the task waits for this cluster to become active


async def test_a_failover_here_turns_a_waiting_standby_poll_into_an_ordinary_one(standby: Standby) -> None:
    key = QueueKey(standby.ns.id, "q", WORKFLOW)
    poll = asyncio.create_task(standby.poll(30))
    await settle()
    await standby.fail_over("a")
    await settle()
    assert not poll.done()  # it polls on, now for every task
    standby.matching.add(key, "task")
    assert await asyncio.wait_for(poll, 5) == "task"


async def test_a_failover_elsewhere_leaves_standby_polls_waiting(standby: Standby) -> None:
    poll = asyncio.create_task(standby.poll(0.3))
    await settle()
    await standby.fail_over("c")  # another standby: nothing to wake
    await settle()
    assert not poll.done()
    assert await asyncio.wait_for(poll, 5) is None
