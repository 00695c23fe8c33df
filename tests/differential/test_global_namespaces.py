"""Global namespaces against the reference made global-capable (XDC.md §9): its dev server is started once,
stopped, its SQLite cluster_metadata_info rows patched (global namespaces enabled on `active`, a `standby` row with
initial failover version 2 at a dead address), and started again on the same file. tempyral runs as two clusters,
`active` (initial failover version 1) and `standby` (2), connected both ways, one history shard each like the dev
server. The same script of namespace and cluster calls, good and bad, runs against the reference and against
tempyral's `active`, and the answers must agree: codes, messages, error details, failover versions, failover
history, replication configs, ListClusters rows (ids and addresses aside)."""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import NamespaceState, ReplicationState
from temporalio.api.namespace.v1 import NamespaceConfig, UpdateNamespaceInfo
from temporalio.api.operatorservice.v1 import (
    AddOrUpdateRemoteClusterRequest,
    ListClustersRequest,
    RemoveRemoteClusterRequest,
)
from temporalio.api.replication.v1 import ClusterReplicationConfig, NamespaceReplicationConfig
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeNamespaceResponse,
    GetClusterInfoRequest,
    ListNamespacesRequest,
    RegisterNamespaceRequest,
    StartWorkflowExecutionRequest,
    UpdateNamespaceRequest,
    UpdateNamespaceResponse,
)
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.clusters import Cluster, running_clusters, temporal_cli
from tests.support.servers import ServerProcess, free_port, reference

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
DAY = Duration(seconds=86400)
Outcome = str


# ---------------------------------------------------------------------- the reference, made global-capable
def _varint(n: int) -> bytes:
    out = b""
    while True:
        low, n = n & 0x7F, n >> 7
        if not n:
            return out + bytes([low])
        out += bytes([low | 0x80])


def _int_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _str_field(number: int, value: str) -> bytes:
    data = value.encode()
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def enable_global_namespaces(db: Path, standby_address: str) -> None:
    """XDC.md §9: the reference's current row gets is_global_namespace_enabled (field 9), and a remote row
    `standby` (initial failover version 2, increment 10, one shard, connected and replicated) is added."""
    with closing(sqlite3.connect(db)) as conn:
        (data,) = conn.execute("select data from cluster_metadata_info where cluster_name='active'").fetchone()
        conn.execute("update cluster_metadata_info set data=? where cluster_name='active'", (data + _int_field(9, 1),))
        row = (
            _str_field(1, "standby")
            + _int_field(2, 1)
            + _str_field(3, str(uuid.uuid4()))
            + _str_field(6, standby_address)
            + _str_field(13, f"127.0.0.1:{free_port()}")
            + _int_field(7, 10)
            + _int_field(8, 2)
            + _int_field(9, 1)
            + _int_field(10, 1)
            + _int_field(14, 1)
        )
        conn.execute("insert into cluster_metadata_info values (0, 'standby', ?, 'Proto3', 1)", (row,))
        conn.commit()


@pytest.fixture(scope="module")
def reference_xdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    db = tmp_path_factory.mktemp("reference-xdc") / "reference.db"
    # Namespace updates are rate limited on the reference (1 a second per namespace with a burst of 10, 20 a
    # second in all): the script's bursts would fail there on a fast machine.
    limits = ["frontend.rps.namespaceReplicationInducingAPIs", "frontend.namespaceRPS.namespaceReplicationInducingAPIs"]
    dynamic_config = [arg for key in limits for arg in ("--dynamic-config-value", f"{key}=100000")]
    proc = reference(extra=["--db-filename", str(db), *dynamic_config])
    proc.start()
    proc.stop()
    enable_global_namespaces(db, f"127.0.0.1:{free_port()}")  # nobody there: the reference's pulls just fail
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def tempyral_xdc() -> Iterator[list[Cluster]]:
    with running_clusters(["active", "standby"], extra=["--shards", "1"]) as (active, standby):
        # as the patched row of the reference: replication enabled too
        temporal_cli(
            active.address,
            *("operator", "cluster", "upsert", "--frontend-address", standby.address),
            *("--enable-connection", "--enable-replication"),
        )
        yield [active, standby]


# ---------------------------------------------------------------------- one server's run
def clusters(*names: str) -> list[ClusterReplicationConfig]:
    return [ClusterReplicationConfig(cluster_name=n) for n in names]


def _recent(ts: Timestamp) -> bool:
    return abs(ts.seconds - time.time()) < 600


