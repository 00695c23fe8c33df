"""An HTTP server on loopback that records the requests it gets: to show which outbound calls a
server makes, and that it makes none to addresses it may not call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.support.servers import free_port


@dataclass
class Listener:
    port: int
    paths: list[str] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, host: str, path: str, scheme: str = "http") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def wait_for(self, prefix: str, count: int) -> list[str]:
        """The paths under `prefix`, once there are `count` of them (the caller bounds the wait)."""
        while len(found := [p for p in self.paths if p.startswith(prefix)]) < count:
            self.arrived.clear()
            await self.arrived.wait()
        return found


@asynccontextmanager
async def listening() -> AsyncIterator[Listener]:
    """Answers a completion callback 200 and anything else (a Nexus start) 201 with an operation token."""
    found = Listener(free_port())

    async def record(request: web.Request) -> web.Response:
        await request.read()
        found.paths.append(request.path)
        found.arrived.set()
        if "Nexus-Operation-State" in request.headers:
            return web.Response(status=200)
        return web.json_response({"token": "listener-token", "state": "running"}, status=201)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", found.port).start()
    try:
        yield found
    finally:
        await runner.cleanup()
