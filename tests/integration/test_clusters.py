"""Several tempyral clusters driven by the official CLI: remote clusters added, listed and removed (and the
refusals), global namespaces created on one cluster and seen on the others, failovers issued on either side,
concurrent failovers, a paused connection, and a restart that keeps the cluster's identity.

Clusters a, b, c (initial failover versions 1, 2, 3, increment 10) are connected to each other and shared by
the module; each test makes namespaces of its own. The restart test comes last."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from temporalio.api.operatorservice.v1 import AddOrUpdateRemoteClusterRequest, RemoveRemoteClusterRequest
from temporalio.api.replication.v1 import NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.support.clusters import Cluster, eventually, new_cluster, running_clusters, temporal_cli
from tests.support.servers import ServerProcess, free_port, tempyral

REPLICATED_WITHIN_S = 3.0  # records are pulled twice a second; the rest is slack for the CLI on a busy machine


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[Cluster]]:
    with running_clusters(["a", "b", "c"]) as started:
        yield started


def cli_json(cluster: Cluster, *args: str) -> Any:
    return json.loads(temporal_cli(cluster.address, *args, "-o", "json").stdout)


def describe(cluster: Cluster, namespace: str) -> dict[str, Any] | None:
    result = temporal_cli(
        cluster.address, "operator", "namespace", "describe", "-n", namespace, "-o", "json", check=False
    )
    return json.loads(result.stdout) if result.returncode == 0 else None


def summary(described: dict[str, Any] | None) -> tuple[str, str, str, list[str]] | None:
    """(namespace id, active cluster, failover version, failover history versions)"""
    if described is None:
        return None
    return (
        described["namespaceInfo"]["id"],
        described["replicationConfig"]["activeClusterName"],
        described.get("failoverVersion", "0"),
        [h["failoverVersion"] for h in described.get("failoverHistory", [])],
    )


def namespace_id(cluster: Cluster, namespace: str) -> str:
    described = summary(describe(cluster, namespace))
    assert described is not None, f"{namespace} not on {cluster.name}"
    return described[0]


def create(on: Cluster, *members: str, active: str) -> str:
    name = f"g-{uuid.uuid4().hex[:8]}"
    args = ["operator", "namespace", "create", "-n", name, "--global", "--active-cluster", active]
    for member in members:
        args += ["--cluster", member]
    assert f"Namespace {name} successfully registered." in temporal_cli(on.address, *args).stdout
    return name


def failover(via: Cluster, namespace: str, to: str) -> None:
    out = temporal_cli(via.address, "operator", "namespace", "update", "-n", namespace, "--active-cluster", to).stdout
    assert f"Namespace {namespace} update succeeded." in out


def until(cluster: Cluster, namespace: str, expected: tuple[str, str, str, list[str]], timeout: float) -> None:
    eventually(
        lambda: summary(describe(cluster, namespace)) == expected,
        timeout=timeout,
        interval=0.05,
        what=f"{namespace} on {cluster.name} is {expected} (is {summary(describe(cluster, namespace))})",
    )


async def operator_error(cluster: Cluster, call: str, request: Any) -> tuple[str, str]:
    client = await Client.connect(cluster.address)
    with pytest.raises(RPCError) as info:
        await getattr(client.operator_service, call)(request)
    return info.value.status.name, info.value.message


# ---------------------------------------------------------------------- cluster RPCs
def test_clusters_are_listed_with_what_they_said_about_themselves(clusters: list[Cluster]) -> None:
    a, b, c = clusters
    rows = {r["clusterName"]: r for r in cli_json(a, "operator", "cluster", "list")}
    assert sorted(rows) == ["a", "b", "c"]
    for cluster in clusters:
        row = rows[cluster.name]
        assert row["address"] == cluster.address
        assert row["initialFailoverVersion"] == str(cluster.initial_failover_version)
        assert row["historyShardCount"] == 4 and row["clusterId"] and row["httpAddress"]
        assert row["isConnectionEnabled"] is True
        assert row.get("isReplicationEnabled", False) is False  # the CLI sends --enable-replication=false
    # each cluster knows the others by the ids they gave themselves
    described = {x.name: cli_json(x, "operator", "cluster", "describe") for x in clusters}
    assert {name: d["clusterId"] for name, d in described.items()} == {n: r["clusterId"] for n, r in rows.items()}
    assert described["b"]["clusterName"] == "b" and described["b"]["initialFailoverVersion"] == "2"
    assert described["b"]["failoverVersionIncrement"] == "10"
    table = temporal_cli(b.address, "operator", "cluster", "list").stdout
    assert "IsConnectionEnabled" in table and c.address in table


async def test_clusters_that_cannot_join_are_refused_and_nothing_is_stored(clusters: list[Cluster]) -> None:
    a = clusters[0]
    other_increment = tempyral(
        extra=[
            "--cluster-name",
            "m",
            "--initial-failover-version",
            "4",
            "--failover-version-increment",
            "100",
            "--headless",
        ]
    )
    same_version = new_cluster("d", 2)  # b has initial failover version 2
    try:
        other_increment.start()
        same_version.server.start()

        async def upsert(address: str) -> tuple[str, str]:
            request = AddOrUpdateRemoteClusterRequest(frontend_address=address, enable_remote_cluster_connection=True)
            return await operator_error(a, "add_or_update_remote_cluster", request)

        invalid = "Unable connect to remote cluster with invalid config: {}."
        assert await upsert(a.address) == (
            "INVALID_ARGUMENT",
            invalid.format("Cannot update current cluster metadata from rpc calls"),
        )
        assert await upsert(other_increment.address) == (
            "INVALID_ARGUMENT",
            invalid.format("Cannot add remote cluster due to failover version increment mismatch"),
        )
        assert await upsert(same_version.address) == (
            "INVALID_ARGUMENT",
            invalid.format("Cannot add remote cluster due to initial failover version conflict"),
        )
        dead = f"127.0.0.1:{free_port()}"
        assert await upsert(dead) == (
            "UNAVAILABLE",
            f"Unable connect to remote cluster {dead} with error: connection error: desc = "
            f'"transport: Error while dialing: dial tcp {dead}: connect: connection refused".',
        )
        printed = temporal_cli(a.address, "operator", "cluster", "upsert", "--frontend-address", a.address, check=False)
        assert printed.returncode == 1
        assert "Cannot update current cluster metadata from rpc calls" in printed.stderr
        names = [r["clusterName"] for r in cli_json(a, "operator", "cluster", "list")]
        assert names == ["a", "b", "c"]
    finally:
        other_increment.stop()
        same_version.server.stop()


async def test_removal_is_refused_while_a_namespace_needs_the_cluster(clusters: list[Cluster]) -> None:
    a, b, _ = clusters
    create(a, "a", "c", active="a")
    assert await operator_error(a, "remove_remote_cluster", RemoveRemoteClusterRequest(cluster_name="nosuch")) == (
        "NOT_FOUND",
        "The cluster to be deleted cannot be found in clusters cache.",
    )
    refused = await operator_error(a, "remove_remote_cluster", RemoveRemoteClusterRequest(cluster_name="c"))
    assert refused[0] == "FAILED_PRECONDITION"
    assert refused[1].startswith('cannot remove cluster "c": still referenced by namespace "g-')
    printed = temporal_cli(a.address, "operator", "cluster", "remove", "--name", "c", check=False)
    assert printed.returncode == 1 and "still referenced by namespace" in printed.stderr
    # a cluster no replicated namespace of b shares with a can go, and come back
    assert "Removed cluster a" in temporal_cli(b.address, "operator", "cluster", "remove", "--name", "a").stdout
    assert [r["clusterName"] for r in cli_json(b, "operator", "cluster", "list")] == ["b", "c"]
    temporal_cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, "--enable-connection")
    assert [r["clusterName"] for r in cli_json(b, "operator", "cluster", "list")] == ["a", "b", "c"]


# ---------------------------------------------------------------------- global namespaces
def test_a_global_namespace_reaches_its_clusters_and_fails_over_from_either_side(clusters: list[Cluster]) -> None:
    a, b, c = clusters
    name = create(a, "a", "b", active="a")
    created = summary(describe(a, name))
    assert created is not None
    ns_id = created[0]
    assert created == (ns_id, "a", "1", [])
    until(b, name, (ns_id, "a", "1", []), REPLICATED_WITHIN_S)
    assert describe(c, name) is None  # not one of its clusters

    failover(b, name, "b")  # issued on b: b is active at once
    assert summary(describe(b, name)) == (ns_id, "b", "2", ["2"])
    until(a, name, (ns_id, "b", "2", ["2"]), REPLICATED_WITHIN_S)

    failover(a, name, "a")
    assert summary(describe(a, name)) == (ns_id, "a", "11", ["2", "11"])
    until(b, name, (ns_id, "a", "11", ["2", "11"]), REPLICATED_WITHIN_S)
    history_on_a = describe(a, name)["failoverHistory"]  # type: ignore[index]
    assert describe(b, name)["failoverHistory"] == history_on_a  # type: ignore[index]

    failover(b, name, "a")  # already active there: the same version, the same history
    assert summary(describe(b, name)) == (ns_id, "a", "11", ["2", "11"])


async def test_concurrent_failovers_converge_on_the_higher_version(clusters: list[Cluster]) -> None:
    """b makes itself active while c does. Whichever saw the other's first goes above it (b: 2, or 12 after c's 3;
    c: 3 either way); in the end every cluster has the higher of the two versions, and its active cluster."""
    a, b, c = clusters
    name = create(a, "a", "b", "c", active="a")
    ns_id = namespace_id(a, name)
    for cluster in (b, c):
        until(cluster, name, (ns_id, "a", "1", []), 10)

    async def failover_on(cluster: Cluster) -> tuple[int, str]:
        client = await Client.connect(cluster.address)
        config = NamespaceReplicationConfig(active_cluster_name=cluster.name)
        done = await client.workflow_service.update_namespace(
            UpdateNamespaceRequest(namespace=name, replication_config=config)
        )
        return done.failover_version, done.replication_config.active_cluster_name

    results = await asyncio.gather(failover_on(b), failover_on(c))
    assert {active for _, active in results} == {"b", "c"}
    version, active = max(results)
    assert version in (3, 12)
    for cluster in clusters:
        eventually(
            lambda cluster=cluster: active_and_version(cluster, name) == (active, str(version)),  # type: ignore[misc]
            timeout=10,
            what=f"{name} on {cluster.name} active in {active} with version {version}",
        )
    histories = {tuple(history(cluster, name)) for cluster in clusters}
    assert len(histories) == 1 and next(iter(histories))[-1] == str(version)


def active_and_version(cluster: Cluster, namespace: str) -> tuple[str, str] | None:
    described = summary(describe(cluster, namespace))
    return None if described is None else (described[1], described[2])


def history(cluster: Cluster, namespace: str) -> list[str]:
    described = summary(describe(cluster, namespace))
    assert described is not None
    return described[3]


def test_a_paused_connection_holds_namespace_changes_back_until_it_resumes(clusters: list[Cluster]) -> None:
    a, b, _ = clusters
    name = create(a, "a", "b", active="a")
    eventually(lambda: describe(b, name), timeout=10, what=f"{name} on b")
    # b stops pulling from a (a still lists b as connected, so the namespace may change on a)
    temporal_cli(
        b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, "--enable-connection=false"
    )
    try:
        temporal_cli(a.address, "operator", "namespace", "update", "-n", name, "--description", "changed on a")
        assert describe(a, name)["namespaceInfo"]["description"] == "changed on a"  # type: ignore[index]
        deadline = time.monotonic() + REPLICATED_WITHIN_S
        while time.monotonic() < deadline:  # what is asserted is an absence, for that long
            assert describe(b, name)["namespaceInfo"].get("description", "") == ""  # type: ignore[index]
            time.sleep(0.2)
    finally:
        temporal_cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, "--enable-connection")
    eventually(
        lambda: describe(b, name)["namespaceInfo"].get("description") == "changed on a",  # type: ignore[index]
        timeout=10,
        what="the change delivered once the connection resumed",
    )


def refused_start(*args: str) -> str:
    """A start that must fail at once: its one line."""
    command = [sys.executable, "-m", "tempyral", "server", "start-dev", "--headless", "--log-level", "warn"]
    command += ["--port", str(free_port()), "--http-port", str(free_port()), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_a_restart_keeps_the_cluster_identity_and_its_remotes(clusters: list[Cluster]) -> None:
    a, b, _ = clusters
    before = cli_json(a, "operator", "cluster", "list")
    name = create(a, "a", "b", active="a")
    server: ServerProcess = a.server
    db = server.replay_check_db
    assert db is not None
    scratch, server.scratch_dir = server.scratch_dir, None  # the database stays for the restart
    server.stop()
    line = refused_start("--db-filename", db, "--cluster-name", "z")
    assert line == (
        f"tempyral: error: database {db} belongs to cluster a (initial failover version 1, increment 10), "
        "which cannot change: start with --cluster-name a"
    )
    server.start()
    server.scratch_dir = scratch  # removed when the module's clusters stop
    assert cli_json(a, "operator", "cluster", "list") == before
    assert cli_json(a, "operator", "cluster", "describe")["clusterName"] == "a"
    # replication works again both ways
    ns_id = namespace_id(a, name)
    until(b, name, (ns_id, "a", "1", []), 10)
    failover(b, name, "b")
    until(a, name, (ns_id, "b", "2", ["2"]), 10)
