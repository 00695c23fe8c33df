"""Workflows that wait for no time at all or for centuries (tests/differential/test_durations.py)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

YEAR = timedelta(days=365)


@workflow.defn
class SleepZero:
    @workflow.run
    async def run(self) -> str:
        await workflow.sleep(0)
        return "woke"


@workflow.defn
class SleepYears:
    @workflow.run
    async def run(self, years: int) -> str:
        await workflow.sleep(years * YEAR)
        return "woke"


@workflow.defn
class WaitYears:
    @workflow.run
    async def run(self, years: int) -> str:
        try:
            await workflow.wait_condition(lambda: False, timeout=years * YEAR)
        except TimeoutError:
            return "timed out"
        return "unreachable"
