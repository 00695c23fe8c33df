"""Task queues: hand tasks to long-polling workers.

A task reaches a queue only after the transaction that made it committed, and its outbox row
stays in the database until a worker has started it (docs/DESIGN.md, invariant 5): what is held
here is an in-memory index over durable rows, rebuilt from the outbox at start-up. Pollers
waiting on an empty queue get tasks handed over directly (sync match).

A poll may accept only some items (`accept`): on a standby cluster pollers take query tasks only, as the
reference's matching turns their polls into query-only polls; the other items stay for pollers that take them.
`wake_selective` ends such polls early (empty), for instance when the namespace fails over to this cluster.

With several nodes, each node holds its own part of every queue: the workers connected to it poll there, and an
item of a queue no worker polls on this node goes to a node where one does (`Router`, nodes/matching.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from tempyral.metrics.matching import MatchingMetrics, QueueRow

log = logging.getLogger(__name__)

WORKFLOW = 1
ACTIVITY = 2
NEXUS = 3
# A queue that no worker polled for this long has no worker (a sticky queue is gone; with several nodes, its items
# go where a worker polls). A worker busy with all the tasks it may run does not poll meanwhile.
POLLER_GRACE_S = 10.0
# Describe lists the workers that polled a queue within this time (the reference's poller history).
POLLER_HISTORY_S = 300.0


class QueueKey(NamedTuple):
    namespace_id: str
    name: str
    task_type: int  # WORKFLOW, ACTIVITY or NEXUS


class Poller(NamedTuple):
    identity: str
    last_access_ns: int  # wall clock, for describe
    build_id: str


Accept = Callable[[Any], bool]


class Router(Protocol):
    """With several nodes (nodes/matching.py; absent on one node): places the items of queues that have no worker
    polling on this node with a node where one polls."""

    def forward(self, key: QueueKey, item: Any, sticky_normal_name: str) -> bool:
        """True when the item went to another node (nothing more to do here)."""
        ...

    def pollers_changed(self) -> None:
        """A queue got its first worker on this node, or lost its last one (ShutdownWorker)."""
        ...

    async def describe_elsewhere(self, key: QueueKey) -> tuple[list[Poller], int]:
        """The queue's recent pollers and backlog on the other nodes."""
        ...


@dataclass(eq=False, slots=True)
class _Waiter:
    future: asyncio.Future[Any]
    accept: Accept | None  # None: every item


@dataclass(eq=False)
class _Queue:
    backlog: deque[Any] = field(default_factory=deque)
    pollers: deque[_Waiter] = field(default_factory=deque)
    last_poll: float = 0.0
    sticky: bool = False
    normal_name: str = ""
    shut_down: bool = False
    seen: dict[str, Poller] = field(default_factory=dict)  # by identity


