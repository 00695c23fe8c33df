"""Global namespaces on one cluster (frontend/namespace_handler.py, the cluster and search attribute RPCs of
frontend/operator_service.py): the reference's validation messages, failover versions, failover history and
config versions, over an in-memory store. Cluster a (initial failover version 1) knows b (2) and c (3),
increment 10; c's connection is disabled."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType, NamespaceState, ReplicationState
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListClustersRequest,
    RemoveRemoteClusterRequest,
    RemoveSearchAttributesRequest,
)
from temporalio.api.replication.v1 import ClusterReplicationConfig, NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
    UpdateNamespaceRequest,
)

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.common.errors import (
    FailedPrecondition,
    InvalidArgument,
    NamespaceAlreadyExists,
    NotFound,
    ServiceError,
)
from tempyral.frontend.namespace_handler import (
    FAILOVER_AND_UPDATE,
    MAX_FAILOVER_HISTORY,
    NamespaceHandler,
    failover_history_after,
    go_enum,
    plan_update,
)
from tempyral.frontend.operator_service import OperatorService
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.memory_store import MemoryStore

pytestmark = pytest.mark.asyncio(loop_scope="function")
DAY = Duration(seconds=86400)
CTX: Any = None  # the handlers do not read their call context


@dataclass
class Cluster:
    clusters: ClusterMetadata
    namespaces: NamespaceRegistry
    handler: NamespaceHandler
    operator: OperatorService

    async def register(self, name: str, *clusters: str, active: str = "", is_global: bool = True) -> None:
        await self.handler.register(
            RegisterNamespaceRequest(
                namespace=name,
                is_global_namespace=is_global,
                workflow_execution_retention_period=DAY,
                active_cluster_name=active,
                clusters=[ClusterReplicationConfig(cluster_name=c) for c in clusters],
            )
        )

    async def failover(self, name: str, to: str) -> None:
        await self.handler.update(
            UpdateNamespaceRequest(
                namespace=name, replication_config=NamespaceReplicationConfig(active_cluster_name=to)
            )
        )

    def versions(self, name: str) -> tuple[str, int, int, list[int]]:
        """(active cluster, failover version, config version, the failover history's versions)"""
        r = self.namespaces.get(name).record
        history = [h.failover_version for h in r.failover_history]
        return r.replication_config.active_cluster_name, r.failover_version, r.config_version, history


@pytest_asyncio.fixture(loop_scope="function")
async def a() -> AsyncIterator[Cluster]:
    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity("a", 1, 10), 4, "a.db")
    for name, ifv, enabled in (("b", 2, True), ("c", 3, False)):
        await clusters.upsert(
            ClusterMetadataRecord(
                cluster_name=name,
                initial_failover_version=ifv,
                failover_version_increment=10,
                history_shard_count=4,
                is_global_namespace_enabled=True,
                is_connection_enabled=enabled,
                cluster_address=f"127.0.0.1:{7000 + ifv}",
            )
        )
    namespaces = NamespaceRegistry(store, clusters)
    await namespaces.load()
    await namespaces.ensure("default")
    operator = OperatorService(namespaces, EndpointRegistry(store, namespaces), clusters)
    yield Cluster(clusters, namespaces, NamespaceHandler(namespaces, clusters), operator)


async def refused(call: object) -> tuple[str, str]:
    with pytest.raises(ServiceError) as info:
        await call  # type: ignore[misc]
    return info.value.code.name, info.value.message


# ---------------------------------------------------------------------- register
async def test_register_global_takes_the_active_clusters_initial_version(a: Cluster) -> None:
    await a.register("g", "a", "b")
    ns = a.namespaces.get("g")
    assert ns.is_global and ns.clusters == ["a", "b"] and ns.active_cluster == "a"
    assert a.versions("g") == ("a", 1, 0, [])
    assert ns.record.replication_config.state == ReplicationState.REPLICATION_STATE_NORMAL
    # active on another cluster, clusters defaulting to the active one alone
    await a.register("g2", active="b")
    assert a.versions("g2") == ("b", 2, 0, [])
    assert a.namespaces.get("g2").clusters == ["b"]
    await a.register("l", is_global=False)
    local = a.namespaces.get("l")
    assert not local.is_global and local.record.failover_version == 0 and local.clusters == ["a"]


