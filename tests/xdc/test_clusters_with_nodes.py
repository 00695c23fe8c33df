"""Global namespaces when each cluster has several nodes: two clusters, each two `tempyral server start` nodes on a
PostgreSQL database of its own (one PostgreSQL server, two databases), connected with the `temporal` CLI through
one node of each. Workflows run on a, replicate to b (compared through both of b's nodes), fail over to b and
finish there with a worker on b's other node; replication survives a SIGKILLed node of the receiving cluster."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tempyral.cluster.graceful import behind, inbound_from
from tempyral.cluster.status import fetch_status
from tests.conftest import new_id, within
from tests.support.clusters import INCREMENT, Cluster
from tests.support.clusters import connect as connect_clusters
from tests.support.nodes import MEMBERSHIP_TIMEOUT_S, tempyral_node
from tests.support.postgres import PostgresServer
from tests.support.servers import ServerProcess
from tests.xdc.conftest import EventKey, connect, create_global_namespace, events, failover, wait_for_namespace
from tests.xdc.failover_workflows import Collector
from tests.xdc.nodes_workflows import Order, OrderChild, Steps
from tests.xdc.test_graceful_failover import failover_command, keep_signalling

pytestmark = pytest.mark.timeout(420)
SHARDS = 8
REPLICATED_WITHIN_S = 90.0


def where_on(label: str) -> Callable[[str], Awaitable[str]]:
    @activity.defn(name="where")
    async def where(_: str) -> str:
        return label

    return where


@contextmanager
def cluster_of_nodes(
    pg: PostgresServer, name: str, initial_failover_version: int, shards: int = SHARDS
) -> Iterator[list[Cluster]]:
    """Cluster `name`: two nodes on a new database; each node seen as a `Cluster` (the address to call)."""
    url = pg.create_database()
    flags = ["--cluster-name", name, "--initial-failover-version", str(initial_failover_version)]
    flags += ["--failover-version-increment", str(INCREMENT)]
    nodes: list[ServerProcess] = []
    try:
        for node in ("1", "2"):
            nodes.append(tempyral_node(url, f"{name}{node}", flags, shards=shards).start())
        yield [Cluster(name, initial_failover_version, node) for node in nodes]
    finally:
        for proc in nodes:
            proc.stop()


@contextmanager
def two_clusters(pg: PostgresServer, b_shards: int = SHARDS) -> Iterator[tuple[list[Cluster], list[Cluster]]]:
    """Clusters a (initial failover version 1) and b (2) of two nodes each, connected through their first nodes."""
    with cluster_of_nodes(pg, "a", 1) as a, cluster_of_nodes(pg, "b", 2, b_shards) as b:
        connect_clusters(a[0], b[0])
        yield a, b


def shard_owners(pg: PostgresServer, url: str) -> dict[int, str]:
    database = url.rsplit("/", 1)[1]
    rows = pg.psql("SELECT shard_id, owner FROM shards ORDER BY shard_id", database).split()
    return {int(shard): owner for shard, owner in (row.split("|") for row in rows)}


def database_of(node: Cluster) -> str:
    command = node.server.command
    return command[command.index("--db") + 1]


async def wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        await asyncio.sleep(0.2)


async def history_or_none(client: Client, workflow_id: str) -> list[EventKey] | None:
    try:
        return await events(client, workflow_id)
    except Exception:  # not replicated yet, or the node is moving its shards
        return None


async def same_histories(source: Client, targets: list[Client], workflow_ids: list[str], timeout: float) -> None:
    """Every workflow's history, read on each of `targets`, becomes the one `source` has."""
    expected = {wid: await events(source, wid) for wid in workflow_ids}
    pending = {(i, wid) for i in range(len(targets)) for wid in workflow_ids}

    async def caught_up() -> bool:
        for i, wid in sorted(pending):
            if await history_or_none(targets[i], wid) == expected[wid]:
                pending.discard((i, wid))
        return not pending

    try:
        await wait_for(caught_up, "histories replicated", timeout)
    except AssertionError:
        i, wid = sorted(pending)[0]
        got = await history_or_none(targets[i], wid)
        raise AssertionError(
            f"{len(pending)} histories differ; {wid} on target {i}: {got} != {expected[wid]}"
        ) from None


async def wait_for_stage(handle: WorkflowHandle[Any, Any], stage: str, timeout: float) -> None:
    async def there() -> bool:
        try:
            return await handle.query(Order.where_it_is) == stage
        except Exception:  # its workflow task is under way
            return False

    await wait_for(there, f"{handle.id} at {stage}", timeout)


