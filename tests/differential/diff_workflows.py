"""Workflows for the differential scenarios. Free of test-only imports (the SDK sandbox re-imports it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

FAST = RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0)
PRIORITY = SearchAttributeKey.for_int("Priority")


@activity.defn
async def echo(value: str) -> str:
    return value


@activity.defn
async def fail_until(succeed_on: int) -> int:
    if activity.info().attempt < succeed_on:
        raise ApplicationError(f"attempt {activity.info().attempt}")
    return activity.info().attempt


@activity.defn
async def fail_hard() -> None:
    raise ApplicationError("no retry", type="Hard", non_retryable=True)


@activity.defn
async def outlive_start_to_close() -> int:
    await asyncio.sleep(3)  # three times StartToCloseRetry's timeout: however slow, the timeout comes first
    return activity.info().attempt


@activity.defn
async def always_fail() -> None:
    raise ApplicationError("always")


@activity.defn
async def heartbeat_once_then_hang() -> str:
    if activity.info().heartbeat_details:
        return f"resumed {activity.info().heartbeat_details[0]}"
    activity.heartbeat("cp")
    await asyncio.sleep(20)
    return "never"


@activity.defn
async def wait_for_cancel() -> str:
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.1)
    except asyncio.CancelledError:
        raise


@workflow.defn
class OneActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(echo, "x", start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class Failing:
    @workflow.run
    async def run(self) -> None:
        raise ApplicationError("failed on purpose", non_retryable=True)


@workflow.defn
class RetryThenSucceed:
    @workflow.run
    async def run(self) -> int:
        return await workflow.execute_activity(
            fail_until, 3, start_to_close_timeout=timedelta(seconds=10), retry_policy=FAST
        )


@workflow.defn
class NonRetryable:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(fail_hard, start_to_close_timeout=timedelta(seconds=10), retry_policy=FAST)
        except ActivityError as err:
            return f"{err.retry_state}"
        return "no error"


@workflow.defn
class StartToCloseRetry:
    """Every attempt outlives its start-to-close timeout: retried once, then the activity times out
    with its attempts used up. (A later attempt that succeeds would race its own timeout.)"""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                outlive_start_to_close,
                start_to_close_timeout=timedelta(seconds=1),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0, maximum_attempts=2
                ),
            )
        except ActivityError as err:
            return f"{err.retry_state}"
        return "no error"


@workflow.defn
class ScheduleToCloseStop:
    """The second retry would start after schedule-to-close: the activity fails with TIMEOUT.

    (The first retry comes at once and the second a minute later, both far from the 30 s timeout,
    so the number of attempts does not depend on speed or on the reference's retry-timer latency.)
    """

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                always_fail,
                schedule_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(
                    initial_interval=timedelta(milliseconds=100),
                    backoff_coefficient=600.0,
                    maximum_interval=timedelta(minutes=1),
                ),
            )
        except ActivityError as err:
            return f"{err.retry_state}"
        return "no error"


@activity.defn
async def sleep_long() -> None:
    await asyncio.sleep(10)


@workflow.defn
class ScheduleToCloseWhileRunning:
    """Schedule-to-close fires while an attempt runs."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(
                sleep_long, schedule_to_close_timeout=timedelta(seconds=1.5), retry_policy=FAST
            )
        except ActivityError as err:
            return f"{err.retry_state}"
        return "no error"


@workflow.defn
class HeartbeatTimeout:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            heartbeat_once_then_hang,
            start_to_close_timeout=timedelta(seconds=15),
            heartbeat_timeout=timedelta(seconds=1),
            retry_policy=FAST,
        )


@workflow.defn
class CancelActivity:
    """Cancels its activity when the test says so (`cancel`: once the activity runs) and ends when
    the test says so (`finish`: once the cancellation has run its course), so that no step races
    another. No heartbeat timeout either: it would race the worker's heartbeats."""

    def __init__(self) -> None:
        self.cancelling = False
        self.finishing = False

    @workflow.run
    async def run(self, cancellation_type: str) -> str:
        handle = workflow.start_activity(
            wait_for_cancel,
            start_to_close_timeout=timedelta(seconds=30),
            cancellation_type=workflow.ActivityCancellationType[cancellation_type],
        )
        await workflow.wait_condition(lambda: self.cancelling)
        handle.cancel()
        try:
            await handle
        except ActivityError:
            pass
        await workflow.wait_condition(lambda: self.finishing)
        return "done"

    @workflow.signal
    def cancel(self) -> None:
        self.cancelling = True

    @workflow.signal
    def finish(self) -> None:
        self.finishing = True


@workflow.defn
class LocalActivity:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_local_activity(echo, "local", start_to_close_timeout=timedelta(seconds=5))


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> str:
        await workflow.sleep(seconds)
        return "woke"


@workflow.defn
class WaitForSignal:
    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self, expected: int, timeout: float) -> list[str]:
        try:
            await workflow.wait_condition(lambda: len(self.items) >= expected, timeout=timedelta(seconds=timeout))
        except TimeoutError:
            pass
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)

    @workflow.query
    def count(self) -> int:
        return len(self.items)


