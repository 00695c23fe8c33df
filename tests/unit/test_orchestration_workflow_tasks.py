"""Workflow tasks, user timers and updates, driven through the history handlers over a MemoryStore
(tests/support/history_harness.py): the events each step writes, the state and current pointer it leaves,
the task rows outstanding, and the errors of stale requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from google.protobuf import any_pb2
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType, UpdateWorkflowExecutionLifecycleStage, WorkflowExecutionStatus
from temporalio.api.protocol.v1 import message_pb2 as protocol
from temporalio.api.update.v1 import message_pb2 as update_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import NotFound
from tempyral.proto.internal_pb2 import Task, TaskToken, TaskType
from tests.support.history_harness import (
    COMPLETED_WT,
    STARTED_WT,
    TIMER,
    Harness,
    cancelled_while_committing,
    command,
    complete_workflow,
    event_name,
    idle_run,
    start_timer,
    with_token,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
Stage = UpdateWorkflowExecutionLifecycleStage
WT_NOT_FOUND = r"^Workflow task not found\.$"


def cancel_timer(timer_id: str = "t1") -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_CANCEL_TIMER,
        cancel_timer_command_attributes=command_pb.CancelTimerCommandAttributes(timer_id=timer_id),
    )


# ---------------------------------------------------------------------- the workflow task path
async def test_start_poll_complete_closes_the_run(h: Harness) -> None:
    run_id = await h.start("wf")
    assert await h.event_types("wf") == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    current = await h.current("wf")
    assert current is not None and (current.run_id, current.status) == (
        run_id,
        WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING,
    )
    assert await h.outstanding_types("wf") == ["DISPATCH_WORKFLOW_TASK"]

    resp = await h.next_workflow_task()
    assert resp.workflow_execution.run_id == run_id and resp.attempt == 1
    assert [event_name(e) for e in resp.history.events] == STARTED_WT
    # the dispatch row went in the transaction that recorded the task as started, with its timeout timer
    assert await h.outstanding_types("wf") == ["WORKFLOW_TASK_TIMEOUT"]
    assert await h.poll_workflow_task() == ws.PollWorkflowTaskQueueResponse()  # nothing else to hand out

    await h.complete_workflow_task(resp.task_token, complete_workflow())
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_COMPLETED"]
    assert [event_name(e) for e in await h.stored_events("wf")] == await h.event_types("wf")
    completed = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_COMPLETED
    current = await h.current("wf")
    assert current is not None and (current.run_id, current.status) == (run_id, completed)
    state = await h.stored_state("wf")
    assert state.status == completed and not state.workflow_task.scheduled
    assert state.next_event_id == 6
    # the retention timer is new; the task's timeout timer is stale now and stays until it fires
    assert await h.outstanding_types("wf") == ["DELETE_HISTORY", "WORKFLOW_TASK_TIMEOUT"]


async def test_stale_workflow_task_tokens_are_not_found(h: Harness) -> None:
    await h.start("wf")
    resp = await h.next_workflow_task()
    before = await h.stored_state("wf")

    def bump_stamp(t: TaskToken) -> None:
        t.stamp += 1

    def other_started_event(t: TaskToken) -> None:
        t.started_event_id += 5

    for stale in (with_token(resp.task_token, bump_stamp), with_token(resp.task_token, other_started_event)):
        with pytest.raises(NotFound, match=WT_NOT_FOUND):
            await h.complete_workflow_task(stale, complete_workflow())
        with pytest.raises(NotFound, match=WT_NOT_FOUND):
            await h.fail_workflow_task(stale)
    # the refused requests changed nothing
    after = await h.stored_state("wf")
    assert after == before
    assert await h.event_types("wf") == STARTED_WT

    await h.complete_workflow_task(resp.task_token, complete_workflow())
    with pytest.raises(NotFound, match=WT_NOT_FOUND):  # the same token again, after the run completed
        await h.complete_workflow_task(resp.task_token, complete_workflow())
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_COMPLETED"]


async def test_a_failed_workflow_task_is_retried_as_a_transient_task(h: Harness) -> None:
    await h.start("wf")
    first = await h.next_workflow_task()
    await h.fail_workflow_task(first.task_token)
    failed = [*STARTED_WT, "WORKFLOW_TASK_FAILED"]
    assert await h.event_types("wf") == failed
    state = await h.stored_state("wf")
    wt = state.workflow_task
    assert wt.scheduled and wt.transient and wt.attempt == 2 and not wt.started_event_id
    assert wt.scheduled_event_id == state.next_event_id == 5  # virtual: not in history
    assert await h.outstanding_types("wf") == ["DISPATCH_WORKFLOW_TASK", "WORKFLOW_TASK_TIMEOUT"]
    dispatched = [item for _, item in h.matching.added if isinstance(item, Task)]
    assert [t.type for t in dispatched] == [TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK] * 2

    second = await h.next_workflow_task()
    assert second.attempt == 2
    # the worker sees the transient scheduled and started events; history does not have them
    assert [event_name(e) for e in second.history.events] == [
        *failed,
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
    ]
    assert second.history.events[-2].workflow_task_scheduled_event_attributes.attempt == 2
    assert await h.event_types("wf") == failed
    assert [event_name(e) for e in await h.stored_events("wf")] == failed
    with pytest.raises(NotFound, match=WT_NOT_FOUND):  # the first attempt's token is stale now
        await h.complete_workflow_task(first.task_token)

    await h.complete_workflow_task(second.task_token)  # completing writes the transient events
    assert await h.event_types("wf") == [*failed, *COMPLETED_WT[1:]]
    events = await h.events("wf")
    assert events[4].workflow_task_scheduled_event_attributes.attempt == 2
    assert not (await h.stored_state("wf")).workflow_task.scheduled


# ---------------------------------------------------------------------- user timers
async def started_timer(h: Harness) -> Task:
    """A run whose first task started timer t1: the timer's task."""
    await h.start("wf")
    await h.run_workflow_task(start_timer())
    assert await h.event_types("wf") == [*COMPLETED_WT, "TIMER_STARTED"]
    (task,) = h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    assert task.timer_id == "t1" and task.event_id == 5
    return task


