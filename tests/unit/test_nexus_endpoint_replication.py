"""Nexus endpoint replication between clusters, without servers: registries of two or three clusters over
in-memory stores, changes carried by `changes_since` / `apply_replicated` (what the pull does), merged
last-writer-wins with tombstones and a deterministic rule for one name created on two clusters."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import grpc
import pytest
from temporalio.api.nexus.v1 import Endpoint, EndpointSpec, EndpointTarget

from tempyral.common.errors import FailedPrecondition
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus import endpoint_merge as merge
from tempyral.nexus.endpoint_replication import EndpointChangesService, EndpointReplicator
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.persistence.schema import MIGRATIONS, CopyRows
from tempyral.persistence.sqlite import SqliteStore
from tempyral.proto import nexus_replication_pb2 as npb
from tempyral.proto.nexus_replication_pb2 import ReplicatedEndpoint
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


def spec(name: str, task_queue: str = "q") -> EndpointSpec:
    return EndpointSpec(
        name=name, target=EndpointTarget(worker=EndpointTarget.Worker(namespace="default", task_queue=task_queue))
    )


async def registry(cluster: str, store: MemoryStore | SqliteStore | None = None) -> EndpointRegistry:
    store = store or MemoryStore()
    namespaces = NamespaceRegistry(store, cluster)
    await namespaces.load()
    await namespaces.ensure("default")
    endpoints = EndpointRegistry(store, namespaces)
    await endpoints.load()
    return endpoints


async def pull(into: EndpointRegistry, source: EndpointRegistry, after: int = 0) -> int:
    changed, _ = source.changes_since(after)
    return await into.apply_replicated(changed, source.cluster)


def live(r: EndpointRegistry) -> dict[str, Endpoint]:
    return {e.id: e for e in r.list(0, b"")[0]}


def state(
    endpoint_id: str, name: str, stamp: int, origin: str, deleted: bool = False, created: int = 1
) -> ReplicatedEndpoint:
    return ReplicatedEndpoint(
        endpoint=Endpoint(id=endpoint_id, version=1, spec=spec(name, f"q-{origin}-{stamp}")),
        deleted=deleted,
        stamp=stamp,
        origin_cluster=origin,
        created_stamp=created,
    )


# ---------------------------------------------------------------------- the merge rule
async def test_a_deletion_beats_any_live_state_then_the_higher_stamp_then_the_origin() -> None:
    assert merge.supersedes(state("e", "n", 1, "a"), None)
    assert merge.supersedes(state("e", "n", 2, "a"), state("e", "n", 1, "b"))
    assert not merge.supersedes(state("e", "n", 1, "b"), state("e", "n", 2, "a"))
    assert merge.supersedes(state("e", "n", 2, "b"), state("e", "n", 2, "a"))  # a tie: the higher origin
    assert not merge.supersedes(state("e", "n", 2, "a"), state("e", "n", 2, "a"))  # the same change
    assert merge.supersedes(state("e", "n", 1, "a", deleted=True), state("e", "n", 9, "b"))
    assert not merge.supersedes(state("e", "n", 9, "b"), state("e", "n", 1, "a", deleted=True))


async def test_the_clock_never_goes_back_and_passes_what_it_saw() -> None:
    clock = merge.HybridClock()
    far = 2**62
    clock.observe(far)
    assert clock.next() == far + 1
    assert clock.next() == far + 2


# ---------------------------------------------------------------------- registries
async def test_an_endpoint_created_updated_and_deleted_on_one_cluster_follows_on_the_other() -> None:
    a, b = await registry("a"), await registry("b")
    created = await a.create(spec("billing"))
    assert await pull(b, a) == 1
    assert live(b) == {created.id: created}  # the same id and state
    assert await pull(b, a) == 0  # asking again changes nothing

    updated = await b.update(created.id, 1, spec("billing", "q2"))
    assert await pull(a, b) == 1
    assert a.get(created.id) == updated
    assert await pull(b, a) == 0  # b's own change, back from a: not newer than what b has

    await a.delete(created.id, 2)
    await pull(b, a)
    assert live(b) == {} and b.find_by_name("billing") is None


async def test_a_deleted_endpoint_never_comes_back_from_an_older_or_concurrent_state() -> None:
    a, b, c = await registry("a"), await registry("b"), await registry("c")
    created = await a.create(spec("billing"))
    await pull(b, a)
    await pull(c, a)
    await a.delete(created.id, 1)
    await b.update(created.id, 1, spec("billing", "later"))  # b has not heard of the deletion: a later stamp
    await pull(c, a)
    await pull(c, b)  # the stale live copy from b after the tombstone from a
    await pull(b, a)
    await pull(a, b)
    for r in (a, b, c):
        assert live(r) == {}, r.cluster


async def test_concurrent_updates_settle_on_the_same_state_whatever_the_order() -> None:
    same = "00000000-0000-4000-8000-0000000000e1"
    one, two = state(same, "n", 5, "a"), state(same, "n", 5, "b")  # equal stamps: the origin decides
    first, second = await registry("x"), await registry("y")
    await first.apply_replicated([one, two], "a")
    await second.apply_replicated([two, one], "b")
    assert first.get(same) == second.get(same) == two.endpoint


async def test_one_name_created_on_two_clusters_keeps_the_first_everywhere(caplog: pytest.LogCaptureFixture) -> None:
    a, b = await registry("a"), await registry("b")
    first = await a.create(spec("orders", "from-a"))
    second = await b.create(spec("orders", "from-b"))
    with caplog.at_level(logging.WARNING):
        await pull(b, a)  # b finds the conflict: its own endpoint is the later one
        await pull(a, b)
        await pull(b, a)
    assert live(a) == live(b) == {first.id: first}
    assert any("was created on two clusters" in r.message and second.id in r.message for r in caplog.records)
    # the loser's name is free for nothing: the keeper still owns it, on both, after more rounds
    await pull(a, b)
    assert a.find_by_name("orders") == b.find_by_name("orders") == first


async def test_a_third_cluster_gets_changes_through_the_one_it_is_connected_to() -> None:
    a, b, c = await registry("a"), await registry("b"), await registry("c")
    created = await a.create(spec("relay"))
    await pull(b, a)
    await pull(c, b)
    assert live(c) == {created.id: created}


async def test_changes_since_answers_only_what_is_newer() -> None:
    a = await registry("a")
    await a.create(spec("one"))
    _, last = a.changes_since(0)
    second = await a.create(spec("two"))
    changed, newest = a.changes_since(last)
    assert [s.endpoint.id for s in changed] == [second.id] and newest > last


async def test_tombstones_and_change_numbers_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "e.db")
    store = SqliteStore(path)
    await store.open()
    a = await registry("a", store)
    gone = await a.create(spec("gone"))
    await a.delete(gone.id, 1)
    kept = await a.create(spec("kept"))
    last = a.last_sequence
    await store.close()
    store = SqliteStore(path)
    await store.open()
    again = await registry("a", store)
    assert live(again) == {kept.id: kept} and again.last_sequence == last
    assert {s.endpoint.id: s.deleted for s in again.changes_since(0)[0]} == {gone.id: True, kept.id: False}
    await store.close()


async def test_endpoints_from_before_migration_6_are_kept_and_replicated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for steps in MIGRATIONS[:5]:
        for step in steps:
            assert not isinstance(step, CopyRows) or step.source != "nexus_endpoints"
            if isinstance(step, str):
                conn.execute(step)
    old = Endpoint(id="00000000-0000-4000-8000-000000000001", version=3, spec=spec("old"))
    conn.execute("INSERT INTO nexus_endpoints VALUES (?, ?, ?, ?)", (old.id, "old", 3, old.SerializeToString()))
    conn.execute("INSERT INTO schema_version VALUES (5)")
    conn.close()
    store = SqliteStore(path)
    await store.open()
    a = await registry("a", store)
    assert a.get(old.id) == old
    b = await registry("b")
    await pull(b, a)
    assert b.get(old.id) == old
    await store.close()


# ---------------------------------------------------------------------- the service and the pull loop
class FakeClusters:
    def __init__(self, name: str, remotes: list[str]) -> None:
        self.name = name
        self._remotes = remotes
        self.listeners: list[object] = []

    def connected(self, name: str) -> bool:
        return name in self._remotes

    def remotes(self) -> list[ClusterMetadataRecord]:
        return [ClusterMetadataRecord(cluster_name=n, is_connection_enabled=True) for n in self._remotes]


async def test_only_connected_clusters_read_the_registry_and_the_pull_applies_what_they_answer() -> None:
    a, b = await registry("a"), await registry("b")
    created = await a.create(spec("pulled"))
    service = EndpointChangesService(FakeClusters("a", ["b"]), a)  # type: ignore[arg-type]
    with pytest.raises(FailedPrecondition) as refused:
        await service.get_changes(npb.GetNexusEndpointChangesRequest(cluster_name="stranger"), None)  # type: ignore[arg-type]
    assert refused.value.code == grpc.StatusCode.FAILED_PRECONDITION

    async def fetch(remote: str, request: npb.GetNexusEndpointChangesRequest) -> npb.GetNexusEndpointChangesResponse:
        assert remote == "a"
        return await service.get_changes(request, None)  # type: ignore[arg-type]

    replicator = EndpointReplicator(FakeClusters("b", ["a"]), b, fetch=fetch)  # type: ignore[arg-type]
    assert await replicator.pull("a") == 1
    assert live(b) == {created.id: created}
    assert await replicator.pull("a") == 0  # asks after the last answer: nothing new
    assert await replicator.pull("stranger") == 0  # not connected: not asked