@pytest.mark.parametrize(
    ("clusters", "active", "is_global", "message"),
    [
        (["a", "nosuch"], "", True, "Invalid cluster name: nosuch"),
        ([], "nosuch", True, "Invalid cluster name: nosuch"),
        (["a", "c"], "", True, "Invalid cluster name: c"),  # known, but its connection is disabled
        (["a"], "b", True, "Active cluster is not contained in all clusters."),
        ([], "b", False, "Invalid local namespace active cluster"),
        (["a", "b"], "", False, "Invalid local namespace clusters"),
        (["b"], "", False, "Invalid local namespace clusters"),
    ],
)
async def test_register_refuses_bad_replication_configs(
    a: Cluster, clusters: list[str], active: str, is_global: bool, message: str
) -> None:
    assert await refused(a.register("x", *clusters, active=active, is_global=is_global)) == (
        "INVALID_ARGUMENT",
        message,
    )
    assert a.namespaces.find("x") is None


async def test_register_retention_a_day_for_global_any_positive_for_local(a: Cluster) -> None:
    def register(name: str, seconds: int, is_global: bool) -> object:
        return a.handler.register(
            RegisterNamespaceRequest(
                namespace=name,
                is_global_namespace=is_global,
                workflow_execution_retention_period=Duration(seconds=seconds),
            )
        )

    invalid = ("INVALID_ARGUMENT", "A valid retention period is not set on request.")
    assert await refused(register("g", 86399, True)) == invalid
    assert await refused(register("g", 0, False)) == invalid
    await register("g", 86400, True)  # type: ignore[misc]
    await register("l", 2, False)  # type: ignore[misc]
    assert await refused(register("g", 86400, True)) == ("ALREADY_EXISTS", 'Namespace "g" already exists')
    with pytest.raises(NamespaceAlreadyExists):
        await a.register("l")


# ---------------------------------------------------------------------- failover
async def test_failovers_raise_the_version_and_record_history(a: Cluster) -> None:
    """XDC.md §2.2's observed sequence: 1, then 2 on b, 11 back on a, and 11 again for a no-op failover."""
    await a.register("g", "a", "b")
    await a.failover("g", "b")
    assert a.versions("g") == ("b", 2, 0, [2])
    await a.failover("g", "a")
    assert a.versions("g") == ("a", 11, 0, [2, 11])
    before = a.namespaces.get("g").record
    await a.failover("g", "a")
    assert a.versions("g") == ("a", 11, 0, [2, 11])
    after = a.namespaces.get("g").record
    assert list(after.failover_history) == list(before.failover_history)
    assert after.failover_notification_version == after.notification_version > before.notification_version


async def test_a_failover_to_the_active_cluster_of_a_new_namespace_records_its_version(a: Cluster) -> None:
    # The reference compares with the last entry (none: -1), so the first failover is recorded even to itself.
    await a.register("g", "a", "b")
    await a.failover("g", "a")
    assert a.versions("g") == ("a", 1, 0, [1])


async def test_the_failover_history_keeps_the_last_ten(a: Cluster) -> None:
    await a.register("g", "a", "b")
    for i in range(12):
        await a.failover("g", "b" if i % 2 == 0 else "a")
    _, version, _, history = a.versions("g")
    assert len(history) == MAX_FAILOVER_HISTORY
    assert history == [12, 21, 22, 31, 32, 41, 42, 51, 52, 61]
    assert history[-1] == version