def namespace_shape(r: DescribeNamespaceResponse | UpdateNamespaceResponse) -> str:
    """What both servers must agree on: not ids, times or the capabilities only the reference has."""
    rc = r.replication_config
    shape = (
        f"global={r.is_global_namespace} version={r.failover_version} active={rc.active_cluster_name} "
        f"clusters={[c.cluster_name for c in rc.clusters]} state={ReplicationState.Name(rc.state)} "
        f"ns_state={NamespaceState.Name(r.namespace_info.state)} description={r.namespace_info.description!r} "
        f"retention={r.config.workflow_execution_retention_ttl.seconds}"
    )
    if isinstance(r, DescribeNamespaceResponse):
        history = [(h.failover_version, _recent(h.failover_time)) for h in r.failover_history]
        shape += f" history={history}"
    return shape


class Session:
    def __init__(self, client: Client, suffix: str) -> None:
        self.client = client
        self.ws = client.workflow_service
        self.ops = client.operator_service
        self.suffix = suffix

    def name(self, base: str) -> str:
        return f"{base}-{self.suffix}"

    def clean(self, text: str) -> str:
        return UUID.sub("<id>", text).replace(self.suffix, "<suffix>")

    async def call(self, awaitable: Awaitable[Message]) -> Outcome:
        try:
            response = await awaitable
        except RPCError as err:
            details = [d.TypeName() for d in err.grpc_status.details] if err.grpc_status else []
            return self.clean(f"error {err.status.name}: {err.message} {details}")
        if isinstance(response, DescribeNamespaceResponse | UpdateNamespaceResponse):
            return self.clean(namespace_shape(response))
        return "ok"

    def register(
        self, base: str, *members: str, active: str = "", is_global: bool = True, retention: Duration = DAY
    ) -> Awaitable[Message]:
        return self.ws.register_namespace(
            RegisterNamespaceRequest(
                namespace=self.name(base),
                is_global_namespace=is_global,
                workflow_execution_retention_period=retention,
                active_cluster_name=active,
                clusters=clusters(*members),
            )
        )

    def describe(self, base: str) -> Awaitable[Message]:
        return self.ws.describe_namespace(DescribeNamespaceRequest(namespace=self.name(base)))

    def update(self, base: str, **fields: Any) -> Awaitable[Message]:
        return self.ws.update_namespace(UpdateNamespaceRequest(namespace=self.name(base), **fields))

    def failover(self, base: str, to: str) -> Awaitable[Message]:
        return self.update(base, replication_config=NamespaceReplicationConfig(active_cluster_name=to))


