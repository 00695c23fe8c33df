"""Workflows and activities the integration tests run. Free of test-only imports: the SDK's
workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
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


CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
RETRY_TWICE = RetryPolicy(initial_interval=timedelta(milliseconds=100), maximum_attempts=2)


@workflow.defn
class CountSignalsWorkflow:
    def __init__(self) -> None:
        self.count = 0

    @workflow.run
    async def run(self, expected: int) -> int:
        await workflow.wait_condition(lambda: self.count >= expected)
        return self.count

    @workflow.signal
    def hit(self, _: int) -> None:
        self.count += 1


@workflow.defn
class InfoWorkflow:
    """Reports what the workflow sees of its own start: memo, search attributes, header-free info."""

    @workflow.run
    async def run(self) -> str:
        info = workflow.info()
        memo = workflow.memo_value("note", default=None)
        return f"{info.attempt}|{memo}|{info.typed_search_attributes.get(CUSTOMER_ID)}"


@activity.defn
async def fail_twice_then_wait(_: str) -> str:
    if activity.info().attempt <= 2:
        raise ApplicationError(f"attempt {activity.info().attempt} failed")
    await asyncio.sleep(30)
    return "done"


@workflow.defn
class PendingActivityWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            fail_twice_then_wait,
            "x",
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=50), backoff_coefficient=1.0),
        )


@activity.defn
async def complete_elsewhere() -> str:
    activity.raise_complete_async()


@workflow.defn
class AsyncActivityWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            complete_elsewhere, start_to_close_timeout=timedelta(seconds=60), activity_id="async-1"
        )


@workflow.defn
class EchoLengthOnSecondAttempt:
    """Fails its first run; the retry run gets the same input (taken from the first run's start event)."""

    @workflow.run
    async def run(self, data: str) -> int:
        if workflow.info().attempt == 1:
            raise ApplicationError("first run fails")
        return len(data)
