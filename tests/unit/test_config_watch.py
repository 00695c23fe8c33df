"""Configuration changes seen by every node sharing one database (cluster/config_watch.py,
cluster/shared_config.py): two "nodes" (each its own cluster metadata, namespace and endpoint registries and
watcher) over one in-memory store. The watchers are driven by calling `poll` directly, so every wait is exact."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType, ReplicationState
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.replication.v1 import ClusterReplicationConfig, NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest, UpdateNamespaceRequest

from tempyral.cluster.config_watch import ConfigWatch
from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.cluster.shared_config import Settling, SharedConfig
from tempyral.common.errors import AlreadyExists, NotFound
from tempyral.frontend.namespace_handler import NamespaceHandler
from tempyral.frontend.operator_service import OperatorService
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.persistence.store import EndpointRow, Store
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
DAY = Duration(seconds=86400)
CTX: object = None  # the handlers do not read their call context


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class SharedStore(MemoryStore):
    """The one database: counts the loads of the configuration tables, and can hold a Nexus endpoint write
    (claimed, not yet stored) until released."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: Counter[str] = Counter()
        self.hold_next_endpoint_write = False
        self.held = asyncio.Event()
        self.release = asyncio.Event()

    async def load_namespaces(self) -> list[bytes]:
        self.loads["namespaces"] += 1
        return await super().load_namespaces()

    async def load_nexus_endpoints(self) -> list[EndpointRow]:
        self.loads["endpoints"] += 1
        return await super().load_nexus_endpoints()

    async def load_clusters(self) -> list[bytes]:
        self.loads["clusters"] += 1
        return await super().load_clusters()

    async def save_nexus_endpoints(self, rows: list[EndpointRow]) -> None:
        if self.hold_next_endpoint_write:
            self.hold_next_endpoint_write = False
            self.held.set()
            await asyncio.wait_for(self.release.wait(), 5)
        await super().save_nexus_endpoints(rows)


@dataclass
class Node:
    clusters: ClusterMetadata
    namespaces: NamespaceRegistry
    endpoints: EndpointRegistry
    watch: ConfigWatch
    handler: NamespaceHandler
    operator: OperatorService
    heard: list[tuple[Namespace | None, Namespace]] = field(default_factory=list)  # namespace listeners
    cluster_changes: int = 0  # cluster metadata listeners

    async def register(self, name: str, *clusters: str) -> None:
        await self.handler.register(
            RegisterNamespaceRequest(
                namespace=name,
                is_global_namespace=bool(clusters),
                workflow_execution_retention_period=DAY,
                clusters=[ClusterReplicationConfig(cluster_name=c) for c in clusters],
            )
        )

    async def update(self, name: str, **replication: object) -> None:
        config = NamespaceReplicationConfig(**replication)  # type: ignore[arg-type]
        await self.handler.update(UpdateNamespaceRequest(namespace=name, replication_config=config))

    def heard_names(self) -> list[tuple[str | None, str]]:
        return [(before.name if before else None, after.name) for before, after in self.heard]


async def start_node(store: Store, clock: FakeClock | None = None) -> Node:
    clusters = ClusterMetadata(store)
    namespaces = NamespaceRegistry(store, clusters)
    endpoints = EndpointRegistry(store, namespaces)
    # Built before the registries load, as the server does.
    watch = ConfigWatch(store, namespaces, endpoints, clusters, clock=clock or FakeClock())
    await clusters.load(ClusterIdentity("a", 1, 10), 4, "shared")
    await namespaces.load()
    await namespaces.ensure("default")
    await endpoints.load()
    node = Node(
        clusters,
        namespaces,
        endpoints,
        watch,
        NamespaceHandler(namespaces, clusters),
        OperatorService(namespaces, endpoints, clusters),
    )
    namespaces.listeners.append(lambda before, after: node.heard.append((before, after)))

    def cluster_changed() -> None:
        node.cluster_changes += 1

    clusters.listeners.append(cluster_changed)
    await watch.poll()  # catch up with whatever the other node did while this one started
    return node


async def two_nodes(store: SharedStore | None = None, clock: FakeClock | None = None) -> tuple[Node, Node]:
    store = store or SharedStore()
    a = await start_node(store, clock)
    b = await start_node(store, clock)
    await a.watch.poll()
    a.heard.clear()
    b.heard.clear()
    return a, b


