"""Durable timers come back from the outbox at start-up; this queue fires them on time."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from tempyral.common.clock import ts_ns
from tempyral.common.logs import ThrottledLog
from tempyral.common.retry import jittered_backoff_s
from tempyral.proto.internal_pb2 import Task

log = logging.getLogger(__name__)
MAX_CONCURRENT = 64
RETRY_FIRST_S = 1.0
RETRY_MAX_S = 60.0
RETRY_JITTER = 0.2


class TimerQueue:
    def __init__(self, execute: Callable[[Task], Awaitable[None]]) -> None:
        self._execute = execute
        self._heap: list[tuple[int, int, Task]] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._seq = 0
        self._failed_attempts: dict[int, int] = {}  # task id -> failed attempts in a row, while it keeps failing
        # (shard, task id) of the timers queued: a timer read again with the next window is queued once.
        self._queued: set[tuple[int, int]] = set()
        self._failures = ThrottledLog(log)

    def add(self, task: Task, at_ns: int | None = None) -> None:
        key = (task.shard_id, task.task_id)
        if key in self._queued:
            return
        self._queued.add(key)
        fire_at = at_ns if at_ns is not None else ts_ns(task.visibility_time)
        self._seq += 1
        heapq.heappush(self._heap, (fire_at, self._seq, task))
        if self._heap[0][2] is task:
            self._wakeup.set()

    def drop(self, unwanted: Callable[[Task], bool]) -> int:
        """Forget the timers `unwanted` picks (their shard moved to another node); how many."""
        keep = [item for item in self._heap if not unwanted(item[2])]
        dropped = len(self._heap) - len(keep)
        self._queued = {(item[2].shard_id, item[2].task_id) for item in keep}
        if dropped:
            heapq.heapify(keep)
            self._heap = keep
            self._wakeup.set()
        return dropped

    def start(self) -> None:
        self._runner = asyncio.create_task(self._run(), name="timer-queue")

    async def stop(self) -> None:
        if self._runner is not None:
            self._runner.cancel()
            try:
                await self._runner
            except asyncio.CancelledError:
                pass
        if self._running:
            await asyncio.wait(self._running, timeout=5)

    def __len__(self) -> int:
        return len(self._heap)

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            now = time.time_ns()
            while self._heap and self._heap[0][0] <= now:
                _, _, task = heapq.heappop(self._heap)
                self._queued.discard((task.shard_id, task.task_id))
                await self._slots.acquire()
                runner = asyncio.create_task(self._fire(task))
                self._running.add(runner)
                runner.add_done_callback(self._running.discard)
            delay = (self._heap[0][0] - now) / 1e9 if self._heap else None
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except TimeoutError:
                pass

    async def _fire(self, task: Task) -> None:
        try:
            await self._execute(task)
            self._failed_attempts.pop(task.task_id, None)
        except Exception as err:
            self._failures.failure("timer tasks failed; retrying with backoff", err)
            self.add(task, time.time_ns() + self._retry_delay_ns(task.task_id))
        finally:
            self._slots.release()

    def _retry_delay_ns(self, task_id: int) -> int:
        """1 s, doubling to 60 s, with jitter: a timer that keeps failing (say, on a full disk) waits ever longer,
        and timers that failed together do not all come back together."""
        attempts = self._failed_attempts.get(task_id, 0) + 1
        self._failed_attempts[task_id] = attempts
        return int(jittered_backoff_s(attempts, RETRY_FIRST_S, RETRY_MAX_S, jitter=RETRY_JITTER) * 1_000_000_000)
