"""Reading an HTTP request body whole, but never more than a bound."""

from __future__ import annotations

from aiohttp import web


async def read_bounded(request: web.Request, limit: int) -> bytes | None:
    """The whole body, or None when it is longer than `limit` bytes (having read at most about that much).

    The bound is given per call rather than taken from the application's `client_max_size`: one port
    serves APIs with different limits, and one API is served on more than one port. A caller that gets
    None should close the connection instead of letting the server drain the rest of the body."""
    if request.content_length is not None and request.content_length > limit:
        return None  # refused before reading any of it
    try:
        return await request.clone(client_max_size=limit).read()
    except web.HTTPRequestEntityTooLarge:
        return None
