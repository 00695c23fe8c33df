"""The Web UI port: the official UI's static build, its settings, `/render`, CSRF, and `/api/v1` passed through.

What the reference UI server (Temporal CLI 1.9.1, UI 2.54.1) does, and this app does the same way:
- Any GET that is not an asset, not `/render` and not under `/api/` answers `index.html` (the SPA routes itself).
- `GET /api/v1/settings` is a static object with PascalCase keys; every other `/api/v1/...` request goes to the
  HTTP API handler it is given.
- Every response sets a `_csrf` cookie (not HttpOnly: the SPA copies it into the `X-CSRF-TOKEN` header), reusing the
  request's cookie when it has one. Any request with an unsafe method needs that header: without it the answer is
  400 `missing csrf token in request header`, with a value that differs from the cookie 403 `invalid csrf token`.
"""

from __future__ import annotations

import hmac
import html
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from pathlib import Path
from typing import Any

from aiohttp import web

ApiHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]

UI_VERSION = "2.54.1"  # of the build in Temporal CLI 1.9.1; must stay >= 2.23.0 (path parameters encoded once)
CSRF_COOKIE = "_csrf"
CSRF_HEADER = "X-CSRF-TOKEN"
CSRF_MAX_AGE_S = 24 * 3600
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IMMUTABLE = "public, max-age=31536000, immutable"
NO_CACHE = "no-cache"
THEMES = frozenset(
    {"light", "dark", "light-background", "dark-background", "light-primary", "dark-primary"}
)  # the values the SPA passes to /render
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".webp": "image/webp",
    ".ico": "image/vnd.microsoft.icon",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".txt": "text/plain; charset=utf-8",
}
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "X-Frame-Options": "SAMEORIGIN"}
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
_SEMVER = re.compile(r"^\d+\.\d+\.\d+$")


def settings(version: str = UI_VERSION, codec_endpoint: str = "") -> dict[str, Any]:
    """The UI server's settings object for a local server: no auth, no news fetched from the internet; the codec
    endpoint of --ui-codec-endpoint, if any."""
    return {
        "Auth": {"Enabled": False, "Options": None, "RedirectToProvider": False},
        "DefaultNamespace": "default",
        "ShowTemporalSystemNamespace": False,
        "NavCollapsedByDefault": False,
        "FeedbackURL": "",
        "DisableNewsFetch": True,
        "Codec": {
            "Endpoint": codec_endpoint,
            "PassAccessToken": False,
            "IncludeCredentials": False,
            "DefaultErrorMessage": "",
            "DefaultErrorLink": "",
        },
        "Version": version,
        "DisableWriteActions": False,
        "WorkflowTerminateDisabled": False,
        "WorkflowCancelDisabled": False,
        "WorkflowSignalDisabled": False,
        "WorkflowUpdateDisabled": False,
        "WorkflowResetDisabled": False,
        "WorkflowPauseDisabled": False,
        "BatchActionsDisabled": False,
        "StartWorkflowDisabled": False,
        "HideWorkflowQueryErrors": False,
        "RefreshWorkflowCountsDisabled": False,
        "ActivityCommandsDisabled": False,
    }


def ui_version(assets: Path) -> str:
    """The UI version from `_app/version.json` when it holds one (SvelteKit builds put a build id there)."""
    try:
        value = json.loads((assets / "_app" / "version.json").read_text()).get("version", "")
    except (OSError, ValueError, AttributeError):
        return UI_VERSION
    return value if isinstance(value, str) and _SEMVER.match(value) else UI_VERSION


def _csrf_cookie(request: web.Request) -> str | None:
    """The request's `_csrf` cookie when it is a plausible token (so that it is safe to set back)."""
    cookie = request.cookies.get(CSRF_COOKIE, "")
    return cookie if _TOKEN.match(cookie) else None


def _message(status: int, text: str) -> web.Response:
    return web.Response(
        status=status, text=json.dumps({"message": text}, separators=(",", ":")) + "\n", content_type="application/json"
    )


