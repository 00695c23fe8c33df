"""Which URLs the server may call: completion callbacks and external Nexus endpoints.

Both are named by callers, so without a rule the server would POST to any address a request
names, loopback and internal hosts included. A URL is allowed only if its host[:port] matches a
configured pattern (`*` matches any characters), and plain http only if the rule allows insecure
connections, as the reference's `component.callbacks.allowedAddresses`. Always allowed: the
internal `temporal://` callbacks and tempyral's own callback URL, which its HTTP API serves.

The messages are the reference's, URL parse errors included (it parses with Go's net/url).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

SYSTEM_CALLBACK_URL = "temporal://system"
# Accepted on start as the reference accepts it; tempyral has no such handler, so never called.
INTERNAL_CALLBACK_URL = "temporal://internal"
# The routes of tempyral's HTTP API that take completions (nexus/http_api.py).
_OWN_CALLBACK_PATH = re.compile(r"/(namespaces/[^/]+/)?nexus/callback")
# What Go's net/url accepts in a host name besides letters, digits and non-ASCII bytes.
_HOST_CHARS = frozenset(string.ascii_letters + string.digits + "-_.~!$&'()*+,;=:[]<>\"%")


class AddressRefused(Exception):
    """The URL may not be called; the message is the reference's."""


@dataclass(frozen=True)
class AddressRule:
    """host[:port] pattern with `*` wildcards; https only unless `allow_insecure`."""

    pattern: str
    allow_insecure: bool = False
    _regex: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        regex = ".*".join(re.escape(literal) for literal in self.pattern.split("*"))
        object.__setattr__(self, "_regex", re.compile(regex, re.DOTALL))

    def matches(self, host: str) -> bool:
        return self._regex.fullmatch(host) is not None


@dataclass
class _Url:
    scheme: str
    host: str
    path: str
    shown: str  # as Go prints a parsed URL: the scheme lowercased


class OutboundAddresses:
    def __init__(self, rules: Sequence[AddressRule] = ()) -> None:
        self.rules = tuple(rules)
        # http://host:port of this server's HTTP API, once it is bound (set by the server).
        self.own_base_url = ""
        # Rules from dynamic config (callback.allowedAddresses) for the current call, which replace the flags' when
        # given (None: not configured); set by the server.
        self.dynamic_rules: Callable[[], Sequence[AddressRule] | None] | None = None

    def check_callback(self, url: str) -> None:
        """A completion callback URL, as a start request names it. Raises AddressRefused."""
        if url in (SYSTEM_CALLBACK_URL, INTERNAL_CALLBACK_URL):
            return
        parsed = _parse(url, "invalid callback url: ", "invalid url: ")
        if self._is_own_callback(parsed):
            return
        self._check_rules(parsed, "invalid url: ")

    def check_endpoint(self, url: str) -> None:
        """The URL of an external Nexus endpoint (already known to be http or https)."""
        self._check_rules(_parse(url, "invalid target URL: ", "invalid target URL: "), "invalid target URL: ")

    def _is_own_callback(self, url: _Url) -> bool:
        own = self.own_base_url
        return bool(own) and f"{url.scheme}://{url.host}" == own and _OWN_CALLBACK_PATH.fullmatch(url.path) is not None

    def _check_rules(self, url: _Url, prefix: str) -> None:
        rules = self.dynamic_rules() if self.dynamic_rules is not None else None
        for rule in self.rules if rules is None else rules:
            if not rule.matches(url.host):
                continue
            if rule.allow_insecure or url.scheme == "https":
                return
            raise AddressRefused(f"{prefix}callback address does not allow insecure connections: {url.shown}")
        raise AddressRefused(f"{prefix}url does not match any configured callback address: {url.shown}")


def _parse(raw: str, parse_prefix: str, prefix: str) -> _Url:
    """Scheme, host[:port] and path, refusing what the reference's parse and checks refuse."""
    error = _go_parse_error(raw)
    if error:
        raise AddressRefused(f'{parse_prefix}parse "{_go_quote(raw)}": {error}')
    scheme, rest = _go_scheme(raw.partition("#")[0])
    shown = f"{scheme}:{raw[len(scheme) + 1 :]}" if scheme else raw
    if scheme not in ("http", "https"):
        raise AddressRefused(f"{prefix}unknown scheme: {shown}")
    authority, path = _split_authority(rest[2:]) if rest.startswith("//") else ("", rest)
    host = authority.rpartition("@")[2]
    if not host:
        raise AddressRefused(f"{prefix}missing host")
    return _Url(scheme, host, path, shown)


def _go_scheme(raw: str) -> tuple[str, str]:
    """The scheme (lowercased) and the rest, split where Go's url.Parse splits them."""
    for i, c in enumerate(raw):
        if c in string.ascii_letters or (i > 0 and c in string.digits + "+-."):
            continue
        if c == ":" and i > 0:
            return raw[:i].lower(), raw[i + 1 :]
        break
    return "", raw


def _split_authority(after_slashes: str) -> tuple[str, str]:
    end = len(after_slashes)
    for stop in "/?#":
        index = after_slashes.find(stop)
        if index != -1:
            end = min(end, index)
    path = after_slashes[end:]
    for stop in "?#":
        path = path.partition(stop)[0]
    return after_slashes[:end], path


def _go_parse_error(raw: str) -> str:
    """The reason Go's url.Parse gives for the errors a caller is likely to hit; "" if none."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return "net/url: invalid control character in URL"
    without_fragment = raw.partition("#")[0]
    if without_fragment.startswith(":"):
        return "missing protocol scheme"
    scheme, rest = _go_scheme(without_fragment)
    if not scheme:
        first_segment = rest.partition("/")[0]
        return "first path segment in URL cannot contain colon" if ":" in first_segment else ""
    if not rest.startswith("//"):
        return ""
    authority, _ = _split_authority(rest[2:])
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        close = host.find("]")
        if close == -1:
            return "missing ']' in host"
        port = host[close + 1 :]
        if port and not _valid_port(port):
            return f"invalid port {_go_quote_string(port)} after host"
    elif ":" in host:
        port = host[host.rfind(":") :]
        if not _valid_port(port):
            return f"invalid port {_go_quote_string(port)} after host"
    escape = re.search(r"%(?![0-9A-Fa-f]{2})", host)
    if escape:
        return f"invalid URL escape {_go_quote_string(host[escape.start() : escape.start() + 3])}"
    for c in host:
        if ord(c) < 0x80 and c not in _HOST_CHARS:
            return f"invalid character {_go_quote_string(c)} in host name"
    return ""


def _valid_port(colon_port: str) -> bool:
    return colon_port.startswith(":") and all(c in string.digits for c in colon_port[1:])


def _go_quote(text: str) -> str:
    """Go's strconv.Quote, without the quotes."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        else:
            out.append(c)
    return "".join(out)


def _go_quote_string(text: str) -> str:
    return f'"{_go_quote(text)}"'