@workflow.defn
class CleanupOnCancel:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.sleep(60)
        except asyncio.CancelledError:
            await workflow.execute_activity(echo, "cleanup", start_to_close_timeout=timedelta(seconds=10))
            raise
        return "slept"


@workflow.defn
class Blocked:
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)


@workflow.defn
class FailFirstRun:
    @workflow.run
    async def run(self) -> int:
        if workflow.info().attempt == 1:
            raise ApplicationError("first run fails")
        return workflow.info().attempt


@workflow.defn
class UpsertBoth:
    @workflow.run
    async def run(self) -> str:
        workflow.upsert_search_attributes([PRIORITY.value_set(7)])
        workflow.upsert_memo({"note": "hi"})
        await workflow.sleep(0.1)
        return "upserted"


@workflow.defn
class BrokenTask:
    """Raises a non-Temporal error: the SDK fails the workflow task, which is retried."""

    @workflow.run
    async def run(self) -> None:
        raise RuntimeError("bug in workflow code")


@workflow.defn
class CollectSignals:
    """Waits for `expected` signals (the test takes its first task itself, so that signals arrive while
    that task runs)."""

    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self, expected: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.items) >= expected)
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)


@workflow.defn
class Child:
    @workflow.run
    async def run(self, value: int) -> int:
        if value < 0:
            raise ApplicationError("negative", non_retryable=True)
        return value * 2


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, value: int) -> str:
        try:
            return str(
                await workflow.execute_child_workflow(Child.run, value, id=f"{workflow.info().workflow_id}-child")
            )
        except Exception as err:
            return type(err).__name__


@workflow.defn
class ParentOfExisting:
    """Starts a child whose id is taken by a running workflow."""

    @workflow.run
    async def run(self, taken_id: str) -> str:
        try:
            await workflow.execute_child_workflow(Blocked.run, id=taken_id)
        except Exception as err:
            return type(err).__name__
        return "started"


@workflow.defn
class ParentLeavesChild:
    """Closes when the test says so (`leave`): once the child's first task is done, whatever its speed."""

    def __init__(self) -> None:
        self.leaving = False

    @workflow.run
    async def run(self, policy: str) -> str:
        await workflow.start_child_workflow(
            Blocked.run,
            id=f"{workflow.info().workflow_id}-child",
            parent_close_policy=workflow.ParentClosePolicy[policy],
        )
        await workflow.wait_condition(lambda: self.leaving)
        return "left"

    @workflow.signal
    def leave(self) -> None:
        self.leaving = True


# Both servers delay a run that continues as new sooner than this after it became due (to break
# tight loops) by what is left of it (the reference's history.continueAsNewMinInterval): whether a run
# lives that long depends on worker speed, so test_event_sequences checks the delay against each
# server's own timestamps.
MIN_RUN_INTERVAL_S = 1.0


@workflow.defn
class Chain:
    @workflow.run
    async def run(self, remaining: int) -> int:
        if remaining > 0:
            # at once: the next run normally waits out the rest of the minimal interval
            workflow.continue_as_new(remaining - 1)
        return remaining


@workflow.defn
class SignalSender:
    @workflow.run
    async def run(self, target: str) -> str:
        handle = workflow.get_external_workflow_handle(target)
        try:
            await handle.signal("add", "from-workflow")
        except Exception as err:
            return type(err).__name__
        return "sent"


@workflow.defn
class CancelSender:
    @workflow.run
    async def run(self, target: str) -> str:
        handle = workflow.get_external_workflow_handle(target)
        try:
            await handle.cancel()
        except Exception as err:
            return type(err).__name__
        return "sent"


@workflow.defn
class CronJob:
    """The first run completes; the next one waits to be terminated (so that its history does not
    depend on whether the test terminates it before or after its scheduled time)."""

    @workflow.run
    async def run(self) -> str:
        if workflow.has_last_completion_result():
            await workflow.wait_condition(lambda: False)
        return "tick"


@workflow.defn
class Counter:
    def __init__(self) -> None:
        self.value = 0
        self.done = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.done)
        return self.value

    @workflow.update
    async def add(self, amount: int) -> int:
        if amount > 100:
            await workflow.sleep(0.5)  # a slow update: accepted first, completed later
        self.value += amount
        return self.value

    @add.validator
    def validate_add(self, amount: int) -> None:
        if amount < 0:
            raise ValueError("amount must not be negative")

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn
class Resettable:
    """Two activities and some signals: reset back to the first task, the signals come again."""

    def __init__(self) -> None:
        self.items: list[str] = []

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.execute_activity(echo, "one", start_to_close_timeout=timedelta(seconds=10))
        await workflow.wait_condition(lambda: len(self.items) >= 2)
        await workflow.execute_activity(echo, "two", start_to_close_timeout=timedelta(seconds=10))
        return self.items

    @workflow.signal
    def add(self, item: str) -> None:
        self.items.append(item)
