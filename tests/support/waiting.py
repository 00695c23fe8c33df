"""Bounded waits for tests that poll the server for a condition."""

from __future__ import annotations

import asyncio
from typing import Any


async def until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Await `predicate()` every 0.1 s until it gives something true, and return that; fail after `timeout` s."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = await predicate()
        if value:
            return value
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)
