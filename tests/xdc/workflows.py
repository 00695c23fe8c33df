"""Workflows and activities of the multi-cluster tests: each exercises what a failover must carry over."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy


@activity.defn
async def where(label: str) -> str:
    """Says which worker ran it: every worker of a test registers its own `where` with its cluster's name."""
    return label


@workflow.defn
class SignalTimerActivity:
    """A signal, then a timer, then an activity, then a second signal: each step can straddle a failover."""

    def __init__(self) -> None:
        self.signals: list[str] = []

    @workflow.signal
    def go(self, value: str) -> None:
        self.signals.append(value)

    @workflow.run
    async def run(self, timer_s: float) -> str:
        await workflow.wait_condition(lambda: len(self.signals) >= 1)
        await asyncio.sleep(timer_s)
        ran_on = await workflow.execute_activity(
            "where", "?", start_to_close_timeout=timedelta(seconds=10), result_type=str
        )
        await workflow.wait_condition(lambda: len(self.signals) >= 2)
        return f"{ran_on}:{','.join(self.signals)}"


@workflow.defn
class OneActivity:
    """The benchmark's shape: one activity, then done."""

    @workflow.run
    async def run(self, arg: str) -> str:
        result: str = await workflow.execute_activity(
            "where",
            arg,
            start_to_close_timeout=timedelta(seconds=5),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200)),
            result_type=str,
        )
        return result


@workflow.defn
class ActivityAcrossFailover:
    """An activity whose first attempt never finishes on the old active: the new active times it out and runs it
    again (at least once, as the reference documents)."""

    @workflow.run
    async def run(self) -> str:
        result: str = await workflow.execute_activity(
            "stuck_or_where",
            start_to_close_timeout=timedelta(seconds=3),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0),
            result_type=str,
        )
        return result


@workflow.defn
class SlowActivity:
    """One activity that takes the given time: a batch of these finishes over a spread of time."""

    @workflow.run
    async def run(self, seconds: float) -> str:
        result: str = await workflow.execute_activity(
            "slow_where",
            seconds,
            start_to_close_timeout=timedelta(seconds=6),
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=100), backoff_coefficient=1.0),
            result_type=str,
        )
        return result


@workflow.defn
class Gather:
    """Collects signals until "finish", and returns them (conflict resolution: which signals survived)."""

    def __init__(self) -> None:
        self.got: list[str] = []

    @workflow.signal
    def add(self, value: str) -> None:
        self.got.append(value)

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: "finish" in self.got)
        return self.got
