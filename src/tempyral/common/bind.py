"""The addresses the server listens on: how to write them, which address reaches them from this machine,
and a warning when they reach beyond it (tempyral has neither TLS nor authentication yet)."""

from __future__ import annotations

import ipaddress
import logging
import os
import socket
from collections.abc import Iterable, Sequence
from typing import Any

from tempyral.common.errors import StartupError

log = logging.getLogger("tempyral.server")

# Binding these listens on every interface; they are not addresses anyone can connect to.
_IPV4_ANY = ("", "0.0.0.0")
_IPV6_ANY = "::"


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bound_addresses(sockets: Sequence[Any]) -> list[str]:
    """host:port of each listening socket, from getsockname() tuples (IPv6 ones carry two more fields)."""
    return [host_port(str(address[0]), int(address[1])) for address in sockets]


def local_host(ip: str) -> str:
    """An address of this machine that reaches a server bound to `ip`: a wildcard bind is not one."""
    if ip in _IPV4_ANY:
        return "127.0.0.1"
    if ip == _IPV6_ANY:
        return "::1"
    return ip


def is_loopback(host: str) -> bool:
    """Only what surely stays on this machine: loopback IPs and `localhost`. Other names may resolve anywhere."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def warn_if_exposed(what: str, hosts: Iterable[str], address: str) -> bool:
    """Log a WARNING when any of `hosts` (what `what` is bound to, shown as `address`) is not loopback."""
    exposed = [host for host in hosts if not is_loopback(host)]
    if exposed:
        log.warning(
            "%s is served on %s without TLS or authentication: anyone who can reach that address can use it",
            what,
            address,
        )
    return bool(exposed)


def bind(ip: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to ip:port, not yet listening (nobody can connect before the server serves), or a
    StartupError that names the port and what it was for."""
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip, port))  # refused while another socket listens there, SO_REUSEADDR or not
    except OSError as err:
        sock.close()
        reason = os.strerror(err.errno) if err.errno else str(err)
        raise StartupError(f"cannot listen on {host_port(ip, port)} for {what}: {reason}") from err
    return sock


def check_free(ip: str, port: int, what: str) -> None:
    """Fail as `bind` does when ip:port is taken, without keeping it (for listeners bound elsewhere)."""
    bind(ip, port, what).close()
