"""Which node does what: shards go to live nodes by rendezvous hashing, each owned under a lease in the `shards`
table; a task queue is served by one live node, also by rendezvous hashing. Every node computes the same answer
from the same membership view, and a node that moved is told so by a fenced write (shards) or finds its queue's
pollers gone elsewhere (queues).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import grpc

from tempyral.cluster.client import peer_channel
from tempyral.history.executions import shard_id_for
from tempyral.matching.service import QueueKey
from tempyral.nodes.membership import Membership, View


def rendezvous(key: str, nodes: Sequence[str]) -> str:
    """The node with the highest hash of (node, key): when a node comes or goes, only its keys move."""
    return max(nodes, key=lambda node: _weight(node, key))


def balanced(shard_count: int, nodes: Sequence[str]) -> list[str]:
    """Each shard's node: its rendezvous favourite unless that node has its share already (shards / nodes; when
    they do not divide, the first nodes to reach it take one more), then its next favourite. Shards pick in id
    order, so every node computes the same plan, and a node coming or going moves few shards besides its own."""
    floor, extra = divmod(shard_count, len(nodes))  # `extra` nodes may take one more than `floor`
    load = dict.fromkeys(nodes, 0)
    plan: list[str] = []
    for shard_id in range(shard_count):
        key = f"shard/{shard_id}"
        ranked = sorted(nodes, key=lambda node: _weight(node, key), reverse=True)
        full = sum(1 for n in nodes if load[n] > floor)
        node = next(n for n in ranked if load[n] < floor or (load[n] == floor and full < extra))
        load[node] += 1
        plan.append(node)
    return plan


def _weight(node: str, key: str) -> bytes:
    return hashlib.blake2b(f"{node}\x00{key}".encode(), digest_size=8).digest()


class Ownership:
    """This node's view of who owns each shard and task queue, and channels to the other nodes."""

    def __init__(self, membership: Membership, shard_count: int) -> None:
        self.membership = membership
        self.node = membership.node
        self.shard_count = shard_count
        # shard id -> owner, as the `shards` table said at the last refresh (nodes/shards.py keeps it)
        self.shard_owners: dict[int, str] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._plan: list[str] = []
        self._plan_for: tuple[str, ...] = ()

    @property
    def view(self) -> View:
        return self.membership.view

    def live(self) -> tuple[str, ...]:
        return self.view.names or (self.node,)

    # ------------------------------------------------------------------ shards
    def shard_of(self, namespace_id: str, workflow_id: str) -> int:
        return shard_id_for(namespace_id, workflow_id, self.shard_count)

    def assigned(self, shard_id: int) -> str:
        """The live node the shard belongs on."""
        live = self.live()
        if self._plan_for != live:
            self._plan = balanced(self.shard_count, live)
            self._plan_for = live
        return self._plan[shard_id]

    def shard_owner(self, shard_id: int) -> str:
        """The node to send the shard's work to: its lease holder if that node is live, else where it belongs."""
        owner = self.shard_owners.get(shard_id, "")
        if owner and owner in self.view.names:
            return owner
        return self.assigned(shard_id)

    def workflow_owner(self, namespace_id: str, workflow_id: str) -> str:
        return self.shard_owner(self.shard_of(namespace_id, workflow_id))

    # ------------------------------------------------------------------ task queues
    def queue_owner(self, key: QueueKey) -> str:
        return rendezvous(f"queue/{key.namespace_id}/{key.task_type}/{key.name}", self.live())

    # ------------------------------------------------------------------ other nodes
    def address(self, node: str) -> str | None:
        """Where to call a live node's gRPC API (None: not a live node)."""
        return self.view.address_of(node)

    def channel(self, node: str) -> grpc.aio.Channel | None:
        """A channel to another live node (kept while its address stays the same)."""
        address = self.address(node)
        if address is None:
            return None
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = peer_channel(address)
        return channel

    async def close(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(None)
