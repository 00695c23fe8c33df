"""The read paths of history/reads.py over a MemoryStore (tests/support/history_harness.py): history pages and
their tokens, the events of a transient workflow task, the close-event filter, long polls woken by a commit or
timing out, reverse history, describe, and queries refused by their reject condition."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import (
    HistoryEventFilterType,
    PendingActivityState,
    PendingWorkflowTaskState,
    QueryRejectCondition,
    QueryResultType,
    WorkflowExecutionStatus,
)
from temporalio.api.query.v1 import message_pb2 as query_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import InvalidArgument
from tempyral.common.tokens import decode_page_token, encode_page_token
from tempyral.history import reads
from tempyral.history.queries import QueryTask
from tempyral.proto.internal_pb2 import HistoryPageToken
from tests.support.history_harness import (
    COMPLETED_WT,
    Harness,
    complete_workflow,
    event_name,
    eventually,
    idle_run,
    schedule_activity,
)

pytestmark = pytest.mark.asyncio(loop_scope="function")
Status = WorkflowExecutionStatus
CLOSE_EVENT = HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_CLOSE_EVENT
TIMEOUT_S = 0.3  # the longest a read here may wait; a woken poll returns long before it
SHORT_S = 0.02  # a poll that must time out


def history_request(run_id: str = "", token: bytes = b"", **fields: Any) -> ws.GetWorkflowExecutionHistoryRequest:
    return ws.GetWorkflowExecutionHistoryRequest(
        namespace="default",
        execution=common.WorkflowExecution(workflow_id="wf", run_id=run_id),
        next_page_token=token,
        **fields,
    )


async def get_history(
    h: Harness, req: ws.GetWorkflowExecutionHistoryRequest, timeout: float = TIMEOUT_S, with_transient: bool = True
) -> ws.GetWorkflowExecutionHistoryResponse:
    return await reads.get_history(h.engine.executions, h.ns, req, timeout, with_transient=with_transient)


def ids_and_names(resp: ws.GetWorkflowExecutionHistoryResponse) -> list[tuple[int, str]]:
    return [(e.event_id, event_name(e)) for e in resp.history.events]


def token_of(resp: ws.GetWorkflowExecutionHistoryResponse) -> tuple[str, int] | None:
    token = decode_page_token(resp.next_page_token)
    return None if token is None else (token.run_id, token.next_event_id)


async def pages(h: Harness, page_size: int, with_transient: bool) -> list[list[int]]:
    """Every page of the current run's history, following the tokens: the event ids of each page."""
    out: list[list[int]] = []
    token = b""
    while True:
        resp = await get_history(
            h, history_request(token=token, maximum_page_size=page_size), with_transient=with_transient
        )
        out.append([e.event_id for e in resp.history.events])
        token = resp.next_page_token
        if not token:
            return out
        assert len(out) < 10, "the pages do not end"


async def with_transient_task(h: Harness) -> str:
    """A run with three signals whose second task failed: its next attempt is transient (not in history)."""
    run_id = await idle_run(h)
    for name in ("s1", "s2", "s3"):
        await h.signal("wf", name)
    task = await h.next_workflow_task()
    await h.fail_workflow_task(task.task_token)
    assert await h.event_types("wf") == [
        *COMPLETED_WT,
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_STARTED",
        "WORKFLOW_TASK_FAILED",
    ]
    wt = (await h.stored_state("wf")).workflow_task
    assert wt.transient and (wt.scheduled_event_id, wt.attempt) == (11, 2)
    return run_id


# ---------------------------------------------------------------------------------------------- pages


