"""Task queues: FIFO, sync match, timeouts, cancellation never losing a task, sticky redirection."""

from __future__ import annotations

import asyncio
import time

from tempyral.matching.service import WORKFLOW, Matching, QueueKey

Q = QueueKey("ns", "q", WORKFLOW)


async def test_backlog_is_fifo() -> None:
    m = Matching()
    for item in ("a", "b", "c"):
        m.add(Q, item)
    assert [await m.poll(Q, 1), await m.poll(Q, 1), await m.poll(Q, 1)] == ["a", "b", "c"]


async def test_waiting_poller_gets_the_task_directly() -> None:
    m = Matching()
    poll = asyncio.create_task(m.poll(Q, 5))
    await asyncio.sleep(0)
    m.add(Q, "x")
    assert await poll == "x"
    assert m.backlog_size(Q) == 0


async def test_poll_times_out_empty() -> None:
    assert await Matching().poll(Q, 0.05) is None


async def test_cancelled_poller_does_not_lose_a_handed_task() -> None:
    m = Matching()
    poll = asyncio.create_task(m.poll(Q, 5))
    await asyncio.sleep(0)
    m.add(Q, "x")  # handed to the poller ...
    poll.cancel()  # ... which goes away before it runs
    await asyncio.gather(poll, return_exceptions=True)
    assert await m.poll(Q, 1) == "x"


async def test_sticky_queue_without_a_worker_sends_tasks_to_the_normal_queue() -> None:
    m = Matching()
    sticky = QueueKey("ns", "worker-1-sticky", WORKFLOW)
    m.add(sticky, "t1", sticky_normal_name="q")
    assert await m.poll(Q, 1) == "t1"
    # once a worker polls its sticky queue, tasks go there
    poll = asyncio.create_task(m.poll(sticky, 5))
    await asyncio.sleep(0)
    m.add(sticky, "t2", sticky_normal_name="q")
    assert await poll == "t2"


async def test_shutting_down_a_sticky_queue_moves_its_backlog() -> None:
    m = Matching()
    sticky = QueueKey("ns", "worker-1-sticky", WORKFLOW)
    assert await m.poll(sticky, 0.01) is None  # the worker polled once: the queue is alive
    m.add(sticky, "t1", sticky_normal_name="q")
    m.shutdown_sticky("ns", "worker-1-sticky")
    assert await m.poll(Q, 1) == "t1"
    m.add(sticky, "t2", sticky_normal_name="q")  # gone: straight to the normal queue
    assert await m.poll(Q, 1) == "t2"


def test_describe_lists_recent_pollers_newest_first_and_forgets_old_ones() -> None:
    m = Matching()
    m.note_poller(Q, "old-worker", "")
    m.note_poller(Q, "worker-a", "build-1")
    m.note_poller(Q, "worker-b", "")
    m.note_poller(Q, "worker-a", "build-2")  # the same worker polling again: one entry, updated
    queue = m._queues[Q]
    queue.seen["old-worker"] = queue.seen["old-worker"]._replace(last_access_ns=time.time_ns() - 301 * 10**9)
    pollers = m.recent_pollers(Q)
    assert [(p.identity, p.build_id) for p in pollers] == [("worker-a", "build-2"), ("worker-b", "")]
    assert m.recent_pollers(QueueKey("ns", "never-polled", WORKFLOW)) == []


async def test_a_worker_leaving_ends_the_queues_only_it_polled() -> None:
    m = Matching()
    shared, own = Q, QueueKey("ns", "only-a", WORKFLOW)
    for key, identities in ((shared, ("worker-a", "worker-b")), (own, ("worker-a",))):
        for identity in identities:
            m.note_poller(key, identity, "")
        assert await m.poll(key, 0.01) is None  # polled: alive for the grace time
        assert m.has_poller(key)
    m.worker_left("ns", "worker-a")
    assert not m.has_poller(own)
    assert m.has_poller(shared)  # worker-b polls it too
    m.worker_left("other-ns", "worker-b")
    assert m.has_poller(shared)


async def test_a_poll_its_worker_cancelled_does_not_keep_the_queue_alive() -> None:
    m = Matching()
    m._queue(Q).last_poll = time.monotonic() - 60  # the poll below started long ago
    poll = asyncio.create_task(m.poll(Q, 120))
    await asyncio.sleep(0)
    m._queue(Q).last_poll = time.monotonic() - 60
    assert m.has_poller(Q)  # waiting
    poll.cancel()
    await asyncio.gather(poll, return_exceptions=True)
    assert not m.has_poller(Q)
    assert await m.poll(Q, 0.01) is None  # a poll that ends by itself: its worker polls again soon
    assert m.has_poller(Q)