class Matching:
    def __init__(self, metrics: MatchingMetrics | None = None) -> None:
        self._queues: dict[QueueKey, _Queue] = {}
        self.router: Router | None = None
        self.metrics = metrics  # poll_success, poll_success_sync, poll_timeouts (metrics/matching.py)
        if metrics is not None:
            metrics.read_gauges(self._gauge_rows)

    def _queue(self, key: QueueKey) -> _Queue:
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = _Queue()
        return q

    def add(self, key: QueueKey, item: Any, sticky_normal_name: str = "", route: bool = True) -> None:
        """Queue an item; a sticky queue without a live worker sends it to its normal queue. With several nodes an
        item stays on this node when a worker polls its queue here, and goes to a node where one polls otherwise
        (`route` False: it stays here whatever, another node sent it here for this queue)."""
        if sticky_normal_name:
            q = self._queues.get(key)
            if q is not None and _alive(q):
                q.sticky = True
                q.normal_name = sticky_normal_name
                self._put(q, item)
                return
            if route and self.router is not None and self.router.forward(key, item, sticky_normal_name):
                return  # its worker polls another node
            key = QueueKey(key.namespace_id, sticky_normal_name, key.task_type)
        if route and self.router is not None and not self.has_poller(key) and self.router.forward(key, item, ""):
            return
        self._put(self._queue(key), item)

    @staticmethod
    def _put(q: _Queue, item: Any) -> None:
        if not _hand_over(q, item):
            q.backlog.append(item)

    def add_front(self, key: QueueKey, item: Any) -> None:
        """Put back an item a poller could not take, ahead of the others."""
        q = self._queue(key)
        if not _hand_over(q, item):
            q.backlog.appendleft(item)

    async def poll(self, key: QueueKey, timeout: float, accept: Accept | None = None) -> Any | None:
        """The next item of the queue that `accept` takes (any item without it), or None after `timeout`."""
        q = self._queue(key)
        if self.router is not None and key.task_type != NEXUS and not _alive(q):
            self.router.pollers_changed()
        q.last_poll = time.monotonic()
        if q.shut_down:
            q.shut_down = False  # a worker came back to this sticky queue
        if q.backlog:
            if accept is None:
                return self._polled(key, q, q.backlog.popleft(), sync=False)
            for i, item in enumerate(q.backlog):
                if accept(item):
                    del q.backlog[i]
                    return self._polled(key, q, item, sync=False)
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        waiter = _Waiter(fut, accept)
        q.pollers.append(waiter)
        expiry = loop.call_later(timeout, _expire, fut)
        cancelled = False
        try:
            return self._polled(key, q, await fut, sync=True)
        except asyncio.CancelledError:
            cancelled = True
            # The poller went away. A task handed to it in the meantime must not be lost.
            if fut.done() and not fut.cancelled() and fut.result() is not None:
                self.add_front(key, fut.result())
            raise
        finally:
            expiry.cancel()
            if not cancelled:  # a worker that went away is not one that may poll again soon
                q.last_poll = time.monotonic()
            try:
                q.pollers.remove(waiter)
            except ValueError:
                pass

    def _polled(self, key: QueueKey, q: _Queue, item: Any, sync: bool) -> Any:
        """Count a poll's outcome: a task from the backlog, one handed over as it came (sync match), or none."""
        if self.metrics is not None:
            # a sticky queue is counted under its normal queue's name, as the reference's sticky partition
            name = q.normal_name if q.sticky and q.normal_name else key.name
            labels = self.metrics.labels(key.namespace_id, name, key.task_type, q.sticky)
            if item is None:
                self.metrics.timed_out(labels)
            else:
                self.metrics.polled(labels, sync)
        return item

    def _gauge_rows(self) -> list[QueueRow]:
        return [
            (key.namespace_id, q.normal_name or key.name, key.task_type, q.sticky, len(q.pollers), len(q.backlog))
            for key, q in self._queues.items()
            if q.pollers or q.backlog
        ]

    def wake_selective(self, namespace_id: str) -> int:
        """End every poll of the namespace that accepts only some items (it returns None); how many."""
        woken = 0
        for key, q in self._queues.items():
            if key.namespace_id != namespace_id:
                continue
            for waiter in list(q.pollers):
                if waiter.accept is not None and not waiter.future.done():
                    waiter.future.set_result(None)
                    q.pollers.remove(waiter)
                    woken += 1
        return woken

    def live_keys(self) -> list[QueueKey]:
        """The workflow and activity queues a worker polls on this node now (or did within the grace time)."""
        return [key for key, q in self._queues.items() if key.task_type != NEXUS and _alive(q)]

    def take_stranded(self, select: Callable[[QueueKey, deque[Any]], bool]) -> list[tuple[QueueKey, Any]]:
        """Take the backlog of the workflow and activity queues no worker polls here any more: a sticky queue's
        items always (they belong on its normal queue, under whose key they are given), another queue's when
        `select` says (there is a node where a worker polls it)."""
        taken: list[tuple[QueueKey, Any]] = []
        for key, q in self._queues.items():
            if key.task_type == NEXUS or not q.backlog or _alive(q):
                continue
            if q.sticky and q.normal_name:
                key = QueueKey(key.namespace_id, q.normal_name, key.task_type)
            elif not select(key, q.backlog):
                continue
            taken.extend((key, item) for item in q.backlog)
            q.backlog.clear()
        return taken

    def worker_left(self, namespace_id: str, identity: str) -> None:
        """A worker said it stops (ShutdownWorker): the namespace's workflow and activity queues that no other
        worker polled within the grace time have no worker now (their polls end as the worker cancels them)."""
        horizon = time.time_ns() - int(POLLER_GRACE_S * 1e9)
        changed = False
        for key, q in self._queues.items():
            if key.namespace_id != namespace_id or key.task_type == NEXUS or identity not in q.seen:
                continue
            if any(other != identity and p.last_access_ns > horizon for other, p in q.seen.items()):
                continue
            q.last_poll = 0.0
            changed = True
        if changed and self.router is not None:
            self.router.pollers_changed()

    def shutdown_sticky(self, namespace_id: str, sticky_name: str) -> None:
        """A worker left: move its sticky backlog to the normal queue right away."""
        key = QueueKey(namespace_id, sticky_name, WORKFLOW)
        q = self._queues.get(key)
        if q is None:
            return
        q.shut_down = True
        q.last_poll = 0.0
        backlog, q.backlog = q.backlog, deque()
        if q.normal_name:
            normal = QueueKey(namespace_id, q.normal_name, WORKFLOW)
            for item in backlog:
                self.add(normal, item)
        for waiter in q.pollers:
            if not waiter.future.done():
                waiter.future.set_result(None)

    def backlog_size(self, key: QueueKey) -> int:
        q = self._queues.get(key)
        return len(q.backlog) if q else 0

    def has_poller(self, key: QueueKey) -> bool:
        q = self._queues.get(key)
        return q is not None and _alive(q)

    def note_poller(self, key: QueueKey, identity: str, build_id: str) -> None:
        """A worker polls the queue: remembered for describe."""
        self._queue(key).seen[identity] = Poller(identity, time.time_ns(), build_id)

    def recent_pollers(self, key: QueueKey) -> list[Poller]:
        """The workers that polled the queue lately, the most recent first."""
        q = self._queues.get(key)
        if q is None:
            return []
        horizon = time.time_ns() - int(POLLER_HISTORY_S * 1e9)
        for identity in [i for i, p in q.seen.items() if p.last_access_ns < horizon]:
            del q.seen[identity]
        return sorted(q.seen.values(), key=lambda p: p.last_access_ns, reverse=True)

    async def describe_everywhere(self, key: QueueKey) -> tuple[list[Poller], int]:
        """The workers that polled the queue lately, the most recent first, and its backlog: on every node (a
        worker is listed once, with its latest poll)."""
        pollers, backlog = self.recent_pollers(key), self.backlog_size(key)
        if self.router is None or key.task_type == NEXUS:
            return pollers, backlog
        others, elsewhere = await self.router.describe_elsewhere(key)
        latest: dict[str, Poller] = {}
        for poller in [*pollers, *others]:
            if poller.identity not in latest or poller.last_access_ns > latest[poller.identity].last_access_ns:
                latest[poller.identity] = poller
        return sorted(latest.values(), key=lambda p: p.last_access_ns, reverse=True), backlog + elsewhere


def _alive(q: _Queue) -> bool:
    """A worker polls the queue, or did within the grace time (it is busy with the last task it took)."""
    return not q.shut_down and bool(q.pollers or time.monotonic() - q.last_poll < POLLER_GRACE_S)


def _hand_over(q: _Queue, item: Any) -> bool:
    """Give `item` to the longest-waiting poller that takes it (the others keep their place)."""
    for i, waiter in enumerate(q.pollers):
        if not waiter.future.done() and (waiter.accept is None or waiter.accept(item)):
            del q.pollers[i]  # a poll that ended removes its own waiter
            waiter.future.set_result(item)
            return True
    return False


def _expire(fut: asyncio.Future[Any]) -> None:
    if not fut.done():
        fut.set_result(None)
