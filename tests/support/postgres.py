"""A throwaway PostgreSQL server for tests and benchmarks (no pytest needed here: bench scripts use it too).

It runs Debian's `postgresql` binaries (the highest /usr/lib/postgresql/*/bin, else `initdb` on PATH): `initdb`
into a temporary directory, then `pg_ctl start` on a free loopback port, with its unix socket inside that
directory. As root it runs as the `postgres` user (initdb refuses root). Durability is off (fsync,
synchronous_commit, full_page_writes): the data dies with the test anyway.

    pg = PostgresServer()
    pg.start()
    url = pg.create_database()   # a fresh, empty database: postgresql://postgres@127.0.0.1:PORT/tN
    ...
    pg.stop()

`pause()` / `resume()` stop and start the same server on the same port and data (a database that goes away
mid-run and comes back).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.servers import ServerProcess, free_port

START_TIMEOUT_S = 60


def find_bin_dir() -> str | None:
    """The directory of the PostgreSQL server binaries, or None when PostgreSQL is not installed.
    TEMPYRAL_POSTGRES_BIN names it instead (the tests of a machine without PostgreSQL set a missing one)."""
    chosen = os.environ.get("TEMPYRAL_POSTGRES_BIN")
    if chosen is not None:
        return chosen if os.path.exists(os.path.join(chosen, "initdb")) else None
    candidates = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]

    def version(path: str) -> tuple[int, ...]:
        name = Path(path).parent.name
        return tuple(int(p) for p in name.split(".") if p.isdigit())

    if candidates:
        return max(candidates, key=version)
    initdb = shutil.which("initdb")
    return os.path.dirname(os.path.realpath(initdb)) if initdb else None


def why_unavailable() -> str | None:
    """None when a server can be started here, else why not (for a skip message)."""
    if find_bin_dir() is None:
        return "PostgreSQL is not installed (no initdb: apt-get install postgresql, which ./scripts/test does)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


class PostgresServer:
    def __init__(self) -> None:
        self.bin_dir = find_bin_dir()
        self.dir: str | None = None
        self.port = 0
        self._names = itertools.count(1)

    @property
    def data_dir(self) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, "data")

    @property
    def socket_dir(self) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, "sock")

    @property
    def log_path(self) -> str:
        assert self.dir is not None
        return os.path.join(self.dir, "postgres.log")

    def _command(self, *args: str) -> list[str]:
        """Run as the postgres user when we are root (initdb and postgres refuse to run as root)."""
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *args]
        return list(args)

    def _tool(self, name: str) -> str:
        assert self.bin_dir is not None
        return os.path.join(self.bin_dir, name)

    def start(self, port: int | None = None) -> None:
        """`port`: where to listen (default: a free port)."""
        reason = why_unavailable()
        if reason is not None:
            raise RuntimeError(reason)
        self.dir = tempfile.mkdtemp(prefix="tempyral-pg-")
        os.mkdir(self.socket_dir)
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            for path in (self.dir, self.socket_dir):
                os.chown(path, user.pw_uid, user.pw_gid)
        subprocess.run(
            self._command(
                self._tool("initdb"),
                "-D",
                self.data_dir,
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self.port = port or free_port()
        self._pg_ctl_start()

    def _pg_ctl_start(self) -> None:
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-p {self.port}",
                f"-k {self.socket_dir}",
                "-c fsync=off",
                "-c synchronous_commit=off",
                "-c full_page_writes=off",
                "-c max_connections=300",
                "-c shared_buffers=64MB",
            ]
        )
        done = subprocess.run(
            self._command(
                self._tool("pg_ctl"),
                "-D",
                self.data_dir,
                "-l",
                self.log_path,
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ),
            capture_output=True,
            timeout=START_TIMEOUT_S + 10,
        )
        if done.returncode != 0:
            raise RuntimeError(f"PostgreSQL did not start: {done.stderr.decode()} {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return Path(self.log_path).read_text()[-chars:]
        except OSError:
            return ""

    def _pg_ctl_stop(self, mode: str = "fast") -> None:
        subprocess.run(
            self._command(self._tool("pg_ctl"), "-D", self.data_dir, "-m", mode, "-w", "stop"),
            capture_output=True,
            timeout=60,
        )

    def pause(self) -> None:
        """Stop the server (connections are cut); `resume` starts it again on the same port and data."""
        self._pg_ctl_stop("fast")

    def resume(self) -> None:
        self._pg_ctl_start()

    def stop(self) -> None:
        if self.dir is None:
            return
        self._pg_ctl_stop("immediate")
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir = None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql over the unix socket; its output."""
        done = subprocess.run(
            [
                self._tool("psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                self.socket_dir,
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                database,
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def create_database(self) -> str:
        """A fresh empty database; its URL."""
        name = f"t{next(self._names)}_{int(time.time() * 1000) % 100000}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)


def tempyral_on_postgres(url: str, command: str = "start", extra: list[str] | None = None) -> ServerProcess:
    """A tempyral server process (`tempyral server start` by default) on the PostgreSQL database at `url`, on free
    loopback ports, without the Web UI."""
    import sys

    port, http_port = free_port(), free_port()
    args = [sys.executable, "-m", "tempyral", "server", command, "--db", url, "--ip", "127.0.0.1"]
    args += ["--port", str(port), "--http-port", str(http_port), "--headless", "--log-level", "info", *(extra or [])]
    proc = ServerProcess(args, port, f"tempyral-pg-{command}")
    proc.http_port = http_port
    proc.wait_until_serving = True
    return proc
