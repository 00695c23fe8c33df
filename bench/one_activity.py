"""The one_activity workload of the shared benchmark (../shared/bench/workloads.py), run in this process: a workflow
that runs one activity, `concurrency` in flight, per_s and latency percentiles measured as workloads.py does.

Here the clients and workers may be several (one per node): workflow i is started through client i % len(clients).
The workflow and the activity are defined as in workloads.py (same names), at module top level: the SDK's sandbox
re-imports this module, so it makes no calls at import.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client

WORKER_OPTIONS = {"max_concurrent_workflow_tasks": 100, "max_concurrent_activities": 100}  # as workloads.py
WORKLOAD_TIMEOUT_S = 600.0


@activity.defn
async def step(x: int) -> int:
    return x + 1


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self, x: int) -> int:
        return await workflow.execute_activity(step, x, start_to_close_timeout=timedelta(seconds=30))


def pct_ms(ordered: list[float], p: float) -> float:
    """Nearest rank from below, in ms (as workloads.py)."""
    if not ordered:
        return float("nan")
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p))] * 1000, 1)


async def run_many(
    clients: Sequence[Client],
    task_queue: str,
    n: int,
    concurrency: int,
    id_prefix: str,
    timeout: float = WORKLOAD_TIMEOUT_S,
    id_width: int = 0,
) -> dict[str, float]:
    """n OneActivity workflows with ids f"{id_prefix}{i:0{id_width}d}", `concurrency` in flight; each result is
    checked."""
    sem = asyncio.Semaphore(concurrency)
    lat: list[float] = []

    async def one(i: int) -> None:
        async with sem:
            t0 = time.perf_counter()
            client = clients[i % len(clients)]
            wid = f"{id_prefix}{i:0{id_width}d}"
            assert await client.execute_workflow(OneActivity.run, i, id=wid, task_queue=task_queue) == i + 1
            lat.append(time.perf_counter() - t0)

    t = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(n))), timeout)
    wall = time.perf_counter() - t
    lat.sort()
    return {
        "n": n,
        "wall_s": round(wall, 3),
        "per_s": round(n / wall, 1),
        "p50_ms": pct_ms(lat, 0.5),
        "p95_ms": pct_ms(lat, 0.95),
        "p99_ms": pct_ms(lat, 0.99),
    }
