"""Stopping background tasks for good.

Before Python 3.12, `asyncio.wait_for` (which asyncpg uses, and so every database call) can lose a cancellation
that arrives just as the call it waits for completes: the task goes on as if it had never been cancelled, and a
stop that cancels it once and then awaits it waits for ever (seen: a node refused at start hanging in its stop,
its configuration watcher polling on). So a stop cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

RECANCEL_S = 0.5  # how long a cancelled task gets to end before it is cancelled again


async def cancel_and_wait(tasks: Iterable[asyncio.Future[Any] | None]) -> None:
    """Cancel the tasks (None ones skipped) and return once every one has ended; their outcomes are dropped."""
    every = [t for t in tasks if t is not None]
    pending = {t for t in every if not t.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=RECANCEL_S)
    for task in every:
        if not task.cancelled():
            task.exception()  # retrieved, so asyncio does not report it as never retrieved