def _not_found_api() -> web.Response:
    return web.Response(
        status=404,
        text=json.dumps({"code": 5, "message": "Not Found"}, separators=(",", ":")),
        content_type="application/json",
    )


RENDER_PAGE = """<!DOCTYPE html>
<html>
<head>
<title>Rendered Markdown</title>
<base target="_blank">
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<style nonce="{nonce}">
* {{ margin: 0; padding: 0; border: 0; font-size: 100%; }}
body {{ padding: 1rem; font-family: sans-serif; white-space: pre-line; overflow-wrap: break-word; }}
body.compact {{ padding: 0; overflow: hidden; background-color: transparent; }}
body.compact, body.compact main, body.compact p {{ font-size: 14px; line-height: 20px; }}
p + p {{ margin-top: 1em; }}
body[data-theme^='light'] {{ background-color: #fff; color: #121416; }}
body[data-theme='light-background'] {{ background-color: #f8fafc; }}
body[data-theme^='dark'] {{ background-color: #141414; color: #f8fafc; }}
body[data-theme='dark-primary'] {{ background-color: #000; }}
html:has(body[data-theme^='dark']) {{ color-scheme: dark; }}
</style>
</head>
<body class="{classes}"{theme}>
<main>
{content}
</main>
</body>
</html>
"""


def render_page(content: str, theme: str = "", compact: bool = False) -> tuple[str, str]:
    """The HTML page for `/render` and its nonce: the text escaped, one `<p>` per paragraph (no Markdown)."""
    nonce = secrets.token_hex(16)
    paragraphs = [p for p in re.split(r"\n\s*\n", content.strip()) if p.strip()]
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    page = RENDER_PAGE.format(
        nonce=nonce,
        classes="prose compact" if compact else "prose",
        theme=f' data-theme="{theme}"' if theme in THEMES else "",
        content=body,
    )
    return page, nonce


