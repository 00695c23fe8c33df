"""Eager workflow start against a normal start, on tempyral and on the reference: latency from start to result of a
workflow that returns at once, one at a time, and the servers' CPU per workflow.

    .venv/bin/python bench/eager.py                 # 200 workflows per run, 2 rounds
    .venv/bin/python bench/eager.py --n 500 --rounds 3 --out eager.json

Each server (`tempyral server start-dev` on a SQLite file in a temporary directory, and the reference's
`temporal server start-dev --headless` in memory) runs as a child of this process on free loopback ports. A worker
and the client share one SDK client, as eager start needs; each run starts `--n` workflows one after another,
`request_eager_start` on or off, and waits for each result. Figures per run: p50 and p95 ms from the start call to
the result, and the server's CPU ms per workflow (its process tree). Modes alternate within each round; the summary
gives medians. `--timeout` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import TreeCpu, connect_when_ready, start_dev_server, stop_process
from one_activity import pct_ms


@workflow.defn
class Instant:
    @workflow.run
    async def run(self, x: int) -> int:
        return x + 1


async def run_once(client: Client, server_pid: int, n: int, eager: bool) -> dict[str, Any]:
    task_queue = f"eager-bench-{uuid.uuid4().hex[:8]}"
    latencies: list[float] = []
    eagerly = 0
    # unsandboxed: this module runs as __main__, which the sandbox cannot re-import; the same for both servers
    async with Worker(client, task_queue=task_queue, workflows=[Instant], workflow_runner=UnsandboxedWorkflowRunner()):
        for i in range(10):  # warm-up: the worker's first polls, the server's caches
            await client.execute_workflow(Instant.run, i, id=f"warm-{uuid.uuid4().hex}", task_queue=task_queue)
        cpu = TreeCpu([server_pid])
        for i in range(n):
            t0 = time.perf_counter()
            handle = await client.start_workflow(
                Instant.run, i, id=f"eager-{uuid.uuid4().hex}", task_queue=task_queue, request_eager_start=eager
            )
            await handle.result()
            latencies.append(time.perf_counter() - t0)
            eagerly += bool(getattr(handle, "__temporal_eagerly_started", False))
        figures = cpu.result(n)
    latencies.sort()
    return {
        "eager": eager,
        "eagerly_started": eagerly,
        "p50_ms": pct_ms(latencies, 0.5),
        "p95_ms": pct_ms(latencies, 0.95),
        "server_cpu_ms_per_wf": figures["server_cpu_ms_per_wf"],
    }


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="eager-bench-") as tmp:
        for kind in ("tempyral", "reference"):
            proc, port = start_dev_server(kind, Path(tmp))
            try:
                client = await connect_when_ready(f"127.0.0.1:{port}")
                for _ in range(args.rounds):
                    for eager in (False, True):
                        result = await run_once(client, proc.pid, args.n, eager)
                        result["server"] = kind
                        print(json.dumps(result), flush=True)
                        results.append(result)
            finally:
                stop_process(proc)
    return results


def summary(results: list[dict[str, Any]]) -> None:
    print("server     mode    p50 ms  p95 ms  server CPU ms/wf")
    for kind in ("tempyral", "reference"):
        for eager in (False, True):
            runs = [r for r in results if r["server"] == kind and r["eager"] == eager]
            med = {k: statistics.median(r[k] for r in runs) for k in ("p50_ms", "p95_ms", "server_cpu_ms_per_wf")}
            mode = "eager" if eager else "normal"
            print(f"{kind:10} {mode:7} {med['p50_ms']:6.1f}  {med['p95_ms']:6.1f}  {med['server_cpu_ms_per_wf']:6.2f}")


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=200, help="workflows per run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=900.0, help="bound on the whole benchmark, seconds")
    ap.add_argument("--out", help="write every run's figures here as JSON")
    return ap.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    all_results = asyncio.run(asyncio.wait_for(main(arguments), arguments.timeout))
    summary(all_results)
    if arguments.out:
        Path(arguments.out).write_text(json.dumps(all_results, indent=1))
