"""Workflows of the graceful and automatic failover tests."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn
class Collector:
    """Keeps every value signalled to it until told it is done; returns them in the order they came."""

    def __init__(self) -> None:
        self.values: list[str] = []
        self.finished = False

    @workflow.signal
    def add(self, value: str) -> None:
        self.values.append(value)

    @workflow.signal
    def done(self) -> None:
        self.finished = True

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.finished)
        return self.values
