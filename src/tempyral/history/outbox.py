"""Acknowledgement of outbox tasks that need no more work: their rows are deleted in batches.

A task acted on by a change is deleted in that change's transaction (`Change.task_done`); a stale
task (its run moved on, or closed) is acknowledged here instead (docs/DESIGN.md, invariant 4).
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Protocol

from tempyral.common.errors import ShardOwnershipLost
from tempyral.common.logs import ThrottledLog
from tempyral.proto.internal_pb2 import Task

log = logging.getLogger(__name__)
ACK_FLUSH_DELAY_S = 0.05


class TaskRowDeleter(Protocol):
    async def delete_tasks(self, shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> None: ...


class Outbox:
    def __init__(self, store: TaskRowDeleter, range_of: Callable[[int], int | None]) -> None:
        """`range_of`: the range a shard is held under here, None when this node does not own it (its rows are
        the new owner's to delete)."""
        self._store = store
        self._range_of = range_of
        # Told the task ids whose rows were deleted (nodes/matching.py forgets what it would send again).
        self.on_rows_deleted: Callable[[int, list[int]], None] = lambda shard_id, task_ids: None
        self._acks: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self._flusher: asyncio.Task[None] | None = None
        # Task failures come in floods when the database cannot take writes: logged a line per kind and interval.
        self.failures = ThrottledLog(log)

    def ack(self, task: Task) -> None:
        """The task needs no more work: delete its row soon (batched)."""
        self._acks[task.shard_id].append((task.category, task.task_id))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(ACK_FLUSH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        acks, self._acks = self._acks, defaultdict(list)
        for shard_id, keys in acks.items():
            range_id = self._range_of(shard_id)
            if range_id is None:
                continue
            try:
                await self._store.delete_tasks(shard_id, range_id, keys)
                self.on_rows_deleted(shard_id, [task_id for _, task_id in keys])
            except ShardOwnershipLost:
                continue  # moved to another node, which re-checks these tasks
            except Exception as err:
                self.failures.failure("could not delete finished tasks; they will be re-checked", err)

    async def stop(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()
