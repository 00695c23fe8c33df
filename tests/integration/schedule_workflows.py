"""Workflows the schedule tests start: one that runs until signalled (or cancelled), one that fails."""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ApplicationError


@workflow.defn(name="ScheduleWait")
class WaitWorkflow:
    def __init__(self) -> None:
        self.done = False

    @workflow.run
    async def run(self, value: str) -> str:
        await workflow.wait_condition(lambda: self.done)
        return value

    @workflow.signal
    def finish(self) -> None:
        self.done = True


@workflow.defn(name="ScheduleFail")
class FailWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        raise ApplicationError("boom " + value, non_retryable=True)


@workflow.defn(name="ScheduleQuick")
class QuickWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return value
