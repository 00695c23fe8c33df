"""Workflows the crash tests run. Free of test-only imports (the SDK sandbox re-imports it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def add_one(value: int) -> int:
    return value + 1


@workflow.defn
class ChainWorkflow:
    """Two activities around a short durable timer."""

    @workflow.run
    async def run(self, value: int) -> int:
        value = await workflow.execute_activity(
            add_one,
            value,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )
        await workflow.sleep(0.5)
        return await workflow.execute_activity(
            add_one,
            value,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
        )


@workflow.defn
class TimerWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> float:
        start = workflow.now()
        await workflow.sleep(seconds)
        return (workflow.now() - start).total_seconds()


@workflow.defn
class Ticker:
    """A few short timers around a large input: every step writes."""

    @workflow.run
    async def run(self, data: str) -> int:
        for _ in range(3):
            await workflow.sleep(timedelta(milliseconds=300))
        return len(data)