async def test_pages_follow_their_tokens_and_show_a_transient_task_to_sdk_callers(h: Harness) -> None:
    run_id = await with_transient_task(h)
    first = await get_history(h, history_request(maximum_page_size=4))
    assert [e for e, _ in ids_and_names(first)] == [1, 2, 3, 4]
    assert token_of(first) == (run_id, 5)
    # the transient task's scheduled event ends the last page, for SDK callers only
    assert await pages(h, 4, with_transient=True) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11]]
    assert await pages(h, 4, with_transient=False) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    last = await get_history(h, history_request(token=first.next_page_token, maximum_page_size=100))
    assert ids_and_names(last)[-1] == (11, "WORKFLOW_TASK_SCHEDULED")
    assert last.history.events[-1].workflow_task_scheduled_event_attributes.attempt == 2
    assert not last.next_page_token
    assert len(await h.events("wf")) == 10  # not written

    # once a worker started it, its started event too
    task = await h.next_workflow_task()
    assert task.attempt == 2
    whole = await get_history(h, history_request())
    assert ids_and_names(whole)[-2:] == [(11, "WORKFLOW_TASK_SCHEDULED"), (12, "WORKFLOW_TASK_STARTED")]
    assert ids_and_names(await get_history(h, history_request(), with_transient=False))[-1] == (
        10,
        "WORKFLOW_TASK_FAILED",
    )
    assert [e.event_id for e in task.history.events] == list(range(1, 13))


async def test_a_token_keeps_reading_its_run_after_a_new_run_became_current(h: Harness) -> None:
    first_run = await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    page = await get_history(h, history_request(maximum_page_size=3))
    assert token_of(page) == (first_run, 4)
    second_run = await h.start("wf")  # the closed run's workflow id is reused
    assert await h.current_run_id("wf") == second_run
    rest = await get_history(h, history_request(token=page.next_page_token, maximum_page_size=3))
    assert ids_and_names(rest) == [(4, "WORKFLOW_TASK_COMPLETED"), (5, "WORKFLOW_EXECUTION_COMPLETED")]
    assert not rest.next_page_token
    # a token of one run is refused for another
    with pytest.raises(InvalidArgument, match=r"^Invalid NextPageToken\.$"):
        await get_history(h, history_request(run_id=second_run, token=page.next_page_token))
    with pytest.raises(InvalidArgument, match=r"^Invalid NextPageToken\.$"):
        await get_history(h, history_request(token=b"not a token"))


async def test_the_close_event_filter(h: Harness) -> None:
    await idle_run(h)
    running = await get_history(h, history_request(history_event_filter_type=CLOSE_EVENT))
    assert running == ws.GetWorkflowExecutionHistoryResponse()
    await h.signal("wf")
    await h.run_workflow_task(complete_workflow())
    closed = await get_history(h, history_request(history_event_filter_type=CLOSE_EVENT))
    assert ids_and_names(closed) == [(9, "WORKFLOW_EXECUTION_COMPLETED")]
    assert not closed.next_page_token


# ---------------------------------------------------------------------------------------------- long polls


async def test_a_long_poll_is_woken_by_a_signal(h: Harness) -> None:
    run_id = await idle_run(h)
    first = await get_history(h, history_request(wait_new_event=True))
    assert [e for e, _ in ids_and_names(first)] == [1, 2, 3, 4]
    assert token_of(first) == (run_id, 5)  # a running run: the caller polls on
    poll = asyncio.create_task(get_history(h, history_request(token=first.next_page_token, wait_new_event=True)))
    entry = h.cache_entry("wf", run_id)
    assert entry is not None
    await eventually(lambda: bool(entry.waiters))
    assert not poll.done()
    await h.signal("wf", "wake")
    woken = await asyncio.wait_for(poll, TIMEOUT_S)
    assert ids_and_names(woken) == [(5, "WORKFLOW_EXECUTION_SIGNALED"), (6, "WORKFLOW_TASK_SCHEDULED")]
    assert token_of(woken) == (run_id, 7)


async def test_a_close_event_long_poll_is_woken_by_the_close(h: Harness) -> None:
    run_id = await idle_run(h)
    req = history_request(history_event_filter_type=CLOSE_EVENT, wait_new_event=True)
    poll = asyncio.create_task(get_history(h, req))
    entry = h.cache_entry("wf", run_id)
    assert entry is not None
    await eventually(lambda: bool(entry.waiters))
    await h.signal("wf")  # new events, but not the close: the poll goes on waiting
    await eventually(lambda: bool(entry.waiters))
    assert not poll.done()
    await h.terminate("wf", reason="done")
    closed = await asyncio.wait_for(poll, TIMEOUT_S)
    assert ids_and_names(closed) == [(7, "WORKFLOW_EXECUTION_TERMINATED")]


