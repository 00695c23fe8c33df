"""Configuration changes seen by every node (cluster/config_watch.py) with the nodes' real database: two
PostgresStore objects on one fresh PostgreSQL database, each the store of one "node" (tests/unit/test_config_watch.py
has the same nodes over one in-memory store). Claims of change numbers rely on PostgreSQL's insert-if-absent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tempyral.persistence.postgres import PostgresStore
from tests.unit.test_config_watch import remote, spec, start_node

pytestmark = pytest.mark.asyncio(loop_scope="function")


@pytest_asyncio.fixture(loop_scope="function")
async def stores(postgres_url: str) -> AsyncIterator[tuple[PostgresStore, PostgresStore]]:
    a, b = PostgresStore(postgres_url), PostgresStore(postgres_url)
    await asyncio.gather(a.open(), b.open())
    yield a, b
    await asyncio.gather(a.close(), b.close())


async def test_changes_on_either_node_are_seen_by_both_under_distinct_numbers(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    # Started together on a new database: both try to create "default", one does.
    a, b = await asyncio.gather(start_node(stores[0]), start_node(stores[1]))
    await asyncio.gather(a.watch.poll(), b.watch.poll())
    assert a.namespaces.get("default").id == b.namespaces.get("default").id
    await a.clusters.upsert(remote("b", 2))
    await asyncio.gather(
        *(node.register(f"{tag}-{i}") for node, tag in ((a, "a"), (b, "b")) for i in range(8)),
        *(node.endpoints.create(spec(f"{tag}-e{i}")) for node, tag in ((a, "a"), (b, "b")) for i in range(8)),
    )
    await asyncio.gather(a.watch.poll(), b.watch.poll())
    for node in (a, b):
        assert {ns.name for ns in node.namespaces.all()} == {"default", *(f"{t}-{i}" for t in "ab" for i in range(8))}
        assert {e.spec.name for e in node.endpoints.list(0, b"")[0]} == {f"{t}-e{i}" for t in "ab" for i in range(8)}
        assert node.clusters.connected("b")
    versions = [ns.record.notification_version for ns in b.namespaces.all()]
    assert len(set(versions)) == len(versions)
    assert sorted(a.endpoints._seqs.values()) == sorted(b.endpoints._seqs.values()) == list(range(1, 17))


async def test_a_failover_on_one_node_reaches_the_other_nodes_listeners(
    stores: tuple[PostgresStore, PostgresStore],
) -> None:
    a = await start_node(stores[0])
    b = await start_node(stores[1])
    await a.clusters.upsert(remote("b", 2))
    await a.register("g", "a", "b")
    await b.watch.poll()
    b.heard.clear()
    await a.update("g", active_cluster_name="b")
    assert await b.watch.poll()
    [(before, after)] = b.heard
    assert before is not None and b.namespaces.is_active(before) and not b.namespaces.is_active(after)
    assert not await b.watch.poll()
