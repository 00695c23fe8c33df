"""What the in-memory registries (namespaces, Nexus endpoints, cluster metadata) do when several nodes share one
database (cluster/config_watch.py polls what they write here).

- **The config stamp.** After every change of a namespace, an endpoint or a cluster row commits, its node writes
  a fresh unique value to the `config_stamp` metadata key. A node that reads a value other than the one it last
  reloaded at reloads those tables: since every write is followed by a value never used before, a change is
  always followed by a stamp the other nodes have not seen, and a reload that starts after reading that stamp
  sees the change.
- **Change numbers.** Namespace notification versions and endpoint change numbers are what other clusters pull
  by, so two nodes must never give one number to two changes. A number is claimed by inserting the metadata key
  `claim:<counter>:<n>` if absent (`get_or_set_metadata`, an atomic insert-if-absent): the node whose token
  comes back owns n; another walks on to n + 1.
- **Settling.** Claimed numbers can commit out of order (node A claims 7, node B claims 8 and commits first): a
  node that told another cluster "you have everything through 8" before 7 committed would lose 7 for it. Claims
  take numbers in order (a claim of n + 1 comes after the claim of n: its claimer found n taken, or knew of it),
  and a writer whose write committed more than `CLAIM_BOUND_S` after its claim claims a new number and writes
  again, so a change numbered below n is stored by `CLAIM_BOUND_S` after n was claimed, and loaded by every node
  at its next poll. So the number a node hands out as "everything through" is the highest it has had for at
  least `SETTLE_S` (`Settling`); changes above it are sent again meanwhile, and applying one twice changes
  nothing.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from tempyral.common.errors import Internal
from tempyral.persistence.store import Store

log = logging.getLogger(__name__)

CONFIG_STAMP_KEY = "config_stamp"
SETTLE_S = 5.0
# Well inside SETTLE_S: the write, then the other nodes' next poll (every ~0.4 s), must both fit in it.
CLAIM_BOUND_S = 2.0
MAX_CLAIM_STEPS = 100_000  # a counter this far behind the database is a bug, not a race

# Never a stamp (stamps are uuid hex): what a registry has "seen" before its first reload.
UNREAD = "unread"

Clock = Callable[[], float]


class SharedConfig:
    """One per node, shared by its registries; only built when the database is shared (ConfigWatch)."""

    def __init__(self, store: Store, clock: Clock = time.monotonic, claim_bound_s: float = CLAIM_BOUND_S) -> None:
        self.store = store
        self.clock = clock
        self.claim_bound_s = claim_bound_s
        self._session = uuid.uuid4().hex  # claims are told apart by session and counter
        self._tokens = itertools.count(1)
        # A stamp write failed after its change committed: the watcher writes one at its next poll.
        self.stamp_pending = False

    async def current(self) -> str | None:
        """The stamp as stored now (None before the first change)."""
        return await self.store.get_metadata(CONFIG_STAMP_KEY)

    async def stamp(self) -> None:
        """Tell the other nodes that something changed; called after the change committed. The change stands even
        if this fails (the watcher tries again), so the failure is logged, not raised."""
        try:
            await self.store.set_metadata(CONFIG_STAMP_KEY, uuid.uuid4().hex)
        except Exception as err:
            self.stamp_pending = True
            log.warning("could not tell the other nodes of a configuration change (retried): %s", err)
        else:
            self.stamp_pending = False

    async def retry_stamp(self) -> None:
        if self.stamp_pending:
            await self.stamp()

    async def claim(self, counter: str, after: int) -> int:
        """The smallest number above `after` no node has claimed for `counter`, claimed for this node."""
        token = f"{self._session}:{next(self._tokens)}"
        for n in range(after + 1, after + 1 + MAX_CLAIM_STEPS):
            if await self.store.get_or_set_metadata(f"claim:{counter}:{n}", token) == token:
                return n
        raise Internal(f"no free {counter} number within {MAX_CLAIM_STEPS} of {after}")

    async def numbered(
        self, counter: str, after: int, count: int, write: Callable[[list[int]], Awaitable[None]]
    ) -> list[int]:
        """Claim `count` numbers above `after` and `write` with them; what they are. A write that committed more
        than `claim_bound_s` after the claim is written again under new numbers (see Settling); if that fails,
        the first write stands."""
        started = self.clock()
        numbers = await self._claim_many(counter, after, count)
        await write(numbers)
        while self.clock() - started > self.claim_bound_s:
            log.warning(
                "a %s change took %.1f s from its number to its commit: written again under a new number",
                counter,
                self.clock() - started,
            )
            try:
                started = self.clock()
                again = await self._claim_many(counter, numbers[-1], count)
                await write(again)
            except Exception as err:
                log.warning("could not write the %s change again (the first write stands): %s", counter, err)
                break
            numbers = again
        return numbers

    async def _claim_many(self, counter: str, after: int, count: int) -> list[int]:
        numbers: list[int] = []
        for _ in range(count):
            numbers.append(await self.claim(counter, numbers[-1] if numbers else after))
        return numbers


class Settling:
    """The change numbers a node learned of recently, and so the highest one it can vouch for (`cursor`): one it
    has had for at least `window_s`, when every change numbered below it is here too."""

    def __init__(self, window_s: float = SETTLE_S, clock: Clock = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self._fresh: dict[int, float] = {}  # number -> when this node first had it
        self._settled = 0

    def saw(self, number: int) -> None:
        if number > self._settled:
            self._fresh.setdefault(number, self.clock())

    def cursor(self) -> int:
        now = self.clock()
        for number, since in list(self._fresh.items()):
            if now - since >= self.window_s:
                self._settled = max(self._settled, number)
                del self._fresh[number]
        return self._settled
