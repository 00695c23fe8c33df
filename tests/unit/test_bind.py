"""What the server says it listens on: the address actually bound (a wildcard too), callback URLs that
reach it from this machine, and a warning when it is served beyond loopback without TLS."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

import tempyral.server
from tempyral.common.bind import bound_addresses, host_port, is_loopback, local_host, warn_if_exposed
from tempyral.config import ServerConfig
from tempyral.frontend.http_gateway import HttpGateway
from tempyral.server import Server


def test_addresses_are_written_as_bound() -> None:
    assert host_port("0.0.0.0", 7243) == "0.0.0.0:7243"
    assert host_port("::", 7243) == "[::]:7243"
    assert bound_addresses([("0.0.0.0", 7243), ("::", 7243, 0, 0)]) == ["0.0.0.0:7243", "[::]:7243"]


def test_a_wildcard_is_reached_on_loopback() -> None:
    assert [local_host(ip) for ip in ("0.0.0.0", "", "::", "10.1.2.3", "localhost")] == [
        "127.0.0.1",
        "127.0.0.1",
        "::1",
        "10.1.2.3",
        "localhost",
    ]


def test_only_loopback_counts_as_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "", "::", "10.0.0.1", "192.168.1.5", "example.com"))


def test_serving_beyond_loopback_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        assert not warn_if_exposed("The HTTP API", ["127.0.0.1", "::1"], "127.0.0.1:7243, [::1]:7243")
        assert warn_if_exposed("The HTTP API", ["0.0.0.0"], "0.0.0.0:7243")
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "The HTTP API is served on 0.0.0.0:7243 without TLS" in record.getMessage()


# ---------------------------------------------------------------------- the server's start-up
@pytest.fixture
def wildcard_bind(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Callable[[str, int, str], socket.socket]]:
    """Sockets asked for on 0.0.0.0 report that they are, but listen on loopback only (tests stay off the
    network); a minimal UI build stands in for the extracted one. Yields the bind that tempyral.server now uses."""

    def loopback_bind(ip: str, port: int, what: str) -> socket.socket:
        assert ip == "0.0.0.0"
        sock = socket.socket()
        sock.bind(("127.0.0.1", port))
        return sock

    # the property object itself: mypy types BaseRunner.addresses as its getter, which has no fget
    addresses = web.BaseRunner.__dict__["addresses"]
    assert isinstance(addresses, property)
    real = addresses.fget
    assert real is not None
    monkeypatch.setattr(tempyral.server, "bind", loopback_bind)
    monkeypatch.setattr(web.AppRunner, "addresses", property(lambda r: [("0.0.0.0", *a[1:]) for a in real(r)]))
    (tmp_path / "index.html").write_text("<html></html>")
    monkeypatch.setattr(tempyral.server, "ensure_assets", lambda: tmp_path)
    yield loopback_bind


async def test_http_and_ui_say_the_wildcard_they_are_bound_to(
    wildcard_bind: Callable[[str, int, str], socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    server = Server(ServerConfig(ip="0.0.0.0", http_port=0, ui_port=0))
    server.http_gateway = HttpGateway([])
    # What Server._listen binds before the database is opened (its gRPC part aside).
    server._http_socket = wildcard_bind("0.0.0.0", 0, "the HTTP API")
    server._ui_socket = wildcard_bind("0.0.0.0", 0, "the Web UI")
    try:
        with caplog.at_level(logging.INFO, logger="tempyral"):
            server._set_callback_base_url()
            await server._start_http()
            await server._start_ui()
    finally:
        await server._stop_ui()
        if server._http is not None:
            await server._http.cleanup()
    http_port = int(server.http_address.rsplit(":", 1)[1])
    ui_port = int(server.ui_address.rsplit(":", 1)[1])
    assert server.http_address == f"0.0.0.0:{http_port}"
    assert server.ui_address == f"0.0.0.0:{ui_port}"
    # Handlers must be able to call back: loopback, not the wildcard.
    assert server.nexus_invoker.callback_base_url == f"http://127.0.0.1:{http_port}"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert ("INFO", f"HTTP API (Temporal and Nexus) listening on http://0.0.0.0:{http_port}") in messages
    assert ("INFO", f"Web UI at http://0.0.0.0:{ui_port}") in messages
    warnings = [m for level, m in messages if level == "WARNING"]
    assert [w.split(" without TLS")[0] for w in warnings] == [
        f"The HTTP API is served on 0.0.0.0:{http_port}",
        f"The Web UI is served on 0.0.0.0:{ui_port}",
    ]
