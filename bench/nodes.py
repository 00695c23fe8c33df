"""One tempyral node against two (or more) on one PostgreSQL: throughput and server CPU per workflow.

    .venv/bin/python bench/nodes.py                  # 1 and 2 nodes, 2 rounds, 600 workflows per run
    .venv/bin/python bench/nodes.py --n 300 --rounds 1 --out nodes.json

Every run starts a fresh cluster with bench/pg_server.py (a new durable PostgreSQL, `--no-durable` to turn fsync and
synchronous_commit off, and `--nodes N` tempyral nodes with `--shards` history shards, default 4), waits until every
node serves and the shards are spread over all of them (the `shards` table names N owners, evenly), then runs the
one_activity workload of the shared benchmark (bench/one_activity.py: a workflow that runs one activity, 200 in
flight) with the official Python SDK in this process: `--workers` workers (default 2) polling one task queue, worker
w connected to node w % N, and workflow i started through a client connected to node i % N. So with two nodes, half
the calls reach a node that does not own the workflow's shard, and tasks are created on one node and polled from the
other; with one node, the same two workers and clients all use that node (the SDK's cost is the same in both).
`--placement first` puts every client and worker on node 0 instead (the other nodes then only own shards): what the
calls between nodes cost, without the spread polls.

A warm-up of `--warmup` workflows precedes each measured run of `--n`. Figures per run: per_s, p50_ms, and CPU ms per
workflow of the servers (all tempyral nodes and PostgreSQL: the pg_server.py process tree), split into tempyral (and
per node) and PostgreSQL; of the client (this process: the SDK client and workers); and `other_processes_cores`,
the cores the rest of the machine used meanwhile (other people's work: a figure taken with it high is noisy); and
tempyral_per_client, tempyral's CPU per workflow over the client's: the client does the same work per workflow in
every configuration, so this ratio is the one to compare when the machine's speed drifts between runs.
Configurations alternate within each round (1, 2, 1, 2 ...); the summary gives the median per configuration and the
ratios against one node. The client and every server share this machine's cores: with 2 cores, two nodes cannot
be faster than one; what they show is whether the cost per workflow grows with the number of nodes.

Before the warm-up, the idle servers' CPU is measured for `--idle-s` seconds (`idle`, in cores: heartbeats,
membership and configuration polling), so that a difference in CPU per workflow can be told from background work.

`--timeout` (default 600 s) bounds the whole run; every cluster is stopped at the end, on an error or on Ctrl-C. The
servers' logs go to a temporary directory, removed after a successful run unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from benchlib import REPO, TreeCpu, free_port, python
from one_activity import WORKER_OPTIONS, OneActivity, run_many, step
from temporalio.client import Client
from temporalio.worker import Worker

START_TIMEOUT_S = 120.0
SPREAD_TIMEOUT_S = 60.0
RUNNING: list[subprocess.Popen[bytes]] = []


class Cluster:
    """A pg_server.py process: PostgreSQL and N tempyral nodes, in their own process group."""

    def __init__(self, nodes: int, args: argparse.Namespace, workdir: Path, label: str) -> None:
        self.nodes = nodes
        self.args = args
        self.info_path = workdir / f"{label}.json"
        self.log_path = workdir / f"{label}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def spawn(self) -> None:
        command = [python(), str(REPO / "bench" / "pg_server.py"), "--port", str(free_port())]
        command += ["--nodes", str(self.nodes), "--info-file", str(self.info_path)]
        if self.args.no_durable:
            command.append("--no-durable")
        command += ["--log-level", self.args.log_level]
        command += ["--", "--shards", str(self.args.shards)]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        RUNNING.append(self.proc)

    async def start(self) -> None:
        self.spawn()
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.info_path.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"pg_server.py exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster of {self.nodes} not up after {START_TIMEOUT_S:.0f} s: {self.log_tail()}")
            await asyncio.sleep(0.2)
        self.info = json.loads(self.info_path.read_text())
        await self._wait_spread()

    async def _wait_spread(self) -> None:
        """Until the shards table names one owner per node, with shares that differ by at most one."""
        conn = await asyncpg.connect(self.info["db_url"])
        try:
            deadline = time.monotonic() + SPREAD_TIMEOUT_S
            owners: dict[str, int] = {}
            while time.monotonic() < deadline:
                rows = await conn.fetch("SELECT owner, count(*) AS n FROM shards GROUP BY owner")
                owners = {r["owner"]: r["n"] for r in rows}
                counts = list(owners.values())
                if (
                    "" not in owners
                    and len(owners) == self.nodes
                    and sum(counts) == self.args.shards
                    and max(counts) - min(counts) <= 1
                ):
                    return
                await asyncio.sleep(0.2)
            raise RuntimeError(f"shards not spread over {self.nodes} nodes in {SPREAD_TIMEOUT_S:.0f} s: {owners}")
        finally:
            await conn.close()

    @property
    def addresses(self) -> list[str]:
        return [str(n["address"]) for n in self.info["nodes"]]

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def problems(self) -> list[str]:
        """ERROR and Traceback lines the servers wrote."""
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return []
        return [line for line in lines if " ERROR " in line or line.startswith("Traceback")]

    def stop(self) -> None:
        stop_group(self.proc)


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(45)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    except ProcessLookupError:
        pass


async def run_once(nodes: int, args: argparse.Namespace, workdir: Path, label: str) -> dict[str, Any]:
    cluster = Cluster(nodes, args, workdir, label)
    try:
        await cluster.start()
        assert cluster.proc is not None
        # "first": every client and worker on node 0, the other nodes only own shards (a diagnostic placement)
        addresses = cluster.addresses if args.placement == "spread" else cluster.addresses[:1]
        clients = [await asyncio.wait_for(Client.connect(a), 10) for a in addresses]
        tq = f"nodes-{uuid.uuid4().hex[:8]}"
        # A client of its own per worker: the SDK allows one worker per task queue on a client.
        worker_clients = [
            await asyncio.wait_for(Client.connect(addresses[w % len(addresses)]), 10) for w in range(args.workers)
        ]
        workers = [
            Worker(c, task_queue=tq, workflows=[OneActivity], activities=[step], **WORKER_OPTIONS)  # type: ignore[arg-type]
            for c in worker_clients
        ]
        for worker in workers:
            await worker.__aenter__()
        try:
            # What the servers use doing nothing (heartbeats, membership, polling the database), before any load.
            idle = TreeCpu([cluster.proc.pid])
            await asyncio.sleep(args.idle_s)
            idle_cores = idle.cores()
            await run_many(clients, tq, args.warmup, args.concurrency, f"{tq}-warm-")
            window = TreeCpu([cluster.proc.pid])
            result: dict[str, Any] = await run_many(clients, tq, args.n, args.concurrency, f"{tq}-")
            result.update(window.result(args.n))
        finally:
            for worker in reversed(workers):
                await worker.__aexit__(None, None, None)
        result["nodes"] = nodes
        result["placement"] = args.placement
        result["idle_server_cores"] = idle_cores
        problems = cluster.problems()
        if problems:
            result["server_errors"] = len(problems)
            result["first_error"] = problems[0][:300]
        return result
    finally:
        cluster.stop()


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def summary(results: list[dict[str, Any]], configs: list[int]) -> str:
    metrics = [
        ("per_s", "per_s"),
        ("p50_ms", "p50_ms"),
        ("server_cpu_ms_per_wf", "server"),
        ("tempyral_cpu_ms_per_wf", "tempyral"),
        ("postgres_cpu_ms_per_wf", "postgres"),
        ("client_cpu_ms_per_wf", "client"),
        ("tempyral_per_client", "tp/client"),
        ("idle_server_cores", "idle"),
        ("other_processes_cores", "others"),
    ]
    ratio_metrics = metrics[:-2]  # idle and others are in cores, not per workflow
    lines = ["", "nodes  " + " ".join(f"{title:>9}" for _, title in metrics) + "   per node (tempyral ms/wf)"]
    medians: dict[int, dict[str, float]] = {}
    for nodes in configs:
        runs = [r for r in results if r["nodes"] == nodes]
        for r in runs:  # runs written by an older version of this script lack it
            r.setdefault("tempyral_per_client", r["tempyral_cpu_ms_per_wf"] / r["client_cpu_ms_per_wf"])
        medians[nodes] = {key: median([float(r[key]) for r in runs]) for key, _ in metrics}
        per_node = [
            round(median([float(r["per_node_cpu_ms_per_wf"][i]) for r in runs]), 2)
            for i in range(min(len(r["per_node_cpu_ms_per_wf"]) for r in runs))
        ]
        lines.append(
            f"{nodes:>5}  " + " ".join(f"{medians[nodes][key]:>9.2f}" for key, _ in metrics) + f"   {per_node}"
        )
    base = configs[0]
    for nodes in configs[1:]:
        ratios = {
            key: medians[nodes][key] / medians[base][key] if medians[base][key] else float("nan")
            for key, _ in ratio_metrics
        }
        lines.append(
            f"{nodes}/{base}:  "
            + " ".join(f"{ratios[key]:>9.2f}" for key, _ in ratio_metrics)
            + "   (ratio of medians)"
        )
    lines.append(
        f"(medians over {len(results) // len(configs)} run(s) each; CPU in ms per workflow; idle: the servers' cores"
        " before any load; others: cores the rest of the machine used during the run; tp/client: tempyral's CPU per"
        " workflow over the client's in the same run, which does the same work in every configuration, so that the"
        " machine's speed of the moment (it varies on a shared VM) cancels out)"
    )
    return "\n".join(lines)


async def main(args: argparse.Namespace, workdir: Path) -> list[dict[str, Any]]:
    configs = [int(c) for c in args.configs.split(",")]
    print(f"work directory (server logs): {workdir}", flush=True)
    results: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for nodes in configs:
            result = await run_once(nodes, args, workdir, f"r{r + 1}-n{nodes}")
            result["round"] = r + 1
            results.append(result)
            print(f"round {r + 1} nodes={nodes}: {json.dumps(result)}", flush=True)
    print(summary(results, configs))
    return results


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=600, help="workflows per measured run")
    ap.add_argument("--warmup", type=int, default=100, help="workflows before each measured run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--configs", default="1,2", help="node counts to compare, the first is the base")
    ap.add_argument("--workers", type=int, default=2, help="SDK workers, spread over the nodes")
    ap.add_argument(
        "--placement",
        choices=["spread", "first"],
        default="spread",
        help="spread: client i and worker w on nodes i %% N and w %% N; first: all on node 0",
    )
    ap.add_argument("--concurrency", type=int, default=200, help="workflows in flight")
    ap.add_argument("--shards", type=int, default=4, help="history shards of every cluster")
    ap.add_argument("--idle-s", type=float, default=3.0, help="seconds the idle servers' CPU is measured for")
    ap.add_argument("--no-durable", action="store_true", help="PostgreSQL without fsync and synchronous_commit")
    ap.add_argument("--timeout", type=float, default=600.0, help="bound of the whole run, seconds")
    ap.add_argument("--log-level", default="warn", choices=["debug", "info", "warn", "error"], help="the nodes' logs")
    ap.add_argument("--keep", action="store_true", help="keep the server logs (kept anyway when the run fails)")
    ap.add_argument("--out", help="write every run's figures here as JSON")
    return ap.parse_args()


def run() -> int:
    args = parse_args()

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    workdir = Path(tempfile.mkdtemp(prefix="tempyral-bench-nodes-"))
    ok = False
    try:
        results = asyncio.run(asyncio.wait_for(main(args, workdir), args.timeout))
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1))
        ok = True
        return 0
    except TimeoutError:
        print(f"nodes.py: not done in {args.timeout:.0f} s", file=sys.stderr)
        return 1
    finally:
        for proc in RUNNING:
            stop_group(proc)
        if ok and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"server logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    status = run()
    sys.stdout.flush()
    # the SDK's native runtime can crash during interpreter teardown; the results are already out
    os._exit(status)
