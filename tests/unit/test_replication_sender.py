"""The sending side of history replication: the replication tasks a change of a replicated namespace writes
(executions._add_replication_tasks), the shard's commit watermark (Shard.committed_through), and HistorySender
(cluster/sender.py) reading them in id order from memory or the store, converting them, and deleting the rows
every remote cluster acknowledged. Cluster a (tests/support/xdc_pair.py) knows b and c; the global namespace g
replicates between a and b only."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

import pytest
import pytest_asyncio
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.cluster.sender import BATCH, HistorySender, ack_key, version_items
from tempyral.history import version_history
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.store import Transaction
from tempyral.proto import replication_pb2 as rpb
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskCategory, TaskType, VersionHistoryItem
from tests.support.history_harness import eventually, schedule_activity
from tests.support.memory_store import MemoryStore
from tests.support.xdc_pair import Cluster, continue_as_new, global_record, open_cluster

pytestmark = pytest.mark.asyncio(loop_scope="function")
REPLICATION = TaskCategory.TASK_CATEGORY_REPLICATION
HISTORY = TaskType.TASK_TYPE_REPLICATE_HISTORY
ACTIVITY = TaskType.TASK_TYPE_REPLICATE_ACTIVITY


class Source:
    """Cluster a with its sender, which hears of every replication task committed while it exists."""

    def __init__(self, a: Cluster) -> None:
        self.a = a
        self.senders: list[HistorySender] = []
        self.sender = self.new_sender()
        a.engine.on_replication_tasks = self._announced

    def new_sender(self) -> HistorySender:
        """A sender as a restarted server has it: it remembers nothing committed before."""
        self.sender = HistorySender(self.a.engine.executions, self.a.h.store, self.a.namespaces, self.a.clusters)
        self.senders.append(self.sender)
        return self.sender

    def _announced(self, tasks: list[Task]) -> None:
        self.a.replication.extend(tasks)
        self.sender.notify(tasks)

    @property
    def shard_committed_through(self) -> int:
        return self.a.engine.shards[0].committed_through()

    async def rows(self) -> list[int]:
        return [task_id for task_id, _ in await self.a.h.store.load_tasks(0, REPLICATION)]


@pytest_asyncio.fixture(loop_scope="function")
async def src() -> AsyncIterator[Source]:
    a = await open_cluster("a", ("b", "c"), global_record(NamespaceRegistry(MemoryStore(), "a"), "a"))
    source = Source(a)
    try:
        yield source
    finally:
        for sender in source.senders:
            await sender.stop()
        await a.h.close()


def shape(tasks: list[Task]) -> list[tuple[str, str, int, int]]:
    """(type, workflow id, event id, next event id / attempt)"""
    return [
        (
            TaskType.Name(t.type).removeprefix("TASK_TYPE_"),
            t.workflow_id,
            t.event_id,
            t.next_event_id if t.type == HISTORY else t.attempt,
        )
        for t in tasks
    ]


# ---------------------------------------------------------------------- what a change writes
async def test_a_change_writes_one_history_task_per_run_with_new_events(src: Source) -> None:
    a = src.a
    first = await a.h.start("wf")
    await a.h.run_workflow_task(continue_as_new())  # closes the run and starts the next in one transaction
    second = await a.h.current_run_id("wf")
    assert shape(a.replication) == [
        ("REPLICATE_HISTORY", "wf", 1, 3),
        ("REPLICATE_HISTORY", "wf", 3, 4),  # the task started
        ("REPLICATE_HISTORY", "wf", 4, 6),  # completed, continued as new
        ("REPLICATE_HISTORY", "wf", 1, 2),  # the next run: started (its first task waits out a backoff)
    ]
    assert [t.run_id for t in a.replication] == [first, first, first, second]
    assert {t.version for t in a.replication} == {1} and {t.category for t in a.replication} == {REPLICATION}
    # they are outbox rows of the replication category, written with the change
    assert await src.rows() == [t.task_id for t in a.replication]
    # a change that writes no event writes no history task
    async with a.engine.executions.update(a.ns.id, "wf") as change:
        change.ms.state.memo.fields["k"].data = b"v"  # state only
        await change.commit()
    assert len(a.replication) == 4


async def test_an_activity_is_replicated_when_its_attempt_state_changes(src: Source) -> None:
    a = src.a
    await a.h.start("wf")
    await a.h.run_workflow_task(schedule_activity("a1"))
    assert ACTIVITY not in {t.type for t in a.replication}  # scheduled: its events say all there is
    sent = len(a.replication)
    resp = await a.h.poll_activity_task()
    assert shape(a.replication[sent:]) == [("REPLICATE_ACTIVITY", "wf", 5, 1)]  # started; no event written
    sent = len(a.replication)
    await a.engine.activities.heartbeat(a.ns, ws.RecordActivityTaskHeartbeatRequest(task_token=resp.task_token))
    assert shape(a.replication[sent:]) == [("REPLICATE_ACTIVITY", "wf", 5, 1)]
    sent = len(a.replication)
    failure = failure_pb.Failure(message="boom")
    failure.application_failure_info.type = "Oops"
    await a.engine.activities.fail(
        a.ns, ws.RespondActivityTaskFailedRequest(task_token=resp.task_token, failure=failure)
    )
    assert shape(a.replication[sent:]) == [("REPLICATE_ACTIVITY", "wf", 5, 2)]  # a retry: attempt 2, no event
    sent = len(a.replication)
    await a.h.signal("wf")  # a change that leaves the activity alone
    assert shape(a.replication[sent:]) == [("REPLICATE_HISTORY", "wf", 6, 8)]


@pytest.mark.parametrize("clusters", [(), ("a",)], ids=["local", "global-on-one-cluster"])
async def test_a_namespace_on_one_cluster_writes_no_replication_task(clusters: tuple[str, ...]) -> None:
    if clusters:
        record = global_record(NamespaceRegistry(MemoryStore(), "a"), "a", clusters)
    else:
        record = NamespaceRegistry(MemoryStore(), "a").new_record("g")
    a = await open_cluster("a", ("b",), record)
    try:
        assert a.ns.is_global == bool(clusters)
        await a.h.start("wf")
        await a.h.run_workflow_task(schedule_activity("a1"))
        assert (await a.h.poll_activity_task()).task_token
        assert a.replication == []
        assert await a.h.store.load_tasks(0, REPLICATION) == []
    finally:
        await a.h.close()


# ---------------------------------------------------------------------- the commit watermark
async def test_nothing_is_read_past_a_commit_still_under_way(src: Source, monkeypatch: pytest.MonkeyPatch) -> None:
    a = src.a
    await a.h.start("slow")
    await a.h.start("fast")
    await src.sender.start()
    shard = a.engine.shards[0]
    assert shard.committed_through() == shard.next_task_id - 1
    caught_up = shard.committed_through()  # a stream that has everything so far: served from memory
    await a.h.signal("fast")
    gate, held = asyncio.Event(), asyncio.Event()
    commit = a.h.store.commit

    async def gated(txn: Transaction) -> None:
        if txn.executions and txn.executions[0].workflow_id == "slow":
            held.set()
            await gate.wait()
        await commit(txn)

    monkeypatch.setattr(a.h.store, "commit", gated)
    first_of_slow = shard.next_task_id
    slow = asyncio.create_task(a.h.signal("slow"))
    await held.wait()
    await a.h.signal("fast")  # commits (and is announced) after the slow one took its ids
    before_slow, after_slow = a.replication[-2], a.replication[-1]
    assert before_slow.task_id < first_of_slow < after_slow.task_id
    assert shard.committed_through() == first_of_slow - 1
    # from memory: the fast task after the slow one waits for it
    assert await src.sender._next(0, caught_up) == ([before_slow], first_of_slow - 1)
    assert await src.sender._next(0, first_of_slow - 1) == ([], first_of_slow - 1)
    # from the store (a sender that remembers nothing): the same
    behind = src.new_sender()
    await behind.start()
    tasks, high = await behind._next(0, 0)
    assert tasks == a.replication[:3] and high == first_of_slow - 1
    gate.set()
    await slow
    assert shard.committed_through() == shard.next_task_id - 1
    tasks, high = await behind._next(0, high)
    assert [t.workflow_id for t in tasks] == ["slow", "fast"] and high == shard.committed_through()


async def test_a_failed_commit_does_not_hold_the_watermark_back(src: Source) -> None:
    a = src.a
    await a.h.start("wf")
    a.h.store.fail_next_commit()
    with pytest.raises(Exception, match="cannot take writes"):
        await a.h.signal("wf")
    shard = a.engine.shards[0]
    assert shard.committed_through() == shard.next_task_id - 1


# ---------------------------------------------------------------------- reading the outbox
async def test_a_stream_that_keeps_up_is_served_from_memory(src: Source) -> None:
    a = src.a
    await src.sender.start()
    await a.h.start("wf")
    await a.h.signal("wf")
    # the rows are gone from the store, yet the tasks are served: from memory
    await a.h.store.delete_tasks_through(0, a.engine.shards[0].range_id, REPLICATION, 1 << 62)
    tasks, high = await src.sender._next(0, a.replication[0].task_id - 1)
    assert tasks == a.replication and high == src.shard_committed_through
    tasks, high = await src.sender._next(0, a.replication[0].task_id)
    assert tasks == a.replication[1:]
    assert await src.sender._next(0, high) == ([], high)


async def test_a_stream_behind_the_floor_reads_the_store(src: Source) -> None:
    a = src.a
    await a.h.start("wf")
    await a.h.signal("wf")
    sender = src.new_sender()  # restarted: the tasks above were committed before it remembered any
    await sender.start()
    rows = await src.rows()
    tasks, high = await sender._next(0, 0)
    assert [t.task_id for t in tasks] == rows == [t.task_id for t in a.replication]
    assert high == src.shard_committed_through  # nothing is missing up to the floor
    await a.h.signal("wf")  # above the floor: from memory
    await a.h.store.delete_tasks_through(0, a.engine.shards[0].range_id, REPLICATION, 1 << 62)
    tasks, high = await sender._next(0, high)
    assert tasks == a.replication[2:] and high == src.shard_committed_through


@pytest.mark.parametrize("remembered", [True, False], ids=["memory", "store"])
async def test_tasks_go_in_batches_of_a_hundred(src: Source, remembered: bool) -> None:
    a = src.a
    await src.sender.start()
    cursor = src.shard_committed_through
    await a.h.start("wf")
    for _ in range(BATCH + 20):
        await a.h.signal("wf")
    sender = src.sender
    if not remembered:
        sender = src.new_sender()
        await sender.start()
    ids = [t.task_id for t in a.replication]
    tasks, high = await sender._next(0, cursor)
    assert [t.task_id for t in tasks] == ids[:BATCH] and high == ids[BATCH - 1]
    tasks, high = await sender._next(0, high)
    assert [t.task_id for t in tasks] == ids[BATCH:] and high == src.shard_committed_through


# ---------------------------------------------------------------------- converting
async def test_a_history_task_carries_the_runs_events_from_the_cache_or_the_store(src: Source) -> None:
    a = src.a
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(schedule_activity("a1"))
    last = a.replication[-1]
    converted = await src.sender._convert(last, "b")
    assert converted is not None and converted.task == last
    assert converted.created_time == last.visibility_time
    stored = (await a.h.stored_events("wf"))[last.event_id - 1 : last.next_event_id - 1]
    assert list(converted.events.events) == stored and [e.event_id for e in stored] == [4, 5]
    assert list(converted.version_history) == [VersionHistoryItem(event_id=5, version=1)]
    entry = a.h.cache_entry("wf", run_id)
    assert entry is not None
    a.h.shard("wf").evict_state(entry)  # not cached: read from the store
    again = await src.sender._convert(last, "b")
    assert again == converted


async def test_nothing_is_converted_for_a_cluster_the_namespace_does_not_list_or_a_run_gone(src: Source) -> None:
    a = src.a
    await a.h.start("wf")
    (task,) = a.replication
    assert await src.sender._convert(task, "c") is None  # c is a remote of a's, but not one of g's clusters
    unknown = Task()
    unknown.CopyFrom(task)
    unknown.namespace_id = "no-such-namespace"
    assert await src.sender._convert(unknown, "b") is None
    other = Task()
    other.CopyFrom(task)
    other.type = TaskType.TASK_TYPE_USER_TIMER
    assert await src.sender._convert(other, "b") is None
    gone = Task()
    gone.CopyFrom(task)
    gone.run_id = "deleted-run"
    assert await src.sender._convert(gone, "b") is None


async def test_an_activity_task_carries_the_activitys_state_as_it_is_now(src: Source) -> None:
    a = src.a
    await a.h.start("wf")
    await a.h.run_workflow_task(schedule_activity("a1"))
    resp = await a.h.poll_activity_task()
    started = a.replication[-1]
    assert started.type == ACTIVITY
    details = common.Payloads(payloads=[common.Payload(data=b"50%")])
    await a.engine.activities.heartbeat(
        a.ns, ws.RecordActivityTaskHeartbeatRequest(task_token=resp.task_token, details=details)
    )
    converted = await src.sender._convert(started, "b")  # the older task sends the newer state
    assert converted is not None
    assert converted.activity == (await a.h.state("wf")).activities[5]
    assert converted.activity.heartbeat_details == details and not converted.HasField("events")
    await a.engine.activities.complete(a.ns, ws.RespondActivityTaskCompletedRequest(task_token=resp.task_token))
    assert await src.sender._convert(started, "b") is None  # gone: its completion is in the events


async def test_version_items_has_one_item_per_run_of_one_version() -> None:
    events = [history.HistoryEvent(event_id=i + 1, version=v) for i, v in enumerate([1, 1, 2, 2, 2, 11])]
    assert [(i.event_id, i.version) for i in version_items(events)] == [(2, 1), (5, 2), (6, 11)]
    assert version_items([]) == []
    assert version_items(events[2:4]) == [VersionHistoryItem(event_id=4, version=2)]
    # what the receiver gets agrees with the version history the events leave behind
    state = ExecutionState(next_event_id=1)
    for event in events:
        version_history.record(state, event.event_id, event.version)
    assert list(version_history.current(state).items) == version_items(events)


# ---------------------------------------------------------------------- the stream and its acknowledgements
class Receiver:
    """The receiving end of a stream: its requests (first the resume point, then acknowledgements)."""

    def __init__(self, sender: HistorySender, cluster: str, acked: int) -> None:
        self.cluster = cluster
        self.requests: asyncio.Queue[rpb.ReplicationStreamRequest] = asyncio.Queue()
        self.requests.put_nowait(rpb.ReplicationStreamRequest(cluster_name=cluster, shard_id=0, acked_task_id=acked))
        context: Any = None  # read only to refuse a stream
        self.responses = cast(
            AsyncGenerator[rpb.ReplicationStreamResponse, None], sender.stream(self._requests(), context)
        )

    async def _requests(self) -> AsyncIterator[rpb.ReplicationStreamRequest]:
        while True:
            yield await self.requests.get()

    def ack(self, task_id: int) -> None:
        self.requests.put_nowait(rpb.ReplicationStreamRequest(cluster_name=self.cluster, acked_task_id=task_id))


async def test_a_stream_sends_what_follows_its_resume_point_and_rows_go_once_every_remote_acked(
    src: Source,
) -> None:
    a, sender = src.a, src.sender
    await sender.start()
    await a.h.start("wf")
    await a.h.signal("wf")
    await a.h.signal("wf")
    ids = [t.task_id for t in a.replication]
    b = Receiver(sender, "b", acked=ids[0])
    response = await anext(b.responses)
    assert [t.task.task_id for t in response.tasks] == ids[1:]
    assert response.high_watermark_task_id == src.shard_committed_through
    assert all(len(t.events.events) > 0 for t in response.tasks)
    c = Receiver(sender, "c", acked=0)
    # c is not one of g's clusters: it is told how far the shard goes, but gets none of g's tasks
    assert list((await anext(c.responses)).tasks) == []
    b.ack(ids[2])
    b.ack(ids[1])  # acknowledgements only move forward
    c.ack(ids[1])
    await eventually(lambda: sender._acks.get(("c", 0)) == ids[1] and sender._acks.get(("b", 0)) == ids[2])
    await sender.flush_acks()
    store = a.h.store
    assert (await store.get_metadata(ack_key("b", 0)), await store.get_metadata(ack_key("c", 0))) == (
        str(ids[2]),
        str(ids[1]),
    )
    assert await src.rows() == ids[2:]  # through the lower of the two
    c.ack(ids[2])
    await eventually(lambda: sender._acks.get(("c", 0)) == ids[2])
    await sender.flush_acks()
    assert await src.rows() == []
    await b.responses.aclose()
    await c.responses.aclose()


async def test_no_row_goes_while_a_remote_has_acknowledged_nothing(src: Source) -> None:
    a, sender = src.a, src.sender
    await sender.start()
    await a.h.start("wf")
    b = Receiver(sender, "b", acked=0)
    response = await anext(b.responses)
    b.ack(response.high_watermark_task_id)
    await eventually(lambda: sender._acks.get(("b", 0)) == response.high_watermark_task_id)
    await sender.flush_acks()
    assert await a.h.store.get_metadata(ack_key("b", 0)) == str(response.high_watermark_task_id)
    assert await src.rows() == [t.task_id for t in a.replication]  # c has not acknowledged anything
    await b.responses.aclose()
    # a restarted sender resumes from the stored acknowledgements
    again = HistorySender(a.engine.executions, a.h.store, a.namespaces, a.clusters)
    await again.start()
    try:
        assert again._acks == {("b", 0): response.high_watermark_task_id}
    finally:
        await again.stop()
