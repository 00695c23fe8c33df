"""The basic path through the official SDK: start, activity, result, history shape."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.workflows import HelloWorkflow, greet

EXPECTED = [
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
]


async def test_hello_workflow(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        handle = await client.start_workflow(HelloWorkflow.run, "tempyral", id=new_id(), task_queue=task_queue)
        assert await within(handle.result()) == "Hello, tempyral!"
    events = (await handle.fetch_history()).events
    assert [e.event_type for e in events] == EXPECTED
    assert [e.event_id for e in events] == list(range(1, 12))
    assert all(e.task_id > 0 and e.HasField("event_time") for e in events)
    # later workflow tasks go to the worker's sticky queue
    assert events[7].workflow_task_scheduled_event_attributes.task_queue.kind == 2
