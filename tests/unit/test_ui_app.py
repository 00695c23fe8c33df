"""The UI port's aiohttp app on a small assets directory, with a stub HTTP API handler."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from tempyral.ui.server import render_page, settings, ui_application

INDEX = b"<!doctype html><html><body>the SPA</body></html>"


async def stub_api(request: web.Request) -> web.StreamResponse:
    body = await request.text()
    return web.json_response({"stub": True, "method": request.method, "path": request.raw_path, "body": body})


@pytest_asyncio.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    (tmp_path / "_app" / "immutable" / "entry").mkdir(parents=True)
    (tmp_path / "index.html").write_bytes(INDEX)
    (tmp_path / "favicon.ico").write_bytes(b"\0\0\1\0")
    (tmp_path / "_app" / "version.json").write_text('{"version":"1789143521595"}')
    (tmp_path / "_app" / "immutable" / "entry" / "start.abc.js").write_text("export {};")
    (tmp_path / ".tempyral-complete").write_text("done")
    (tmp_path.parent / "secret.txt").write_text("outside")
    async with TestClient(TestServer(ui_application(tmp_path, stub_api))) as c:
        yield c


async def test_index_and_spa_fallback(client: TestClient[web.Request, web.Application]) -> None:
    for path in ("/", "/index.html", "/namespaces/default/workflows", "/nexus/some-id", "/.tempyral-complete"):
        r = await client.get(path)
        assert r.status == 200, path
        assert r.content_type == "text/html"
        assert r.headers["Cache-Control"] == "no-cache"
        assert await r.read() == INDEX, path


async def test_assets(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/_app/immutable/entry/start.abc.js")
    assert r.status == 200 and await r.text() == "export {};"
    assert r.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "immutable" in r.headers["Cache-Control"] and "max-age=31536000" in r.headers["Cache-Control"]
    r = await client.get("/_app/version.json")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json"
    assert r.headers["Cache-Control"] == "no-cache"
    r = await client.get("/favicon.ico")
    assert r.status == 200 and r.headers["Content-Type"] == "image/vnd.microsoft.icon"
    # A missing asset is a 404, not the SPA (a stale chunk must not be answered with HTML).
    r = await client.get("/_app/immutable/entry/gone.js")
    assert r.status == 404 and r.content_type == "text/plain"
    for escape in ("/_app/..%2F..%2Fsecret.txt", "/_app/%2E%2E/%2E%2E/secret.txt"):
        r = await client.get(escape)
        assert "outside" not in await r.text()


async def test_settings(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/api/v1/settings")
    assert r.status == 200 and r.content_type == "application/json"
    body = await r.json()
    assert body == settings()
    assert body["Auth"] == {"Enabled": False, "Options": None, "RedirectToProvider": False}
    assert body["DefaultNamespace"] == "default" and body["DisableNewsFetch"] is True
    assert body["Version"] == "2.54.1"  # version.json holds a build id, not a version
    assert body["DisableWriteActions"] is False and body["Codec"]["Endpoint"] == ""


async def test_render_escapes(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/render", params={"content": "<script>alert(1)</script> a&b\n\nsecond", "theme": "dark"})
    assert r.status == 200 and r.content_type == "text/html"
    page = await r.text()
    main = page[page.index("<main>") : page.index("</main>")]
    assert "<script>" not in main
    assert "<p>&lt;script&gt;alert(1)&lt;/script&gt; a&amp;b</p>" in main and "<p>second</p>" in main
    assert 'data-theme="dark"' in page
    assert "script-src 'nonce-" in r.headers["Content-Security-Policy"]
    page, _ = render_page("x", theme='"><script>', compact=True)
    assert "<script>" not in page and 'class="prose compact"' in page


async def test_api_requests_reach_the_handler(client: TestClient[web.Request, web.Application]) -> None:
    r = await client.get("/api/v1/namespaces/default/workflows/a%2Fb?query=x")
    assert await r.json() == {
        "stub": True,
        "method": "GET",
        "path": "/api/v1/namespaces/default/workflows/a%2Fb?query=x",
        "body": "",
    }
    r = await client.get("/api/v2/whatever")
    assert r.status == 404 and (await r.json())["message"] == "Not Found"


async def test_csrf(client: TestClient[web.Request, web.Application]) -> None:
    path = "/api/v1/namespaces/default/workflows/wf/signal/ping"
    r = await client.get("/")
    cookie = r.cookies["_csrf"]
    assert cookie["samesite"] == "Strict" and cookie["path"] == "/" and not cookie["httponly"]
    token = cookie.value
    assert len(token) == 32
    # The cookie is kept: the next response sets the same value again.
    r = await client.get("/namespaces")
    assert r.cookies["_csrf"].value == token

    r = await client.post(path, data="{}")
    assert r.status == 400 and await r.text() == '{"message":"missing csrf token in request header"}\n'
    r = await client.post(path, data="{}", headers={"X-CSRF-TOKEN": token + "0"})
    assert r.status == 403 and await r.json() == {"message": "invalid csrf token"}
    for method in ("PUT", "PATCH", "DELETE"):
        r = await client.request(method, path)
        assert r.status == 400, method

    r = await client.post(path, data='{"input":1}', headers={"X-CSRF-TOKEN": token})
    assert r.status == 200
    assert await r.json() == {"stub": True, "method": "POST", "path": path, "body": '{"input":1}'}
    r = await client.delete("/api/v1/nexus/endpoints/x", headers={"X-CSRF-TOKEN": token})
    assert r.status == 200 and (await r.json())["method"] == "DELETE"


async def test_a_header_without_a_cookie_is_refused(client: TestClient[web.Request, web.Application]) -> None:
    client.session.cookie_jar.clear()
    r = await client.post("/api/v1/namespaces", headers={"X-CSRF-TOKEN": "0123456789abcdef0123456789abcdef"})
    assert r.status == 403
    assert json.loads(await r.text()) == {"message": "invalid csrf token"}
