"""Eager workflow start through the SDK: a worker on the same client runs the first workflow task from the start
response, without polling for it."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.workflows import HelloWorkflow, greet


async def test_a_worker_on_the_same_client_runs_the_first_task_from_the_start_response(
    client: Client, task_queue: str
) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        handle = await client.start_workflow(
            HelloWorkflow.run,
            "eager",
            id=new_id("eager"),
            task_queue=task_queue,
            request_eager_start=True,
            # A lost eager task would only be retried after this: the result below comes long before.
            task_timeout=timedelta(seconds=120),
        )
        assert getattr(handle, "__temporal_eagerly_started") is True
        assert await within(handle.result(), 60) == "Hello, eager!"
    events = [event async for event in handle.fetch_history_events()]
    assert events[0].workflow_execution_started_event_attributes.eager_execution_accepted
    kinds = [event.event_type for event in events[:4]]
    assert kinds == [
        EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ]
    # started by the start request itself, not by a poll
    started = events[2].workflow_task_started_event_attributes
    assert started.identity == client.identity
    assert EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT not in [event.event_type for event in events]


async def test_without_a_local_worker_the_sdk_does_not_ask_for_eager_start(client: Client, task_queue: str) -> None:
    handle = await client.start_workflow(
        HelloWorkflow.run, "later", id=new_id("not-eager"), task_queue=task_queue, request_eager_start=True
    )
    assert getattr(handle, "__temporal_eagerly_started") is False
    events = [event async for event in handle.fetch_history_events()]
    assert not events[0].workflow_execution_started_event_attributes.eager_execution_accepted
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        assert await within(handle.result(), 60) == "Hello, later!"
