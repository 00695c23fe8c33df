"""How endpoint changes made on different clusters are merged, the same way on every cluster whatever order
they arrive in (nexus/endpoints.py applies it, nexus/endpoint_replication.py carries the changes).

- Of two states of one endpoint (one id), a deletion beats any live state (a deleted endpoint never comes back:
  its id is never used again), then the higher stamp wins, then the higher origin cluster name: a
  last-writer-wins register whose merge is a join, so every cluster ends with the same state.
- Stamps come from a hybrid logical clock: a change takes max(wall clock, highest stamp seen + 1), so a change
  made after seeing another always beats it, and concurrent ones are ordered by wall clock.
- Two live endpoints with one name (created on two clusters before either heard of the other): the one created
  first keeps the name (lower creation stamp, then lower id); the other is deleted where the conflict is found.
"""

from __future__ import annotations

import time

from tempyral.proto.nexus_replication_pb2 import ReplicatedEndpoint


def order(state: ReplicatedEndpoint) -> tuple[bool, int, str]:
    return state.deleted, state.stamp, state.origin_cluster


def supersedes(incoming: ReplicatedEndpoint, current: ReplicatedEndpoint | None) -> bool:
    """Whether `incoming` replaces `current` (None: not known here); an equal state is not a change."""
    return current is None or order(incoming) > order(current)


def keeps_name(a: ReplicatedEndpoint, b: ReplicatedEndpoint) -> bool:
    """Of two live endpoints with one name, whether `a` keeps it (and `b` is deleted)."""
    return (a.created_stamp, a.endpoint.id) < (b.created_stamp, b.endpoint.id)


class HybridClock:
    """Stamps in nanoseconds: never below the wall clock, always above every stamp seen."""

    def __init__(self) -> None:
        self.highest = 0

    def observe(self, stamp: int) -> None:
        self.highest = max(self.highest, stamp)

    def next(self) -> int:
        self.highest = max(time.time_ns(), self.highest + 1)
        return self.highest
