"""Replication you can see (issue 13 part 4), between two tempyral clusters driven by the SDK and the CLIs: the
status (GetReplicationStatus, `tempyral replication status`, GET /replication/status), the metrics, and an
execution deleted by retention on one side, which never blocks the stream."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.error
import urllib.request

from google.protobuf.duration_pb2 import Duration
from temporalio.api.replication.v1 import ClusterReplicationConfig, NamespaceReplicationConfig
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from tempyral.cluster.sender import version_items
from tempyral.cluster.status import fetch_status
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import DlqRow
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import Task, TaskType
from tests.conftest import new_id, within
from tests.support.clusters import CLI_TIMEOUT_S, Cluster, temporal_cli
from tests.support.clusters import connect as connect_clusters
from tests.xdc.conftest import (
    connect,
    create_global_namespace,
    events,
    wait_for_events,
    wait_for_namespace,
    wait_until,
)


async def caught_up(standby: Cluster, active: Cluster, namespace: str = "") -> rpb.GetReplicationStatusResponse:
    """The standby's status once it applied everything the active had committed when asked (bounded wait)."""
    source = await fetch_status(active.address)
    marks = {s.shard_id: s.last_task_id for s in source.shards}
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        status = await fetch_status(standby.address, namespace)
        (inbound,) = [p for p in status.inbound if p.cluster_name == active.name]
        if all(inbound.applied_task_id[shard] >= mark for shard, mark in marks.items()) and inbound.tasks_lag == 0:
            return status
        assert asyncio.get_running_loop().time() < deadline, f"{standby.name} never caught up: {status}"
        await asyncio.sleep(0.1)


async def test_status_shows_what_was_sent_and_applied_per_peer_and_namespace(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    for _ in range(3):
        await client_a.start_workflow("Nothing", id=new_id(), task_queue=new_id("tq"))
    status_b = await within(caught_up(b, a, ns))
    assert status_b.cluster_name == "b"
    (inbound,) = status_b.inbound
    assert inbound.connected and inbound.cluster_name == "a" and inbound.dlq_size == 0
    assert inbound.HasField("last_applied_time")
    (entry,) = status_b.namespaces  # one namespace asked, one peer
    assert (entry.namespace, entry.active_cluster, entry.peer_cluster) == (ns, "a", "a")
    assert entry.replication_state == "normal" and entry.tasks_lag == 0 and entry.dlq_size == 0
    assert entry.last_applied_task_id > 0

    # the active's side: the standby acknowledged what it applied, nothing of the namespace is left to send
    async def acknowledged() -> rpb.GetReplicationStatusResponse:
        while True:
            status = await fetch_status(a.address, ns)
            if status.namespaces and status.namespaces[0].backlog == 0:
                return status
            await asyncio.sleep(0.1)

    status_a = await within(acknowledged())
    (outbound,) = status_a.outbound
    assert outbound.cluster_name == "b"
    shard = max(status_a.shards, key=lambda s: s.last_task_id).shard_id
    assert 0 < outbound.acked_task_id[shard]
    (entry_a,) = status_a.namespaces
    assert entry_a.peer_cluster == "b" and entry_a.backlog == 0


def tempyral_cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """`tempyral ...` as a user types it."""
    result = subprocess.run(
        [sys.executable, "-m", "tempyral", *args], capture_output=True, text=True, timeout=CLI_TIMEOUT_S
    )
    if check:
        assert result.returncode == 0, f"tempyral {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def http_get(cluster: Cluster, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{cluster.server.http_port}{path}", timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


async def test_cli_http_json_and_metrics_show_the_same_status(clusters: list[Cluster]) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    await client_a.start_workflow("Nothing", id=new_id(), task_queue=new_id("tq"))
    await within(caught_up(b, a, ns))
    text = tempyral_cli("replication", "status", "--address", b.address, "--namespace", ns).stdout
    assert text.startswith("Cluster b\n") and "FROM" in text and "NAMESPACE" in text
    (row,) = [line.split() for line in text.splitlines() if line.startswith(ns)]
    assert row[:4] == [ns, "a", "normal", "a"]
    as_json = json.loads(tempyral_cli("replication", "status", "--address", b.address, "-n", ns, "-o", "json").stdout)
    code, body = await asyncio.to_thread(http_get, b, f"/replication/status?namespace={ns}")
    over_http = json.loads(body)
    assert code == 200
    for answer in (as_json, over_http):
        assert answer["clusterName"] == "b"
        (entry,) = answer["namespaces"]
        assert (entry["namespace"], entry["peerCluster"], entry["activeCluster"]) == (ns, "a", "a")
        assert int(entry["lastAppliedTaskId"]) > 0
        assert [p["clusterName"] for p in answer["inbound"]] == ["a"]
    code, body = await asyncio.to_thread(http_get, b, "/replication/status?namespace=no-such-namespace")
    assert code == 404 and json.loads(body)["code"] == 5
    failed = tempyral_cli("replication", "status", "--address", b.address, "-n", "no-such-namespace", check=False)
    assert failed.returncode == 1 and "NOT_FOUND" in failed.stderr
    _, metrics = await asyncio.to_thread(http_get, b, "/metrics")
    for name in ("replication_tasks_lag", "replication_dlq_size", "replication_last_applied_task_id"):
        assert f'{name}{{namespace="{ns}",source_cluster="a"}}' in metrics
    assert f'replication_tasks_applied{{namespace="{ns}",source_cluster="a"}}' in metrics
    _, metrics_a = await asyncio.to_thread(http_get, a, "/metrics")
    assert f'replication_task_send_backlog{{namespace="{ns}",target_cluster="b"}}' in metrics_a


async def test_dlq_commands_list_reapply_and_purge(clusters: list[Cluster]) -> None:
    """A DLQ row written through the store API while b is down (no task the SDK can send fails to apply): one is
    a real task of a run b has, which re-applies; the other is of a type b cannot apply, which stays."""
    a, b = clusters
    ns = create_global_namespace(clusters)
    client_a = await connect(a, ns)
    wid = new_id()
    handle = await client_a.start_workflow("Nothing", id=wid, task_queue=new_id("tq"))
    await within(caught_up(b, a, ns))
    history = await handle.fetch_history()
    described = await client_a.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=ns))
    namespace_id = described.namespace_info.id
    good = rpb.ReplicationTask(
        task=Task(
            type=TaskType.TASK_TYPE_REPLICATE_HISTORY,
            task_id=1,
            namespace_id=namespace_id,
            workflow_id=wid,
            run_id=handle.result_run_id or "",
        )
    )
    good.events.events.extend(history.events)
    good.version_history.extend(version_items(list(history.events)))
    bad = rpb.ReplicationTask()
    bad.CopyFrom(good)
    bad.task.task_id, bad.task.type = 2, TaskType.TASK_TYPE_USER_TIMER
    b.server.kill()
    try:
        store = SqliteStore(str(b.server.replay_check_db))
        await store.open()
        for task in (good, bad):
            t = task.task
            row = DlqRow("a", 0, t.task_id, namespace_id, wid, t.run_id, task.SerializeToString(), "boom", 1, 1)
            await store.put_replication_dlq(row)
        await store.close()
    finally:
        await asyncio.to_thread(b.server.start)
    listed = json.loads(
        tempyral_cli("replication", "dlq", "list", "--address", b.address, "--cluster", "a", "-o", "json").stdout
    )
    assert [(t["taskId"], t["workflowId"], t["namespace"], t["error"]) for t in listed] == [
        ("1", wid, ns, "boom"),
        ("2", wid, ns, "boom"),
    ]
    text = tempyral_cli("replication", "dlq", "list", "--address", b.address, "--cluster", "a", "-n", ns).stdout
    assert text.startswith("SOURCE") and wid in text
    status = await fetch_status(b.address, ns)
    assert status.inbound[0].dlq_size == 2 and status.namespaces[0].dlq_size == 2
    reapplied = tempyral_cli("replication", "dlq", "reapply", "--address", b.address, "--cluster", "a", check=False)
    assert reapplied.returncode == 1, reapplied
    assert "Re-applied 1 task(s); 1 failed again and stay." in reapplied.stdout, reapplied.stdout
    listed = json.loads(
        tempyral_cli("replication", "dlq", "list", "--address", b.address, "--cluster", "a", "-o", "json").stdout
    )
    assert [(t["taskId"], t["attempts"]) for t in listed] == [("2", 2)]
    assert "unknown replication task type" in listed[0]["error"]
    purged = tempyral_cli("replication", "dlq", "purge", "--address", b.address, "--cluster", "a", "--task-id", "2")
    assert purged.stdout.strip() == "Purged 1 task(s)."
    assert (await fetch_status(b.address, ns)).inbound[0].dlq_size == 0
    missing = tempyral_cli("replication", "dlq", "list", "--address", b.address, "--cluster", "", check=False)
    assert missing.returncode == 1 and "INVALID_ARGUMENT" in missing.stderr


