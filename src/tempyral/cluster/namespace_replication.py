"""Namespace replication, pulled: every connected remote cluster is asked about twice a second for the
global namespace records changed since the last answer, and each is applied last-writer-wins
(NamespaceRegistry.apply_replicated). The reference pulls its namespace queue about once a second.

A restart asks again from the beginning: applying a record twice changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import grpc

from tempyral.cluster.client import peer_error
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.peers import Peers
from tempyral.cluster.pull_loops import PullLoops
from tempyral.common.logs import ThrottledLog
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.proto.internal_pb2 import NamespaceRecord

log = logging.getLogger(__name__)
CATCH_UP_S = 10.0  # how long a cluster taking over a namespace waits for the old active's history


class NamespaceReplicator:
    def __init__(self, clusters: ClusterMetadata, namespaces: NamespaceRegistry, peers: Peers) -> None:
        self.clusters = clusters
        self.namespaces = namespaces
        self.peers = peers
        self._seen: dict[str, int] = {}  # remote cluster -> the last notification version it answered with
        self.loops = PullLoops(clusters, "namespace replication", self.pull, log)
        self._failures = ThrottledLog(log)
        self._locks: dict[str, asyncio.Lock] = {}
        # Waits until this cluster has applied a remote's replication tasks up to the given task ids per shard
        # (the history receiver's); None: no history replication.
        self.catch_up: Callable[[str, dict[int, int], float], Awaitable[bool]] | None = None

    def start(self) -> None:
        self.loops.start()

    async def stop(self) -> None:
        await self.loops.stop()

    async def pull(self, remote: str) -> int:
        """Ask `remote` once for what changed; how many records changed something here."""
        lock = self._locks.setdefault(remote, asyncio.Lock())
        async with lock:
            client = self.peers.client(remote)
            if client is None or not self.clusters.connected(remote):
                return 0
            response = await client.namespace_messages(self.clusters.name, self._seen.get(remote, 0))
            applied = 0
            for record in response.namespaces:
                if self._takes_over_from(remote, record):
                    await self._wait_for_history(remote, record, dict(response.shard_watermarks))
                if await self.namespaces.apply_replicated(record):
                    applied += 1
                    log.info(
                        "namespace %s replicated from cluster %s (config version %d, failover version %d, active %s)",
                        record.info.name,
                        remote,
                        record.config_version,
                        record.failover_version,
                        record.replication_config.active_cluster_name,
                    )
            self._seen[remote] = response.last_notification_version
            self.loops.answered(remote)
            return applied

    def _takes_over_from(self, remote: str, record: NamespaceRecord) -> bool:
        """Whether `record` fails the namespace over from `remote` to this cluster."""
        existing = self.namespaces.find_by_id(record.info.id)
        return (
            existing is not None
            and record.failover_version > existing.record.failover_version
            and record.replication_config.active_cluster_name == self.clusters.name
            and existing.active_cluster == remote
        )

    async def _wait_for_history(self, remote: str, record: NamespaceRecord, watermarks: dict[int, int]) -> None:
        """A failover issued on the old active: it stopped writing when it recorded the failover, so this cluster
        first applies everything it wrote (no conflicting write, nothing lost), for at most CATCH_UP_S."""
        if self.catch_up is None:
            return
        started = time.monotonic()
        caught_up = await self.catch_up(remote, watermarks, CATCH_UP_S)
        if caught_up:
            log.info(
                "namespace %s fails over from cluster %s to this one: its history caught up in %.3f s",
                record.info.name,
                remote,
                time.monotonic() - started,
            )
        else:
            log.warning(
                "namespace %s fails over from cluster %s to this one before its history caught up (%.0f s): "
                "writes of the old active may conflict",
                record.info.name,
                remote,
                CATCH_UP_S,
            )

    async def pull_all(self) -> None:
        """Ask every connected remote now (a replication task named a namespace not known here yet)."""
        for record in self.clusters.remotes():
            if record.is_connection_enabled:
                try:
                    await self.pull(record.cluster_name)
                except grpc.aio.AioRpcError as err:
                    self._failures.failure(
                        f"namespace replication from cluster {record.cluster_name} failed", peer_error(err)
                    )
