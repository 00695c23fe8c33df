"""Cluster metadata (cluster/metadata.py) and the checks of a remote cluster (cluster/remote.py): the
reference's messages, its failover version arithmetic, and an identity that survives restarts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from tempyral.cluster.metadata import (
    ClusterConfigError,
    ClusterIdentity,
    ClusterMetadata,
    validate,
)
from tempyral.cluster.remote import dial_error, remote_cluster_problem
from tempyral.common.errors import StartupError
from tempyral.persistence.sqlite import SqliteStore
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")


def remote(name: str, ifv: int, increment: int = 10, **fields: Any) -> ClusterMetadataRecord:
    record = ClusterMetadataRecord(
        cluster_name=name,
        initial_failover_version=ifv,
        failover_version_increment=increment,
        history_shard_count=4,
        is_global_namespace_enabled=True,
        is_connection_enabled=True,
        cluster_address=f"127.0.0.1:{7000 + ifv}",
    )
    for key, value in fields.items():
        setattr(record, key, value)
    return record


async def metadata(name: str = "a", ifv: int = 1, *remotes: ClusterMetadataRecord) -> ClusterMetadata:
    clusters = ClusterMetadata(MemoryStore())
    await clusters.load(ClusterIdentity(name, ifv, 10), 4, "test.db")
    for record in remotes:
        await clusters.upsert(record)
    return clusters


# ---------------------------------------------------------------------- validate
@pytest.mark.parametrize(
    ("name", "ifv", "increment", "message"),
    [
        ("a", 1, 0, "Version increment <= 0 or > 2147483647"),
        ("a", 1, 2**31, "Version increment <= 0 or > 2147483647"),
        ("", 1, 10, "cluster name must not be empty"),
        ("a", 0, 10, 'cluster "a": InitialFailoverVersion must be > 0, got 0'),
        ("a", 10, 10, 'cluster "a": InitialFailoverVersion (10) must be < FailoverVersionIncrement (10)'),
    ],
)
async def test_validate_refuses_with_the_reference_messages(name: str, ifv: int, increment: int, message: str) -> None:
    with pytest.raises(ClusterConfigError) as info:
        validate(name, ifv, increment)
    assert str(info.value) == message


async def test_validate_accepts_the_largest_initial_version_below_the_increment() -> None:
    validate("a", 9, 10)
    validate("a", 1, 2**31 - 1)


# ---------------------------------------------------------------------- versions
async def test_next_failover_version_is_the_smallest_of_the_target_not_below_the_current() -> None:
    clusters = await metadata("a", 1, remote("b", 2), remote("c", 3))
    assert clusters.next_failover_version("a", 0) == 1
    assert clusters.next_failover_version("b", 1) == 2
    assert clusters.next_failover_version("a", 2) == 11
    assert clusters.next_failover_version("a", 11) == 11  # to the active cluster: no change
    assert clusters.next_failover_version("c", 11) == 13
    assert clusters.next_failover_version("b", 13) == 22
    assert clusters.next_failover_version("b", 22) == 22
    with pytest.raises(KeyError):
        clusters.next_failover_version("nosuch", 1)


async def test_cluster_for_version_maps_a_version_to_its_writer() -> None:
    clusters = await metadata("a", 1, remote("b", 2))
    assert clusters.cluster_for_version(0) == "a"  # a local namespace's events
    assert clusters.cluster_for_version(1) == "a"
    assert clusters.cluster_for_version(21) == "a"
    assert clusters.cluster_for_version(12) == "b"
    assert clusters.cluster_for_version(5) == "unknown-cluster-5"
    assert clusters.cluster_for_version(30) == "unknown-cluster-10"


# ---------------------------------------------------------------------- rows
async def test_rows_are_listed_by_name_current_included_and_remotes_change() -> None:
    clusters = await metadata("b", 2, remote("c", 3), remote("a", 1))
    assert [r.cluster_name for r in clusters.all()] == ["a", "b", "c"]
    assert [r.cluster_name for r in clusters.remotes()] == ["a", "c"]
    assert clusters.connected("a") and not clusters.connected("b")  # the current cluster is no remote
    await clusters.upsert(remote("a", 1, is_connection_enabled=False))
    assert not clusters.connected("a")
    row = clusters.get("a")
    assert row is not None and row.version == 2
    assert await clusters.remove("a")
    assert not await clusters.remove("a")
    assert clusters.get("a") is None


async def test_changes_call_the_listeners() -> None:
    clusters = await metadata()
    calls: list[int] = []
    clusters.listeners.append(lambda: calls.append(1))
    await clusters.upsert(remote("b", 2))
    await clusters.remove("b")
    assert len(calls) == 2


async def test_identity_and_remotes_survive_a_restart_and_the_name_cannot_change(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    store = SqliteStore(db)
    await store.open()
    first = ClusterMetadata(store)
    await first.load(ClusterIdentity("a", 3, 100), 4, db)
    await first.upsert(remote("b", 2, increment=100))
    identity = (first.current.cluster_name, first.current.cluster_id, first.increment)
    await store.close()

    store = SqliteStore(db)
    await store.open()
    try:
        again = ClusterMetadata(store)
        await again.load(ClusterIdentity(), 4, db)  # no flags: the stored identity
        assert (again.current.cluster_name, again.current.cluster_id, again.increment) == identity
        assert again.current.initial_failover_version == 3
        assert [r.cluster_name for r in again.remotes()] == ["b"]
        await again.load(ClusterIdentity("a", 3, 100), 4, db)  # the same flags again: fine
        for wanted, flag in (
            (ClusterIdentity(name="z"), "--cluster-name a"),
            (ClusterIdentity(initial_failover_version=4), "--initial-failover-version 3"),
            (ClusterIdentity(failover_version_increment=10), "--failover-version-increment 100"),
        ):
            with pytest.raises(StartupError) as info:
                await ClusterMetadata(store).load(wanted, 4, db)
            message = str(info.value)
            assert "\n" not in message and message.endswith(f"start with {flag}")
            assert message.startswith(f"database {db} belongs to cluster a ")
    finally:
        await store.close()


async def test_a_new_database_takes_the_defaults_and_an_invalid_identity_is_refused() -> None:
    clusters = ClusterMetadata(MemoryStore())
    await clusters.load(ClusterIdentity(), 1, "x.db")
    assert (clusters.name, clusters.current.initial_failover_version, clusters.increment) == ("active", 1, 10)
    assert clusters.current.is_global_namespace_enabled and clusters.current.cluster_id
    with pytest.raises(StartupError) as info:
        await ClusterMetadata(MemoryStore()).load(ClusterIdentity("a", 10, 10), 1, "x.db")
    assert str(info.value) == (
        'invalid cluster metadata: cluster "a": InitialFailoverVersion (10) must be < FailoverVersionIncrement (10)'
    )


# ---------------------------------------------------------------------- a remote joining
async def test_a_remote_cluster_is_checked_as_the_reference_checks_it() -> None:
    clusters = await metadata("a", 1, remote("b", 2))

    def problem(record: ClusterMetadataRecord, address: str = "127.0.0.1:1", enabled: bool = True) -> str | None:
        return remote_cluster_problem(clusters, record, address, enabled)

    assert problem(remote("c", 3)) is None
    assert problem(remote("b", 2)) is None  # an update of a known remote keeps its own version
    assert problem(remote("a", 5)) == "Cannot update current cluster metadata from rpc calls"
    assert (
        problem(remote("c", 3, increment=100)) == "Cannot add remote cluster due to failover version increment mismatch"
    )
    assert problem(remote("c", 3, history_shard_count=0)) == "Remote cluster HistoryShardCount must be positive"
    # tempyral places workflows on shards itself: any shard counts go together
    assert problem(remote("c", 3, history_shard_count=3)) is None
    assert problem(remote("c", 3, is_global_namespace_enabled=False)) == (
        "Cannot add remote cluster as global namespace is not supported"
    )
    assert problem(remote("c", 1)) == "Cannot add remote cluster due to initial failover version conflict"
    assert problem(remote("c", 2)) == "Cannot add remote cluster due to initial failover version conflict"
    assert problem(remote("", 3)) == "cluster name must not be empty"
    assert problem(remote("c", 0)) == 'cluster "c": InitialFailoverVersion must be > 0, got 0'
    assert problem(remote("c", 3), address="") == 'cluster "c": RPCAddress must not be empty when Enabled=true'
    assert problem(remote("c", 3), address="", enabled=False) is None


class _Failed(grpc.aio.AioRpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details, None)


async def test_a_refused_connection_reads_as_the_reference_words_it() -> None:
    refused = _Failed(
        grpc.StatusCode.UNAVAILABLE,
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote "
        "host: Connection refused",
    )
    assert dial_error("127.0.0.1:1", refused) == (
        'connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"'
    )
    assert dial_error("x:1", _Failed(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")) == "Method not found!"
    assert dial_error("x:1", _Failed(grpc.StatusCode.DEADLINE_EXCEEDED, "")) == "DEADLINE_EXCEEDED"
