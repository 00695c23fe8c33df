"""What runs once per cluster, not once per node: namespace replication, Nexus endpoint replication and automatic
failover (their pulls and probes would otherwise be made by every node, and two nodes could fail one namespace over
at once). They run on the node that owns shard 0: a shard has one owner at a time under its fenced lease, and
when that node leaves or dies the shard, and these with it, move to another node. With one process (SQLite) that
process owns every shard, so they run there from the start.

While shard 0 is moving (after a node died: until the membership timeout and the takeover) nobody runs them: the
pulls are delayed, never lost (the next pull asks from the start).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait

log = logging.getLogger(__name__)
LEADER_SHARD = 0


@dataclass(frozen=True, slots=True)
class Service:
    name: str
    start: Callable[[], None]
    stop: Callable[[], Awaitable[None]]


class ClusterWide:
    def __init__(self, owned: Callable[[int], bool], several_nodes: bool = False) -> None:
        """`owned(shard_id)`: whether this node holds the shard's lease now."""
        self._owned = owned
        self._say = log.info if several_nodes else log.debug
        self._services: list[Service] = []
        self._ready = False
        self.running = False
        self._lock = asyncio.Lock()  # one start or stop at a time, in the order the moves came
        self._pending: set[asyncio.Task[None]] = set()
        self._failures = ThrottledLog(log)

    def add(self, name: str, start: Callable[[], None], stop: Callable[[], Awaitable[None]]) -> None:
        self._services.append(Service(name, start, stop))

    async def ready(self) -> None:
        """The server serves: from now on they run whenever this node owns shard 0."""
        self._ready = True
        await self._settle()

    def shard_moved(self, shard_id: int) -> None:
        """HistoryEngine.on_shard_acquired / on_shard_released."""
        if shard_id != LEADER_SHARD or not self._ready:
            return
        task = asyncio.get_running_loop().create_task(self._settle_logged())
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _settle_logged(self) -> None:
        try:
            await self._settle()
        except Exception as err:
            self._failures.failure("could not start or stop the cluster-wide replication loops", err)

    async def _settle(self) -> None:
        async with self._lock:
            wanted = self._ready and self._owned(LEADER_SHARD)
            if wanted == self.running:
                return
            if wanted:
                for service in self._services:
                    service.start()
                self.running = True
                self._say("this node runs %s for the cluster", ", ".join(s.name for s in self._services))
            else:
                self.running = False
                for service in reversed(self._services):
                    await service.stop()
                self._say("this node no longer runs %s for the cluster", ", ".join(s.name for s in self._services))

    async def stop(self) -> None:
        self._ready = False
        await cancel_and_wait(list(self._pending))
        await self._settle()
