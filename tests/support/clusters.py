"""Several tempyral clusters for tests: one server process each on 127.0.0.1, with its own ports and database,
connected the way an operator connects them (`temporal operator cluster upsert`, on each side)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from tests.support.servers import ServerProcess, reference_binary, tempyral

T = TypeVar("T")
INCREMENT = 10
CLI_TIMEOUT_S = 60.0


@dataclass
class Cluster:
    name: str
    initial_failover_version: int
    server: ServerProcess
    extra: list[str] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.server.address


def temporal_cli(address: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the official CLI against `address`; with `check`, a failure raises with what it printed."""
    result = subprocess.run(
        [reference_binary(), "--address", address, *args],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"temporal {' '.join(args)} failed ({result.returncode}): {result.stdout}{result.stderr}")
    return result


def new_cluster(name: str, initial_failover_version: int, extra: list[str] | None = None) -> Cluster:
    args = [
        "--cluster-name",
        name,
        "--initial-failover-version",
        str(initial_failover_version),
        "--failover-version-increment",
        str(INCREMENT),
        "--headless",
        *(extra or []),
    ]
    server = tempyral(extra=args)
    server.wait_until_serving = True
    return Cluster(name, initial_failover_version, server, args)


def connect(a: Cluster, b: Cluster, enable: bool = True) -> None:
    """Connect `a` and `b` both ways (or pause replication both ways with enable=False)."""
    flag = "--enable-connection" if enable else "--enable-connection=false"
    temporal_cli(a.address, "operator", "cluster", "upsert", "--frontend-address", b.address, flag)
    temporal_cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, flag)


@contextmanager
def running_clusters(names: list[str], extra: list[str] | None = None) -> Iterator[list[Cluster]]:
    """Start one cluster per name (initial failover versions 1, 2, ...), connect every pair, stop them all after."""
    clusters = [new_cluster(name, i + 1, extra) for i, name in enumerate(names)]
    try:
        for c in clusters:
            c.server.start()
        for i, a in enumerate(clusters):
            for b in clusters[i + 1 :]:
                connect(a, b)
        yield clusters
    finally:
        errors: list[BaseException] = []
        for c in clusters:
            try:
                c.server.stop()
            except BaseException as err:  # stop every server; report the first problem after
                errors.append(err)
        if errors:
            raise errors[0]


def eventually(check: Callable[[], T | None], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> T:
    """Poll `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"not within {timeout}s: {what or check} (last: {last!r})")
