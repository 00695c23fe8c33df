"""The chaos test's workflow: it collects signals until a final "finish" signal, and returns what it received."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="ChaosCollector")
class ChaosCollector:
    def __init__(self) -> None:
        self.received: list[str] = []
        self.finished = False

    @workflow.signal(name="sig")
    def sig(self, value: str) -> None:
        self.received.append(value)

    @workflow.signal(name="finish")
    def finish(self) -> None:
        self.finished = True

    @workflow.run
    async def run(self) -> list[str]:
        await workflow.wait_condition(lambda: self.finished)
        return self.received
