"""Helpers shared by the PostgreSQL benchmark scripts (pg_server.py, nodes.py, stored.py).

- `LocalPostgres`: a throwaway PostgreSQL server run in the foreground as a child of this process (so that the CPU
  of a process tree counts it), in a temporary directory, on a free loopback port. As root it runs as the
  `postgres` user (initdb and postgres refuse root): the child is started with that user's uid and gid directly
  (`subprocess.Popen(user=..., group=...)`), so it is this process's own child, with no `runuser` in between.
- process-tree CPU accounting (`TreeCpu`), free ports, the tempyral command line, waiting for a port.

No calls at module level: workflow modules stay importable by the SDK's sandbox.
"""

from __future__ import annotations

import asyncio
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from temporalio.client import Client

REPO = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


# ---------------------------------------------------------------------- ports and commands
def free_port() -> int:
    """A free loopback port outside the ephemeral range when possible (a port from bind(0) can be taken as some
    outgoing connection's source port before the server binds it)."""
    try:
        low, high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    except (OSError, ValueError):
        low, high = 32768, 60999
    for port in _shuffled([p for p in range(10000, 65536) if not low <= p <= high])[:200]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _shuffled(values: list[int]) -> list[int]:
    import random

    random.shuffle(values)
    return values


def python() -> str:
    """The repository's virtualenv Python (it has tempyral and the SDK), else this one."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


def tempyral_command(*args: str) -> list[str]:
    return [python(), "-m", "tempyral", *args]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, port)) == 0


def wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = START_TIMEOUT_S) -> None:
    """Until `port` accepts connections (tempyral's gRPC port listens once the server serves); raises if `proc`
    exits first or the time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before serving")
        if port_open(port):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what} not serving on port {port} after {timeout:.0f} s")


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
    """Signal a child and wait for it; SIGKILL if it does not exit in time."""
    if proc is None or proc.poll() is not None:
        return
    try:
        proc.send_signal(sig)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------- CPU of process trees
def tree_pids(root: int) -> list[int]:
    """The process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def process_cpu(pid: int) -> float:
    """CPU seconds of a process, user + system, with those of its children that exited and were reaped (cutime,
    cstime): PostgreSQL's short-lived workers (autovacuum) count once the postmaster has reaped them."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def role_of(pid: int) -> str:
    """'tempyral' for a tempyral server process, 'postgres' for PostgreSQL's, else 'other' (a wrapper)."""
    if " -m tempyral " in f" {cmdline(pid)} ":
        return "tempyral"
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "other"
    return "postgres" if comm in ("postgres", "postmaster") else "other"


def cpu_by_pid(roots: list[int]) -> dict[int, tuple[str, float]]:
    """{pid: (role, CPU seconds)} for every process in the trees under `roots`."""
    out: dict[int, tuple[str, float]] = {}
    for root in roots:
        for pid in tree_pids(root):
            out[pid] = (role_of(pid), process_cpu(pid))
    return out


def rss_mib(roots: list[int], role: str = "tempyral") -> float:
    """Resident memory of the processes of `role` in the trees under `roots`, MiB."""
    total = 0
    for root in roots:
        for pid in tree_pids(root):
            if role_of(pid) != role:
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
    return round(total / 1024, 1)


