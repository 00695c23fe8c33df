"""Workflows and activities the integration tests run. Free of test-only imports: the SDK's
workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError


@activity.defn
async def greet(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class HelloWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(greet, name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class SleepWorkflow:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"


@workflow.defn
class FailOnFirstAttemptWorkflow:
    """Fails its first run; the workflow retry policy starts a second one that succeeds."""

    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt == 1:
            raise ApplicationError("first attempt fails")
        return workflow.info().attempt


@workflow.defn
class ManyActivitiesWorkflow:
    @workflow.run
    async def run(self, count: int) -> int:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(greet, str(i), start_to_close_timeout=timedelta(seconds=30))
                for i in range(count)
            )
        )
        return len(results)


@workflow.defn
class SequentialActivitiesWorkflow:
    @workflow.run
    async def run(self, count: int) -> int:
        for i in range(count):
            await workflow.execute_activity(greet, str(i), start_to_close_timeout=timedelta(seconds=30))
        return count


RETRY_TWICE = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2)
