"""Nexus operations on the caller's side, through NexusOperations over a MemoryStore
(tests/support/history_harness.py): the start request's outcome, the completion by callback, repeats."""

from __future__ import annotations

import pytest
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType, PendingNexusOperationState

from tempyral.nexus.operations import OperationNotFound
from tempyral.nexus.outcomes import Kind, Outcome
from tempyral.proto.internal_pb2 import NexusCallbackToken, Task, TaskType
from tests.support.history_harness import ENDPOINT, ENDPOINT_ID, Harness, command

pytestmark = pytest.mark.asyncio(loop_scope="function")
SCHEDULED = [
    "WORKFLOW_EXECUTION_STARTED",
    "WORKFLOW_TASK_SCHEDULED",
    "WORKFLOW_TASK_STARTED",
    "WORKFLOW_TASK_COMPLETED",
    "NEXUS_OPERATION_SCHEDULED",
]
SID = 5  # the operation's scheduled event id


async def scheduled(h: Harness) -> Task:
    """A run whose first task scheduled a Nexus operation: the operation's start-request task."""
    await h.start("caller")
    attrs = command_pb.ScheduleNexusOperationCommandAttributes(endpoint=ENDPOINT, service="svc", operation="op")
    await h.run_workflow_task(
        command(CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION, schedule_nexus_operation_command_attributes=attrs)
    )
    assert await h.event_types("caller") == SCHEDULED
    event = (await h.events("caller"))[SID - 1].nexus_operation_scheduled_event_attributes
    assert (event.endpoint, event.endpoint_id, event.service, event.operation) == (ENDPOINT, ENDPOINT_ID, "svc", "op")
    (task,) = h.handed_transfers(TaskType.TASK_TYPE_NEXUS_START)
    assert task.event_id == SID
    assert "NEXUS_START" in await h.outstanding_types("caller")
    return task


def callback_token(h: Harness, run_id: str, request_id: str) -> NexusCallbackToken:
    return NexusCallbackToken(
        namespace_id=h.ns.id, workflow_id="caller", run_id=run_id, scheduled_event_id=SID, request_id=request_id
    )


async def test_a_sync_result_completes_the_operation(h: Harness) -> None:
    task = await scheduled(h)
    result = common.Payload(data=b"sync")
    await h.nexus.record_start(task, Outcome(Kind.SUCCEEDED, result=result))
    assert await h.event_types("caller") == [*SCHEDULED, "NEXUS_OPERATION_COMPLETED", "WORKFLOW_TASK_SCHEDULED"]
    assert (await h.events("caller"))[5].nexus_operation_completed_event_attributes.result == result
    assert SID not in (await h.stored_state("caller")).nexus_operations
    # the same outcome again (a retried request) finds nothing to record
    commits = len(h.store.committed)
    await h.nexus.record_start(task, Outcome(Kind.SUCCEEDED, result=result))
    assert len(h.store.committed) == commits
    assert len(await h.events("caller")) == 7


async def test_an_async_operation_completes_by_callback_once(h: Harness) -> None:
    task = await scheduled(h)
    await h.nexus.record_start(task, Outcome(Kind.STARTED, token="op-token"))
    assert await h.event_types("caller") == [*SCHEDULED, "NEXUS_OPERATION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    started = (await h.events("caller"))[5].nexus_operation_started_event_attributes
    assert started.operation_token == "op-token" and started.scheduled_event_id == SID
    state = await h.stored_state("caller")
    info = state.nexus_operations[SID]
    assert info.state == PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
    # a start outcome that comes late changes nothing
    await h.nexus.record_start(task, Outcome(Kind.STARTED, token="op-token"))
    assert await h.stored_state("caller") == state

    token = callback_token(h, state.run_id, info.request_id)
    result = common.Payload(data=b"async")
    await h.nexus.complete(token, "op-token", [], 0, result, None, False)
    # the workflow task scheduled by the start is still pending: no second one
    assert await h.event_types("caller") == [
        *SCHEDULED,
        "NEXUS_OPERATION_STARTED",
        "WORKFLOW_TASK_SCHEDULED",
        "NEXUS_OPERATION_COMPLETED",
    ]
    assert (await h.events("caller"))[-1].nexus_operation_completed_event_attributes.result == result
    assert SID not in (await h.stored_state("caller")).nexus_operations
    with pytest.raises(OperationNotFound):  # a repeated delivery
        await h.nexus.complete(token, "op-token", [], 0, result, None, False)
    assert len(await h.events("caller")) == 8


async def test_a_completion_that_overtakes_the_start_response_records_the_start_first(h: Harness) -> None:
    await scheduled(h)
    state = await h.stored_state("caller")
    token = callback_token(h, state.run_id, state.nexus_operations[SID].request_id)
    await h.nexus.complete(token, "op-token", [], 0, common.Payload(data=b"x"), None, False)
    assert (await h.event_types("caller"))[-3:] == [
        "NEXUS_OPERATION_STARTED",
        "NEXUS_OPERATION_COMPLETED",
        "WORKFLOW_TASK_SCHEDULED",
    ]


async def test_a_callback_for_another_request_or_a_closed_caller_is_not_found(h: Harness) -> None:
    await scheduled(h)
    state = await h.stored_state("caller")
    with pytest.raises(OperationNotFound):
        await h.nexus.complete(callback_token(h, state.run_id, "other-request"), "t", [], 0, None, None, False)
    await h.terminate("caller")
    token = callback_token(h, state.run_id, state.nexus_operations[SID].request_id)
    with pytest.raises(OperationNotFound):
        await h.nexus.complete(token, "t", [], 0, None, None, False)
    assert (await h.event_types("caller"))[-1] == "WORKFLOW_EXECUTION_TERMINATED"