async def _namespace_script(address: str, suffix: str) -> list[Outcome]:
    s = Session(await Client.connect(address), suffix)
    out: list[Outcome] = []
    # registration refused
    for base, members, active, is_global, retention in [
        ("bad", ("active", "nosuch"), "", True, DAY),
        ("bad", (), "nosuch", True, DAY),
        ("bad", ("active",), "standby", True, DAY),
        ("bad", (), "standby", False, DAY),
        ("bad", ("active", "standby"), "", False, DAY),
        ("bad", ("standby",), "", False, DAY),
        ("bad", ("active", "standby"), "", True, Duration(seconds=86399)),
        ("bad", (), "", True, Duration()),
    ]:
        out.append(await s.call(s.register(base, *members, active=active, is_global=is_global, retention=retention)))
    out.append(await s.call(s.describe("bad")))

    # XDC.md §2.2's sequence: 1, then 2, then 11, and 11 again
    out += [
        await s.call(s.register("g", "active", "standby")),
        await s.call(s.register("g", "active", "standby")),
        await s.call(s.describe("g")),
        await s.call(s.failover("g", "standby")),
        await s.call(s.describe("g")),
        await s.call(s.failover("g", "active")),
        await s.call(s.failover("g", "active")),
        await s.call(s.describe("g")),
        await s.call(s.failover("g", "nosuch")),
        await s.call(
            s.update(
                "g",
                update_info=UpdateNamespaceInfo(description="both"),
                replication_config=NamespaceReplicationConfig(active_cluster_name="standby"),
            )
        ),
        await s.call(s.update("g", update_info=UpdateNamespaceInfo(description="config only"))),
        await s.call(s.update("g")),
        await s.call(s.update("g", config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=7200)))),
        await s.call(
            s.update("g", config=NamespaceConfig(workflow_execution_retention_ttl=Duration(seconds=2 * 86400)))
        ),
        await s.call(s.update("g", replication_config=NamespaceReplicationConfig(clusters=clusters("standby")))),
        await s.call(
            s.update("g", replication_config=NamespaceReplicationConfig(clusters=clusters("active", "nosuch")))
        ),
        await s.call(s.describe("g")),
    ]

    # a failover to the active cluster of a new namespace; a cluster list that grows
    out += [
        await s.call(s.register("fresh", "active", "standby")),
        await s.call(s.failover("fresh", "active")),
        await s.call(s.describe("fresh")),
        await s.call(s.register("grow", "active")),
        await s.call(
            s.update("grow", replication_config=NamespaceReplicationConfig(clusters=clusters("active", "standby")))
        ),
        await s.call(s.describe("grow")),
    ]

    # active elsewhere from the start; clusters default to the active one
    out += [
        await s.call(s.register("remote", active="standby")),
        await s.call(s.describe("remote")),
        await s.call(s.failover("remote", "active")),
    ]

    # replication and namespace states
    handover = NamespaceReplicationConfig(state=ReplicationState.REPLICATION_STATE_HANDOVER)
    normal = NamespaceReplicationConfig(state=ReplicationState.REPLICATION_STATE_NORMAL)
    deprecated = UpdateNamespaceInfo(state=NamespaceState.NAMESPACE_STATE_DEPRECATED)
    out += [
        await s.call(s.register("h", "active", "standby")),
        await s.call(s.update("h", replication_config=handover)),
        await s.call(s.describe("h")),
        await s.call(s.update("h", update_info=deprecated)),
        await s.call(s.update("h", replication_config=normal)),
        await s.call(s.update("h", update_info=deprecated)),
        await s.call(s.update("h", replication_config=handover)),
        await s.call(s.update("h", update_info=UpdateNamespaceInfo(state=NamespaceState.NAMESPACE_STATE_REGISTERED))),
        await s.call(s.register("one", "active")),
        await s.call(s.update("one", replication_config=handover)),
    ]

    # local namespaces: no failover, no handover; promotion makes them global
    out += [
        await s.call(s.register("l", is_global=False)),
        await s.call(s.update("l", replication_config=handover)),
        await s.call(s.failover("l", "standby")),
        await s.call(s.failover("l", "active")),
        await s.call(
            s.update("l", replication_config=NamespaceReplicationConfig(clusters=clusters("active", "standby")))
        ),
        await s.call(s.update("l", promote_namespace=True)),
        await s.call(s.update("l", promote_namespace=True)),
        await s.call(s.describe("l")),
    ]

    listed = await s.ws.list_namespaces(ListNamespacesRequest(page_size=1000))
    mine = sorted(
        (n for n in listed.namespaces if suffix in n.namespace_info.name), key=lambda n: n.namespace_info.name
    )
    out += [s.clean(f"listed {n.namespace_info.name}: {namespace_shape(n)}") for n in mine]
    return out