def machine_busy() -> float:
    """Busy CPU seconds of the whole machine since boot (/proc/stat), to tell how much others used meanwhile."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = (fields + [0] * 7)[:7]
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


class TreeCpu:
    """CPU used during a window: by the server process trees under `roots` (children of this process), split by
    role (tempyral, per process, and postgres); by the rest of this process's tree (the SDK client and worker, in
    this process or in a child); and by everything else on the machine (other people's work: noise).

    Every process counts once: a live one by its own user + system time, one that exited by its parent's
    cutime/cstime once reaped (PostgreSQL's backends and autovacuum workers by the postmaster)."""

    def __init__(self, roots: list[int]) -> None:
        self.roots = roots
        self.t = time.monotonic()
        self.before = cpu_by_pid(roots)
        self.mine = _tree_cpu(os.getpid())
        self.machine = machine_busy()

    def result(self, units: int) -> dict[str, object]:
        after = cpu_by_pid(self.roots)
        wall = time.monotonic() - self.t
        per_role: dict[str, float] = {"tempyral": 0.0, "postgres": 0.0, "other": 0.0}
        per_node: dict[int, float] = {}
        for pid, (role, cpu) in after.items():
            delta = cpu - self.before.get(pid, (role, 0.0))[1]
            per_role[role] += delta
            if role == "tempyral":
                per_node[pid] = delta
        servers = sum(per_role.values())
        mine = _tree_cpu(os.getpid()) - self.mine
        others = max(0.0, machine_busy() - self.machine - mine)

        def ms(seconds: float) -> float:
            return round(seconds * 1000 / max(units, 1), 2)

        return {
            "server_cpu_ms_per_wf": ms(servers),
            "tempyral_cpu_ms_per_wf": ms(per_role["tempyral"]),
            "postgres_cpu_ms_per_wf": ms(per_role["postgres"]),
            "per_node_cpu_ms_per_wf": [ms(v) for _, v in sorted(per_node.items())],
            "client_cpu_ms_per_wf": ms(max(0.0, mine - servers)),
            "other_processes_cores": round(others / wall, 2) if wall > 0 else 0.0,
        }

    def cores(self) -> float:
        """The servers' CPU since the window began, in cores (CPU seconds per second)."""
        after = cpu_by_pid(self.roots)
        used = sum(cpu - self.before.get(pid, (role, 0.0))[1] for pid, (role, cpu) in after.items())
        wall = time.monotonic() - self.t
        return round(used / wall, 3) if wall > 0 else 0.0


def _tree_cpu(root: int) -> float:
    return sum(process_cpu(pid) for pid in tree_pids(root))


# ---------------------------------------------------------------------- PostgreSQL
def find_postgres_bin() -> str:
    """The directory of Debian's PostgreSQL server binaries (the highest version), or of `initdb` on PATH."""
    chosen = os.environ.get("TEMPYRAL_POSTGRES_BIN")
    if chosen:
        return chosen
    found = [d for d in glob.glob("/usr/lib/postgresql/*/bin") if os.path.exists(os.path.join(d, "initdb"))]
    if found:

        def version(path: str) -> tuple[int, ...]:
            return tuple(int(p) for p in Path(path).parent.name.split(".") if p.isdigit())

        return max(found, key=version)
    initdb = shutil.which("initdb")
    if initdb is None:
        raise SystemExit("PostgreSQL is not installed (no initdb): apt-get install postgresql")
    return os.path.dirname(os.path.realpath(initdb))


@dataclass
class PostgresSettings:
    """durable: PostgreSQL's own defaults, fsync=on, synchronous_commit=on, full_page_writes=on (every commit is
    flushed to disk before it is acknowledged). Not durable: all three off (a commit is acknowledged before it
    reaches the disk; the data of a crash is lost)."""

    durable: bool = True
    max_connections: int = 200

    def options(self) -> list[str]:
        out = [f"max_connections={self.max_connections}"]
        if not self.durable:
            out += ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        return out


class LocalPostgres:
    """initdb into a temporary directory, then `postgres -D` in the foreground as a child of this process."""

    def __init__(self, settings: PostgresSettings | None = None, prefix: str = "tempyral-bench-pg-") -> None:
        self.settings = settings or PostgresSettings()
        self.bin_dir = find_postgres_bin()
        self.prefix = prefix
        self.dir: Path | None = None
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._user: pwd.struct_passwd | None = pwd.getpwnam("postgres") if os.geteuid() == 0 else None

    @property
    def data_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.dir is not None
        return self.dir / "sock"

    @property
    def log_path(self) -> Path:
        assert self.dir is not None
        return self.dir / "postgres.log"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def _as_owner(self) -> dict[str, object]:
        """Popen arguments that run the child as the `postgres` user when we are root."""
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _tool(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def start(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.socket_dir.mkdir()
        if self._user is not None:
            for path in (self.dir, self.socket_dir):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        done = subprocess.run(
            [
                self._tool("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",  # initdb's own final fsync: the cluster is thrown away anyway
            ],
            capture_output=True,
            timeout=120,
            cwd=self.dir,
            **self._as_owner(),  # type: ignore[call-overload]
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.decode(errors='replace')}")
        self.port = free_port()
        command = [
            self._tool("postgres"),
            "-D",
            str(self.data_dir),
            "-p",
            str(self.port),
            "-k",
            str(self.socket_dir),
            "-c",
            "listen_addresses=127.0.0.1",
        ]
        for option in self.settings.options():
            command += ["-c", option]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.dir,
                **self._as_owner(),  # type: ignore[call-overload]
            )
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited with {self.proc.returncode}: {self.log_tail()}")
            ready = subprocess.run(
                [self._tool("pg_isready"), "-q", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
                timeout=30,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL not ready after {START_TIMEOUT_S:.0f} s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres", timeout: float = 600.0) -> str:
        """Run SQL through psql over the unix socket (trust authentication); its output, unaligned."""
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
                str(self.socket_dir),
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
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql failed: {done.stderr}")
        return done.stdout

    def create_database(self, name: str) -> str:
        """A new empty database; its URL."""
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: open sessions are cut, a shutdown checkpoint is written), then the directory goes.
        SIGQUIT (immediate) and SIGKILL if it takes too long."""
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGINT)
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGQUIT)
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            except ProcessLookupError:
                pass
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None


# ---------------------------------------------------------------------- dev servers side by side
def start_dev_server(kind: str, workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    """`tempyral server start-dev` on a SQLite file in `workdir`, or the reference's dev server in memory (`kind`
    "reference"), as a child of this process on free loopback ports; its log in `workdir`."""
    port, http_port, ui_port = free_port(), free_port(), free_port()
    log = (workdir / f"{kind}.log").open("wb")
    if kind == "tempyral":
        command = tempyral_command(
            "server", "start-dev", "--port", str(port), "--http-port", str(http_port), "--ui-port", str(ui_port),
            "--db-filename", str(workdir / "tempyral.db"), "--headless", "--log-level", "warn",
        )  # fmt: skip
    else:
        binary = str(Path(python()).parent / "temporal")
        command = [binary, "server", "start-dev", "--headless", "--port", str(port), "--http-port", str(http_port)]
        command += ["--ui-port", str(ui_port), "--metrics-port", str(free_port()), "--log-level", "warn"]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    wait_port(port, proc, kind)
    return proc, port


async def connect_when_ready(address: str, timeout: float = 60.0) -> Client:
    """A client of the server at `address`: the reference answers UNAVAILABLE for a moment after its port opens."""
    from temporalio.client import Client

    deadline = time.monotonic() + timeout
    while True:
        try:
            return await Client.connect(address)
        except RuntimeError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