async def test_a_long_poll_that_times_out_hands_back_its_token(h: Harness) -> None:
    run_id = await idle_run(h)
    token = encode_page_token(HistoryPageToken(run_id=run_id, next_event_id=5))
    resp = await get_history(h, history_request(token=token, wait_new_event=True), timeout=SHORT_S)
    assert not resp.history.events
    assert token_of(resp) == (run_id, 5)
    # and without a token: from the start
    fresh = await get_history(
        h, history_request(wait_new_event=True, history_event_filter_type=CLOSE_EVENT), timeout=SHORT_S
    )
    assert not fresh.history.events and token_of(fresh) == (run_id, 1)
    # the next poll with it sees what came since
    await h.signal("wf")
    later = await get_history(h, history_request(token=resp.next_page_token, wait_new_event=True))
    assert [e for e, _ in ids_and_names(later)] == [5, 6]


async def test_a_long_poll_that_times_out_leaves_no_waiter_behind(h: Harness) -> None:
    run_id = await idle_run(h)
    token = encode_page_token(HistoryPageToken(run_id=run_id, next_event_id=5))
    for _ in range(3):
        await get_history(h, history_request(token=token, wait_new_event=True), timeout=SHORT_S)
    entry = h.cache_entry("wf", run_id)
    assert entry is not None
    assert entry.waiters == []


async def test_a_long_poll_on_a_closed_run_returns_at_once(h: Harness) -> None:
    run_id = await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    token = encode_page_token(HistoryPageToken(run_id=run_id, next_event_id=6))
    resp = await get_history(h, history_request(token=token, wait_new_event=True))
    # nothing more will come: no events, and no token to poll on (a timed-out poll would hand one back)
    assert not resp.history.events and not resp.next_page_token


# ---------------------------------------------------------------------------------------------- reverse


async def test_reverse_history_pages_newest_first(h: Harness) -> None:
    run_id = await with_transient_task(h)
    seen: list[list[int]] = []
    token = b""
    while True:
        req = ws.GetWorkflowExecutionHistoryReverseRequest(
            namespace="default",
            execution=common.WorkflowExecution(workflow_id="wf"),
            maximum_page_size=4,
            next_page_token=token,
        )
        resp = await reads.get_history_reverse(h.engine.executions, h.ns, req)
        seen.append([e.event_id for e in resp.history.events])
        token = resp.next_page_token
        if not token:
            break
        decoded = decode_page_token(token)
        assert decoded is not None and (decoded.run_id, decoded.next_event_id) == (run_id, seen[-1][-1])
        assert len(seen) < 10
    # written events only: the transient task is not in reverse history
    assert seen == [[10, 9, 8, 7], [6, 5, 4, 3], [2, 1]]
    whole = await reads.get_history_reverse(
        h.engine.executions,
        h.ns,
        ws.GetWorkflowExecutionHistoryReverseRequest(
            namespace="default", execution=common.WorkflowExecution(workflow_id="wf", run_id=run_id)
        ),
    )
    assert [event_name(e) for e in whole.history.events] == list(reversed(await h.event_types("wf")))


# ---------------------------------------------------------------------------------------------- describe