async def test_namespace_calls_answer_like_the_reference(
    reference_xdc: ServerProcess, tempyral_xdc: list[Cluster]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    expected = await _namespace_script(reference_xdc.address, suffix)
    ours = await _namespace_script(tempyral_xdc[0].address, suffix)
    assert ours == expected


# ---------------------------------------------------------------------- writes where the namespace is standby
async def _start_in_standby_namespace(address: str, suffix: str) -> list[Outcome]:
    s = Session(await Client.connect(address), suffix)
    await s.register("std", active="standby")
    await s.register("std2", "active", "standby")
    await s.failover("std2", "standby")
    out: list[Outcome] = []
    for base in ("std", "std2"):
        request = StartWorkflowExecutionRequest(
            namespace=s.name(base),
            workflow_id=f"wf-{suffix}",
            workflow_type=WorkflowType(name="W"),
            task_queue=TaskQueue(name="q"),
            request_id=str(uuid.uuid4()),
        )
        outcome = ""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # the reference's registry may not know a new namespace yet
            try:
                await s.ws.start_workflow_execution(request)
                outcome = "started"
            except RPCError as err:
                details = [(d.TypeName(), d.value) for d in err.grpc_status.details] if err.grpc_status else []
                outcome = s.clean(f"error {err.status.name}: {err.message} {details}")
                if err.status.name == "NOT_FOUND":
                    continue
            if outcome != "started" or base == "std":
                break
            # a standby change the reference's namespace cache has not seen yet: try another id
            request.workflow_id += "x"
        out.append(outcome)
    return out


async def test_a_start_in_a_namespace_active_elsewhere_is_refused_like_the_reference(
    reference_xdc: ServerProcess, tempyral_xdc: list[Cluster]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    expected = await _start_in_standby_namespace(reference_xdc.address, suffix)
    ours = await _start_in_standby_namespace(tempyral_xdc[0].address, suffix)
    assert ours == expected
    assert expected[0].startswith(
        "error FAILED_PRECONDITION: Namespace: std-<suffix> is active in cluster: standby, "
        "while current cluster active is a standby cluster."
    )


# ---------------------------------------------------------------------- clusters
async def _cluster_script(address: str, suffix: str, dead: str) -> list[Outcome]:
    s = Session(await Client.connect(address), suffix)
    await s.register("keep", "active", "standby")  # holds standby
    out: list[Outcome] = []
    listed = await s.ops.list_clusters(ListClustersRequest())
    for c in listed.clusters:
        out.append(
            f"{c.cluster_name} ifv={c.initial_failover_version} shards={c.history_shard_count} "
            f"connected={c.is_connection_enabled} replicated={c.is_replication_enabled} "
            f"id={bool(UUID.fullmatch(c.cluster_id))} address={bool(c.address)} http={bool(c.http_address)}"
        )
    out.append(f"token={bool(listed.next_page_token)}")
    first = await s.ops.list_clusters(ListClustersRequest(page_size=1))
    out.append(f"page of 1: {[c.cluster_name for c in first.clusters]} token={bool(first.next_page_token)}")
    # The next page is not compared: the reference's SQL store pages by the last row's cluster name, which it never
    # reads, so its second page is its first again (and a pager never ends). tempyral's goes on (below).

    def removal(name: str) -> Awaitable[Message]:
        return s.ops.remove_remote_cluster(RemoveRemoteClusterRequest(cluster_name=name))

    for name in ("nosuch", "standby", "active"):
        # which namespace the refusal names depends on the order a server walks its namespaces
        outcome = await s.call(removal(name))
        out.append(re.sub(r'namespace "[^"]*"', 'namespace "<ns>"', outcome))

    def upsert(target: str) -> Awaitable[Message]:
        return s.ops.add_or_update_remote_cluster(
            AddOrUpdateRemoteClusterRequest(frontend_address=target, enable_remote_cluster_connection=True)
        )

    out.append(await s.call(upsert(address)))
    out.append((await s.call(upsert(dead))).replace(dead, "<dead>"))
    out.append(await s.call(upsert("")))
    info = await s.ws.get_cluster_info(GetClusterInfoRequest())
    out.append(
        f"cluster info: {info.cluster_name} ifv={info.initial_failover_version} "
        f"increment={info.failover_version_increment} shards={info.history_shard_count} "
        f"stores={info.persistence_store}/{info.visibility_store} version={info.server_version} "
        f"clients={sorted(info.supported_clients.items())} id={bool(UUID.fullmatch(info.cluster_id))}"
    )
    return out


async def test_cluster_calls_answer_like_the_reference(
    reference_xdc: ServerProcess, tempyral_xdc: list[Cluster]
) -> None:
    suffix = uuid.uuid4().hex[:8]
    dead = f"127.0.0.1:{free_port()}"
    expected = await _cluster_script(reference_xdc.address, suffix, dead)
    ours = await _cluster_script(tempyral_xdc[0].address, suffix, dead)
    assert ours == expected
    ops = (await Client.connect(tempyral_xdc[0].address)).operator_service
    first = await ops.list_clusters(ListClustersRequest(page_size=1))
    second = await ops.list_clusters(ListClustersRequest(page_size=1, next_page_token=first.next_page_token))
    assert [c.cluster_name for c in second.clusters] == ["standby"] and not second.next_page_token


async def test_failover_history_times_are_when_the_failover_happened(tempyral_xdc: list[Cluster]) -> None:
    client = await Client.connect(tempyral_xdc[0].address)
    s = Session(client, uuid.uuid4().hex[:8])
    await s.register("t", "active", "standby")
    before = time.time()
    await s.failover("t", "standby")
    after = time.time()
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=s.name("t")))
    (entry,) = described.failover_history
    at = entry.failover_time.seconds + entry.failover_time.nanos / 1e9
    assert before - 1 <= at <= after + 1
    assert timedelta(seconds=after - at) < timedelta(seconds=5)
