"""Signals, cancellation requests and termination through HistoryEngine over a MemoryStore
(tests/support/history_harness.py), and what closed runs answer to each of them."""

from __future__ import annotations

import pytest
from temporalio.api.enums.v1 import WorkflowExecutionStatus, WorkflowTaskFailedCause

from tempyral.common.errors import NotFound, WorkflowCompleted, WorkflowNotFound
from tests.support.history_harness import COMPLETED_WT, TRANSFER, Harness, complete_workflow, idle_run

pytestmark = pytest.mark.asyncio(loop_scope="function")
TERMINATED = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_TERMINATED


async def test_a_signal_schedules_a_workflow_task_once(h: Harness) -> None:
    await idle_run(h)
    await h.signal("wf", "go", request_id="req-1")
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    assert (await h.events("wf"))[4].workflow_execution_signaled_event_attributes.signal_name == "go"
    assert await h.outstanding_types("wf", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]
    # a second signal finds the task pending: no second task
    await h.signal("wf", "again", request_id="req-2")
    assert (await h.event_types("wf"))[-2:] == ["WORKFLOW_TASK_SCHEDULED", "WORKFLOW_EXECUTION_SIGNALED"]
    assert await h.outstanding_types("wf", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]
    # a retried request is dropped
    commits = len(h.store.committed)
    await h.signal("wf", "go", request_id="req-1")
    assert len(h.store.committed) == commits
    assert len(await h.events("wf")) == 7
    assert set((await h.stored_state("wf")).signal_request_ids) >= {"req-1", "req-2"}
    task = await h.next_workflow_task()
    assert [e.workflow_execution_signaled_event_attributes.signal_name for e in task.history.events[4:7:2]] == [
        "go",
        "again",
    ]


async def test_a_signal_while_a_task_runs_is_buffered_until_it_completes(h: Harness) -> None:
    await h.start("wf")
    task = await h.next_workflow_task()
    await h.signal("wf", "late")
    # buffered: not in history while the task runs
    assert await h.event_types("wf") == COMPLETED_WT[:3]
    await h.complete_workflow_task(task.task_token)
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]


async def test_a_cancel_request_is_written_once(h: Harness) -> None:
    await idle_run(h)
    await h.request_cancel("wf")
    await h.request_cancel("wf")
    types = await h.event_types("wf")
    assert types == [*COMPLETED_WT, "WORKFLOW_EXECUTION_CANCEL_REQUESTED", "WORKFLOW_TASK_SCHEDULED"]
    assert (await h.stored_state("wf")).cancel_requested


async def test_terminate_closes_the_run_and_its_current_pointer(h: Harness) -> None:
    await idle_run(h)
    run_id = await h.current_run_id("wf")
    await h.terminate("wf", reason="enough")
    assert await h.event_types("wf") == [*COMPLETED_WT, "WORKFLOW_EXECUTION_TERMINATED"]
    assert (await h.events("wf"))[-1].workflow_execution_terminated_event_attributes.reason == "enough"
    current = await h.current("wf")
    assert current is not None and (current.run_id, current.status) == (run_id, TERMINATED)
    assert (await h.stored_state("wf")).status == TERMINATED
    assert "DELETE_HISTORY" in await h.outstanding_types("wf")


async def test_terminate_while_a_task_runs_fails_the_task_first(h: Harness) -> None:
    await h.start("wf")
    task = await h.next_workflow_task()
    await h.signal("wf")  # buffered behind the started task: flushed before the failure's successor events
    await h.terminate("wf")
    types = await h.event_types("wf")
    assert types == [
        *COMPLETED_WT[:3],
        "WORKFLOW_TASK_FAILED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_TERMINATED",
    ]
    failed = (await h.events("wf"))[3].workflow_task_failed_event_attributes
    assert failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FORCE_CLOSE_COMMAND
    assert failed.scheduled_event_id == 2 and failed.started_event_id == 3
    with pytest.raises(NotFound, match=r"^Workflow task not found\.$"):
        await h.complete_workflow_task(task.task_token, complete_workflow())


async def test_a_closed_run_refuses_signals_terminations_and_task_completions(h: Harness) -> None:
    await h.start("wf")
    task = await h.next_workflow_task()
    await h.complete_workflow_task(task.task_token, complete_workflow())
    closed = await h.event_types("wf")
    state = await h.stored_state("wf")
    with pytest.raises(WorkflowCompleted):
        await h.signal("wf")
    with pytest.raises(WorkflowCompleted):
        await h.terminate("wf")
    with pytest.raises(NotFound, match=r"^Workflow task not found\.$"):
        await h.complete_workflow_task(task.task_token)
    with pytest.raises(NotFound, match=r"^Workflow task not found\.$"):
        await h.fail_workflow_task(task.task_token)
    await h.request_cancel("wf")  # like the reference: not an error, and nothing written
    assert await h.event_types("wf") == closed
    assert await h.stored_state("wf") == state
    with pytest.raises(WorkflowNotFound):
        await h.signal("no-such-workflow")