async def test_failover_resets_a_handover_and_is_refused_with_other_changes(a: Cluster) -> None:
    await a.register("g", "a", "b")
    handover = NamespaceReplicationConfig(state=ReplicationState.REPLICATION_STATE_HANDOVER)
    await a.handler.update(UpdateNamespaceRequest(namespace="g", replication_config=handover))
    assert a.namespaces.get("g").record.replication_config.state == ReplicationState.REPLICATION_STATE_HANDOVER
    assert a.versions("g") == ("a", 1, 1, [1])  # a config change with a replication config records the version
    await a.failover("g", "b")
    r = a.namespaces.get("g").record
    assert r.replication_config.state == ReplicationState.REPLICATION_STATE_NORMAL
    assert a.versions("g") == ("b", 2, 1, [1, 2])
    combined = UpdateNamespaceRequest(
        namespace="g",
        update_info=UpdateNamespaceInfo(description="x"),
        replication_config=NamespaceReplicationConfig(active_cluster_name="a"),
    )
    assert await refused(a.handler.update(combined)) == ("INVALID_ARGUMENT", FAILOVER_AND_UPDATE)
    assert a.versions("g") == ("b", 2, 1, [1, 2])


@pytest.mark.parametrize(
    ("target", "message"),
    [("nosuch", "Invalid cluster name: nosuch"), ("c", "Invalid cluster name: c")],
)
async def test_failover_to_an_unknown_or_disconnected_cluster_is_refused(a: Cluster, target: str, message: str) -> None:
    await a.register("g", "a", "b")
    assert await refused(a.failover("g", target)) == ("INVALID_ARGUMENT", message)


async def test_a_local_namespace_cannot_fail_over(a: Cluster) -> None:
    await a.register("l", is_global=False)
    assert await refused(a.failover("l", "b")) == ("INVALID_ARGUMENT", "Invalid local namespace active cluster")
    await a.failover("l", "a")  # to itself: fine, and no version
    assert a.versions("l") == ("a", 0, 0, [])


async def test_a_failover_may_be_issued_on_a_cluster_where_the_namespace_is_standby(a: Cluster) -> None:
    await a.register("g", "a", "b", active="b")
    assert a.versions("g") == ("b", 2, 0, [])
    await a.failover("g", "a")
    assert a.versions("g") == ("a", 11, 0, [11])


# ---------------------------------------------------------------------- configuration
async def test_configuration_changes_bump_the_config_version_and_no_change_saves_nothing(a: Cluster) -> None:
    await a.register("g", "a", "b")
    before = a.namespaces.get("g").record.notification_version
    for empty in (
        UpdateNamespaceRequest(namespace="g"),
        UpdateNamespaceRequest(namespace="g", update_info=UpdateNamespaceInfo()),
        UpdateNamespaceRequest(namespace="g", config=NamespaceConfig()),
    ):
        await a.handler.update(empty)
    assert a.namespaces.get("g").record.notification_version == before
    response = await a.handler.update(
        UpdateNamespaceRequest(namespace="g", update_info=UpdateNamespaceInfo(description="d", data={"k": "v"}))
    )
    assert response.namespace_info.description == "d" and response.is_global_namespace
    assert response.failover_version == 1
    assert a.versions("g") == ("a", 1, 1, [])  # no replication config in the request: no history entry
    await a.handler.update(
        UpdateNamespaceRequest(
            namespace="g", config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=2 * 86400))
        )
    )
    assert a.versions("g")[2] == 2
    short = UpdateNamespaceRequest(
        namespace="g", config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=3600))
    )
    assert await refused(a.handler.update(short)) == (
        "INVALID_ARGUMENT",
        "A valid retention period is not set on request.",
    )