async def test_a_fired_timer_writes_timer_fired_and_schedules_a_workflow_task(h: Harness) -> None:
    task = await started_timer(h)
    assert "USER_TIMER" in await h.outstanding_types("wf")
    await h.fire_timer(task)
    assert await h.event_types("wf") == [*COMPLETED_WT, "TIMER_STARTED", "TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]
    fired = (await h.events("wf"))[5].timer_fired_event_attributes
    assert (fired.timer_id, fired.started_event_id) == ("t1", 5)
    state = await h.stored_state("wf")
    assert "t1" not in state.timers and state.workflow_task.scheduled
    # the timer's row went in the commit that fired it
    assert (TIMER, task.task_id) in h.store.committed[-1].deleted_tasks
    assert "USER_TIMER" not in await h.outstanding_types("wf")
    await h.next_workflow_task()


async def test_a_canceled_timers_task_changes_nothing_and_is_acknowledged(h: Harness) -> None:
    task = await started_timer(h)
    await h.signal("wf")
    await h.run_workflow_task(cancel_timer())
    assert (await h.event_types("wf"))[-1] == "TIMER_CANCELED"
    before_state, before_events = await h.stored_state("wf"), await h.event_types("wf")
    commits = len(h.store.committed)
    await h.fire_timer(task)
    assert len(h.store.committed) == commits  # nothing was written
    assert await h.stored_state("wf") == before_state
    assert await h.event_types("wf") == before_events
    assert "USER_TIMER" not in await h.outstanding_types("wf")  # the stale row is acknowledged


async def test_a_timer_task_of_another_version_is_dropped(h: Harness) -> None:
    task = await started_timer(h)
    other = Task()
    other.CopyFrom(task)
    other.version = task.version + 7
    before = await h.stored_state("wf")
    await h.fire_timer(other)
    assert await h.stored_state("wf") == before
    assert await h.event_types("wf") == [*COMPLETED_WT, "TIMER_STARTED"]
    assert "USER_TIMER" not in await h.outstanding_types("wf")  # acknowledged
    # the version alone made the difference: the timer's own task fires it
    await h.fire_timer(task)
    assert (await h.event_types("wf"))[-2:] == ["TIMER_FIRED", "WORKFLOW_TASK_SCHEDULED"]


# ---------------------------------------------------------------------- updates
def update_request(update_id: str, wait: int = Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED) -> Any:
    req = ws.UpdateWorkflowExecutionRequest(namespace="default")
    req.workflow_execution.workflow_id = "wf"
    req.request.meta.update_id = update_id
    req.request.input.name = "my-update"
    req.wait_policy.lifecycle_stage = wait  # type: ignore[assignment]
    return req


def message(update_id: str, body: Any, suffix: str) -> protocol.Message:
    packed = any_pb2.Any()
    packed.Pack(body, type_url_prefix="type.googleapis.com/")
    return protocol.Message(id=f"{update_id}/{suffix}", protocol_instance_id=update_id, body=packed)


def accept_and_complete(task: Any, update_id: str) -> list[protocol.Message]:
    """A worker's answer to the update request in `task`: accepted, and completed with b"ok"."""
    (request_message,) = task.messages
    request = update_pb.Request()
    request_message.body.Unpack(request)
    acceptance = update_pb.Acceptance(
        accepted_request_message_id=request_message.id,
        accepted_request_sequencing_event_id=request_message.event_id,
        accepted_request=request,
    )
    response = update_pb.Response(
        meta=update_pb.Meta(update_id=update_id),
        outcome=update_pb.Outcome(success=common.Payloads(payloads=[common.Payload(data=b"ok")])),
    )
    return [message(update_id, acceptance, "accept"), message(update_id, response, "complete")]


async def test_an_admitted_update_schedules_a_speculative_task_that_a_rejection_leaves_out_of_history(
    h: Harness,
) -> None:
    await idle_run(h)
    events = COMPLETED_WT
    resp = await h.engine.updates.update(h.ns, update_request("u1"), timeout=0.01)
    assert resp.stage == Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED
    assert resp.update_ref.update_id == "u1"
    assert await h.event_types("wf") == events  # nothing written
    state = await h.stored_state("wf")
    assert state.speculative_workflow_task and state.workflow_task.scheduled and state.workflow_task.transient
    assert "u1" not in state.updates
    assert "DISPATCH_WORKFLOW_TASK" in await h.outstanding_types("wf")

    task = await h.next_workflow_task()
    assert [m.protocol_instance_id for m in task.messages] == ["u1"]
    assert [event_name(e) for e in task.history.events][-2:] == ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"]
    assert await h.event_types("wf") == events

    rejection = update_pb.Rejection(rejected_request_message_id="u1/request")
    rejection.failure.message = "no"
    done = await h.complete_workflow_task(task.task_token, messages=[message("u1", rejection, "reject")])
    assert done.reset_history_event_id == 3  # the worker rolls back to the last task it completed
    assert await h.event_types("wf") == events
    state = await h.stored_state("wf")
    assert not state.workflow_task.scheduled and not state.speculative_workflow_task


async def test_an_accepted_update_is_written_with_its_workflow_task(h: Harness) -> None:
    await idle_run(h)
    events = COMPLETED_WT
    waiting = asyncio.create_task(
        h.engine.updates.update(
            h.ns, update_request("u2", Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED), timeout=1.0
        )
    )
    task = await h.next_workflow_task()  # waits for the update's speculative task
    await h.complete_workflow_task(task.task_token, messages=accept_and_complete(task, "u2"))
    resp = await waiting
    assert resp.stage == Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
    assert resp.outcome.success.payloads[0].data == b"ok"
    assert await h.event_types("wf") == [
        *events,
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_UPDATE_ACCEPTED",
        "WORKFLOW_EXECUTION_UPDATE_COMPLETED",
    ]
    state = await h.stored_state("wf")
    assert state.updates["u2"].completed_event_id == 9 and not state.speculative_workflow_task


async def test_an_update_completed_by_a_worker_call_cancelled_during_the_commit_still_answers_its_caller(
    h: Harness,
) -> None:
    """The worker's RespondWorkflowTaskCompleted is cancelled (its deadline, a node that passed it on died) while the
    database commits: the update is in history, and the caller waiting for it hears so then, not at its deadline."""
    await idle_run(h)
    waiting = asyncio.create_task(
        h.engine.updates.update(
            h.ns, update_request("u3", Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED), timeout=30.0
        )
    )
    task = await h.next_workflow_task()
    await cancelled_while_committing(
        h, h.complete_workflow_task(task.task_token, messages=accept_and_complete(task, "u3"))
    )
    resp = await asyncio.wait_for(waiting, 5.0)  # bounded: without the fix it waits for its 30 s timeout
    assert resp.stage == Stage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_COMPLETED
    assert resp.outcome.success.payloads[0].data == b"ok"
