"""History replication when several nodes serve a cluster (cluster/replication_nodes.py and what follows shards in
cluster/sender.py, receiver.py, service.py, status.py, cluster_wide.py), with the other nodes faked: a sender ends
the stream of a shard it gives up and the next owner reads what it missed from the database; a receiver runs the
streams placed on it, follows shard moves, passes a task to the node owning its shard and waits for watermarks
other nodes applied; the service relays or passes calls about shards owned elsewhere and refuses a relayed call
for a shard that moved again; the status merges every node's part; cluster-wide loops follow shard 0."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
import pytest
from google.protobuf.message import Message

from tempyral.cluster.cluster_wide import ClusterWide
from tempyral.cluster.pull_loops import PullLoops
from tempyral.cluster.receiver import HistoryReceiver
from tempyral.cluster.sender import HistorySender, ack_key
from tempyral.cluster.service import ReplicationService
from tempyral.cluster.status import ReplicationStatus
from tempyral.common.errors import ShardNotHere
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nodes.routing import HOP_HEADER
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import Task
from tests.support.memory_store import MemoryStore
from tests.support.xdc_pair import Cluster, global_record, open_cluster
from tests.unit.test_replication_receiver import FakeClient, FakeNamespaceReplicator, FakePeers

pytestmark = pytest.mark.asyncio(loop_scope="function")


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code, self.message = code, message


class FakeContext:
    """A server context: the metadata a call came with, no deadline; abort raises Aborted."""

    def __init__(self, passed_by_node: bool = False) -> None:
        self.metadata = ((HOP_HEADER, "other"),) if passed_by_node else ()

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self.metadata

    def time_remaining(self) -> float | None:
        return None

    async def abort(self, code: grpc.StatusCode, message: str, trailing_metadata: Any = ()) -> None:
        raise Aborted(code, message)


async def requests_from(queue: asyncio.Queue[rpb.ReplicationStreamRequest]) -> AsyncIterator[Any]:
    while True:
        yield await queue.get()


def stream_of(sender: HistorySender, acked: int) -> AsyncGenerator[rpb.ReplicationStreamResponse, None]:
    queue: asyncio.Queue[rpb.ReplicationStreamRequest] = asyncio.Queue()
    queue.put_nowait(rpb.ReplicationStreamRequest(cluster_name="b", shard_id=0, acked_task_id=acked))
    context: Any = FakeContext()
    return cast(AsyncGenerator[rpb.ReplicationStreamResponse, None], sender.stream(requests_from(queue), context))


async def source_cluster() -> Cluster:
    return await open_cluster("a", ("b",), global_record(NamespaceRegistry(MemoryStore(), "a"), "a"))


# ---------------------------------------------------------------------- sending
async def test_a_stream_of_a_shard_given_up_ends_and_the_next_owner_reads_what_it_missed_from_the_database() -> None:
    a = await source_cluster()
    sender = HistorySender(a.engine.executions, a.h.store, a.namespaces, a.clusters)

    def committed(tasks: list[Task]) -> None:
        a.replication.extend(tasks)
        sender.notify(tasks)

    a.engine.on_replication_tasks = committed
    a.engine.on_shard_acquired.append(sender.shard_acquired)
    a.engine.on_shard_released.append(sender.shard_released)
    try:
        await sender.start()
        await a.h.start("wf")
        stream = stream_of(sender, 0)
        first = await asyncio.wait_for(anext(stream), 5)
        assert [t.task.task_id for t in first.tasks] == [t.task_id for t in a.replication]
        sender._ack("b", 0, first.high_watermark_task_id)
        await sender.flush_acks()
        a.engine.release_shard(0)  # another node takes it
        with pytest.raises(Aborted) as ended:
            await asyncio.wait_for(anext(stream), 5)
        assert ended.value.code == grpc.StatusCode.UNAVAILABLE and "shard 0" in ended.value.message
        assert sender.acked("b", 0) == 0  # nothing of the shard is kept, or stored, here any more
        stored = await a.h.store.get_metadata(ack_key("b", 0))
        assert stored == str(first.high_watermark_task_id)

        # a stream that reaches a node that no longer owns the shard is told so at once
        with pytest.raises(Aborted):
            await asyncio.wait_for(anext(stream_of(sender, 0)), 5)

        # this node owns it again (as its next owner would): tasks written before are read from the database
        await a.engine.acquire_shard(0)
        assert sender._floor[0] == a.engine.shards[0].next_task_id
        await eventually_true(lambda: sender.acked("b", 0) == first.high_watermark_task_id)
        await a.h.signal("wf")
        resumed = stream_of(sender, first.high_watermark_task_id)
        got: list[int] = []
        while len(got) < 1:
            got += [t.task.task_id for t in (await asyncio.wait_for(anext(resumed), 5)).tasks]
        assert got == [t.task_id for t in a.replication[len(first.tasks) :]]
        await resumed.aclose()
    finally:
        await sender.stop()
        await a.h.close()


async def eventually_true(check: Any, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------- receiving
@dataclass
class FakePlacement:
    """This node owns `owned` of `shard_count` local shards; the other nodes are faked."""

    shard_count: int
    owned_shards: set[int]
    elsewhere_applied: dict[int, int] = field(default_factory=dict)
    passed: list[tuple[int, str, int, bool]] = field(default_factory=list)
    fail_first: int = 0  # the first calls passing a task fail as if its node were moving

    def owned(self, shard_id: int) -> bool:
        return shard_id in self.owned_shards

    def local_shard(self, namespace_id: str, workflow_id: str) -> int:
        return int(workflow_id.rsplit("-", 1)[1]) % self.shard_count

    async def apply_elsewhere(
        self, local_shard: int, source: str, source_shard: int, task: rpb.ReplicationTask, once: bool
    ) -> None:
        if self.fail_first > 0:
            self.fail_first -= 1
            raise ShardNotHere(local_shard)
        self.passed.append((local_shard, task.task.workflow_id, source_shard, once))

    async def applied_elsewhere(self, remote: str) -> dict[int, int]:
        return dict(self.elsewhere_applied)


async def receiving_pair(shards: int) -> tuple[Cluster, Cluster, HistoryReceiver]:
    record = global_record(NamespaceRegistry(MemoryStore(), "a"), "a")
    a = await open_cluster("a", ("b",), record, num_shards=shards)
    b = await open_cluster("b", ("a",), record, num_shards=shards)
    sender = HistorySender(a.engine.executions, a.h.store, a.namespaces, a.clusters)
    peers = FakePeers(b, FakeClient(sender))
    receiver = HistoryReceiver(b.clusters, peers, b.applier, b.h.store, FakeNamespaceReplicator(a, b, peers, 1))
    return a, b, receiver


async def test_streams_run_on_the_node_owning_their_shard_and_follow_it() -> None:
    a, b, receiver = await receiving_pair(shards=3)
    placement = FakePlacement(3, {0, 2})
    receiver.nodes = placement
    try:
        receiver.start()
        assert set(receiver._streams) == {("a", 0), ("a", 2)}
        assert not receiver.placed_here(1)
        receiver._moved("a", 0, 5)
        placement.owned_shards = {1, 2}
        receiver.shard_moved(0)
        receiver.shard_moved(1)
        assert set(receiver._streams) == {("a", 1), ("a", 2)}
        assert ("a", 0) not in receiver.applied_through  # its numbers are the next owner's
    finally:
        await receiver.stop()
        await a.h.close()
        await b.h.close()


async def test_a_task_on_a_shard_owned_elsewhere_is_passed_to_its_node_until_it_takes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tempyral.cluster import receiver as receiver_module

    monkeypatch.setattr(receiver_module, "jittered_backoff_s", lambda *args, **kwargs: 0.0)
    a, b, receiver = await receiving_pair(shards=2)
    placement = FakePlacement(2, {0}, fail_first=2)
    receiver.nodes = placement
    try:
        task = rpb.ReplicationTask()
        task.task.namespace_id, task.task.workflow_id = a.ns.id, "wf-1"
        await receiver._apply_retrying("a", task, shard_id=1)
        assert placement.passed == [(1, "wf-1", 1, False)]  # after two refusals while the shard moved
        # a task passed here for a shard this node does not own goes back, for the caller to ask again
        with pytest.raises(ShardNotHere):
            await receiver.apply_here("a", 1, task, once=False)
        # the DLQ's re-apply goes to the owner once
        await receiver._apply_once("a", 1, task)
        assert placement.passed[-1] == (1, "wf-1", 1, True)
    finally:
        await a.h.close()
        await b.h.close()


async def test_a_wait_for_watermarks_asks_the_other_nodes_for_their_streams() -> None:
    a, b, receiver = await receiving_pair(shards=2)
    placement = FakePlacement(2, {0}, elsewhere_applied={1: 50})
    receiver.nodes = placement
    try:
        receiver._moved("a", 0, 10)
        assert await receiver.wait_applied("a", {0: 10, 1: 50}, timeout=1.0)
        assert not await receiver.wait_applied("a", {0: 10, 1: 60}, timeout=0.5)
        placement.elsewhere_applied[1] = 60
        assert await receiver.wait_applied("a", {0: 10, 1: 60}, timeout=1.0)
        assert not await receiver.wait_applied("a", {0: 11}, timeout=0.3)  # its own streams: as before
    finally:
        await a.h.close()
        await b.h.close()


# ---------------------------------------------------------------------- the service
@dataclass
class FakeRelay:
    """The other nodes as the service sees them: shards in `owned_shards` are here."""

    owned_shards: set[int]
    shard_count: int = 4
    relayed: list[int] = field(default_factory=list)
    passed: list[tuple[int, str]] = field(default_factory=list)
    marks: dict[int, int] = field(default_factory=lambda: {1: 70})
    asked_marks: int = 0

    def owned(self, shard_id: int) -> bool:
        return shard_id in self.owned_shards

    def local_shard(self, namespace_id: str, workflow_id: str) -> int:
        return int(workflow_id.rsplit("-", 1)[1])

    async def relay_stream(
        self, shard_id: int, first: rpb.ReplicationStreamRequest, requests: AsyncIterator[Any]
    ) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        self.relayed.append(shard_id)
        yield rpb.ReplicationStreamResponse(high_watermark_task_id=first.acked_task_id + 1)
        raise ShardNotHere(shard_id)  # the owner gave it up

    async def pass_call(self, shard_id: int, method: str, request: Any, response: Any, timeout: float) -> Any:
        self.passed.append((shard_id, method))
        answer: Message = response()
        return answer

    async def watermarks_elsewhere(self, cluster_name: str) -> dict[int, int]:
        self.asked_marks += 1
        return dict(self.marks)


class LocalSource:
    def __init__(self) -> None:
        self.streamed: list[int] = []

    async def stream(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        first = await anext(requests)
        self.streamed.append(first.shard_id)
        yield rpb.ReplicationStreamResponse(high_watermark_task_id=7)

    async def history(self, request: rpb.GetReplicationHistoryRequest) -> rpb.GetReplicationHistoryResponse:
        return rpb.GetReplicationHistoryResponse(version_history=[])


async def one_request(shard_id: int) -> AsyncIterator[rpb.ReplicationStreamRequest]:
    yield rpb.ReplicationStreamRequest(cluster_name="b", shard_id=shard_id)
    await asyncio.Event().wait()  # the receiver keeps its side open


async def collect(stream: AsyncIterator[rpb.ReplicationStreamResponse]) -> list[int]:
    return [r.high_watermark_task_id async for r in stream]


async def test_the_service_serves_owned_shards_relays_the_others_and_never_relays_twice() -> None:
    a = await source_cluster()
    service = ReplicationService(a.clusters, a.namespaces)
    local, relay = LocalSource(), FakeRelay({0, 2})
    service.history_source = local
    service.nodes = relay
    try:
        assert await collect(service.stream_replication(one_request(2), cast(Any, FakeContext()))) == [7]
        assert local.streamed == [2] and relay.relayed == []
        with pytest.raises(Aborted) as moved:  # relayed, then the owner gives it up: the remote reconnects
            await collect(service.stream_replication(one_request(1), cast(Any, FakeContext())))
        assert relay.relayed == [1] and moved.value.code == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(Aborted):  # relayed here by another node, and not owned here: not relayed again
            await collect(service.stream_replication(one_request(3), cast(Any, FakeContext(passed_by_node=True))))
        assert relay.relayed == [1]

        history = rpb.GetReplicationHistoryRequest(cluster_name="b", namespace_id=a.ns.id, workflow_id="wf-3")
        await service.get_replication_history(history, cast(Any, FakeContext()))
        assert relay.passed == [(3, "GetReplicationHistory")]
        with pytest.raises(ShardNotHere):
            await service.get_replication_history(history, cast(Any, FakeContext(passed_by_node=True)))
        reapply = rpb.ReapplyEventsRequest(cluster_name="b", namespace_id=a.ns.id, workflow_id="wf-1")
        service.reapply = lambda request: asyncio.sleep(0, result=0)
        await service.reapply_events(reapply, cast(Any, FakeContext()))
        assert relay.passed[-1] == (1, "ReapplyEvents")
    finally:
        await a.h.close()


async def test_watermarks_come_from_the_owners_of_the_shards_when_a_record_is_handed_out() -> None:
    a = await source_cluster()
    service = ReplicationService(a.clusters, a.namespaces)
    relay = FakeRelay({0})
    service.nodes = relay
    service.shard_watermarks = lambda: {0: 40}
    try:
        request = rpb.GetNamespaceReplicationMessagesRequest(cluster_name="b")
        answer = await service.get_namespace_replication_messages(request, cast(Any, FakeContext()))
        assert [r.info.name for r in answer.namespaces] == [a.ns.name]
        assert dict(answer.shard_watermarks) == {0: 40, 1: 70}
        # nothing handed out: nobody waits for watermarks, the other nodes are not asked
        later = rpb.GetNamespaceReplicationMessagesRequest(
            cluster_name="b", after_notification_version=answer.last_notification_version
        )
        answer = await service.get_namespace_replication_messages(later, cast(Any, FakeContext()))
        assert not answer.namespaces and relay.asked_marks == 1
        # asked by another node: this node's shards only, no records
        answer = await service.get_namespace_replication_messages(request, cast(Any, FakeContext(True)))
        assert not answer.namespaces and dict(answer.shard_watermarks) == {0: 40}
    finally:
        await a.h.close()


# ---------------------------------------------------------------------- the status
def part(shards: dict[int, int], applied: dict[int, int], announced: dict[int, int], **kw: Any) -> Any:
    status = rpb.GetReplicationStatusResponse(cluster_name="b")
    for shard_id, last in shards.items():
        status.shards.add(shard_id=shard_id, last_task_id=last)
    inbound = status.inbound.add(cluster_name="a", connected=kw.get("connected", True), lag_seconds=kw.get("lag", 0))
    inbound.applied_task_id.update(applied)
    inbound.announced_task_id.update(announced)
    inbound.dlq_size = kw.get("dlq", 0)
    outbound = status.outbound.add(cluster_name="a", backlog=kw.get("backlog", 0))
    outbound.acked_task_id.update({s: 1 for s in shards})
    status.namespaces.add(namespace="g", active_cluster="a", peer_cluster="a", backlog=kw.get("backlog", 0))
    return status


async def test_the_cluster_status_merges_every_nodes_part() -> None:
    a, b, receiver = await receiving_pair(shards=3)  # a has 3 shards, as b knows it
    try:
        status = ReplicationStatus(b.clusters, b.namespaces, cast(Any, None), receiver, 3)
        mine = part({0: 10, 2: 30}, {0: 5, 2: 9}, {0: 6, 2: 9}, lag=1.5, dlq=4, backlog=2)
        theirs = part({1: 20}, {1: 3}, {1: 8}, lag=0.5, dlq=99, backlog=3)
        merged = status.merge(mine, [theirs])
        assert [(s.shard_id, s.last_task_id) for s in merged.shards] == [(0, 10), (1, 20), (2, 30)]
        inbound = merged.inbound[0]
        assert dict(inbound.applied_task_id) == {0: 5, 1: 3, 2: 9}
        assert inbound.tasks_lag == 1 + 5 and inbound.lag_seconds == 1.5 and inbound.connected
        assert inbound.dlq_size == 4  # one table: the count this node read, not a sum
        assert merged.outbound[0].backlog == 5 and dict(merged.outbound[0].acked_task_id) == {0: 1, 1: 1, 2: 1}
        assert merged.namespaces[0].backlog == 5 and merged.namespaces[0].tasks_lag == 6
        # a remote shard whose stream no node reported: not connected
        assert not status.merge(mine, []).inbound[0].connected
    finally:
        await a.h.close()
        await b.h.close()


# ---------------------------------------------------------------------- once per cluster
async def test_cluster_wide_loops_run_on_the_owner_of_shard_0_only() -> None:
    owned = {0}
    calls: list[str] = []

    async def stopped() -> None:
        calls.append("stop")

    wide = ClusterWide(lambda shard_id: shard_id in owned)
    wide.add("loop", lambda: calls.append("start"), stopped)
    await wide.ready()
    assert calls == ["start"]
    owned.clear()
    wide.shard_moved(1)  # another shard: nothing to do
    wide.shard_moved(0)
    await eventually_true(lambda: calls == ["start", "stop"])
    owned.add(0)
    wide.shard_moved(0)
    await eventually_true(lambda: calls == ["start", "stop", "start"])
    await wide.stop()
    assert calls == ["start", "stop", "start", "stop"] and not wide.running


async def test_pull_loops_started_again_follow_the_clusters_once_and_stopped_stay_stopped() -> None:
    a = await source_cluster()
    pulls: list[str] = []

    async def pull(remote: str) -> None:
        pulls.append(remote)

    import logging

    loops = PullLoops(a.clusters, "test pulls", pull, logging.getLogger("test"))
    try:
        loops.start()
        await loops.stop()
        loops.start()
        assert a.clusters.listeners.count(loops._follow) == 1
        await loops.stop()
        assert loops._follow not in a.clusters.listeners
        for listener in a.clusters.listeners:
            listener()
        assert loops._loops == {}
    finally:
        await a.h.close()
