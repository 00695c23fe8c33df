"""The public keys tokens are verified with: a JWKS file (re-read when it changes) and/or a JWKS URL (fetched at
start, then every refresh interval, and again when a token names a key id nobody knows, at most once per
`MISS_REFRESH_S`). As the reference's default token key provider: RSA keys for RS256, EC keys for ES256, found by
`kid`; a source that fails to load keeps the keys it had.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from tempyral.common import file_stamps

log = logging.getLogger(__name__)

FILE_CHECK_S = 0.5  # how stale the file's keys may be; a stat per request would be wasted on a busy server
MISS_REFRESH_S = 10.0  # an unknown kid fetches the URL again, no more often than this (tokens are the caller's)
FETCH_TIMEOUT_S = 5.0
KEY_TYPES = {"RS256": "RSA", "ES256": "EC"}


@dataclass(frozen=True)
class Key:
    kty: str  # "RSA" or "EC"
    key: Any  # the cryptography public key


def parse_jwks(text: str | bytes) -> dict[str, Key]:
    """kid -> key of a JWKS document; keys of other types, or that do not parse, are skipped with a warning."""
    document = json.loads(text)
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document (no 'keys' list)")
    keys: dict[str, Key] = {}
    for entry in document["keys"]:
        if not isinstance(entry, dict):
            continue
        kty, kid = entry.get("kty"), entry.get("kid")
        if kty not in ("RSA", "EC") or not isinstance(kid, str):
            log.warning("ignoring JWKS key of unexpected type %r (kid %r)", kty, kid)
            continue
        try:
            # The key's own "alg" (if any) is not trusted to pick the algorithm: the token's header does, checked
            # against the key type.
            keys[kid] = Key(kty, PyJWK({k: v for k, v in entry.items() if k != "alg"}).key)
        except (PyJWKError, ValueError, TypeError) as err:
            log.warning("ignoring JWKS key %r: %s", kid, err)
    return keys


class KeySet:
    def __init__(self, path: str | None, url: str | None, refresh_s: float = 60.0) -> None:
        self.path = path
        self.url = url
        self.refresh_s = refresh_s
        self._file_keys: dict[str, Key] = {}
        self._file_stamp: file_stamps.Stamp = None
        self._file_checked = 0.0
        self._url_keys: dict[str, Key] = {}
        self._last_fetch = float("-inf")
        self._fetching: asyncio.Task[None] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if self.path is not None:
            self._check_file(force=True)
        if self.url is not None:
            self._session = aiohttp.ClientSession()
            await self._fetch()
            self._refresher = asyncio.create_task(self._refresh_loop())

    async def stop(self) -> None:
        for task in (self._refresher, self._fetching):
            if task is not None:
                task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def find(self, kid: str) -> Key | None:
        if self.path is not None:
            self._check_file()
        key = self._file_keys.get(kid) or self._url_keys.get(kid)
        if key is None and self.url is not None and time.monotonic() - self._last_fetch >= MISS_REFRESH_S:
            await self._fetch_once()
            key = self._url_keys.get(kid)
        return key

    def _check_file(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._file_checked < FILE_CHECK_S:
            return
        self._file_checked = now
        assert self.path is not None
        try:
            stamp = file_stamps.stamp(self.path)
            if stamp is not None and stamp == self._file_stamp:
                return
            with open(self.path, "rb") as f:
                keys = parse_jwks(f.read())
        except (OSError, ValueError) as err:
            if self._file_stamp is not None or force:
                log.error("cannot load the JWKS file %s (keeping the keys it had): %s", self.path, err)
            self._file_stamp = None  # tried again at the next check
            return
        self._file_keys, self._file_stamp = keys, stamp
        log.info("loaded %d key(s) from the JWKS file %s", len(keys), self.path)

    async def _fetch_once(self) -> None:
        """One fetch at a time: concurrent misses share it."""
        if self._fetching is None or self._fetching.done():
            self._fetching = asyncio.create_task(self._fetch())
        await asyncio.shield(self._fetching)

    async def _fetch(self) -> None:
        assert self.url is not None and self._session is not None
        self._last_fetch = time.monotonic()
        try:
            async with self._session.get(self.url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_S)) as resp:
                if resp.status != 200:
                    raise ValueError(f"HTTP status {resp.status}")
                keys = parse_jwks(await resp.read())
        except (TimeoutError, aiohttp.ClientError, ValueError) as err:
            log.error("cannot fetch the JWKS from %s (keeping the keys it had): %s", self.url, err)
            return
        if keys.keys() != self._url_keys.keys():
            log.info("loaded %d key(s) from the JWKS URL %s", len(keys), self.url)
        self._url_keys = keys

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_s)
            await self._fetch_once()
