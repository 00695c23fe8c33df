"""`tempyral server start-dev` serves the official Web UI on --ui-port, and not with --headless."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import pytest_asyncio

from tempyral.cli import build_parser
from tests.support.servers import ServerProcess, tempyral


@pytest.fixture(scope="module")
def ui_server() -> Iterator[ServerProcess]:
    proc = tempyral().start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture
async def http(ui_server: ServerProcess) -> AsyncIterator[aiohttp.ClientSession]:
    # unsafe=True: keep cookies set by an IP-address host (the _csrf cookie of 127.0.0.1).
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{ui_server.ui_port}", cookie_jar=aiohttp.CookieJar(unsafe=True)
    ) as session:
        yield session


async def test_the_ui_is_announced(ui_server: ServerProcess) -> None:
    # printed once the server's start-up is complete, which may be a moment after its gRPC port first answers
    announcement = f"Web UI at http://127.0.0.1:{ui_server.ui_port}"
    deadline = asyncio.get_running_loop().time() + 30
    while asyncio.get_running_loop().time() < deadline:
        if announcement in ui_server.log_tail(20000):
            break
        await asyncio.sleep(0.1)
    assert announcement in ui_server.log_tail(20000)


async def test_index_fallback_and_assets(http: aiohttp.ClientSession) -> None:
    r = await http.get("/")
    assert r.status == 200 and r.content_type == "text/html"
    index = await r.text()
    assert "/_app/immutable/" in index
    r = await http.get("/namespaces/default/workflows")
    assert r.status == 200 and await r.text() == index
    scripts = re.findall(r'"(/_app/immutable/[^"]+\.js)"', index)
    assert scripts
    r = await http.get(scripts[0])
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in r.headers["Cache-Control"]
    assert (await http.get("/_app/immutable/nope.js")).status == 404


async def test_settings_and_render(http: aiohttp.ClientSession) -> None:
    r = await http.get("/api/v1/settings")
    assert r.status == 200
    body = await r.json()
    assert body["Auth"]["Enabled"] is False and body["DefaultNamespace"] == "default"
    assert body["DisableNewsFetch"] is True and body["Version"] == "2.54.1"
    r = await http.get("/render", params={"content": "<script>alert(1)</script>"})
    assert r.status == 200
    page = await r.text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert" not in page


async def test_csrf_on_state_changing_requests(http: aiohttp.ClientSession) -> None:
    path = "/api/v1/namespaces/default/workflows/ui-csrf-wf/signal/ping"
    r = await http.post(path, json={})
    assert r.status == 400 and await r.json() == {"message": "missing csrf token in request header"}
    token = next(c.value for c in http.cookie_jar if c.key == "_csrf")
    r = await http.post(path, json={}, headers={"X-CSRF-TOKEN": "f" * 32})
    assert r.status == 403 and await r.json() == {"message": "invalid csrf token"}
    # With a matching cookie and header the request reaches the HTTP API, which looks for the workflow.
    r = await http.post(path, json={}, headers={"X-CSRF-TOKEN": token})
    assert r.status == 404
    body = await r.json()
    assert body["code"] == 5 and "ui-csrf-wf" in body["message"]


async def test_api_reads_reach_the_http_api(http: aiohttp.ClientSession) -> None:
    r = await http.get("/api/v1/namespaces")
    assert r.status == 200
    assert "default" in [ns["namespaceInfo"]["name"] for ns in (await r.json())["namespaces"]]


async def test_headless_serves_no_ui() -> None:
    proc = tempyral(extra=["--headless"]).start()
    try:
        assert proc.ui_port is not None
        with pytest.raises(OSError), socket.create_connection(("127.0.0.1", proc.ui_port), timeout=1):
            pass
    finally:
        proc.stop()


def test_flags_parse_like_the_reference() -> None:
    def parse(*args: str) -> tuple[bool, int | None]:
        ns = build_parser().parse_args(["server", "start-dev", *args])
        return ns.headless, ns.ui_port

    assert parse() == (False, None)
    assert parse("--headless") == (True, None)
    assert parse("--headless=false", "--ui-port", "9000") == (False, 9000)
    assert parse("--headless=true") == (True, None)
    with pytest.raises(SystemExit):
        parse("--headless=maybe")


async def test_api_requests_through_the_ui_are_bounded_like_the_http_ports(
    http: aiohttp.ClientSession, ui_server: ServerProcess
) -> None:
    """A 300 KB body is read whole, one over 4 MiB is refused unread, an undecodable path is refused: the same
    answers as the HTTP port's (tests/differential/test_http_api.py compares those with the reference's)."""
    await http.get("/api/v1/settings")  # sets the _csrf cookie
    token = next(c.value for c in http.cookie_jar if c.key == "_csrf")
    payload = base64.b64encode(b"x" * 300_000).decode()
    requests = [
        ("/workflows/ui-size-wf/signal/s", json.dumps({"input": {"payloads": [{"data": payload}]}}).encode()),
        ("/workflows/ui-size-wf/signal/s", b'{"identity":"' + b"x" * (4 * 1024 * 1024) + b'"}'),
        ("/workflows/%FF%FE/signal/s", b"{}"),
    ]
    answers = []
    async with aiohttp.ClientSession(f"http://127.0.0.1:{ui_server.http_port}") as direct:
        for path, body in requests:
            url = f"/api/v1/namespaces/default{path}"
            async with http.post(url, data=body, headers={"X-CSRF-TOKEN": token}) as via_ui:
                ui_answer = (via_ui.status, await via_ui.json())
            async with direct.post(url, data=body) as on_http_port:
                assert ui_answer == (on_http_port.status, await on_http_port.json())
            answers.append((ui_answer[0], ui_answer[1]["code"]))
    assert answers == [(404, 5), (400, 3), (500, 13)]