async def test_cluster_list_changes_are_checked(a: Cluster) -> None:
    await a.register("g", "a", "b")

    def clusters(*names: str) -> UpdateNamespaceRequest:
        config = NamespaceReplicationConfig(clusters=[ClusterReplicationConfig(cluster_name=n) for n in names])
        return UpdateNamespaceRequest(namespace="g", replication_config=config)

    assert await refused(a.handler.update(clusters("b"))) == (
        "INVALID_ARGUMENT",
        "Active cluster is not contained in all clusters.",
    )
    assert await refused(a.handler.update(clusters("a", "nosuch"))) == (
        "INVALID_ARGUMENT",
        "Invalid cluster name: nosuch",
    )
    await a.handler.update(clusters("a"))
    assert a.namespaces.get("g").clusters == ["a"]
    assert a.versions("g") == ("a", 1, 1, [1])


async def test_promotion_makes_a_local_namespace_global_without_history(a: Cluster) -> None:
    await a.register("l", is_global=False)
    response = await a.handler.update(UpdateNamespaceRequest(namespace="l", promote_namespace=True))
    assert response.is_global_namespace and response.failover_version == 1
    assert a.versions("l") == ("a", 1, 0, [])
    again = await a.handler.update(UpdateNamespaceRequest(namespace="l", promote_namespace=True))
    assert again.failover_version == 1
    assert a.versions("l") == ("a", 1, 0, [])


async def test_replication_and_namespace_state_rules(a: Cluster) -> None:
    await a.register("g", "a", "b")
    await a.register("one", "a")
    await a.register("l", is_global=False)

    def replication_state(name: str, state: ReplicationState.ValueType) -> UpdateNamespaceRequest:
        return UpdateNamespaceRequest(namespace=name, replication_config=NamespaceReplicationConfig(state=state))

    def namespace_state(name: str, state: NamespaceState.ValueType) -> UpdateNamespaceRequest:
        return UpdateNamespaceRequest(namespace=name, update_info=UpdateNamespaceInfo(state=state))

    handover = ReplicationState.REPLICATION_STATE_HANDOVER
    assert await refused(a.handler.update(replication_state("l", handover))) == (
        "INVALID_ARGUMENT",
        "Handover can only be set for global namespace",
    )
    assert await refused(a.handler.update(replication_state("one", handover))) == (
        "INVALID_ARGUMENT",
        "Handover require more than one replication clusters",
    )
    await a.handler.update(replication_state("g", handover))
    assert await refused(a.handler.update(namespace_state("g", NamespaceState.NAMESPACE_STATE_DEPRECATED))) == (
        "INVALID_ARGUMENT",
        "cannot update namespace state while its replication state in REPLICATION_STATE_HANDOVER",
    )
    await a.handler.update(replication_state("g", ReplicationState.REPLICATION_STATE_NORMAL))
    await a.handler.update(namespace_state("g", NamespaceState.NAMESPACE_STATE_DEPRECATED))
    assert await refused(a.handler.update(replication_state("g", handover))) == (
        "INVALID_ARGUMENT",
        "update ReplicationState is only supported when namespace is in Registered state, current state: Deprecated",
    )
    assert await refused(a.handler.update(namespace_state("g", NamespaceState.NAMESPACE_STATE_REGISTERED))) == (
        "INVALID_ARGUMENT",
        "Invalid namespace state update.",
    )


async def test_plan_update_leaves_the_record_alone() -> None:
    store = MemoryStore()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity("a", 1, 10), 1, "x.db")
    namespaces = NamespaceRegistry(store, clusters)
    record = namespaces.new_record("n")
    plan = plan_update(record, UpdateNamespaceRequest(namespace="n", promote_namespace=True), clusters, 0)
    assert plan.changed and plan.failover and plan.record.is_global_namespace
    assert not record.is_global_namespace and record.failover_version == 0


async def test_history_and_enum_helpers() -> None:
    assert [h.failover_version for h in failover_history_after([], 1, 5)] == [1]
    kept = failover_history_after(failover_history_after([], 1, 5), 1, 6)
    assert [(h.failover_version, h.failover_time.nanos) for h in kept] == [(1, 5)]
    assert go_enum("NAMESPACE_STATE_REGISTERED", "NAMESPACE_STATE_") == "Registered"
    assert go_enum("REPLICATION_STATE_HANDOVER", "REPLICATION_STATE_") == "Handover"