async def caught_up(active: Cluster, standby: Cluster) -> bool:
    """The standby, read through one of its nodes, has applied every task of every shard of the active, read
    through one of its own (what a graceful failover waits for)."""
    source, target = await fetch_status(active.address), await fetch_status(standby.address)
    inbound = inbound_from(target, active.name)
    return (
        [s.shard_id for s in source.shards] == list(range(SHARDS))
        and inbound is not None
        and inbound.connected
        and sorted(inbound.applied_task_id) == list(range(SHARDS))
        and behind(source, target) == {}
    )


def global_namespace(a: list[Cluster], b: list[Cluster]) -> str:
    """A global namespace made through each cluster's first node, active in a, once every other node knows it."""
    ns = create_global_namespace([a[0], b[0]])
    for node in (*a[1:], *b[1:]):
        wait_for_namespace(node, ns, "a")
    return ns


# b with a shard count of its own: a stream of a's shard s runs on the node owning b's shard s mod 5, and each task
# is applied by the node owning its workflow's shard on b (passed there when that is the other node)
@pytest.mark.parametrize("b_shards", [SHARDS, 5], ids=["equal-shard-counts", "b-has-5-shards"])
async def test_global_namespace_runs_replicates_and_fails_over_between_clusters_of_two_nodes(
    postgres_server: PostgresServer, b_shards: int
) -> None:
    with two_clusters(postgres_server, b_shards) as ((a1, a2), (b1, b2)):
        ns = global_namespace([a1, a2], [b1, b2])
        on_a1, on_a2 = await connect(a1, ns), await connect(a2, ns)
        on_b1, on_b2 = await connect(b1, ns), await connect(b2, ns)
        tq = new_id("tq")
        done_ids = [new_id("done") for _ in range(8)]
        running_ids = [new_id("running") for _ in range(6)]
        async with Worker(on_a1, task_queue=tq, workflows=[Order, OrderChild], activities=[where_on("a")]):
            # started and signalled through the node without the worker
            done = [await on_a2.start_workflow(Order.run, i, id=wid, task_queue=tq) for i, wid in enumerate(done_ids)]
            running = [
                await on_a2.start_workflow(Order.run, i, id=wid, task_queue=tq) for i, wid in enumerate(running_ids)
            ]
            for handle in done:
                await handle.signal(Order.add, "1")
                await handle.signal(Order.add, "2")
            for handle in running:
                await handle.signal(Order.add, "1")
            assert await within(asyncio.gather(*(h.result() for h in done)), 60) == ["a:child-a:1,2" for _ in done]
            # the running ones wait for their second signal, their activity and child done on a
            for handle in running:
                await wait_for_stage(handle, "second signal", 60)
        # histories (parents and children) replicate to b, the same through either of its nodes
        every = done_ids + running_ids + [f"{wid}-child" for wid in done_ids + running_ids]
        await same_histories(on_a1, [on_b1, on_b2], every, REPLICATED_WITHIN_S)
        # the replication status read through any node is the whole cluster's: b has applied every task of
        # every shard of a (what a graceful failover waits for), whichever node runs each stream
        await wait_for(lambda: caught_up(a2, b1), "b's status through b1 caught up with a's through a2", 30)
        await wait_for(lambda: caught_up(a1, b2), "b's status through b2 caught up with a's through a1", 30)

        failover(a1, ns, "b")  # issued on the old active, through the node the other cluster dials
        for node in (a1, a2, b1, b2):
            wait_for_namespace(node, ns, "b", timeout=60)
        async with Worker(on_b2, task_queue=tq, workflows=[Order, OrderChild], activities=[where_on("b")]):
            for wid in running_ids:
                await on_b1.get_workflow_handle(wid).signal(Order.add, "2")
            fresh_ids = [new_id("fresh") for _ in range(4)]
            fresh = [await on_b1.start_workflow(Order.run, i, id=wid, task_queue=tq) for i, wid in enumerate(fresh_ids)]
            for handle in fresh:
                await handle.signal(Order.add, "x")
                await handle.signal(Order.add, "y")
            finished = await within(
                asyncio.gather(*(on_b1.get_workflow_handle(wid).result() for wid in running_ids)), 90
            )
            assert finished == ["a:child-a:1,2" for _ in running_ids]
            assert await within(asyncio.gather(*(h.result() for h in fresh)), 90) == ["b:child-b:x,y" for _ in fresh]
        # and what b wrote replicates back to a, through b's node that a dials and the one it relays to
        written_on_b = running_ids + fresh_ids + [f"{wid}-child" for wid in fresh_ids]
        await same_histories(on_b2, [on_a1, on_a2], written_on_b, REPLICATED_WITHIN_S)
        for wid in running_ids:
            versions = {version for _, _, version in await events(on_a2, wid)}
            assert versions == {1, 2}, wid  # written by a, then by b


