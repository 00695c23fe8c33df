"""Namespace records replicated between clusters (namespace/registry.py): NamespaceRegistry.apply_replicated takes
a record another cluster sent last-writer-wins in two independent dimensions (config_version for the
configuration, failover_version for the active cluster), creates an unknown namespace with the sender's id and
refuses one whose name is taken here by another id; changed_since answers the other clusters' pulls;
check_active refuses writes where a global namespace is standby. Cluster b receives what a sends."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import ReplicationState
from temporalio.api.replication.v1 import message_pb2 as replication_pb

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.common.errors import NamespaceNotActive
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore
from tests.support.xdc_pair import global_record

pytestmark = pytest.mark.asyncio(loop_scope="function")
Changes = list[tuple[NamespaceRecord | None, NamespaceRecord]]


async def registry(name: str, store: MemoryStore | None = None) -> NamespaceRegistry:
    store = store or MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity(name, {"a": 1, "b": 2}[name], 10), 1, f"{name}.db")
    remote = "a" if name == "b" else "b"
    await clusters.upsert(
        ClusterMetadataRecord(
            cluster_name=remote, initial_failover_version=3 - clusters.current.initial_failover_version
        )
    )
    namespaces = NamespaceRegistry(store, clusters)
    await namespaces.load()
    return namespaces


def listen(namespaces: NamespaceRegistry) -> Changes:
    changes: Changes = []

    def listener(before: Namespace | None, after: Namespace) -> None:
        changes.append((before.record if before is not None else None, after.record))

    namespaces.listeners.append(listener)
    return changes


async def sent_by_a() -> NamespaceRecord:
    """The global namespace g as cluster a registered it (active in a, failover version 1)."""
    a = await registry("a")
    ns = await a.create(global_record(a, "a"))
    return ns.record


def copy(record: NamespaceRecord) -> NamespaceRecord:
    out = NamespaceRecord()
    out.CopyFrom(record)
    return out


def failed_over(record: NamespaceRecord, to: str, version: int) -> NamespaceRecord:
    out = copy(record)
    out.replication_config.active_cluster_name = to
    out.failover_version = version
    out.failover_history.add(failover_version=version)
    return out


def reconfigured(record: NamespaceRecord, config_version: int, description: str) -> NamespaceRecord:
    out = copy(record)
    out.config_version = config_version
    out.info.description = description
    out.config.workflow_execution_retention_ttl.CopyFrom(Duration(seconds=7 * 86400))
    out.search_attributes["CustomKeyword"] = 2
    out.replication_config.clusters.add(cluster_name="c")
    return out


# ---------------------------------------------------------------------- a namespace new here
async def test_a_namespace_new_here_is_created_with_the_senders_id() -> None:
    store = MemoryStore()
    b = await registry("b", store)
    await b.ensure("default")
    changes = listen(b)
    incoming = await sent_by_a()
    incoming.notification_version = 99  # a's counter, not b's
    assert await b.apply_replicated(incoming) is True
    ns = b.get("g")
    assert ns.id == incoming.info.id and ns.is_global and ns.active_cluster == "a" and ns.failover_version == 1
    assert ns.clusters == ["a", "b"] and not b.is_active(ns)
    assert ns.record.notification_version == b.notification_version == 2  # b's own numbering
    assert [(before, after.info.id) for before, after in changes] == [(None, incoming.info.id)]
    # stored: a restart has it
    again = await registry("b", store)
    assert again.get("g").record == ns.record
    assert await b.apply_replicated(incoming) is False  # the same record again changes nothing
    assert len(changes) == 1


async def test_a_record_sent_is_taken_as_global_even_if_it_says_otherwise() -> None:
    b = await registry("b")
    incoming = await sent_by_a()
    incoming.is_global_namespace = False
    assert await b.apply_replicated(incoming) is True
    assert b.get("g").is_global


async def test_a_name_taken_here_by_another_id_is_refused() -> None:
    b = await registry("b")
    mine = await b.ensure("g")
    changes = listen(b)
    incoming = await sent_by_a()
    assert incoming.info.id != mine.id
    assert await b.apply_replicated(incoming) is False
    assert b.get("g").record == mine.record and b.find_by_id(incoming.info.id) is None
    assert changes == []


# ---------------------------------------------------------------------- last writer wins, twice
async def test_the_configuration_is_taken_only_from_a_higher_config_version() -> None:
    b = await registry("b")
    incoming = await sent_by_a()
    await b.apply_replicated(reconfigured(incoming, 5, "five"))
    notified = b.notification_version
    for version in (4, 5):  # older, and the same version from another writer
        assert await b.apply_replicated(reconfigured(incoming, version, f"other {version}")) is False
    assert b.get("g").record.info.description == "five" and b.notification_version == notified
    newer = reconfigured(incoming, 6, "six")
    newer.info.data["owner"] = "team"
    assert await b.apply_replicated(newer) is True
    r = b.get("g").record
    assert (r.config_version, r.info.description, r.info.data["owner"]) == (6, "six", "team")
    assert r.config.workflow_execution_retention_ttl.seconds == 7 * 86400
    assert dict(r.search_attributes) == {"CustomKeyword": 2}
    assert [c.cluster_name for c in r.replication_config.clusters] == ["a", "b", "c"]
    # the failover dimension is left as it was: same failover version, so same active cluster
    assert (r.failover_version, r.replication_config.active_cluster_name) == (1, "a")
    assert r.failover_notification_version == 0


async def test_the_active_cluster_is_taken_only_from_a_higher_failover_version() -> None:
    b = await registry("b")
    incoming = await sent_by_a()
    await b.apply_replicated(reconfigured(incoming, 5, "five"))
    changes = listen(b)
    # a failover to b decided where the configuration is older: the failover is taken, the configuration kept
    to_b = failed_over(reconfigured(incoming, 3, "three"), "b", 2)
    to_b.replication_config.state = ReplicationState.REPLICATION_STATE_HANDOVER
    assert await b.apply_replicated(to_b) is True
    r = b.get("g").record
    assert (r.failover_version, r.replication_config.active_cluster_name) == (2, "b")
    assert r.replication_config.state == ReplicationState.REPLICATION_STATE_HANDOVER
    assert [h.failover_version for h in r.failover_history] == [2]
    assert (r.config_version, r.info.description) == (5, "five")
    assert r.failover_notification_version == r.notification_version == b.notification_version
    assert b.is_active(b.get("g"))
    ((before, after),) = changes
    assert before is not None and before.replication_config.active_cluster_name == "a"
    assert after.replication_config.active_cluster_name == "b"
    # a concurrent failover to a under a lower version loses, even with a newer configuration
    stale = failed_over(reconfigured(incoming, 7, "seven"), "a", 1)
    assert await b.apply_replicated(stale) is True  # the configuration is newer
    r = b.get("g").record
    assert (r.failover_version, r.replication_config.active_cluster_name, r.info.description) == (2, "b", "seven")
    assert r.failover_notification_version < r.notification_version  # not a failover
    assert await b.apply_replicated(failed_over(incoming, "a", 11)) is True
    r = b.get("g").record
    assert (r.failover_version, r.replication_config.active_cluster_name, r.config_version) == (11, "a", 7)


async def test_a_rename_in_a_newer_configuration_moves_the_name() -> None:
    b = await registry("b")
    incoming = await sent_by_a()
    await b.apply_replicated(incoming)
    renamed = reconfigured(incoming, 1, "renamed")
    renamed.info.name = "g2"
    assert await b.apply_replicated(renamed) is True
    assert b.find("g") is None and b.get("g2").id == incoming.info.id


# ---------------------------------------------------------------------- what other clusters pull
async def test_changed_since_gives_the_records_changed_after_a_version_oldest_change_first() -> None:
    a = await registry("a")
    await a.ensure("default")
    g = (await a.create(global_record(a, "a"))).record
    h = await a.ensure("h")
    assert [r.info.name for r in a.changed_since(0)] == ["default", "g", "h"]
    seen = a.notification_version
    assert a.changed_since(seen) == []
    await a.save(failed_over(g, "b", 2), failover=True)
    local = copy(h.record)
    local.info.description = "changed"
    await a.save(local)
    changed = a.changed_since(seen)
    assert [(r.info.name, r.notification_version) for r in changed] == [("g", seen + 1), ("h", seen + 2)]
    assert changed[0].failover_notification_version == seen + 1
    assert a.changed_since(seen + 1) == changed[1:]
    # what b pulls from a's answer, b takes
    b = await registry("b")
    for record in a.changed_since(0):
        if record.is_global_namespace:
            await b.apply_replicated(record)
    assert b.get("g").active_cluster == "b" and b.find("h") is None


# ---------------------------------------------------------------------- the active check
async def test_check_active_refuses_only_a_global_namespace_active_elsewhere() -> None:
    b = await registry("b")
    local = await b.ensure("local")
    b.check_active(local)  # a local namespace is always active
    assert b.is_active(local)
    await b.apply_replicated(await sent_by_a())
    g = b.get("g")
    with pytest.raises(NamespaceNotActive) as info:
        b.check_active(g)
    assert info.value.message == "Namespace: g is active in cluster: a, while current cluster b is a standby cluster."
    details: Any = info.value.details
    assert (details.current_cluster, details.active_cluster) == ("b", "a")
    await b.apply_replicated(failed_over(g.record, "b", 2))
    b.check_active(b.get("g"))
    # a global namespace whose record names no other cluster is checked all the same
    only_a = copy(b.get("g").record)
    only_a.replication_config.active_cluster_name = "a"
    del only_a.replication_config.clusters[:]
    only_a.replication_config.clusters.append(replication_pb.ClusterReplicationConfig(cluster_name="a"))
    assert not b.is_active(Namespace(only_a))
