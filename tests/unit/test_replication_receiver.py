"""The receiving side of history replication (cluster/receiver.py, HistoryReceiver) on cluster b, fed with what
cluster a's HistorySender converts (tests/support/xdc_pair.py), with the network replaced by a fake peer client:
what is retried (a namespace not known yet, storage unavailable), what is refused and counted (malformed tasks,
conflicts) while the rest of the message is applied, the applied watermark, and the metrics."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.enums.v1 import EventType

from tempyral.cluster import receiver as receiver_module
from tempyral.cluster.client import ReplicationClient
from tempyral.cluster.namespace_replication import NamespaceReplicator
from tempyral.cluster.peers import Peers
from tempyral.cluster.receiver import HistoryReceiver, applied_key
from tempyral.cluster.sender import HistorySender
from tempyral.common.errors import ConditionFailed, StorageUnavailable, Unavailable
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import TaskType
from tests.support.history_harness import start_timer
from tests.support.memory_store import MemoryStore
from tests.support.xdc_pair import Cluster, global_record, open_cluster

pytestmark = pytest.mark.asyncio(loop_scope="function")


class FakeCall:
    """A stream call that answers with `responses`, then ends; the receiver's requests stay readable."""

    def __init__(self, requests: AsyncIterator[rpb.ReplicationStreamRequest], responses: list[Any]) -> None:
        self.requests = requests
        self.responses = responses
        self.cancelled = False

    async def _responses(self) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        for response in self.responses:
            yield response

    def __aiter__(self) -> AsyncIterator[rpb.ReplicationStreamResponse]:
        return self._responses()

    def cancel(self) -> None:
        self.cancelled = True


@dataclass
class FakeClient:
    """Cluster a as b's peer client sees it: its sender answers history requests; streams answer `responses`."""

    sender: HistorySender
    responses: list[rpb.ReplicationStreamResponse] = field(default_factory=list)
    calls: list[FakeCall] = field(default_factory=list)
    history_requests: list[rpb.GetReplicationHistoryRequest] = field(default_factory=list)
    drop_last_event: bool = False

    def stream(self, requests: AsyncIterator[rpb.ReplicationStreamRequest]) -> FakeCall:
        call = FakeCall(requests, self.responses)
        self.calls.append(call)
        return call

    async def history(self, request: rpb.GetReplicationHistoryRequest) -> rpb.GetReplicationHistoryResponse:
        self.history_requests.append(request)
        response = await self.sender.history(request)
        if self.drop_last_event:
            del response.events.events[-1]
        return response


class FakePeers(Peers):
    def __init__(self, b: Cluster, client: FakeClient | None) -> None:
        super().__init__(b.clusters)
        self.fake = client

    def client(self, name: str) -> ReplicationClient | None:
        return cast(ReplicationClient, self.fake) if self.fake is not None else None


class FakeNamespaceReplicator(NamespaceReplicator):
    """Pulling from a: the record arrives at the `arrives_at`-th pull."""

    def __init__(self, a: Cluster, b: Cluster, peers: Peers, arrives_at: int) -> None:
        super().__init__(b.clusters, b.namespaces, peers)
        self.a, self.b = a, b
        self.pulls: list[str] = []
        self.arrives_at = arrives_at

    async def pull(self, remote: str) -> int:
        self.pulls.append(remote)
        if len(self.pulls) < self.arrives_at:
            return 0
        return int(await self.b.namespaces.apply_replicated(self.a.ns.record))


@dataclass
class Pair:
    a: Cluster
    b: Cluster
    sender: HistorySender
    client: FakeClient
    peers: FakePeers
    replicator: FakeNamespaceReplicator
    receiver: HistoryReceiver

    async def converted(self, first: int = 0) -> list[rpb.ReplicationTask]:
        """a's replication tasks from `first` on, as its sender sends them to b."""
        out = []
        for task in self.a.replication[first:]:
            converted = await self.sender._convert(task, "b")
            assert converted is not None
            out.append(converted)
        return out


