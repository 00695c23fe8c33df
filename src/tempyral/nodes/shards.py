"""Shards follow the live nodes: each node takes the shards that belong on it and gives up those that do not.

A shard is taken by acquiring its lease (its range id goes up, which fences off any earlier owner's writes) only
when nobody live holds it: its row names no owner (released), this node, or a node that is gone. A live holder
gives it up on its own when it sees the new membership, so a shard moves once, without two nodes taking it from
each other. A holder that keeps a shard past `takeover_s` after it belongs elsewhere loses it anyway.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.history.engine import HistoryEngine
from tempyral.nodes.membership import Membership, View
from tempyral.nodes.ownership import Ownership
from tempyral.persistence.store import Store

log = logging.getLogger(__name__)


class ShardController:
    def __init__(
        self, engine: HistoryEngine, store: Store, membership: Membership, ownership: Ownership, takeover_s: float
    ) -> None:
        self.engine = engine
        self.store = store
        self.membership = membership
        self.ownership = ownership
        self.takeover_s = takeover_s
        self._wanted_since: dict[int, float] = {}
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)
        membership.listeners.append(self._view_changed)

    def _view_changed(self, view: View) -> None:
        self._kick.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def hand_over_all(self) -> None:
        """Give up every shard (a node stopping): the others take them at once instead of after the timeout."""
        for shard in self.engine.shards:
            if shard.owned:
                range_id = shard.range_id
                self.engine.release_shard(shard.shard_id)
                try:
                    await self.store.release_shard(shard.shard_id, range_id)
                except Exception as err:
                    log.warning("could not release shard %d: %s", shard.shard_id, err)

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as err:
                self._failures.failure("could not balance shards", err)
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), self.membership.settings.heartbeat_s)
            except TimeoutError:
                pass

    async def tick(self) -> None:
        rows = await self.store.list_shards()
        owners = {r.shard_id: r.owner for r in rows}
        ranges = {r.shard_id: r.range_id for r in rows}
        self.ownership.shard_owners = owners
        live = set(self.membership.view.names)
        me = self.ownership.node
        now = time.monotonic()
        for shard in self.engine.shards:
            sid = shard.shard_id
            belongs_here = self.ownership.assigned(sid) == me
            if shard.owned:
                if ranges.get(sid) != shard.range_id:
                    shard.lose()  # another node acquired it
                elif not belongs_here:
                    range_id = shard.range_id
                    self.engine.release_shard(sid)
                    if await self.store.release_shard(sid, range_id):
                        owners[sid] = ""
                    log.info("shard %d handed over to node %s", sid, self.ownership.assigned(sid))
                continue
            if not belongs_here:
                self._wanted_since.pop(sid, None)
                continue
            holder = owners.get(sid, "")
            since = self._wanted_since.setdefault(sid, now)
            if holder in ("", me) or holder not in live or now - since >= self.takeover_s:
                started = time.monotonic()
                loaded = await self.engine.acquire_shard(sid)
                owners[sid] = me
                self._wanted_since.pop(sid, None)
                log.info(
                    "shard %d taken over%s: %d outstanding tasks loaded in %.2f s",
                    sid,
                    f" from node {holder}" if holder and holder != me else "",
                    loaded,
                    time.monotonic() - started,
                )
