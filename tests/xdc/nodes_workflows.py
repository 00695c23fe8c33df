"""Workflows of tests/xdc/test_clusters_with_nodes.py (in a module of their own: the SDK's sandbox imports it)."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

RETRY = RetryPolicy(initial_interval=timedelta(milliseconds=200), backoff_coefficient=1.0)


@workflow.defn
class OrderChild:
    """A child with an activity: its history replicates like its parent's."""

    @workflow.run
    async def run(self, n: int) -> str:
        ran_on: str = await workflow.execute_activity(
            "where", str(n), start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY, result_type=str
        )
        return f"child-{ran_on}"


@workflow.defn
class Order:
    """A signal, an activity, a child, then a second signal: a run can be failed over between any two steps."""

    def __init__(self) -> None:
        self.signals: list[str] = []
        self.stage = "waiting"

    @workflow.signal
    def add(self, value: str) -> None:
        self.signals.append(value)

    @workflow.query
    def where_it_is(self) -> str:
        return self.stage

    @workflow.run
    async def run(self, n: int) -> str:
        await workflow.wait_condition(lambda: len(self.signals) >= 1)
        ran_on: str = await workflow.execute_activity(
            "where", str(n), start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY, result_type=str
        )
        child: str = await workflow.execute_child_workflow(
            OrderChild.run, n, id=f"{workflow.info().workflow_id}-child", retry_policy=RETRY
        )
        self.stage = "second signal"
        await workflow.wait_condition(lambda: len(self.signals) >= 2)
        return f"{ran_on}:{child}:{','.join(self.signals)}"


@workflow.defn
class Steps:
    """A few activities one after the other: a steady stream of events to replicate."""

    @workflow.run
    async def run(self, steps: int) -> int:
        for i in range(steps):
            await workflow.execute_activity(
                "where", str(i), start_to_close_timeout=timedelta(seconds=10), retry_policy=RETRY, result_type=str
            )
        return steps
