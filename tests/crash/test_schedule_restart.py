"""SIGKILL the server while a schedule with a short interval runs, restart it, and check that every action whose
time passed (all inside the catch-up window) ran exactly once: the started workflows' ids are exactly the nominal
times of the spec, one run each."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.crash.test_sigkill import retrying
from tests.integration.schedule_workflows import QuickWorkflow
from tests.support.servers import ServerProcess

EVERY_S = 2
DEADLINE_S = 60.0


def _nominal(workflow_id: str, prefix: str) -> datetime:
    return datetime.strptime(workflow_id.removeprefix(prefix + "-"), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


async def _runs(client: Client, sid: str) -> list[str]:
    return [w.id async for w in client.list_workflows(f"TemporalScheduledById = '{sid}'")]


async def _wait_for_actions(client: Client, sid: str, count: int) -> None:
    handle = client.get_schedule_handle(sid)
    deadline = time.monotonic() + DEADLINE_S
    while True:
        described = await retrying(handle.describe, "describe")
        if described.info.num_actions >= count:
            return
        assert time.monotonic() < deadline, f"{count} actions not taken within {DEADLINE_S}s"
        await asyncio.sleep(0.2)


async def _create(client: Client, sid: str, task_queue: str, catchup: timedelta) -> ScheduleHandle:
    """A schedule starting QuickWorkflow every EVERY_S seconds, its workflow ids prefixed `wf-<sid>`."""
    return await client.create_schedule(
        sid,
        Schedule(
            action=ScheduleActionStartWorkflow("ScheduleQuick", "x", id=f"wf-{sid}", task_queue=task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=EVERY_S))]),
            policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.ALLOW_ALL, catchup_window=catchup),
        ),
    )


async def _pause_and_list(client: Client, handle: ScheduleHandle, sid: str) -> tuple[ScheduleDescription, list[str]]:
    """Pause the schedule; return its description and its workflows' ids once every counted action is listed (an
    action chosen just before the pause may still be starting)."""
    await retrying(lambda: handle.pause(note="done"), "pause")
    deadline = time.monotonic() + DEADLINE_S
    while True:
        described = await handle.describe()
        ids = await _runs(client, sid)
        if len(ids) >= described.info.num_actions:
            return described, ids
        assert time.monotonic() < deadline, f"{described.info.num_actions} actions, {len(ids)} workflows"
        await asyncio.sleep(0.2)


async def _kill_and_restart(
    crashable: ServerProcess, client: Client, handle: ScheduleHandle, sid: str, down_s: float, more: int
) -> datetime:
    """Kill the server, keep it down `down_s` seconds, restart it and wait until the schedule has taken `more`
    further actions; return when it restarted."""
    crashable.kill()
    await asyncio.sleep(down_s)
    restarted = datetime.now(UTC)
    crashable.start()
    described = await retrying(handle.describe, "describe after restart")
    await _wait_for_actions(client, sid, described.info.num_actions + more)
    return restarted


@pytest.mark.parametrize("down_s", [0.2, 2 * EVERY_S + 0.5])
async def test_schedule_survives_sigkill(crashable: ServerProcess, down_s: float) -> None:
    client = await Client.connect(crashable.address)
    task_queue = f"sched-crash-{uuid.uuid4().hex[:8]}"
    sid = f"crash-{uuid.uuid4().hex[:8]}"
    prefix = f"wf-{sid}"
    async with Worker(
        client, task_queue=task_queue, workflows=[QuickWorkflow], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await _create(client, sid, task_queue, timedelta(minutes=5))
        await _wait_for_actions(client, sid, 2)
        # with the longer pause, two spec times pass while the server is down
        restarted = await _kill_and_restart(crashable, client, handle, sid, down_s, 3)
        described, ids = await _pause_and_list(client, handle, sid)
        runs = Counter(ids)
        assert all(n == 1 for n in runs.values()), f"started twice: {[i for i, n in runs.items() if n > 1]}"
        times = sorted(_nominal(i, prefix) for i in runs)
        expected = [times[0] + timedelta(seconds=EVERY_S * k) for k in range(len(times))]
        assert times == expected, f"missed spec times: {sorted(set(expected) - set(times))}"
        assert times[-1] > restarted
        assert described.info.num_actions == len(times)
        assert described.raw_description.info.missed_catchup_window == 0
        await handle.delete()


async def test_times_past_the_catchup_window_are_counted_missed(crashable: ServerProcess) -> None:
    """Down longer than the catch-up window (its minimum, 10 s): the older times are missed, the newer taken, each
    spec time accounted for once."""
    client = await Client.connect(crashable.address)
    task_queue = f"sched-catchup-{uuid.uuid4().hex[:8]}"
    sid = f"catchup-{uuid.uuid4().hex[:8]}"
    prefix = f"wf-{sid}"
    async with Worker(
        client, task_queue=task_queue, workflows=[QuickWorkflow], workflow_runner=UnsandboxedWorkflowRunner()
    ):
        handle = await _create(client, sid, task_queue, timedelta(seconds=10))
        await _wait_for_actions(client, sid, 1)
        # at least two spec times fall more than 10 s before the restart
        await _kill_and_restart(crashable, client, handle, sid, 14, 2)
        described, ids = await _pause_and_list(client, handle, sid)
        assert len(ids) == len(set(ids)), "a spec time started twice"
        times = sorted(_nominal(i, prefix) for i in ids)
        missed = described.raw_description.info.missed_catchup_window
        assert missed >= 2
        spec_times = (times[-1] - times[0]) // timedelta(seconds=EVERY_S) + 1
        assert len(times) + missed == spec_times, f"taken {len(times)} + missed {missed} != {spec_times} spec times"
        await handle.delete()
