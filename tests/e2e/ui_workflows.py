"""Workflows and activities the Web UI end-to-end test runs. Free of test-only imports: the SDK's
workflow sandbox re-imports this module."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.exceptions import CancelledError


@activity.defn
async def compose_greeting(name: str) -> str:
    return f"Hello, {name}!"


@activity.defn
async def heartbeat_until_cancelled(label: str) -> str:
    """Stays pending (heartbeating every half second) until the workflow that runs it is cancelled or closed."""
    try:
        while True:
            activity.heartbeat(label)
            await asyncio.sleep(0.5)
    except (asyncio.CancelledError, CancelledError):
        return "cancelled"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(compose_greeting, name, start_to_close_timeout=timedelta(seconds=10))


@workflow.defn
class WaitingWorkflow:
    """Runs a heartbeating activity and waits for an `approve` signal; `notes` and `status` are its queries."""

    def __init__(self) -> None:
        self.notes: list[str] = []
        self.approved = False

    @workflow.run
    async def run(self, label: str) -> str:
        pending = workflow.start_activity(
            heartbeat_until_cancelled,
            label,
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=5),
            cancellation_type=workflow.ActivityCancellationType.TRY_CANCEL,
        )
        await workflow.wait_condition(lambda: self.approved)
        pending.cancel()
        return f"approved after {len(self.notes)} notes"

    @workflow.signal
    def add_note(self, note: str) -> None:
        self.notes.append(note)

    @workflow.signal
    def approve(self) -> None:
        self.approved = True

    @workflow.query
    def status(self) -> str:
        return f"waiting with {len(self.notes)} notes: {', '.join(self.notes)}"


@workflow.defn
class ParentWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        child_id = f"{workflow.info().workflow_id}-child"
        return await workflow.execute_child_workflow(GreetingWorkflow.run, name, id=child_id)