async def test_a_run_deleted_by_retention_on_the_sender_does_not_block_the_stream(clusters: list[Cluster]) -> None:
    """temporal#4348: while b is disconnected, a closes a run and retention deletes it there; once connected again,
    the stream skips what a no longer has and the other executions replicate."""
    a, b = clusters
    # A global namespace keeps runs a day at least (the reference's rule); a local one promoted keeps its retention.
    ns = new_id("g")
    client_a = await Client.connect(a.address)
    await client_a.workflow_service.register_namespace(
        RegisterNamespaceRequest(namespace=ns, workflow_execution_retention_period=Duration(seconds=1))
    )
    temporal_cli(a.address, "operator", "namespace", "update", "-n", ns, "--promote-global")
    clusters_ab = [ClusterReplicationConfig(cluster_name=c.name) for c in clusters]
    await client_a.workflow_service.update_namespace(
        UpdateNamespaceRequest(namespace=ns, replication_config=NamespaceReplicationConfig(clusters=clusters_ab))
    )
    wait_for_namespace(b, ns, "a")
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    gone, kept = new_id(), new_id()
    doomed = await client_a.start_workflow("Nothing", id=gone, task_queue=new_id("tq"))
    await within(caught_up(b, a, ns))
    connect_clusters(a, b, enable=False)
    try:
        await doomed.terminate("retention will delete it")
        await client_a.start_workflow("Nothing", id=kept, task_queue=new_id("tq"))

        async def deleted_on_a() -> bool:
            try:
                await doomed.describe()
                return False
            except RPCError as err:
                return err.status == RPCStatusCode.NOT_FOUND

        await wait_until(deleted_on_a, timeout=60, what="retention deleted the run on a")
    finally:
        connect_clusters(a, b)
    on_a = await events(client_a, kept)
    await within(wait_for_events(client_b, kept, on_a, timeout=30))
    await within(caught_up(b, a, ns))
    assert (await fetch_status(b.address, ns)).namespaces[0].dlq_size == 0
