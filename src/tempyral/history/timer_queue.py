"""Durable timers come back from the outbox at start-up; this queue fires them on time."""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable

from tempyral.common.clock import ts_ns
from tempyral.proto.internal_pb2 import Task

log = logging.getLogger(__name__)
MAX_CONCURRENT = 64


class TimerQueue:
    def __init__(self, execute: Callable[[Task], Awaitable[None]]) -> None:
        self._execute = execute
        self._heap: list[tuple[int, int, Task]] = []
        self._wakeup = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self._seq = 0

    def add(self, task: Task, at_ns: int | None = None) -> None:
        fire_at = at_ns if at_ns is not None else ts_ns(task.visibility_time)
        self._seq += 1
        heapq.heappush(self._heap, (fire_at, self._seq, task))
        if self._heap[0][2] is task:
            self._wakeup.set()

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
        except Exception:
            log.exception("timer task %d failed; retrying in 1s", task.task_id)
            self.add(task, time.time_ns() + 1_000_000_000)
        finally:
            self._slots.release()
