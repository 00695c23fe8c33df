"""Replication you can see (issue 13 part 4), between two tempyral clusters driven by the SDK and the CLIs: the
status (GetReplicationStatus, `tempyral replication status`, GET /replication/status), the metrics, and an
execution deleted by retention on one side, which never blocks the stream."""

from __future__ import annotations

import asyncio

from tempyral.cluster.status import fetch_status
from tempyral.proto import replication_pb2 as rpb
from tests.conftest import new_id, within
from tests.support.clusters import Cluster
from tests.xdc.conftest import connect, create_global_namespace


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