async def test_replication_completes_when_a_node_of_the_receiving_cluster_is_killed(
    postgres_server: PostgresServer,
) -> None:
    with two_clusters(postgres_server) as ((a1, a2), (b1, b2)):
        ns = global_namespace([a1, a2], [b1, b2])
        on_a1, on_a2, on_b1 = await connect(a1, ns), await connect(a2, ns), await connect(b1, ns)
        tq = new_id("tq")
        b_db = database_of(b1)
        pg = postgres_server
        await wait_for(
            lambda: _true(set(shard_owners(pg, b_db).values()) == {"b1", "b2"}), "b's shards on both nodes", 30
        )
        killed_shards = [s for s, owner in shard_owners(pg, b_db).items() if owner == "b2"]
        ids = [new_id("steps") for _ in range(40)]
        async with Worker(on_a1, task_queue=tq, workflows=[Steps], activities=[where_on("a")]):
            handles = [await on_a2.start_workflow(Steps.run, 4, id=wid, task_queue=tq) for wid in ids[:20]]
            await asyncio.sleep(1.0)  # replication under way
            b2.server.kill()
            killed_at = time.monotonic()
            handles += [await on_a2.start_workflow(Steps.run, 4, id=wid, task_queue=tq) for wid in ids[20:]]
            assert await within(asyncio.gather(*(h.result() for h in handles)), 120) == [4 for _ in handles]
        await wait_for(
            lambda: _true(all(shard_owners(pg, b_db)[s] == "b1" for s in killed_shards)),
            "the killed node's shards owned by b1",
            MEMBERSHIP_TIMEOUT_S * 4 + 20,
        )
        await same_histories(on_a1, [on_b1], ids, REPLICATED_WITHIN_S)
        print(f"replicated to b1 {time.monotonic() - killed_at:.1f} s after b2 was killed")


async def _true(value: bool) -> bool:
    return value


async def test_a_graceful_failover_run_through_one_node_loses_no_signal_sent_through_the_other(
    postgres_server: PostgresServer,
) -> None:
    with two_clusters(postgres_server) as ((a1, a2), (b1, b2)):
        ns = global_namespace([a1, a2], [b1, b2])
        on_a2, on_b1, on_b2 = await connect(a2, ns), await connect(b1, ns), await connect(b2, ns)
        tq = new_id("tq")
        async with (
            Worker(on_a2, task_queue=tq, workflows=[Collector]),
            Worker(on_b2, task_queue=tq, workflows=[Collector]),
        ):
            ids = [new_id("collect") for _ in range(6)]
            for wid in ids:
                await on_a2.start_workflow(Collector.run, id=wid, task_queue=tq)
            acknowledged: dict[str, list[str]] = {wid: [] for wid in ids}
            stop = asyncio.Event()

            # through a's other node until it names b active
            signallers = [
                asyncio.create_task(
                    keep_signalling([on_a2, on_b1], ns, lambda seq: ids[seq % len(ids)], f"s{n}", acknowledged, stop)
                )
                for n in range(3)
            ]
            await asyncio.sleep(2.0)
            code, out, err = await failover_command(
                "--namespace", ns, "--to", "b", "--max-lag", "5s", "--timeout", "60s", "--address", a1.address
            )
            await asyncio.sleep(1.0)
            stop.set()
            await within(asyncio.gather(*signallers), 60)
            assert code == 0, f"failover failed: {out}{err}"
            for wid in ids:
                await on_b1.get_workflow_handle(wid).signal(Collector.done)
            results = await within(asyncio.gather(*(on_b1.get_workflow_handle(wid).result() for wid in ids)), 90)
        for wid, result in zip(ids, results, strict=True):
            assert sorted(result) == sorted(acknowledged[wid]), wid  # each acknowledged signal exactly once
        total = sum(len(v) for v in acknowledged.values())
        print(f"graceful failover across nodes: {total} signals acknowledged, each once; {out.splitlines()[-1]}")
        assert total > 0
