"""Schedules on tempyral and on the reference: the servers' CPU per scheduled action, and how late each action's
workflow starts after its nominal time.

    .venv/bin/python bench/schedules.py                      # 20 schedules every 2 s, 60 s measured, each server
    .venv/bin/python bench/schedules.py --schedules 50 --interval 5 --seconds 120 --out schedules.json

Each server (`tempyral server start-dev` on a SQLite file, the reference's `temporal server start-dev` in memory)
runs as a child of this process on free loopback ports. A worker runs the scheduled workflow (it returns at once);
`--schedules` schedules each start it every `--interval` seconds. After a warm-up of two intervals, the window of
`--seconds` counts the actions taken (the sum of the schedules' `action_count`), the server's CPU (its process tree)
per action, and the lag of each workflow started in the window: its start time (visibility) minus the nominal time
in its id. The schedules are deleted at the end. `--timeout` bounds the whole run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleSpec,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import TreeCpu, connect_when_ready, start_dev_server, stop_process
from one_activity import pct_ms


@workflow.defn
class Scheduled:
    @workflow.run
    async def run(self) -> None:
        return None


async def action_count(client: Client, ids: list[str]) -> int:
    described = await asyncio.gather(*(client.get_schedule_handle(i).describe() for i in ids))
    return sum(d.info.num_actions for d in described)


def nominal_of(workflow_id: str) -> datetime:
    """The nominal time a schedule gives its workflow in the id (`<action id>-<RFC3339 seconds>`)."""
    return datetime.strptime(workflow_id[-20:], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def run_server(kind: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    proc, port = start_dev_server(kind, workdir)
    try:
        client = await connect_when_ready(f"127.0.0.1:{port}")
        queue = f"sched-bench-{uuid.uuid4().hex[:8]}"
        ids = [f"bench-{i}-{uuid.uuid4().hex[:6]}" for i in range(args.schedules)]
        runner = UnsandboxedWorkflowRunner()  # this module runs as __main__, which the sandbox cannot re-import
        async with Worker(client, task_queue=queue, workflows=[Scheduled], workflow_runner=runner):
            for schedule_id in ids:
                await client.create_schedule(
                    schedule_id,
                    Schedule(
                        action=ScheduleActionStartWorkflow(Scheduled.run, id=f"{schedule_id}-wf", task_queue=queue),
                        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=args.interval))]),
                    ),
                )
            await asyncio.sleep(2 * args.interval)
            before = await action_count(client, ids)
            window_start = datetime.now(UTC)
            cpu = TreeCpu([proc.pid])
            await asyncio.sleep(args.seconds)
            actions = await action_count(client, ids) - before
            figures = cpu.result(max(actions, 1))
            window_end = datetime.now(UTC)
            lags: list[float] = []
            async for wf in client.list_workflows(f"TaskQueue = '{queue}'"):
                nominal = nominal_of(wf.id)
                if window_start <= nominal <= window_end - timedelta(seconds=args.interval):
                    lags.append((wf.start_time - nominal).total_seconds())
            for schedule_id in ids:
                await client.get_schedule_handle(schedule_id).delete()
        lags.sort()
        return {
            "server": kind,
            "actions": actions,
            "expected_actions": round(args.schedules * args.seconds / args.interval),
            "server_cpu_ms_per_action": figures["server_cpu_ms_per_wf"],
            "lag_p50_ms": pct_ms(lags, 0.5),
            "lag_p95_ms": pct_ms(lags, 0.95),
            "lag_max_ms": round(lags[-1] * 1000, 1) if lags else float("nan"),
        }
    finally:
        stop_process(proc)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="schedules-bench-") as tmp:
        for kind in ("tempyral", "reference"):
            started = time.monotonic()
            result = await run_server(kind, args, Path(tmp))
            result["run_s"] = round(time.monotonic() - started, 1)
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--schedules", type=int, default=20)
    ap.add_argument("--interval", type=int, default=2, help="seconds between a schedule's actions")
    ap.add_argument("--seconds", type=int, default=60, help="the measured window")
    ap.add_argument("--timeout", type=float, default=900.0, help="bound on the whole benchmark, seconds")
    ap.add_argument("--out", help="write the figures here as JSON")
    return ap.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    all_results = asyncio.run(asyncio.wait_for(main(arguments), arguments.timeout))
    if arguments.out:
        Path(arguments.out).write_text(json.dumps(all_results, indent=1))