def remote(name: str, ifv: int) -> ClusterMetadataRecord:
    return ClusterMetadataRecord(
        cluster_name=name,
        initial_failover_version=ifv,
        failover_version_increment=10,
        history_shard_count=4,
        is_global_namespace_enabled=True,
        is_connection_enabled=True,
        cluster_address=f"127.0.0.1:{7000 + ifv}",
    )


def spec(name: str, task_queue: str = "q") -> EndpointSpec:
    return EndpointSpec(
        name=name, target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))
    )


# ---------------------------------------------------------------------- namespaces
async def test_a_namespace_registered_on_one_node_is_seen_on_the_other_and_heard_once() -> None:
    a, b = await two_nodes()
    await a.register("orders")
    assert b.namespaces.find("orders") is None  # not before B's watcher looked
    assert await b.watch.poll()
    seen = b.namespaces.get("orders")
    assert seen.record == a.namespaces.get("orders").record
    assert b.namespaces.get_by_id(seen.id).name == "orders"
    assert b.heard_names() == [(None, "orders")]
    assert not await b.watch.poll()  # heard once: nothing changed since
    assert b.heard_names() == [(None, "orders")]


async def test_an_update_and_a_new_search_attribute_reach_the_other_node() -> None:
    a, b = await two_nodes()
    await a.register("orders")
    await b.watch.poll()
    b.heard.clear()
    await a.operator.add_search_attributes(
        AddSearchAttributesRequest(
            namespace="orders", search_attributes={"CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
        ),
        CTX,  # type: ignore[arg-type]
    )
    await b.watch.poll()
    after = b.namespaces.get("orders")
    assert dict(after.record.search_attributes) == {"CustomerId": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
    [(before, heard_after)] = b.heard
    assert before is not None and dict(before.record.search_attributes) == {}
    assert heard_after is after


async def test_a_failover_on_one_node_makes_every_node_see_the_namespace_standby_then_active() -> None:
    a, b = await two_nodes()
    await a.clusters.upsert(remote("b", 2))
    await b.watch.poll()
    assert b.clusters.connected("b") and b.cluster_changes == 1
    await a.register("g", "a", "b")
    await b.watch.poll()
    assert b.namespaces.is_active(b.namespaces.get("g"))
    b.heard.clear()
    changed = asyncio.create_task(b.namespaces.wait_changed(5))

    await a.update("g", active_cluster_name="b")  # failed over away: standby on every node of this cluster
    await b.watch.poll()
    assert await changed  # waiters of B wake, as for a change made on B
    [(before, after)] = b.heard
    assert before is not None and b.namespaces.is_active(before) and not b.namespaces.is_active(after)
    assert after.record.failover_version == 2 and after.record == a.namespaces.get("g").record

    b.heard.clear()
    await a.update("g", active_cluster_name="a")  # and back: B's listeners see it active (parked tasks go)
    await b.watch.poll()
    [(before, after)] = b.heard
    assert before is not None and not b.namespaces.is_active(before) and b.namespaces.is_active(after)


async def test_a_handover_set_on_one_node_holds_and_releases_calls_on_the_other() -> None:
    a, b = await two_nodes()
    await a.clusters.upsert(remote("b", 2))
    await a.register("g", "a", "b")
    await a.update("g", state=ReplicationState.REPLICATION_STATE_HANDOVER)
    await b.watch.poll()
    assert b.namespaces.in_handover(b.namespaces.get("g"))
    ended = asyncio.create_task(b.namespaces.wait_handover_ends(b.namespaces.get("g").id, 5))
    await a.update("g", state=ReplicationState.REPLICATION_STATE_NORMAL)
    await b.watch.poll()
    assert await ended


async def test_an_update_on_a_node_is_computed_from_what_another_node_stored() -> None:
    """Entering `changing` catches up first: B's change does not undo A's, though B's watcher has not run."""
    a, b = await two_nodes()
    await a.register("orders")
    for node, attribute in ((a, "First"), (b, "Second")):
        await node.operator.add_search_attributes(
            AddSearchAttributesRequest(
                namespace="orders", search_attributes={attribute: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD}
            ),
            CTX,  # type: ignore[arg-type]
        )
    await a.watch.poll()
    for node in (a, b):
        assert set(node.namespaces.get("orders").record.search_attributes) == {"First", "Second"}


async def test_two_nodes_starting_together_share_one_default_namespace() -> None:
    store = SharedStore()
    a, b = await asyncio.gather(start_node(store), start_node(store))
    await a.watch.poll()
    assert a.namespaces.get("default").id == b.namespaces.get("default").id
    assert len(await store.load_namespaces()) == 1


# ---------------------------------------------------------------------- Nexus endpoints
async def test_an_endpoint_created_updated_and_deleted_on_one_node_is_seen_on_the_other() -> None:
    a, b = await two_nodes()
    created = await a.endpoints.create(spec("billing"))
    await b.watch.poll()
    assert b.endpoints.get(created.id) == created
    assert b.endpoints.find_by_name("billing") == created

    updated = await a.endpoints.update(created.id, created.version, spec("invoicing", "q2"))
    await b.watch.poll()
    assert b.endpoints.get(created.id) == updated and updated.version == 2
    assert b.endpoints.find_by_name("billing") is None
    assert b.endpoints.find_by_name("invoicing") == updated

    await a.endpoints.delete(created.id, updated.version)
    await b.watch.poll()
    with pytest.raises(NotFound):
        b.endpoints.get(created.id)
    assert b.endpoints.list(0, b"") == ([], b"")
    # What B answers other clusters: the tombstone, under the number A gave it.
    assert b.endpoints.last_sequence == a.endpoints.last_sequence == 3
    [tombstone], _ = b.endpoints.changes_since(2)
    assert tombstone.deleted and tombstone.endpoint.id == created.id


async def test_an_endpoint_name_another_node_took_is_refused() -> None:
    a, b = await two_nodes()
    await a.endpoints.create(spec("billing"))
    with pytest.raises(AlreadyExists, match="already registered"):
        await b.endpoints.create(spec("billing"))  # B's watcher has not run: B catches up before the check


async def test_an_endpoint_another_node_just_created_is_found_by_name_before_the_watcher_runs() -> None:
    a, b = await two_nodes()
    created = await a.endpoints.create(spec("billing"))
    assert b.endpoints.find_by_name("billing") is None  # B's watcher has not run
    assert await b.endpoints.find_by_name_fresh("billing") == created  # a miss catches up first
    assert await b.endpoints.find_by_name_fresh("nobody") is None


# ---------------------------------------------------------------------- cluster metadata
async def test_a_remote_cluster_upserted_and_removed_on_one_node_is_seen_on_the_other() -> None:
    a, b = await two_nodes()
    await a.clusters.upsert(remote("b", 2))
    await b.watch.poll()
    assert b.clusters.get("b") == a.clusters.get("b") and b.cluster_changes == 1
    changed = remote("b", 2)
    changed.is_connection_enabled = False
    await a.clusters.upsert(changed)
    await b.watch.poll()
    assert not b.clusters.connected("b") and b.cluster_changes == 2
    assert await a.clusters.remove("b")
    await b.watch.poll()
    assert b.clusters.get("b") is None and b.cluster_changes == 3
    assert not await b.watch.poll() and b.cluster_changes == 3
    # The current cluster's row is each node's own (its addresses): never taken from another node.
    await a.clusters.set_addresses("127.0.0.1:1", "127.0.0.1:2")
    await a.clusters.upsert(remote("c", 3))
    await b.watch.poll()
    assert b.clusters.current.cluster_address == "" and b.clusters.get("c") is not None


# ---------------------------------------------------------------------- both nodes at once
async def test_concurrent_changes_on_both_nodes_are_all_seen_by_both_under_distinct_numbers() -> None:
    a, b = await two_nodes()
    await a.clusters.upsert(remote("b", 2))
    await b.watch.poll()
    await asyncio.gather(
        *(node.register(f"{tag}-{i}") for node, tag in ((a, "a"), (b, "b")) for i in range(5)),
        *(node.endpoints.create(spec(f"{tag}-e{i}")) for node, tag in ((a, "a"), (b, "b")) for i in range(5)),
        b.clusters.upsert(remote("c", 3)),
    )
    await asyncio.gather(a.watch.poll(), b.watch.poll())
    names = {"default", *(f"{tag}-{i}" for tag in "ab" for i in range(5))}
    endpoint_names = {f"{tag}-e{i}" for tag in "ab" for i in range(5)}
    for node in (a, b):
        assert {ns.name for ns in node.namespaces.all()} == names
        assert {e.spec.name for e in node.endpoints.list(0, b"")[0]} == endpoint_names
        assert {r.cluster_name for r in node.clusters.remotes()} == {"b", "c"}
        # its own five namespaces and the other node's five, each heard once
        assert Counter(after.name for _, after in node.heard) == Counter(names - {"default"})
    versions = [ns.record.notification_version for ns in a.namespaces.all()]
    assert len(set(versions)) == len(versions)  # never one number for two changes
    changes, _ = a.endpoints.changes_since(0)
    assert len(changes) == 10
    assert sorted(a.endpoints._seqs.values()) == sorted(b.endpoints._seqs.values()) == list(range(1, 11))


async def test_nothing_is_reloaded_while_nothing_changes() -> None:
    store = SharedStore()
    a, b = await two_nodes(store)
    await a.register("orders")
    await asyncio.gather(a.watch.poll(), b.watch.poll())  # A reloads after its own change too: cheap, and safe
    store.loads.clear()
    for _ in range(3):
        assert not await a.watch.poll()
        assert not await b.watch.poll()
    assert store.loads == Counter()
    reloads = b.watch.reloads
    await a.endpoints.create(spec("billing"))
    assert await b.watch.poll() and b.watch.reloads == reloads + 1
    assert store.loads == Counter({"namespaces": 1, "endpoints": 1, "clusters": 1})  # B's poll, once each


async def test_the_watcher_polls_on_its_own_until_stopped() -> None:
    a, b = await two_nodes()
    b.watch.interval_s = 0.01
    b.watch.start()
    try:
        await a.register("orders")
        async with asyncio.timeout(5):
            while b.namespaces.find("orders") is None:
                await b.namespaces.wait_changed(1)
    finally:
        await b.watch.stop()
    assert b.heard_names() == [(None, "orders")]


# ---------------------------------------------------------------------- numbers other clusters pull by
async def test_claims_give_each_number_once() -> None:
    store = MemoryStore()
    one, two = SharedConfig(store), SharedConfig(store)
    numbers = await asyncio.gather(*(node.claim("n", 0) for node in (one, two) for _ in range(20)))
    assert sorted(numbers) == list(range(1, 41))
    assert await one.claim("n", 5) == 41  # a node behind walks past what others took
    assert await one.claim("other", 0) == 1  # counters are separate


async def test_a_write_that_commits_long_after_its_claim_is_written_again_under_a_new_number() -> None:
    clock = FakeClock()
    shared = SharedConfig(MemoryStore(), clock, claim_bound_s=2.0)
    written: list[list[int]] = []

    async def slow_first(numbers: list[int]) -> None:
        written.append(numbers)
        if len(written) == 1:
            clock.now += 3.0

    assert await shared.numbered("n", 0, 2, slow_first) == [3, 4]
    assert written == [[1, 2], [3, 4]]


async def test_the_cursor_vouches_only_for_numbers_held_long_enough() -> None:
    clock = FakeClock()
    settling = Settling(5.0, clock)
    settling.saw(3)
    assert settling.cursor() == 0
    clock.now += 2
    settling.saw(5)
    clock.now += 3
    assert settling.cursor() == 3
    clock.now += 2
    assert settling.cursor() == 5
    settling.saw(4)  # below what it vouched for already: nothing to hold back
    assert settling.cursor() == 5


async def test_other_clusters_are_not_told_past_a_change_still_committing_on_another_node() -> None:
    clock = FakeClock()
    store = SharedStore()
    a, b = await two_nodes(store, clock)
    clock.now += 10  # what the nodes loaded at start is settled
    store.hold_next_endpoint_write = True
    slow = asyncio.create_task(a.endpoints.create(spec("slow")))
    await asyncio.wait_for(store.held.wait(), 5)  # A has claimed change number 1, not stored it yet
    fast = await b.endpoints.create(spec("fast"))  # number 2, stored
    changes, last = b.endpoints.changes_since(0)
    assert [c.endpoint.id for c in changes] == [fast.id] and last == 0  # sent, but not vouched for
    clock.now += 3  # A's write ends after its bound: it is written again, under number 3
    store.release.set()
    await slow
    await b.watch.poll()
    changes, last = b.endpoints.changes_since(0)
    assert [c.endpoint.spec.name for c in changes] == ["fast", "slow"] and last == 0
    clock.now += 5
    assert b.endpoints.changes_since(0)[1] == 3
    assert b.endpoints.changes_since(3) == ([], 3)


async def test_namespace_versions_handed_to_other_clusters_wait_until_settled() -> None:
    clock = FakeClock()
    a, b = await two_nodes(clock=clock)
    clock.now += 10
    settled = b.namespaces.notification_version
    await a.register("orders")
    await b.watch.poll()
    assert b.namespaces.notification_version == settled
    assert [r.info.name for r in b.namespaces.changed_since(settled)] == ["orders"]
    clock.now += 5
    assert b.namespaces.notification_version == b.namespaces.get("orders").record.notification_version > settled
