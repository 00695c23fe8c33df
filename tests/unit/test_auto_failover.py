"""Automatic failover's decisions (cluster/auto_failover.py): its settings in the namespace data, how long a standby
waits before taking over (the lowest reachable standby first), and that it takes over only after the whole window."""

from __future__ import annotations

import pytest

from tempyral.cluster.auto_failover import (
    PREFERRED_KEY,
    WINDOW_KEY,
    AutoFailover,
    Probes,
    Settings,
    format_duration,
    parse_duration,
    settings_of,
    takeover_wait,
)
from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.cluster.peers import Peers
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore
from tests.support.xdc_pair import global_record

pytestmark = pytest.mark.asyncio(loop_scope="function")
VERSIONS = {"a": 1, "b": 2, "c": 3}


async def cluster(name: str, window: str = "3s", preferred: str = "") -> tuple[NamespaceRegistry, Namespace]:
    """Cluster `name` of three, with the global namespace active in a and opted in."""
    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity(name, VERSIONS[name], 10), 1, f"{name}.db")
    for other, version in VERSIONS.items():
        if other != name:
            await clusters.upsert(
                ClusterMetadataRecord(
                    cluster_name=other, initial_failover_version=version, cluster_address=f"{other}:1"
                )
            )
    namespaces = NamespaceRegistry(store, clusters)
    record = global_record(namespaces, "a", ("a", "b", "c"))
    record.info.data[WINDOW_KEY] = window
    record.info.data[PREFERRED_KEY] = preferred
    return namespaces, await namespaces.create(record)


async def test_settings_are_read_from_the_namespace_data() -> None:
    assert parse_duration("3s") == 3.0 and parse_duration("500ms") == 0.5 and parse_duration("1m") == 60.0
    assert parse_duration("off") is None and parse_duration("") is None and parse_duration("3") is None
    assert format_duration(3.0) == "3s" and format_duration(0.5) == "500ms"
    _, ns = await cluster("b", "10s", "a")
    assert settings_of(ns) == Settings(10.0, "a")
    _, off = await cluster("b", "off")
    assert settings_of(off) is None


async def test_the_reachable_standby_with_the_lowest_initial_version_goes_first() -> None:
    namespaces, ns = await cluster("c")
    s = settings_of(ns)
    assert s is not None
    probes = Probes()
    probes.record("b", True, 0.0)
    assert takeover_wait(s, "c", ns, namespaces.clusters, probes) == 6.0  # b is up and ahead: one more window
    probes.record("b", False, 1.0)
    assert takeover_wait(s, "c", ns, namespaces.clusters, probes) == 3.0  # b is down too: c goes after one
    namespaces_b, ns_b = await cluster("b")
    assert takeover_wait(s, "b", ns_b, namespaces_b.clusters, probes) == 3.0


async def test_a_standby_takes_over_only_when_the_active_was_unreachable_the_whole_window() -> None:
    namespaces, ns = await cluster("b")
    calls: list[tuple[str, str]] = []

    async def fail_over(namespace: str, to: str) -> None:
        calls.append((namespace, to))

    auto = AutoFailover(namespaces.clusters, namespaces, Peers(namespaces.clusters), fail_over, lambda: "b:1")
    s = settings_of(ns)
    assert s is not None
    auto.probes.record("a", True, 0.0)
    await auto._maybe_take_over(ns, s, 5.0)
    auto.probes.record("a", False, 10.0)
    await auto._maybe_take_over(ns, s, 12.9)
    auto.probes.record("a", True, 13.0)  # one answer starts the count again
    auto.probes.record("a", False, 14.0)
    await auto._maybe_take_over(ns, s, 16.5)
    assert calls == []
    await auto._maybe_take_over(ns, s, 17.0)
    assert calls == [(ns.name, "b")]
    await auto.stop()
