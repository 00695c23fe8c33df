"""A commit whose caller is cancelled while the database commits, or that the database does not answer
(history/shard.py, Shard._commit).

gRPC cancels a handler when its caller goes away: a client whose deadline passed, or a node that passed the call on
to the shard's node and was SIGKILLed. The transaction may commit all the same (PostgreSQL got the COMMIT), and then
its tasks must reach their queues on the shard's node: they were lost until the shard moved (the nodes test's
workflows stuck after WorkflowTaskCompleted with an activity never dispatched or a timer that never fired)."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkflowIdConflictPolicy
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import StorageUnavailable
from tempyral.history.reset import reset
from tempyral.persistence.store import Transaction
from tempyral.proto.internal_pb2 import TaskType
from tests.support.history_harness import (
    Harness,
    cancelled_while_committing,
    complete_workflow,
    eventually,
    schedule_activity,
    start_timer,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")


async def test_a_commit_whose_caller_is_cancelled_still_hands_its_tasks_on(h: Harness) -> None:
    run_id = await h.start("wf")
    polled = await h.next_workflow_task()
    await cancelled_while_committing(
        h, h.complete_workflow_task(polled.task_token, start_timer("t1", seconds=1), schedule_activity("a1"))
    )
    assert (await h.event_types("wf"))[-2:] == ["TIMER_STARTED", "ACTIVITY_TASK_SCHEDULED"]
    handed = {TaskType.Name(t.type) for t in h.engine.handed if t.run_id == run_id}
    assert {"TASK_TYPE_USER_TIMER", "TASK_TYPE_DISPATCH_ACTIVITY_TASK"} <= handed
    # the run's next change starts from what was committed
    await h.signal("wf")
    assert (await h.event_types("wf"))[-2:] == ["WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]


async def test_a_closing_commit_whose_caller_is_cancelled_still_tells_the_closed_listeners(h: Harness) -> None:
    """What follows a commit (the closed listeners: outcome metrics, a schedule's next action, aborted updates) runs
    once the database has it, whether or not its caller still waits."""
    await h.start("wf")
    polled = await h.next_workflow_task()
    closed: list[str] = []
    h.engine.executions.closed_listeners.append(lambda entry, continued: closed.append(entry.key[1]))
    await cancelled_while_committing(h, h.complete_workflow_task(polled.task_token, complete_workflow()))
    assert (await h.event_types("wf"))[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    assert closed == ["wf"]


async def test_runs_a_start_or_a_reset_terminates_are_told_to_the_closed_listeners_when_the_caller_is_cancelled(
    h: Harness,
) -> None:
    """A start that terminates the running run (WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING) and a reset of a
    running run close a run among the change's others: the closed listeners hear of it with the commit."""
    closed: list[str] = []
    h.engine.executions.closed_listeners.append(lambda entry, continued: closed.append(entry.key[2]))
    first = await h.start("wf")
    terminate_existing = WorkflowIdConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
    await cancelled_while_committing(h, h.start("wf", workflow_id_conflict_policy=terminate_existing))
    assert closed == [first]
    second = await h.current_run_id("wf")
    await h.run_workflow_task()
    req = ws.ResetWorkflowExecutionRequest(
        namespace=h.ns.name,
        workflow_execution=common.WorkflowExecution(workflow_id="wf", run_id=second),
        reason="reset it",
        workflow_task_finish_event_id=4,
        request_id="reset-1",
    )
    await cancelled_while_committing(h, reset(h.engine.executions, h.ns, req))
    assert closed == [first, second]


async def test_a_commit_the_database_did_not_answer_is_read_back_and_its_tasks_handed_on(h: Harness) -> None:
    run_id = await h.start("wf")
    polled = await h.next_workflow_task()
    real_commit = h.store.commit

    async def commit(txn: Transaction) -> None:
        await real_commit(txn)  # it committed, but the answer was lost (a timeout, a dropped connection)
        raise StorageUnavailable("the database at test cannot answer now: connection lost")

    h.store.commit = commit  # type: ignore[method-assign]
    with pytest.raises(StorageUnavailable):
        await h.complete_workflow_task(polled.task_token, start_timer("t1", seconds=1), schedule_activity("a1"))
    h.store.commit = real_commit  # type: ignore[method-assign]

    def handed() -> set[str]:
        return {TaskType.Name(t.type) for t in h.engine.handed if t.run_id == run_id}

    await eventually(lambda: {"TASK_TYPE_USER_TIMER", "TASK_TYPE_DISPATCH_ACTIVITY_TASK"} <= handed())


async def test_a_commit_that_failed_before_writing_hands_nothing_on(h: Harness) -> None:
    run_id = await h.start("wf")
    polled = await h.next_workflow_task()
    h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await h.complete_workflow_task(polled.task_token, start_timer("t1", seconds=1))
    for _ in range(20):  # the read-back runs and finds nothing
        await asyncio.sleep(0)
    assert "TASK_TYPE_USER_TIMER" not in {TaskType.Name(t.type) for t in h.engine.handed if t.run_id == run_id}
    assert "TIMER_STARTED" not in await h.event_types("wf")
