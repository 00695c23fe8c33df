"""Replication status and DLQ on cluster b, fed with what cluster a's sender converts (tests/support/xdc_pair.py):
the lag arithmetic of GetReplicationStatus (tasks and seconds, connected, per namespace), the receiver's DLQ
(a task that keeps failing goes there, the stream goes on, re-apply and purge), and the /metrics text."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tempyral.cluster import receiver as receiver_module
from tempyral.cluster.receiver import StreamProgress
from tempyral.cluster.sender import HistorySender
from tempyral.cluster.status import ReplicationStatus
from tempyral.proto import replication_pb2 as rpb
from tests.unit.test_replication_receiver import Pair, b_events, malformed, open_receiving_pair

pytestmark = pytest.mark.asyncio(loop_scope="function")
NOW, MONO = 1_000_000.0, 500.0


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(receiver_module, "jittered_backoff_s", lambda *args, **kwargs: 0.0)


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[Pair]:
    p = await open_receiving_pair()
    try:
        yield p
    finally:
        await p.a.h.close()
        await p.b.h.close()


def status_of_b(pair: Pair) -> ReplicationStatus:
    b = pair.b
    sender = HistorySender(b.engine.executions, b.h.store, b.namespaces, b.clusters)
    return ReplicationStatus(b.clusters, b.namespaces, sender, pair.receiver, 1, lambda: NOW, lambda: MONO)


async def test_lag_in_tasks_and_seconds_from_what_the_peer_announced_and_what_was_applied(pair: Pair) -> None:
    receiver, status = pair.receiver, status_of_b(pair)
    receiver.applied_through[("a", 0)] = 60
    receiver.progress[("a", 0)] = StreamProgress(announced=100, last_message=MONO - 0.5, behind_since=NOW - 2.5)
    snapshot = status.snapshot()
    (inbound,) = snapshot.inbound
    assert (inbound.cluster_name, inbound.connected, inbound.tasks_lag, inbound.lag_seconds) == ("a", True, 40, 2.5)
    assert (dict(inbound.applied_task_id), dict(inbound.announced_task_id)) == ({0: 60}, {0: 100})
    (entry,) = snapshot.namespaces  # the namespace is active in a: its lag here is the stream's from a
    assert (entry.peer_cluster, entry.active_cluster, entry.tasks_lag, entry.lag_seconds) == ("a", "a", 40, 2.5)
    assert entry.replication_state == "normal"
    # caught up: no lag; silent for longer than keepalives allow: not connected, and behind since the last message
    receiver.applied_through[("a", 0)] = 100
    receiver.progress[("a", 0)].behind_since = None
    (inbound,) = status.snapshot().inbound
    assert (inbound.connected, inbound.tasks_lag, inbound.lag_seconds) == (True, 0, 0.0)
    receiver.progress[("a", 0)] = StreamProgress(announced=120, last_message=MONO - 10.0)
    (inbound,) = status.snapshot().inbound
    assert (inbound.connected, inbound.tasks_lag, inbound.lag_seconds) == (False, 20, 10.0)
    # a cut link announces nothing new: it never reads as caught up, it is behind since its last message
    receiver.applied_through[("a", 0)] = 120
    (inbound,) = status.snapshot().inbound
    assert (inbound.connected, inbound.tasks_lag, inbound.lag_seconds) == (False, 0, 10.0)
    with pytest.raises(Exception, match="not found"):
        status.snapshot("no-such-namespace")


async def test_the_stream_records_what_the_sender_announced_and_when_it_fell_behind(pair: Pair) -> None:
    await pair.a.h.start("wf")
    (task,) = await pair.converted()
    pair.client.responses = [
        rpb.ReplicationStreamResponse(tasks=[task], high_watermark_task_id=10, shard_last_task_id=30),
        rpb.ReplicationStreamResponse(high_watermark_task_id=30, shard_last_task_id=30),
    ]
    assert await pair.receiver._stream("a", 0, 0) == 30
    progress = pair.receiver.progress[("a", 0)]
    assert progress.announced == 30 and progress.behind_since is None
    entry = status_of_b(pair).snapshot().namespaces[0]
    assert entry.last_applied_task_id == task.task.task_id


async def test_a_task_that_keeps_failing_goes_to_the_dlq_and_the_stream_goes_on(
    pair: Pair, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    a = pair.a
    await a.h.start("wf1")
    await a.h.start("wf2")
    wf1, wf2 = await pair.converted()
    calls = 0
    original = pair.b.applier.apply_events

    async def broken_for_wf1(namespace_id: str, workflow_id: str, *args: object, **kwargs: object) -> bool:
        nonlocal calls
        if workflow_id == "wf1":
            calls += 1
            raise RuntimeError("apply keeps failing")
        return await original(namespace_id, workflow_id, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pair.b.applier, "apply_events", broken_for_wf1)
    with caplog.at_level(logging.ERROR):
        await pair.receiver._apply_all("a", [wf1, wf2, malformed(wf2, "unknown-type")], shard_id=0)
    assert calls == receiver_module.APPLY_ATTEMPTS  # tried a bounded number of times
    assert await b_events(pair, "wf2") == [1, 2]  # the rest of the message applied
    rows = await pair.b.h.store.list_replication_dlq("a", (-1, -1), 10)
    assert [(r.workflow_id, r.attempts) for r in rows] == [("wf1", 5), ("wf2", 1)]
    assert "RuntimeError: apply keeps failing" in rows[0].error and "ValueError" in rows[1].error
    assert rpb.ReplicationTask.FromString(rows[0].data) == wf1
    assert "enqueued to the DLQ: source cluster a, shard 0, workflow wf1" in caplog.text
    status = status_of_b(pair)
    assert status.snapshot().inbound[0].dlq_size == 2 and status.snapshot().namespaces[0].dlq_size == 2
    # re-apply: wf1 now applies and leaves; the malformed one fails again and stays with its new error
    monkeypatch.setattr(pair.b.applier, "apply_events", original)
    applied, failed = await pair.receiver.dlq_reapply("a")
    assert [r.workflow_id for r in applied] == ["wf1"] and [(r.workflow_id, r.attempts) for r in failed] == [("wf2", 2)]
    assert await b_events(pair, "wf1") == [1, 2]
    assert status.snapshot().inbound[0].dlq_size == 1
    assert await pair.receiver.dlq_purge("a", [12345]) == 0  # no such task
    assert await pair.receiver.dlq_purge("a") == 1
    assert status.snapshot().inbound[0].dlq_size == 0
    assert await pair.b.h.store.list_replication_dlq("a", (-1, -1), 10) == []


async def test_metrics_are_valid_prometheus_text_named_as_the_reference(pair: Pair) -> None:
    receiver, status = pair.receiver, status_of_b(pair)
    await pair.a.h.start("wf")
    (task,) = await pair.converted()
    await receiver._apply_all("a", [task, malformed(task, "unknown-type")])
    receiver.lags["a"].clear()
    receiver.lags["a"].extend(float(i) for i in range(10, 0, -1))
    receiver.applied_through[("a", 0)] = 7
    receiver.progress[("a", 0)] = StreamProgress(announced=9, last_message=MONO, behind_since=NOW - 1.5)
    ns = pair.b.ns.name
    text = status.render_metrics()
    lines = text.splitlines()
    for line in lines:  # every sample is "name{labels} number" and its family was declared
        if not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            float(value)
            assert f"# TYPE {name.split('{')[0].removesuffix('_count')} " in text
    expected = [
        'replication_latency{source_cluster="a",quantile="0.5"} 6.000000',
        'replication_latency{source_cluster="a",quantile="0.99"} 10.000000',
        'replication_latency_count{source_cluster="a"} 10',
        f'replication_tasks_applied{{namespace="{ns}",source_cluster="a"}} 1',
        f'replication_tasks_failed{{namespace="{ns}",source_cluster="a"}} 1',
        f'replication_tasks_lag{{namespace="{ns}",source_cluster="a"}} 2',
        f'replication_lag_seconds{{namespace="{ns}",source_cluster="a"}} 1.500000',
        f'replication_task_send_backlog{{namespace="{ns}",target_cluster="a"}} 0',
        f'replication_dlq_size{{namespace="{ns}",source_cluster="a"}} 1',
        f'replication_last_applied_task_id{{namespace="{ns}",source_cluster="a"}} {task.task.task_id}',
    ]
    for line in expected:
        assert line in lines