async def test_describe_shows_a_pending_activity_and_workflow_task(h: Harness) -> None:
    run_id = await h.start("wf")
    await h.run_workflow_task(schedule_activity())
    await h.signal("wf")
    ms = await h.engine.executions.read_state(h.ns.id, "wf")
    resp = reads.describe(h.ns, ms)
    info = resp.workflow_execution_info
    assert (info.execution.workflow_id, info.execution.run_id) == ("wf", run_id)
    assert info.status == Status.WORKFLOW_EXECUTION_STATUS_RUNNING and info.history_length == 7
    assert info.type.name == "TestWorkflow" and info.task_queue == "tq"
    assert (info.root_execution.workflow_id, info.root_execution.run_id) == ("wf", run_id)
    (activity,) = resp.pending_activities
    assert (activity.activity_id, activity.activity_type.name) == ("a1", "Greet")
    assert activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_SCHEDULED
    assert (activity.attempt, activity.maximum_attempts) == (1, 3)
    assert activity.activity_options.task_queue.name == "atq"
    assert not activity.HasField("last_started_time")
    wt = resp.pending_workflow_task
    assert wt.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_SCHEDULED and wt.attempt == 1
    assert wt.scheduled_time == ms.state.workflow_task.scheduled_time and not wt.HasField("started_time")

    await h.poll_activity_task()
    await h.next_workflow_task()
    ms = await h.engine.executions.read_state(h.ns.id, "wf")
    resp = reads.describe(h.ns, ms)
    (activity,) = resp.pending_activities
    assert activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
    assert activity.last_started_time.seconds > 0
    wt = resp.pending_workflow_task
    assert wt.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED
    assert wt.started_time == ms.state.workflow_task.started_time

    await h.terminate("wf")
    closed = reads.describe(h.ns, await h.engine.executions.read_state(h.ns.id, "wf"))
    assert closed.workflow_execution_info.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert not closed.HasField("pending_workflow_task")
    assert closed.workflow_execution_info.close_time.seconds > 0


# ---------------------------------------------------------------------------------------------- queries


def query_request(condition: int) -> ws.QueryWorkflowRequest:
    return ws.QueryWorkflowRequest(
        namespace="default",
        execution=common.WorkflowExecution(workflow_id="wf"),
        query=query_pb.WorkflowQuery(query_type="state"),
        query_reject_condition=condition,  # type: ignore[arg-type]
    )


async def query(h: Harness, condition: int, timeout: float = TIMEOUT_S) -> ws.QueryWorkflowResponse:
    return await reads.query(h.engine.executions, h.engine.queries, h.ns, query_request(condition), timeout)


async def test_a_query_on_a_closed_run_is_rejected_by_its_condition(h: Harness) -> None:
    await h.start("wf")
    await h.run_workflow_task(complete_workflow())
    added = len(h.matching.added)
    resp = await query(h, QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN)
    assert resp.query_rejected.status == Status.WORKFLOW_EXECUTION_STATUS_COMPLETED
    assert not resp.HasField("query_result")
    assert len(h.matching.added) == added  # no worker was asked

    # completed cleanly: not rejected by NOT_COMPLETED_CLEANLY, so a worker answers it as a query task
    asking = asyncio.create_task(query(h, QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY))
    await eventually(lambda: len(h.matching.added) > added)
    key, item = h.matching.added[-1]
    assert isinstance(item, QueryTask) and key.name == "tq" and item.query.query_type == "state"
    answer = common.Payloads(payloads=[common.Payload(data=b"done")])
    result = query_pb.WorkflowQueryResult(result_type=QueryResultType.QUERY_RESULT_TYPE_ANSWERED, answer=answer)
    assert h.engine.queries.resolve(item.query_id, result)
    resp = await asyncio.wait_for(asking, TIMEOUT_S)
    assert resp.query_result == answer and not resp.HasField("query_rejected")


async def test_a_query_on_a_terminated_run_is_rejected_unless_completed_cleanly(h: Harness) -> None:
    await idle_run(h)
    await h.terminate("wf")
    added = len(h.matching.added)
    for condition in (
        QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_OPEN,
        QueryRejectCondition.QUERY_REJECT_CONDITION_NOT_COMPLETED_CLEANLY,
    ):
        resp = await query(h, condition)
        assert resp.query_rejected.status == Status.WORKFLOW_EXECUTION_STATUS_TERMINATED
    assert len(h.matching.added) == added
