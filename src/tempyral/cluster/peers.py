"""Channels to the remote clusters this one is connected to, kept in step with the cluster metadata."""

from __future__ import annotations

import asyncio

from tempyral.cluster.client import ReplicationClient
from tempyral.cluster.metadata import ClusterMetadata


class Peers:
    def __init__(self, clusters: ClusterMetadata) -> None:
        self.clusters = clusters
        self._clients: dict[str, ReplicationClient] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def client(self, name: str) -> ReplicationClient | None:
        """A client for the remote cluster `name` at its current address (None: no such remote)."""
        record = self.clusters.get(name)
        if record is None or name == self.clusters.name or not record.cluster_address:
            return None
        client = self._clients.get(name)
        if client is None or client.address != record.cluster_address:
            if client is not None:
                self._close_later(client)
            client = self._clients[name] = ReplicationClient(record.cluster_address)
        return client

    def _close_later(self, client: ReplicationClient) -> None:
        task = asyncio.get_running_loop().create_task(client.close())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
