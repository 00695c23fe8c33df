"""`--metrics-port`: GET /metrics, the server's metrics as Prometheus text, on the server's IP.

As the reference's start-dev: on by default, on any free port (0) unless one is given; the address is logged and
printed at start. `--metrics-port -1` turns it off (the HTTP API port's /metrics stays).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass

from aiohttp import web

from tempyral.common.bind import bind, bound_addresses, warn_if_exposed
from tempyral.metrics.server_metrics import ServerMetrics, measure_loop_lag

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class MetricsSettings:
    # None or 0: any free port (the reference's default); a negative port: no metrics port.
    port: int | None = 0

    @property
    def enabled(self) -> bool:
        return self.port is None or self.port >= 0


def metrics_application(metrics: ServerMetrics) -> web.Application:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=metrics.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app


class MetricsEndpoint:
    """The metrics port and the event-loop lag sampler of one server: bound with the other ports, served once the
    server serves, closed with it."""

    def __init__(self, metrics: ServerMetrics, settings: MetricsSettings) -> None:
        self.metrics = metrics
        self.settings = settings
        self.address = ""
        self._socket: socket.socket | None = None
        self._runner: web.AppRunner | None = None
        self._lag: asyncio.Task[None] | None = None

    def listen(self, ip: str) -> None:
        if self.settings.enabled:
            self._socket = bind(ip, self.settings.port or 0, "the metrics endpoint")

    async def start(self) -> None:
        self._lag = asyncio.get_running_loop().create_task(measure_loop_lag(self.metrics.event_loop_lag))
        if self._socket is None:
            return
        runner = web.AppRunner(metrics_application(self.metrics), access_log=None)
        await runner.setup()
        self._runner = runner  # cleaned up by stop, should what follows fail
        await web.SockSite(runner, self._socket).start()
        self._socket = None  # the site owns it now
        self.address = ", ".join(bound_addresses(runner.addresses))
        warn_if_exposed("The metrics endpoint", [a[0] for a in runner.addresses], self.address)
        log.info("metrics at http://%s/metrics", self.address)

    async def stop(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._lag is not None:
            self._lag.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._lag
            self._lag = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
