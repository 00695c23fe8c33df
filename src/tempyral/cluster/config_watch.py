"""Configuration changes made on one node seen by the others: namespaces (with their search attributes and
failover state), Nexus endpoints and remote clusters, when several nodes share one database.

Each node keeps those tables in memory. A change written on any node is followed by a new value of the config
stamp (cluster/shared_config.py); `ConfigWatch` reads the stamp every `interval_s` (one small read) and, when it
moved, reloads the three tables and applies what changed through the registries, whose listeners fire as they
do for a change made here (a namespace failed over elsewhere releases this node's parked tasks). With one process
on its own database (SQLite) nothing is built and nothing polls.
"""

from __future__ import annotations

import asyncio
import logging
import time

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.shared_config import Clock, SharedConfig
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.nexus.endpoints import EndpointRegistry
from tempyral.persistence.store import Store

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 0.4


class ConfigWatch:
    """Built before the registries load (from then on their changes are numbered by claims and announced);
    started once they have loaded."""

    def __init__(
        self,
        store: Store,
        namespaces: NamespaceRegistry,
        endpoints: EndpointRegistry,
        clusters: ClusterMetadata,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Clock = time.monotonic,
    ) -> None:
        self.shared = SharedConfig(store, clock)
        self.namespaces = namespaces
        self.endpoints = endpoints
        self.clusters = clusters
        self.interval_s = interval_s
        clusters.share(self.shared)
        namespaces.share(self.shared)
        endpoints.share(self.shared)
        self.reloads = 0  # polls that found the stamp moved
        self._task: asyncio.Task[None] | None = None
        self._failures = ThrottledLog(log)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="config-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])

    async def poll(self) -> bool:
        """Look at the stamp once and reload what has not been reloaded at it; whether anything was."""
        await self.shared.retry_stamp()
        stamp = await self.shared.current()
        # Clusters first: a namespace's clusters and an endpoint's namespace are then known when they arrive.
        reloaded = False
        for registry in (self.clusters, self.namespaces, self.endpoints):
            reloaded = await registry.reload_at(stamp) or reloaded
        if reloaded:
            self.reloads += 1
        return reloaded

    async def _run(self) -> None:
        while True:
            try:
                await self.poll()
            except asyncio.CancelledError:
                raise
            except Exception as err:  # the database away: the next poll tries again
                self._failures.failure("watching the database for configuration changes of other nodes", err)
            await asyncio.sleep(self.interval_s)
