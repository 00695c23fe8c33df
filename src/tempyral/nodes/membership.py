"""Who serves this cluster: one row per node in the database, refreshed by a heartbeat.

A node whose heartbeat is older than the membership timeout is gone. Staleness is judged with this node's clock
against the heartbeat the other node wrote with its own: nodes of one cluster must keep their clocks within a
fraction of the timeout (NTP does). A node that could not reach the database judges nobody until it has
heartbeated again for a whole timeout: after an outage every row looks old, and taking every shard then would only
make the nodes fight over them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tempyral.common.errors import StartupError
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.config import NodeSettings
from tempyral.persistence.store import MemberRow, Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class View:
    """The live nodes as this node sees them, by name."""

    members: tuple[MemberRow, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.node for m in self.members)

    def address_of(self, node: str) -> str | None:
        for m in self.members:
            if m.node == node:
                return m.address
        return None


class Membership:
    def __init__(
        self,
        store: Store,
        settings: NodeSettings,
        node: str,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.store = store
        self.settings = settings
        self.node = node
        self.session = uuid.uuid4().hex
        self._clock = clock
        self.view = View(())
        # Called after every refresh whose live set differs from the one before.
        self.listeners: list[Callable[[View], None]] = []
        # Called once when another process took this node's name: the node must stop.
        self.on_evicted: Callable[[str], None] = lambda reason: None
        self._healthy_since: int | None = None
        self._task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)
        self.address = ""
        self.http_address = ""

    @property
    def timeout_ns(self) -> int:
        return int(self.settings.member_timeout_s * 1e9)

    async def join(self, address: str, http_address: str) -> None:
        """Take this node's row; StartupError when a live node holds the name."""
        self.address, self.http_address = address, http_address
        now = self._clock()
        row = MemberRow(self.node, self.session, address, http_address, now, now)
        held = await self.store.join_member(row, now - self.timeout_ns)
        if held is not None:
            raise StartupError(
                f"node name {self.node} is taken by a running node (at {held.address}, last heartbeat "
                f"{(now - held.heartbeat_ns) / 1e9:.1f} s ago): give this node another --node-name, or stop that one"
            )
        self._healthy_since = now - self.timeout_ns  # judging at once: a joining node was not cut off
        await self.refresh()
        log.info("joined the cluster as node %s (%d live nodes: %s)", self.node, len(self.view.members), self._names())

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        await cancel_and_wait([self._task])
        self._task = None

    async def leave(self) -> None:
        """Remove this node's row: the others move its shards at once instead of after the timeout."""
        try:
            await self.store.leave_member(self.node, self.session)
        except Exception as err:  # the row goes stale anyway
            log.warning("could not leave the cluster cleanly: %s", err)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.settings.heartbeat_s)
            try:
                ours = await self.store.heartbeat_member(self.node, self.session, self._clock())
            except Exception as err:
                self._healthy_since = None
                self._failures.failure("membership heartbeats failed", err)
                continue
            if not ours:
                self.on_evicted(f"another process took node name {self.node}")
                return
            if self._healthy_since is None:
                self._healthy_since = self._clock()
                log.info("membership heartbeats succeed again")
            try:
                await self.refresh()
            except Exception as err:
                self._failures.failure("could not read the cluster's members", err)

    async def refresh(self) -> View:
        rows = await self.store.list_members()
        now = self._clock()
        judging = self._healthy_since is not None and now - self._healthy_since >= self.timeout_ns
        before = set(self.view.names)
        live = tuple(
            m
            for m in rows
            if m.node == self.node or now - m.heartbeat_ns < self.timeout_ns or (not judging and m.node in before)
        )
        view = View(live)
        if view.names != self.view.names:
            gone = before - set(view.names)
            joined = set(view.names) - before
            if self.view.members:
                log.info(
                    "cluster members now %s (joined: %s, gone: %s)",
                    ", ".join(view.names),
                    ", ".join(sorted(joined)) or "-",
                    ", ".join(sorted(gone)) or "-",
                )
            self.view = view
            for listener in self.listeners:
                listener(view)
        else:
            self.view = view  # addresses may have changed
        return view

    def _names(self) -> str:
        return ", ".join(self.view.names)
