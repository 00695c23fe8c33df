"""Workflows and activities of the crash-recovery tests (tests/crash/test_crash_recovery.py).

Free of test-only imports: the SDK's workflow sandbox re-imports this module. The activities run
in the test's own process, so they can tell the test what they are doing through the module-level
`ACTIVITY_STARTS` record (workflow id -> the attempts that started).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

FAST_RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(seconds=1))
ACTIVITY_STARTS: dict[str, list[int]] = {}
# How long the first attempt of `hang_on_first_attempt` blocks: far beyond its start-to-close timeout.
HANG_S = 60.0


def _record_start() -> activity.Info:
    info = activity.info()
    ACTIVITY_STARTS.setdefault(info.workflow_id or "", []).append(info.attempt)
    return info


@activity.defn
async def increment(value: int) -> int:
    return value + 1


@activity.defn
async def hang_on_first_attempt(value: int) -> int:
    """The first attempt never answers (until cancelled); a retry answers with its attempt number."""
    info = _record_start()
    if info.attempt == 1:
        await asyncio.sleep(HANG_S)
    return value * 100 + info.attempt


@activity.defn
async def take_a_while(seconds: float) -> int:
    """Works for `seconds`, then answers with its attempt number."""
    info = _record_start()
    await asyncio.sleep(seconds)
    return info.attempt


@workflow.defn
class EchoChild:
    @workflow.run
    async def run(self, value: int) -> int:
        await workflow.sleep(0.1)
        return value


@workflow.defn
class LoadWorkflow:
    """An activity, a short durable timer (every third one a child workflow too), another
    activity: value + 2."""

    @workflow.run
    async def run(self, value: int) -> int:
        value = await workflow.execute_activity(
            increment, value, start_to_close_timeout=timedelta(seconds=5), retry_policy=FAST_RETRY
        )
        await workflow.sleep(0.3 + (value % 5) / 10)
        if value % 3 == 0:
            value = await workflow.execute_child_workflow(
                EchoChild.run, value, id=f"{workflow.info().workflow_id}-child"
            )
        return await workflow.execute_activity(
            increment, value, start_to_close_timeout=timedelta(seconds=5), retry_policy=FAST_RETRY
        )


@workflow.defn
class CounterWorkflow:
    """Adds what each update brings; each update answers with the running total."""

    def __init__(self) -> None:
        self.total = 0
        self.finished = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.finished)
        return self.total

    @workflow.update
    async def add(self, amount: int) -> int:
        self.total += amount
        return self.total

    @workflow.signal
    def finish(self) -> None:
        self.finished = True

    @workflow.query
    def current(self) -> int:
        return self.total


@workflow.defn
class RemoteActivityWorkflow:
    """Like LoadWorkflow, with its activities on another task queue (served by another worker)."""

    @workflow.run
    async def run(self, value: int, activity_queue: str) -> int:
        for _ in range(2):
            value = await workflow.execute_activity(
                increment,
                value,
                task_queue=activity_queue,
                start_to_close_timeout=timedelta(seconds=5),
                retry_policy=FAST_RETRY,
            )
        return value


@workflow.defn
class TimerWorkflow:
    """Sleeps on a durable timer; answers with the workflow time that passed."""

    @workflow.run
    async def run(self, seconds: float) -> float:
        start = workflow.now()
        await workflow.sleep(seconds)
        return (workflow.now() - start).total_seconds()


@workflow.defn
class HangingActivityWorkflow:
    @workflow.run
    async def run(self, value: int) -> int:
        return await workflow.execute_activity(
            hang_on_first_attempt, value, start_to_close_timeout=timedelta(seconds=3), retry_policy=FAST_RETRY
        )


@workflow.defn
class LongActivityWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> int:
        return await workflow.execute_activity(
            take_a_while, seconds, start_to_close_timeout=timedelta(seconds=30), retry_policy=FAST_RETRY
        )