async def open_receiving_pair(b_knows_the_namespace: bool = True, arrives_at: int = 1) -> Pair:
    record = global_record(NamespaceRegistry(MemoryStore(), "a"), "a")
    a = await open_cluster("a", ("b",), record)
    b = await open_cluster("b", ("a",), record if b_knows_the_namespace else None)
    sender = HistorySender(a.engine.executions, a.h.store, a.namespaces, a.clusters)
    client = FakeClient(sender)
    peers = FakePeers(b, client)
    replicator = FakeNamespaceReplicator(a, b, peers, arrives_at)
    receiver = HistoryReceiver(b.clusters, peers, b.applier, b.h.store, replicator)
    return Pair(a, b, sender, client, peers, replicator, receiver)


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retries go at once (the backoff is the receiver's business, not what these tests check)."""
    monkeypatch.setattr(receiver_module, "jittered_backoff_s", lambda *args, **kwargs: 0.0)


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[Pair]:
    p = await open_receiving_pair()
    try:
        yield p
    finally:
        await p.a.h.close()
        await p.b.h.close()


async def b_events(p: Pair, workflow_id: str) -> list[int]:
    return [e.event_id for e in await p.b.h.events(workflow_id)]


# ---------------------------------------------------------------------- retried, never dropped
@pytest.mark.parametrize("arrives_at", [1, 3])
async def test_a_task_of_a_namespace_unknown_here_pulls_namespaces_and_waits_for_it(arrives_at: int) -> None:
    p = await open_receiving_pair(b_knows_the_namespace=False, arrives_at=arrives_at)
    try:
        await p.a.h.start("wf")
        (task,) = await p.converted()
        assert p.b.namespaces.find("g") is None
        await p.receiver._apply_retrying("a", task)
        assert p.replicator.pulls == ["a"] * arrives_at
        assert p.b.namespaces.get("g").id == p.a.ns.id
        p.b.h.ns = p.b.namespaces.get("g")
        assert await b_events(p, "wf") == [1, 2]
        assert (p.receiver.applied_from("a"), p.receiver.failed_from("a")) == (1, 0)
    finally:
        await p.a.h.close()
        await p.b.h.close()


@pytest.mark.parametrize("error", [StorageUnavailable("disk full: test"), ConditionFailed("raced: test")])
async def test_a_task_that_cannot_be_written_now_is_retried(pair: Pair, error: Exception) -> None:
    await pair.a.h.start("wf")
    (task,) = await pair.converted()
    pair.b.h.store.fail_next_commit(error)
    await pair.receiver._apply_retrying("a", task)
    assert await b_events(pair, "wf") == [1, 2]
    assert (pair.receiver.applied_from("a"), pair.receiver.failed_from("a")) == (1, 0)


async def test_a_gap_is_filled_from_the_source_and_an_incomplete_answer_is_unavailable(pair: Pair) -> None:
    a, b = pair.a, pair.b
    await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    *_, last = await pair.converted()
    pair.client.drop_last_event = True
    with pytest.raises(Unavailable, match=r"did not send events 1\.\.3"):
        await pair.receiver.apply("a", last)
    assert await b.h.current("wf") is None
    pair.client.drop_last_event = False
    await pair.receiver.apply("a", last)
    (request, _) = pair.client.history_requests
    assert (request.first_event_id, request.next_event_id, request.cluster_name) == (1, 4, "b")
    assert await b_events(pair, "wf") == [1, 2, 3, 4, 5]
    pair.peers.fake = None  # no address for a: unavailable, to be retried
    await a.h.signal("wf")
    await a.h.signal("wf")
    *_, later = await pair.converted()
    with pytest.raises(Unavailable, match="no address for cluster a"):
        await pair.receiver.apply("a", later)


# ---------------------------------------------------------------------- refused and counted
def malformed(task: rpb.ReplicationTask, how: str) -> rpb.ReplicationTask:
    out = rpb.ReplicationTask()
    out.CopyFrom(task)
    if how == "gap-inside":
        out.events.events[-1].event_id += 1
    elif how == "event-id-0":
        for event in out.events.events:
            event.event_id -= 1
    elif how == "unknown-type":
        out.task.type = TaskType.TASK_TYPE_USER_TIMER
    elif how == "unknown-event":  # a new event that no applier knows
        last = out.events.events[-1]
        unknown = EventType.EVENT_TYPE_UNSPECIFIED
        out.events.events.add(event_id=last.event_id + 1, version=last.version, event_type=unknown)
    return out


async def test_malformed_tasks_are_refused_and_counted_and_the_rest_of_the_message_applied(pair: Pair) -> None:
    a = pair.a
    await a.h.start("wf1")
    await a.h.start("wf2")
    await a.h.run_workflow_task(start_timer("t1"))  # wf1's task (the first scheduled)
    tasks = await pair.converted()
    wf1 = [t for t in tasks if t.task.workflow_id == "wf1"]
    wf2 = [t for t in tasks if t.task.workflow_id == "wf2"]
    message = [
        malformed(wf1[0], "gap-inside"),
        wf2[0],
        malformed(wf2[0], "unknown-type"),
        malformed(wf2[0], "event-id-0"),
        malformed(wf2[0], "unknown-event"),
    ]
    assert [e.event_id for e in message[0].events.events] == [1, 3]
    await pair.receiver._apply_all("a", message)
    assert await pair.b.h.current("wf1") is None
    assert await b_events(pair, "wf2") == [1, 2]
    assert (pair.receiver.applied_from("a"), pair.receiver.failed_from("a")) == (1, 4)
    # the stream goes on: wf1 arrives whole later
    await pair.receiver._apply_all("a", wf1)
    assert await b_events(pair, "wf1") == [1, 2, 3, 4, 5]


async def test_a_conflicting_history_is_refused_and_counted(pair: Pair) -> None:
    a = pair.a
    await a.h.start("wf")
    (task,) = await pair.converted()
    await pair.receiver._apply_retrying("a", task)
    other = rpb.ReplicationTask()
    other.CopyFrom(task)
    for event in other.events.events:
        event.version = 12
    await pair.receiver._apply_retrying("a", other)
    assert (pair.receiver.applied_from("a"), pair.receiver.failed_from("a")) == (1, 1)
    assert {e.version for e in await pair.b.h.events("wf")} == {1}


async def test_a_task_waiting_for_its_namespace_holds_the_stream_back_when_the_pull_fails() -> None:
    p = await open_receiving_pair(b_knows_the_namespace=False, arrives_at=99)
    try:

        async def unreachable(remote: str) -> int:
            raise Unavailable(f"cluster {remote} unreachable: test")

        p.replicator.pull = unreachable  # type: ignore[method-assign]
        await p.a.h.start("wf")
        tasks = await p.converted()
        p.client.responses = [rpb.ReplicationStreamResponse(tasks=tasks, high_watermark_task_id=tasks[-1].task.task_id)]
        with pytest.raises(Unavailable):
            await p.receiver._stream("a", 0, 0)
        # not applied, not acknowledged: the stream starts again from where it was
        assert p.receiver.applied_through.get(("a", 0), 0) == 0
        assert await p.b.h.store.get_metadata(applied_key("a", 0)) is None
        (call,) = p.client.calls
        assert [r.acked_task_id async for r in call.requests] == [0]
    finally:
        await p.a.h.close()
        await p.b.h.close()


# ---------------------------------------------------------------------- the stream and its watermark
async def test_a_stream_applies_acknowledges_and_stores_how_far_it_applied(pair: Pair) -> None:
    a, b, receiver = pair.a, pair.b, pair.receiver
    await a.h.start("wf")
    await a.h.signal("wf")
    tasks = await pair.converted()
    high = a.engine.shards[0].committed_through()
    pair.client.responses = [
        rpb.ReplicationStreamResponse(tasks=tasks[:1], high_watermark_task_id=tasks[0].task.task_id),
        rpb.ReplicationStreamResponse(tasks=tasks[1:], high_watermark_task_id=high),
        rpb.ReplicationStreamResponse(high_watermark_task_id=high - 1),  # a keepalive never moves it back
    ]
    assert await receiver._stream("a", 0, 0) == high
    assert await b_events(pair, "wf") == [1, 2, 3]
    assert receiver.applied_through[("a", 0)] == high
    assert await b.h.store.get_metadata(applied_key("a", 0)) == str(high)
    (call,) = pair.client.calls
    assert call.cancelled
    requests = [(r.cluster_name, r.shard_id, r.acked_task_id) async for r in call.requests]
    assert requests == [("b", 0, 0), ("b", 0, tasks[0].task.task_id), ("b", 0, high)]


async def test_wait_applied_waits_for_every_shards_watermark(pair: Pair) -> None:
    a, receiver = pair.a, pair.receiver
    await a.h.start("wf")
    tasks = await pair.converted()
    high = a.engine.shards[0].committed_through()
    assert await receiver.wait_applied("a", {}, 0) is True
    assert await receiver.wait_applied("a", {0: high}, 0.001) is False  # nothing applied yet: times out
    waiting = asyncio.create_task(receiver.wait_applied("a", {0: high}, 60))
    pair.client.responses = [rpb.ReplicationStreamResponse(tasks=tasks, high_watermark_task_id=high - 1)]
    await receiver._stream("a", 0, 0)
    assert not waiting.done()  # moved, but not far enough
    pair.client.responses = [rpb.ReplicationStreamResponse(high_watermark_task_id=high)]
    await receiver._stream("a", 0, high - 1)
    assert await waiting is True
    assert await receiver.wait_applied("a", {0: high}, 0) is True
    assert await receiver.wait_applied("a", {0: high, 1: 1}, 0.001) is False  # another shard has not


# ---------------------------------------------------------------------- metrics
async def test_the_lag_of_each_applied_task_is_kept_per_source_cluster(pair: Pair) -> None:
    receiver = pair.receiver
    await pair.a.h.start("wf")
    (task,) = await pair.converted()
    assert task.HasField("created_time")
    before = time.time_ns()
    await receiver.apply("a", task)
    lag = receiver.lags["a"][0]
    assert 0 <= lag <= (time.time_ns() - before) / 1e9 + (before - task.created_time.ToNanoseconds()) / 1e9
    future = rpb.ReplicationTask()
    future.CopyFrom(task)
    future.created_time.CopyFrom(Timestamp(seconds=int(time.time()) + 3600))  # a clock ahead: no negative lag
    await receiver.apply("a", future)
    assert receiver.lags["a"][1] == 0.0
    untimed = rpb.ReplicationTask()
    untimed.CopyFrom(task)
    untimed.ClearField("created_time")
    await receiver.apply("a", untimed)
    assert len(receiver.lags["a"]) == 2 and receiver.applied_from("a") == 3
