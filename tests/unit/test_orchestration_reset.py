"""ResetWorkflowExecution (history/reset.py) over a MemoryStore (tests/support/history_harness.py): the new
run's history, the current pointer, the run a reset terminates in the same commit, the signals re-applied
after the reset point, the base run's reset_run_id, the reference's errors for bad finish ids, and a new run
whose state is its replay and whose task rows are what `task_generator.regenerate` gives."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    ResetReapplyExcludeType,
    ResetReapplyType,
    WorkflowExecutionStatus,
    WorkflowTaskFailedCause,
)
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument, NotFound
from tempyral.history import rebuild, task_generator
from tempyral.history.reset import RESETTER, reset
from tests.support.history_harness import (
    COMPLETED_WT,
    STARTED_WT,
    Harness,
    complete_workflow,
    event_name,
    outstanding_keys,
    schedule_activity,
    task_keys,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
Status = WorkflowExecutionStatus
RESET_WT = [*STARTED_WT, "WORKFLOW_TASK_FAILED"]  # the kept first task, failed by the reset
FIRST_TASK_FINISH = 4  # the event after the first task's started event: reset to the first workflow task
FINISH_RANGE = r"^Workflow task finish ID must be > 1 && <= workflow last event ID\.$"
NOT_A_TASK = r"^Can only reset workflow to event ID in range \[WorkflowTaskScheduled \+1, WorkflowTaskStarted \+ 1\]: "


async def do_reset(h: Harness, finish: int, run_id: str = "", reason: str = "reset it", **fields: Any) -> str:
    req = ws.ResetWorkflowExecutionRequest(
        namespace=h.ns.name,
        workflow_execution=common.WorkflowExecution(workflow_id="wf", run_id=run_id),
        reason=reason,
        workflow_task_finish_event_id=finish,
        request_id="reset-request",
        **fields,
    )
    return await reset(h.engine.executions, h.ns, req)


def without_task_ids(events: Sequence[history.HistoryEvent]) -> list[history.HistoryEvent]:
    """Copies of `events` without their task ids (a write under a new run gives them new ones)."""
    out = []
    for event in events:
        copy = history.HistoryEvent()
        copy.CopyFrom(event)
        copy.task_id = 0
        out.append(copy)
    return out


async def assert_rebuildable(h: Harness, run_id: str) -> None:
    """The run's stored state is what its events replay to, and its outstanding task rows are the ones
    `regenerate` gives for that state (the replay check's rules, for one run)."""
    events = await h.events("wf", run_id)
    stored = await h.stored_state("wf", run_id)
    replayed = rebuild.replay(h.ns.id, "wf", run_id, events)
    assert rebuild.comparable(stored) == rebuild.comparable(replayed)
    assert await outstanding_keys(h, "wf", run_id) == task_keys(task_generator.regenerate(stored, time.time_ns()))


def assert_reset_failure(event: history.HistoryEvent, base_run_id: str, new_run_id: str, reason: str) -> None:
    assert event_name(event) == "WORKFLOW_TASK_FAILED"
    failed = event.workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW
    assert (failed.base_run_id, failed.new_run_id) == (base_run_id, new_run_id)
    assert (failed.scheduled_event_id, failed.started_event_id) == (2, 3)
    assert failed.failure.message == reason and failed.failure.HasField("reset_workflow_failure_info")


def signal_names(events: Sequence[history.HistoryEvent]) -> list[str]:
    return [
        e.workflow_execution_signaled_event_attributes.signal_name
        for e in events
        if event_name(e) == "WORKFLOW_EXECUTION_SIGNALED"
    ]


async def running_with_signals(h: Harness) -> tuple[str, bytes]:
    """A running run whose first task completed, then signalled twice ("s1", "s2") with its second task
    started: the reset point (its first task) comes before both signals. Its run id and the started
    task's token."""
    base = await h.start("wf")
    await h.run_workflow_task()
    await h.signal("wf", "s1")
    await h.signal("wf", "s2")
    task = await h.next_workflow_task()
    assert await h.event_types("wf") == [
        *COMPLETED_WT,
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_STARTED",
    ]
    return base, task.task_token


async def test_resetting_a_completed_run_makes_a_new_current_run(h: Harness) -> None:
    base = await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    base_events = await h.events("wf")
    assert [event_name(e) for e in base_events] == [*COMPLETED_WT, "WORKFLOW_EXECUTION_COMPLETED"]
    base_request_id = (await h.stored_state("wf")).start_request_id
    commits = len(h.store.committed)

    new = await do_reset(h, FIRST_TASK_FINISH, base, reason="redo")
    assert new != base
    # one transaction: the new run, and the base run pointing at it
    assert len(h.store.committed) == commits + 1
    txn = h.store.committed[-1]
    assert {(w.run_id, w.expected_db_version == 0) for w in txn.executions} == {(new, True), (base, False)}

    events = await h.events("wf", new)
    assert [event_name(e) for e in events] == [*RESET_WT, "WORKFLOW_TASK_SCHEDULED"]
    assert without_task_ids(events[:3]) == without_task_ids(base_events[:3])
    assert_reset_failure(events[3], base, new, "redo")
    assert events[4].workflow_task_scheduled_event_attributes.task_queue.name == "tq"
    assert await h.stored_events("wf", new) == events

    current = await h.current("wf")
    assert current is not None
    assert (current.run_id, current.status, current.start_request_id) == (
        new,
        Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
        base_request_id,
    )
    state = await h.stored_state("wf", new)
    assert state.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING and state.workflow_task.scheduled_event_id == 5
    base_state = await h.stored_state("wf", base)
    assert base_state.reset_run_id == new and base_state.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert await h.events("wf", base) == base_events  # the base run's history is left as it was
    await assert_rebuildable(h, new)
    assert await outstanding_keys(h, "wf", new) == [("DISPATCH_WORKFLOW_TASK", 5)]

    # the new run is the one workers see
    task = await h.next_workflow_task()
    assert task.workflow_execution.run_id == new
    assert [event_name(e) for e in task.history.events] == [*RESET_WT, *STARTED_WT[1:]]


async def test_resetting_a_running_run_terminates_it_in_the_same_commit(h: Harness) -> None:
    base, token = await running_with_signals(h)
    started = await h.events("wf")
    commits = len(h.store.committed)

    new = await do_reset(h, FIRST_TASK_FINISH, reason="bad deploy")
    assert len(h.store.committed) == commits + 1
    txn = h.store.committed[-1]
    assert {w.run_id for w in txn.executions} == {new, base}
    assert [(cw.run_id, cw.expected_run_id) for cw in txn.current] == [(new, base)]

    # the base run: its started task fails (force close), then it is terminated by the resetter
    base_events = await h.events("wf", base)
    assert base_events[: len(started)] == started
    assert [event_name(e) for e in base_events[len(started) :]] == [
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    failed = base_events[-2].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    terminated = base_events[-1].workflow_execution_terminated_event_attributes
    assert (terminated.reason, terminated.identity) == ("bad deploy", RESETTER)
    base_state = await h.stored_state("wf", base)
    assert base_state.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED and base_state.reset_run_id == new
    assert "DELETE_HISTORY" in [k for k, _ in await outstanding_keys(h, "wf", base)]
    with pytest.raises(NotFound):  # the base run's started task can no longer complete
        await h.complete_workflow_task(token, complete_workflow())

    # the new run: the kept first task, failed, then both signals again and a new task
    events = await h.events("wf", new)
    assert [event_name(e) for e in events] == [
        *RESET_WT,
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    assert_reset_failure(events[3], base, new, "bad deploy")
    assert signal_names(events) == ["s1", "s2"]
    assert all(e.workflow_execution_signaled_event_attributes.identity == "test-client" for e in events[4:6])
    current = await h.current("wf")
    assert current is not None and (current.run_id, current.status) == (new, Status.WORKFLOW_EXECUTION_STATUS_RUNNING)
    await assert_rebuildable(h, new)


async def test_the_started_task_of_a_run_reset_while_running_cannot_complete(h: Harness) -> None:
    await h.start("wf")
    task = await h.next_workflow_task()
    new = await do_reset(h, 3)  # kept: the start and the scheduled task; the reset starts and fails it
    events = await h.events("wf", new)
    assert [event_name(e) for e in events] == [*RESET_WT, "WORKFLOW_TASK_SCHEDULED"]
    assert events[2].workflow_task_started_event_attributes.scheduled_event_id == 2
    with pytest.raises(NotFound):
        await h.complete_workflow_task(task.task_token, complete_workflow())
    await assert_rebuildable(h, new)


@pytest.mark.parametrize(
    ("fields", "reapplied"),
    [
        ({}, ["s1", "s2"]),
        ({"reset_reapply_type": ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL}, ["s1", "s2"]),
        ({"reset_reapply_type": ResetReapplyType.RESET_REAPPLY_TYPE_NONE}, []),
        ({"reset_reapply_exclude_types": [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL]}, []),
        ({"reset_reapply_exclude_types": [ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE]}, ["s1", "s2"]),
    ],
    ids=["default", "signal", "none", "exclude-signal", "exclude-update"],
)
async def test_signals_after_the_reset_point_are_reapplied_unless_excluded(
    h: Harness, fields: dict[str, Any], reapplied: list[str]
) -> None:
    await running_with_signals(h)
    new = await do_reset(h, FIRST_TASK_FINISH, **fields)
    events = await h.events("wf", new)
    assert signal_names(events) == reapplied
    assert [event_name(e) for e in events] == [
        *RESET_WT,
        *["WORKFLOW_EXECUTION_SIGNALED"] * len(reapplied),
        "WORKFLOW_TASK_SCHEDULED",
    ]
    await assert_rebuildable(h, new)


async def test_signals_before_the_reset_point_are_kept_not_reapplied(h: Harness) -> None:
    _, token = await running_with_signals(h)
    await h.complete_workflow_task(token)
    # reset to the second task: s1 (event 5) and s2 (event 7) come before its started event (8)
    new = await do_reset(h, 9)
    events = await h.events("wf", new)
    assert [event_name(e) for e in events] == [
        *COMPLETED_WT,
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    assert signal_names(events) == ["s1", "s2"]
    failed = events[8].workflow_task_failed_event_attributes
    assert (failed.scheduled_event_id, failed.started_event_id) == (6, 8)
    await assert_rebuildable(h, new)


async def test_resetting_an_older_run_terminates_the_current_one_and_marks_the_base(h: Harness) -> None:
    base = await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    first = await do_reset(h, FIRST_TASK_FINISH, base)
    # the base run again, while the run the first reset made is current and running
    second = await do_reset(h, FIRST_TASK_FINISH, base, reason="again")
    assert len({base, first, second}) == 3
    assert await h.current_run_id("wf") == second
    assert (await h.stored_state("wf", base)).reset_run_id == second
    first_state = await h.stored_state("wf", first)
    assert first_state.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    first_events = await h.events("wf", first)
    assert event_name(first_events[-1]) == "WORKFLOW_EXECUTION_TERMINATED"
    terminated = first_events[-1].workflow_execution_terminated_event_attributes
    assert (terminated.reason, terminated.identity) == ("again", RESETTER)
    assert_reset_failure((await h.events("wf", second))[3], base, second, "again")
    await assert_rebuildable(h, second)


@pytest.mark.parametrize(
    ("finish", "message"),
    [
        (0, FINISH_RANGE),
        (1, FINISH_RANGE),
        (6, FINISH_RANGE),  # past the last event (5)
        (2, NOT_A_TASK + "2$"),  # before the first task was scheduled
        (5, NOT_A_TASK + "5$"),  # after the first task completed: no task is scheduled at the point
    ],
)
async def test_invalid_finish_ids_are_refused_and_write_nothing(h: Harness, finish: int, message: str) -> None:
    base = await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    state = await h.stored_state("wf")
    commits = len(h.store.committed)
    with pytest.raises(InvalidArgument, match=message):
        await do_reset(h, finish, base)
    assert len(h.store.committed) == commits
    assert await h.current_run_id("wf") == base
    assert await h.stored_state("wf") == state


async def test_pending_work_of_the_kept_history_gets_fresh_tasks(h: Harness) -> None:
    base = await h.start("wf", workflow_run_timeout=Duration(seconds=600))
    await h.run_workflow_task(schedule_activity())
    await h.signal("wf", "s1")
    await h.run_workflow_task(complete_workflow())  # the activity is left pending by the completion
    assert (await h.event_types("wf"))[4:] == [
        "ACTIVITY_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        *STARTED_WT[1:],
        "WORKFLOW_TASK_COMPLETED",
        "WORKFLOW_EXECUTION_COMPLETED",
    ]
    new = await do_reset(h, 9, base)  # the second task: the activity and the signal are kept
    events = await h.events("wf", new)
    assert [event_name(e) for e in events][4:] == [
        "ACTIVITY_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        *STARTED_WT[1:],
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    state = await h.stored_state("wf", new)
    assert list(state.activities) == [5]
    await assert_rebuildable(h, new)
    keys = await outstanding_keys(h, "wf", new)
    assert ("DISPATCH_ACTIVITY_TASK", 5) in keys and ("WORKFLOW_RUN_TIMEOUT", 0) in keys
    assert ("DISPATCH_WORKFLOW_TASK", 10) in keys
    # the activity of the new run is handed to workers
    activity = await h.poll_activity_task()
    assert (activity.activity_id, activity.workflow_execution.run_id) == ("a1", new)