# ---------------------------------------------------------------------- describe and list
async def test_describe_and_list_show_versions_and_history(a: Cluster) -> None:
    await a.register("g", "a", "b")
    await a.failover("g", "b")
    described = a.handler.describe(DescribeNamespaceRequest(namespace="g"))
    assert described.is_global_namespace and described.failover_version == 2
    assert [h.failover_version for h in described.failover_history] == [2]
    assert described.namespace_info.limits.blob_size_limit_error > 0
    assert a.handler.describe(DescribeNamespaceRequest(id=described.namespace_info.id)) == described
    listed = {n.namespace_info.name: n for n in a.handler.list(ListNamespacesRequest()).namespaces}
    assert listed["g"] == described
    assert not listed["default"].is_global_namespace


# ---------------------------------------------------------------------- search attributes
async def test_search_attribute_changes_bump_the_config_version(a: Cluster) -> None:
    await a.register("g", "a", "b")
    keyword = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
    await a.operator.add_search_attributes(
        AddSearchAttributesRequest(namespace="g", search_attributes={"Color": keyword}), CTX
    )
    assert a.versions("g")[2] == 1
    before = a.namespaces.get("g").record.notification_version
    await a.operator.add_search_attributes(
        AddSearchAttributesRequest(namespace="g", search_attributes={"Color": keyword}), CTX
    )
    assert a.versions("g")[2] == 1  # adding what is there changes nothing
    assert a.namespaces.get("g").record.notification_version == before
    await a.operator.remove_search_attributes(
        RemoveSearchAttributesRequest(namespace="g", search_attributes=["Color"]), CTX
    )
    assert a.versions("g")[2] == 2
    assert dict(a.namespaces.get("g").record.search_attributes) == {}


# ---------------------------------------------------------------------- clusters
async def test_list_clusters_pages_every_row_current_included(a: Cluster) -> None:
    everything = await a.operator.list_clusters(ListClustersRequest(), CTX)
    assert [c.cluster_name for c in everything.clusters] == ["a", "b", "c"] and not everything.next_page_token
    current = everything.clusters[0]
    assert (current.initial_failover_version, current.history_shard_count, current.is_connection_enabled) == (
        1,
        4,
        True,
    )
    assert [c.is_connection_enabled for c in everything.clusters] == [True, True, False]
    seen: list[str] = []
    token = b""
    for _ in range(5):
        page = await a.operator.list_clusters(ListClustersRequest(page_size=2, next_page_token=token), CTX)
        seen += [c.cluster_name for c in page.clusters]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["a", "b", "c"]


async def test_remove_remote_cluster_refusals(a: Cluster) -> None:
    async def remove(name: str) -> object:
        return await a.operator.remove_remote_cluster(RemoveRemoteClusterRequest(cluster_name=name), CTX)

    with pytest.raises(NotFound) as missing:
        await remove("nosuch")
    assert missing.value.message == "The cluster to be deleted cannot be found in clusters cache."
    await a.register("g", "a", "b")
    await a.register("only-b", "b", active="b")  # one cluster: not replicated, no hold on b
    with pytest.raises(FailedPrecondition) as held:
        await remove("b")
    assert held.value.message == 'cannot remove cluster "b": still referenced by namespace "g"'
    with pytest.raises(FailedPrecondition):
        await remove("a")
    await a.handler.update(
        UpdateNamespaceRequest(
            namespace="g",
            replication_config=NamespaceReplicationConfig(clusters=[ClusterReplicationConfig(cluster_name="a")]),
        )
    )
    with pytest.raises(InvalidArgument) as current:
        await remove("a")
    assert current.value.message == "Cannot update current cluster metadata from rpc calls"
    await remove("b")
    assert a.clusters.get("b") is None