class UiApp:
    """The aiohttp application of the UI port, over an extracted UI build in `assets`."""

    def __init__(self, assets: Path, api_handler: ApiHandler, public_path: str = "", codec_endpoint: str = "") -> None:
        self.assets = assets.resolve()
        self.api_handler = api_handler
        self.public_path = public_path
        self.index = with_public_path((self.assets / "index.html").read_bytes(), public_path)
        self.settings = json.dumps(settings(ui_version(self.assets), codec_endpoint), separators=(",", ":"))

    def app(self) -> web.Application:
        app = self._app()
        if not self.public_path:
            return app
        # Under a path prefix (--ui-public-path), as the reference's UI server: the root redirects to it.
        root = web.Application()
        root.router.add_get("/", self._to_public_path)
        root.add_subapp(self.public_path, app)
        return root

    async def _to_public_path(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(self.public_path + "/")

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._csrf], client_max_size=4 * 1024 * 1024)
        app.on_response_prepare.append(self._set_cookie)
        app.router.add_get("/api/v1/settings", self._settings)
        app.router.add_route("*", "/api/v1/{tail:.*}", self._api)
        app.router.add_route("*", "/api/{tail:.*}", self._api_not_found)
        app.router.add_get("/render", self._render)
        app.router.add_get("/_app/{path:.*}", self._app_asset)
        app.router.add_get("/{path:.*}", self._page)
        return app

    @web.middleware
    async def _csrf(self, request: web.Request, handler: ApiHandler) -> web.StreamResponse:
        if request.method not in SAFE_METHODS:
            cookie = _csrf_cookie(request)
            header = request.headers.get(CSRF_HEADER, "")
            if not header:
                return _message(400, "missing csrf token in request header")
            if cookie is None or not hmac.compare_digest(header.encode(), cookie.encode()):
                return _message(403, "invalid csrf token")
        return await handler(request)

    @staticmethod
    async def _set_cookie(request: web.Request, response: web.StreamResponse) -> None:
        # The request's token is kept (its expiry renewed), or a new one is made. Not HttpOnly: the SPA reads the
        # cookie to send it back in X-CSRF-TOKEN. Added as a header because aiohttp serialises
        # response.cookies before this hook runs.
        token = _csrf_cookie(request) or secrets.token_hex(16)
        expires = formatdate(time.time() + CSRF_MAX_AGE_S, usegmt=True)
        response.headers.add("Set-Cookie", f"{CSRF_COOKIE}={token}; Path=/; Expires={expires}; SameSite=Strict")
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)

    async def _api(self, request: web.Request) -> web.StreamResponse:
        """The HTTP API, which knows its paths from the root: under a public path, the prefix goes first."""
        if self.public_path:
            raw = request.raw_path
            if raw.startswith(self.public_path + "/"):
                request = request.clone(rel_url=raw[len(self.public_path) :])
        return await self.api_handler(request)

    async def _settings(self, request: web.Request) -> web.Response:
        return web.Response(text=self.settings, content_type="application/json")

    async def _api_not_found(self, request: web.Request) -> web.Response:
        return _not_found_api()

    async def _render(self, request: web.Request) -> web.Response:
        query = request.query
        compact = query.get("compact", "").lower() in ("1", "true")
        page, nonce = render_page(query.get("content", ""), query.get("theme", ""), compact)
        csp = (
            f"base-uri 'self'; default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
            "frame-ancestors 'self'; form-action 'none'; "
            "sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox;"
        )
        return web.Response(
            text=page,
            content_type="text/html",
            headers={"Content-Security-Policy": csp, "Cache-Control": NO_CACHE},
        )

    def _file(self, relative: str) -> Path | None:
        """The asset at `relative` (a URL path below `/`), or None when there is none or it escapes the build."""
        if not relative or "\\" in relative or "\0" in relative:
            return None
        path = (self.assets / relative).resolve()
        if not path.is_relative_to(self.assets) or not path.is_file() or path.name.startswith("."):
            return None
        return path

    def _file_response(self, path: Path, cache_control: str) -> web.FileResponse:
        content_type = CONTENT_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return web.FileResponse(path, headers={"Content-Type": content_type, "Cache-Control": cache_control})

    async def _app_asset(self, request: web.Request) -> web.StreamResponse:
        relative = "_app/" + request.match_info["path"]
        path = self._file(relative)
        if path is None:
            return web.Response(status=404, text="404 page not found\n")
        immutable = relative.startswith("_app/immutable/")
        return self._file_response(path, IMMUTABLE if immutable else NO_CACHE)

    async def _page(self, request: web.Request) -> web.StreamResponse:
        relative = request.match_info["path"]
        if relative not in ("", "index.html"):
            path = self._file(relative)
            if path is not None:
                return self._file_response(path, "public, max-age=3600")
        return web.Response(
            body=self.index, content_type="text/html", charset="utf-8", headers={"Cache-Control": NO_CACHE}
        )


_CSP_META = re.compile(rb'<meta http-equiv="content-security-policy"[^>]*>')


def with_public_path(index: bytes, public_path: str) -> bytes:
    """index.html for a UI served under `public_path`, as the reference's UI server rewrites it: asset URLs and the
    SvelteKit base under the prefix, and the page's script hash policy dropped (the rewritten script no longer
    matches it; the reference warns "CSP IS DISABLED WHEN USING PUBLIC PATH")."""
    if not public_path:
        return index
    prefix = public_path.encode()
    index = index.replace(b'"/_app/', b'"' + prefix + b"/_app/").replace(b'base: ""', b'base: "' + prefix + b'"')
    return _CSP_META.sub(b"", index, count=1)


def ui_application(
    assets: Path, api_handler: ApiHandler, public_path: str = "", codec_endpoint: str = ""
) -> web.Application:
    return UiApp(assets, api_handler, public_path, codec_endpoint).app()
