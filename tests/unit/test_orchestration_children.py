"""Transfer tasks between workflows (history/tasks.py) over a MemoryStore (tests/support/history_harness.py):
child workflows started, refused and closed, parent-close policies, signals and cancellation requests to other
workflows, and tasks written under a version their entity no longer has. Each task is the one the shards handed
on after the commit that made it, run once through the executor (`run_transfer`)."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    CancelExternalWorkflowExecutionFailedCause,
    CommandType,
    ParentClosePolicy,
    SignalExternalWorkflowExecutionFailedCause,
    StartChildWorkflowExecutionFailedCause,
    WorkflowExecutionStatus,
)
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue

from tempyral.proto.internal_pb2 import Task, TaskType
from tests.support.history_harness import (
    COMPLETED_WT,
    TRANSFER,
    Harness,
    command,
    complete_workflow,
    run_transfer,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
Status = WorkflowExecutionStatus
CHILD_QUEUE = "ctq"
INITIATED = [*COMPLETED_WT, "START_CHILD_WORKFLOW_EXECUTION_INITIATED"]
CHILD_STARTED = [*INITIATED, "CHILD_WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
INIT_ID = 5  # the initiated event of the first command of the parent's first task


def start_child(
    workflow_id: str = "child", policy: int = ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE
) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        start_child_workflow_execution_command_attributes=command_pb.StartChildWorkflowExecutionCommandAttributes(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=common.WorkflowType(name="Child"),
            task_queue=taskqueue.TaskQueue(name=CHILD_QUEUE),
            parent_close_policy=policy,  # type: ignore[arg-type]
        ),
    )


def signal_external(workflow_id: str) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        signal_external_workflow_execution_command_attributes=command_pb.SignalExternalWorkflowExecutionCommandAttributes(
            namespace="default",
            execution=common.WorkflowExecution(workflow_id=workflow_id),
            signal_name="hello",
            input=common.Payloads(payloads=[common.Payload(data=b"hi")]),
        ),
    )


def cancel_external(workflow_id: str) -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
        request_cancel_external_workflow_execution_command_attributes=(
            command_pb.RequestCancelExternalWorkflowExecutionCommandAttributes(
                namespace="default", workflow_id=workflow_id, reason="stop"
            )
        ),
    )


def handed(h: Harness, task_type: int, workflow_id: str) -> Task:
    """The one task of this type the shards handed on for this workflow."""
    (task,) = [t for t in h.handed_transfers(task_type) if t.workflow_id == workflow_id]
    return task


async def initiated(h: Harness, policy: int = ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE) -> tuple[str, Task]:
    """A parent whose first task started a child: its run id and the START_CHILD task."""
    run_id = await h.start("parent")
    await h.run_workflow_task(start_child(policy=policy))
    assert await h.event_types("parent") == INITIATED
    task = handed(h, TaskType.TASK_TYPE_START_CHILD, "parent")
    assert task.event_id == INIT_ID and task.run_id == run_id
    assert "START_CHILD" in await h.outstanding_types("parent", category=TRANSFER)
    return run_id, task


async def started_child(h: Harness, policy: int = ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE) -> tuple[str, str]:
    """A parent whose child started: the parent's and the child's run ids."""
    parent_run, task = await initiated(h, policy)
    await run_transfer(h, task)
    assert await h.event_types("parent") == CHILD_STARTED
    return parent_run, await h.current_run_id("child")


async def commits_by(h: Harness, task: Task) -> int:
    """Run the task; how many transactions it committed."""
    before = len(h.store.committed)
    await run_transfer(h, task)
    return len(h.store.committed) - before


# ---------------------------------------------------------------------------------------------- children


async def test_a_start_child_task_starts_the_child_and_records_it_in_the_parent(h: Harness) -> None:
    parent_run, task = await initiated(h)
    await run_transfer(h, task)

    assert await h.event_types("parent") == CHILD_STARTED
    child_run = await h.current_run_id("child")
    started = (await h.events("parent"))[5].child_workflow_execution_started_event_attributes
    assert (started.initiated_event_id, started.namespace, started.namespace_id) == (INIT_ID, "default", h.ns.id)
    assert (started.workflow_execution.workflow_id, started.workflow_execution.run_id) == ("child", child_run)
    assert started.workflow_type.name == "Child"
    child_info = (await h.stored_state("parent")).children[INIT_ID]
    assert (child_info.started_event_id, child_info.started_run_id) == (6, child_run)

    # the child knows its parent and root, and has its first task (scheduled once the parent recorded it)
    assert await h.event_types("child") == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    attrs = (await h.events("child"))[0].workflow_execution_started_event_attributes
    assert (attrs.parent_workflow_execution.workflow_id, attrs.parent_workflow_execution.run_id) == (
        "parent",
        parent_run,
    )
    assert (attrs.parent_initiated_event_id, attrs.parent_workflow_namespace) == (INIT_ID, "default")
    assert attrs.parent_workflow_namespace_id == h.ns.id
    assert (attrs.root_workflow_execution.workflow_id, attrs.root_workflow_execution.run_id) == ("parent", parent_run)
    assert attrs.task_queue.name == CHILD_QUEUE and attrs.workflow_type.name == "Child"
    current = await h.current("child")
    assert current is not None and (current.run_id, current.status) == (
        child_run,
        Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
    )

    # the START_CHILD row is gone; each run has its workflow task to dispatch
    assert await h.outstanding_types("parent", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]
    assert await h.outstanding_types("child", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]
    child_task = await h.next_workflow_task(CHILD_QUEUE)
    assert child_task.workflow_execution.run_id == child_run

    # a retried task repeats nothing
    assert await commits_by(h, task) == 0
    assert len(await h.events("parent")) == len(CHILD_STARTED)


async def test_a_child_whose_id_is_running_fails_to_start(h: Harness) -> None:
    existing = await h.start("child", task_queue="other")
    _, task = await initiated(h)
    await run_transfer(h, task)

    assert await h.event_types("parent") == [
        *INITIATED,
        "START_CHILD_WORKFLOW_EXECUTION_FAILED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    failed = (await h.events("parent"))[5].start_child_workflow_execution_failed_event_attributes
    assert failed.cause == (
        StartChildWorkflowExecutionFailedCause.START_CHILD_WORKFLOW_EXECUTION_FAILED_CAUSE_WORKFLOW_ALREADY_EXISTS
    )
    assert (failed.initiated_event_id, failed.workflow_id, failed.workflow_type.name) == (INIT_ID, "child", "Child")
    assert not (await h.stored_state("parent")).children
    # the running workflow is left alone
    assert await h.current_run_id("child") == existing
    assert await h.event_types("child") == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    assert "START_CHILD" not in await h.outstanding_types("parent")


async def test_a_completed_child_is_reported_to_its_parent(h: Harness) -> None:
    _, child_run = await started_child(h)
    await h.run_workflow_task()  # the parent's task after the child started: the parent is idle
    result = common.Payloads(payloads=[common.Payload(data=b"child result")])
    complete = complete_workflow()
    complete.complete_workflow_execution_command_attributes.result.CopyFrom(result)
    await h.run_workflow_task(complete, task_queue=CHILD_QUEUE)
    assert (await h.event_types("child"))[-1] == "WORKFLOW_EXECUTION_COMPLETED"

    close = handed(h, TaskType.TASK_TYPE_CLOSE_EXECUTION, "child")
    assert close.run_id == child_run
    assert "CLOSE_EXECUTION" in await h.outstanding_types("child", category=TRANSFER)
    await run_transfer(h, close)

    types = await h.event_types("parent")
    assert types[len(CHILD_STARTED) :] == [
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_COMPLETED",
        "CHILD_WORKFLOW_EXECUTION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
    ]
    completed = (await h.events("parent"))[9].child_workflow_execution_completed_event_attributes
    assert (completed.initiated_event_id, completed.started_event_id) == (INIT_ID, 6)
    assert (completed.workflow_execution.workflow_id, completed.workflow_execution.run_id) == ("child", child_run)
    assert completed.result == result and completed.namespace == "default"
    assert not (await h.stored_state("parent")).children
    assert "CLOSE_EXECUTION" not in await h.outstanding_types("child")
    # a repeat finds the child gone from the parent
    assert await commits_by(h, close) == 0


@pytest.mark.parametrize(
    ("policy", "child_events"),
    [
        (ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE, ["WORKFLOW_EXECUTION_TERMINATED"]),
        (ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL, ["WORKFLOW_EXECUTION_CANCEL_REQUESTED"]),
        (ParentClosePolicy.PARENT_CLOSE_POLICY_ABANDON, []),
    ],
    ids=["terminate", "request-cancel", "abandon"],
)
async def test_a_closing_parent_applies_its_childrens_close_policy(
    h: Harness, policy: int, child_events: list[str]
) -> None:
    parent_run, child_run = await started_child(h, policy)
    await h.run_workflow_task(complete_workflow())
    assert (await h.event_types("parent"))[-1] == "WORKFLOW_EXECUTION_COMPLETED"
    await run_transfer(h, handed(h, TaskType.TASK_TYPE_CLOSE_EXECUTION, "parent"))

    # the child's first task was never polled: its scheduled event is the last before the policy's
    assert await h.event_types("child") == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", *child_events]
    state = await h.stored_state("child")
    if policy == ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE:
        terminated = (await h.events("child"))[-1].workflow_execution_terminated_event_attributes
        assert (terminated.reason, terminated.identity) == ("by parent close policy", "history-service")
        current = await h.current("child")
        assert current is not None and (current.run_id, current.status) == (
            child_run,
            Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
        )
        # the child's close then finds its parent closed: nothing to record
        assert await commits_by(h, handed(h, TaskType.TASK_TYPE_CLOSE_EXECUTION, "child")) == 0
    elif policy == ParentClosePolicy.PARENT_CLOSE_POLICY_REQUEST_CANCEL:
        requested = (await h.events("child"))[-1].workflow_execution_cancel_requested_event_attributes
        assert (requested.external_workflow_execution.workflow_id, requested.external_workflow_execution.run_id) == (
            "parent",
            parent_run,
        )
        assert state.cancel_requested and state.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING
    else:
        assert state.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING and not state.cancel_requested


# ---------------------------------------------------------------------------------------------- other workflows


async def test_signals_to_other_workflows_are_delivered_or_fail_as_not_found(h: Harness) -> None:
    target_run = await h.start("target", task_queue="other")
    wf_run = await h.start("wf")
    await h.run_workflow_task(signal_external("target"), signal_external("missing"))
    assert (await h.event_types("wf"))[4:] == [
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
    ]
    tasks = sorted(h.handed_transfers(TaskType.TASK_TYPE_SIGNAL_EXTERNAL), key=lambda t: t.event_id)
    assert [t.event_id for t in tasks] == [5, 6]
    assert await h.outstanding_types("wf", category=TRANSFER) == ["SIGNAL_EXTERNAL", "SIGNAL_EXTERNAL"]
    for task in tasks:
        await run_transfer(h, task)

    # the target has the signal, sent by the initiator
    assert (await h.event_types("target"))[-1] == "WORKFLOW_EXECUTION_SIGNALED"
    signaled = (await h.events("target"))[-1].workflow_execution_signaled_event_attributes
    assert (signaled.signal_name, signaled.identity) == ("hello", "history-service")
    assert signaled.input.payloads[0].data == b"hi"
    assert (signaled.external_workflow_execution.workflow_id, signaled.external_workflow_execution.run_id) == (
        "wf",
        wf_run,
    )
    assert signaled.request_id in (await h.stored_state("target", target_run)).signal_request_ids

    # the initiator learns both outcomes
    events = await h.events("wf")
    assert (await h.event_types("wf"))[6:] == [
        "EXTERNAL_WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
    ]
    done = events[6].external_workflow_execution_signaled_event_attributes
    assert (done.initiated_event_id, done.workflow_execution.workflow_id, done.namespace) == (5, "target", "default")
    failed = events[8].signal_external_workflow_execution_failed_event_attributes
    assert failed.cause == (
        SignalExternalWorkflowExecutionFailedCause.SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
    )
    assert (failed.initiated_event_id, failed.workflow_execution.workflow_id) == (6, "missing")
    assert not (await h.stored_state("wf")).external_signals
    assert await h.outstanding_types("wf", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]
    # a repeat finds the request done
    assert await commits_by(h, tasks[0]) == 0


async def test_cancel_requests_to_other_workflows_are_delivered_or_fail_as_not_found(h: Harness) -> None:
    await h.start("target", task_queue="other")
    wf_run = await h.start("wf")
    await h.run_workflow_task(cancel_external("target"), cancel_external("missing"))
    tasks = sorted(h.handed_transfers(TaskType.TASK_TYPE_CANCEL_EXTERNAL), key=lambda t: t.event_id)
    assert [t.event_id for t in tasks] == [5, 6]
    for task in tasks:
        await run_transfer(h, task)

    assert (await h.event_types("target"))[-1] == "WORKFLOW_EXECUTION_CANCEL_REQUESTED"
    requested = (await h.events("target"))[-1].workflow_execution_cancel_requested_event_attributes
    assert (requested.cause, requested.identity, requested.external_initiated_event_id) == (
        "stop",
        "history-service",
        5,
    )
    assert (requested.external_workflow_execution.workflow_id, requested.external_workflow_execution.run_id) == (
        "wf",
        wf_run,
    )
    assert (await h.stored_state("target")).cancel_requested

    assert (await h.event_types("wf"))[4:] == [
        "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
        "EXTERNAL_WORKFLOW_EXECUTION_CANCEL_REQUESTED",
        "WORKFLOW_TASK_SCHEDULED",
        "REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED",
    ]
    events = await h.events("wf")
    done = events[6].external_workflow_execution_cancel_requested_event_attributes
    assert (done.initiated_event_id, done.workflow_execution.workflow_id) == (5, "target")
    failed = events[8].request_cancel_external_workflow_execution_failed_event_attributes
    assert failed.cause == (
        CancelExternalWorkflowExecutionFailedCause.CANCEL_EXTERNAL_WORKFLOW_EXECUTION_FAILED_CAUSE_EXTERNAL_WORKFLOW_EXECUTION_NOT_FOUND
    )
    assert (failed.initiated_event_id, failed.workflow_execution.workflow_id) == (6, "missing")
    assert not (await h.stored_state("wf")).external_cancels
    assert await h.outstanding_types("wf", category=TRANSFER) == ["DISPATCH_WORKFLOW_TASK"]


# ---------------------------------------------------------------------------------------------- versions


def with_version(task: Task, version: int) -> Task:
    copy = Task()
    copy.CopyFrom(task)
    copy.version = version
    return copy


async def test_a_start_child_task_of_another_version_is_acknowledged_without_effect(h: Harness) -> None:
    _, task = await initiated(h)
    assert task.version == 0  # a local namespace writes version 0
    assert await commits_by(h, with_version(task, 7)) == 0
    assert await h.event_types("parent") == INITIATED
    assert await h.current("child") is None
    assert "START_CHILD" not in await h.outstanding_types("parent")  # the row was acknowledged
    assert (await h.stored_state("parent")).children[INIT_ID].started_run_id == ""


async def test_a_close_task_of_a_newer_version_is_acknowledged_without_effect(h: Harness) -> None:
    await started_child(h)
    await h.run_workflow_task()  # the parent is idle
    await h.run_workflow_task(complete_workflow(), task_queue=CHILD_QUEUE)
    close = handed(h, TaskType.TASK_TYPE_CLOSE_EXECUTION, "child")
    parent_events = await h.event_types("parent")
    assert await commits_by(h, with_version(close, 7)) == 0
    assert await h.event_types("parent") == parent_events
    assert "CLOSE_EXECUTION" not in await h.outstanding_types("child")
    assert INIT_ID in (await h.stored_state("parent")).children
