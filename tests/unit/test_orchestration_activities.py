"""Activities driven through the history handlers over a MemoryStore (tests/support/history_harness.py):
scheduling by command, polling, completion, failure with a retry timer, stale tokens and heartbeats."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import NotFound, WorkflowCompleted
from tempyral.history.activities import ACTIVITY_NOT_FOUND
from tempyral.proto.internal_pb2 import TaskType
from tests.support.history_harness import IDENTITY, TIMER, Harness, schedule_activity

pytestmark = pytest.mark.asyncio(loop_scope="function")
SCHEDULED = [
    "WORKFLOW_EXECUTION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "ACTIVITY_TASK_SCHEDULED",
]


async def scheduled(h: Harness, maximum_attempts: int = 3) -> None:
    await h.start("wf")
    await h.run_workflow_task(schedule_activity(maximum_attempts=maximum_attempts))
    assert await h.event_types("wf") == SCHEDULED


async def started(h: Harness, attempt: int = 1) -> ws.PollActivityTaskQueueResponse:
    resp = await h.poll_activity_task()
    assert resp.task_token, "no activity task was ready"
    assert (resp.activity_id, resp.attempt) == ("a1", attempt)
    return resp


def app_failure(message: str = "boom") -> failure_pb.Failure:
    failure = failure_pb.Failure(message=message)
    failure.application_failure_info.type = "Oops"
    return failure


async def test_a_completed_activity_schedules_a_workflow_task(h: Harness) -> None:
    await scheduled(h)
    assert "DISPATCH_ACTIVITY_TASK" in await h.outstanding_types("wf")
    task = await started(h)
    assert task.activity_type.name == "Greet" and task.workflow_execution.workflow_id == "wf"
    # ActivityTaskStarted is written only when the attempt closes
    assert await h.event_types("wf") == SCHEDULED
    state = await h.stored_state("wf")
    assert state.activities[5].started
    types = await h.outstanding_types("wf")
    assert "DISPATCH_ACTIVITY_TASK" not in types and "ACTIVITY_TIMEOUT" in types
    assert await h.poll_activity_task() == ws.PollActivityTaskQueueResponse()

    result = common.Payloads(payloads=[common.Payload(data=b"hi")])
    await h.engine.activities.complete(
        h.ns, ws.RespondActivityTaskCompletedRequest(task_token=task.task_token, result=result, identity=IDENTITY)
    )
    assert await h.event_types("wf") == [
        *SCHEDULED,
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    events = await h.events("wf")
    assert events[6].activity_task_completed_event_attributes.result == result
    state = await h.stored_state("wf")
    assert 5 not in state.activities and state.workflow_task.scheduled
    with pytest.raises(NotFound, match=ACTIVITY_NOT_FOUND):  # completing twice
        await h.engine.activities.complete(h.ns, ws.RespondActivityTaskCompletedRequest(task_token=task.task_token))


async def test_a_failed_attempt_is_retried_after_its_retry_timer(h: Harness) -> None:
    await scheduled(h)
    first = await started(h)
    await h.engine.activities.fail(
        h.ns, ws.RespondActivityTaskFailedRequest(task_token=first.task_token, failure=app_failure())
    )
    # a retry writes no event: attempt 2 waits for its retry timer
    assert await h.event_types("wf") == SCHEDULED
    ai = (await h.stored_state("wf")).activities[5]
    assert ai.attempt == 2 and not ai.started and ai.last_failure.message == "boom"
    (retry,) = h.handed_timers(TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER)
    assert (retry.event_id, retry.attempt) == (5, 2)
    assert "ACTIVITY_RETRY_TIMER" in await h.outstanding_types("wf")
    assert await h.poll_activity_task() == ws.PollActivityTaskQueueResponse()  # not before the timer

    await h.fire_timer(retry)
    assert (TIMER, retry.task_id) in h.store.committed[-1].deleted_tasks
    types = await h.outstanding_types("wf")
    assert "ACTIVITY_RETRY_TIMER" not in types and "DISPATCH_ACTIVITY_TASK" in types
    second = await started(h, attempt=2)
    with pytest.raises(NotFound, match=ACTIVITY_NOT_FOUND):  # the first attempt's token is stale
        await h.engine.activities.complete(h.ns, ws.RespondActivityTaskCompletedRequest(task_token=first.task_token))
    await h.engine.activities.complete(h.ns, ws.RespondActivityTaskCompletedRequest(task_token=second.task_token))
    events = await h.events("wf")
    assert events[5].activity_task_started_event_attributes.attempt == 2
    assert events[6].activity_task_completed_event_attributes.scheduled_event_id == 5


async def test_the_last_attempt_fails_the_activity(h: Harness) -> None:
    await scheduled(h, maximum_attempts=1)
    task = await started(h)
    await h.engine.activities.fail(
        h.ns, ws.RespondActivityTaskFailedRequest(task_token=task.task_token, failure=app_failure("last"))
    )
    assert (await h.event_types("wf"))[-3:] == [
        "ACTIVITY_TASK_STARTED",
        "ACTIVITY_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    assert h.handed_timers(TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER) == []


async def test_heartbeats_keep_details_and_write_no_event(h: Harness) -> None:
    await scheduled(h)
    task = await started(h)
    details = common.Payloads(payloads=[common.Payload(data=b"50%")])
    cancel_requested = await h.engine.activities.heartbeat(
        h.ns, ws.RecordActivityTaskHeartbeatRequest(task_token=task.task_token, details=details)
    )
    assert cancel_requested is False
    ai = (await h.stored_state("wf")).activities[5]
    assert ai.heartbeat_details == details and ai.last_heartbeat_time.seconds > 0
    assert await h.event_types("wf") == SCHEDULED
    stale = ws.RecordActivityTaskHeartbeatRequest(task_token=task.task_token)
    await h.terminate("wf")
    with pytest.raises(WorkflowCompleted):
        await h.engine.activities.heartbeat(h.ns, stale)
