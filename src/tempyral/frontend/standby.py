"""Worker long polls on a cluster where their namespace may be standby (docs: ../shared/XDC.md §3.3).

On a standby cluster the reference's matching turns every poll into a query-only poll: workflow pollers get the
query tasks of queries asked here (history is read-only here, so they are answered at once), activity and Nexus
pollers get nothing, and all of them get an empty answer at their deadline. Here, should the namespace fail over
to this cluster while they wait, they go on as ordinary polls for the rest of their time: the registry tells
StandbyPolls, which ends the query-only waits in matching (Matching.wake_selective), and each poll looks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from tempyral.matching.service import Matching, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry

R = TypeVar("R")
# A poll of `namespace` for at most `timeout` seconds: its answer, or None when nothing came.
Poll = Callable[[Namespace, float], Awaitable[R | None]]


def _nothing(item: Any) -> bool:
    return False


class StandbyPolls:
    def __init__(self, namespaces: NamespaceRegistry, matching: Matching) -> None:
        self.namespaces = namespaces
        self.matching = matching
        namespaces.listeners.append(self._changed)

    def _changed(self, before: Namespace | None, after: Namespace) -> None:
        """A namespace became active here: its query-only polls end now and start over as ordinary ones."""
        if self.namespaces.is_active(after) and (before is None or not self.namespaces.is_active(before)):
            self.matching.wake_selective(after.id)

    async def poll(self, ns: Namespace, timeout: float, active: Poll[R], standby: Poll[R]) -> R | None:
        """`active` while the namespace is active here, else `standby` (which ends early if it becomes active);
        None when nothing came within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            current = self.namespaces.find_by_id(ns.id) or ns
            remaining = max(deadline - loop.time(), 0.0)
            if self.namespaces.is_active(current):
                return await active(current, remaining)
            # Nothing awaits between the check above and the wait matching registers: a failover cannot slip in.
            response = await standby(current, remaining)
            if response is not None or loop.time() >= deadline:
                return response

    async def wait_idle(self, key: QueueKey, timeout: float) -> None:
        """A standby poll of a queue that has no query tasks: it only waits (in matching, where a failover ends
        it), so that the worker shows among the queue's pollers as on the reference."""
        await self.matching.poll(key, timeout, accept=_nothing)
