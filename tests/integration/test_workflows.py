"""Workflow-level behaviour through the official SDK: ids and policies, retries, delays, paging."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    StartWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import (
    RetryPolicy,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.workflows import (
    CUSTOMER_ID,
    CountSignalsWorkflow,
    FailOnFirstAttemptWorkflow,
    HelloWorkflow,
    InfoWorkflow,
    SleepWorkflow,
    greet,
)


async def test_workflow_retry_policy_starts_a_new_run(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[FailOnFirstAttemptWorkflow]):
        handle = await client.start_workflow(
            FailOnFirstAttemptWorkflow.run,
            id=new_id(),
            task_queue=task_queue,
            retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=3),
        )
        assert await within(handle.result()) == 2
    first = await client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id).fetch_history()
    close = first.events[-1]
    assert close.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED
    next_run = close.workflow_execution_failed_event_attributes.new_execution_run_id
    assert next_run and next_run != handle.first_execution_run_id
    second = await client.get_workflow_handle(handle.id, run_id=next_run).fetch_history()
    started = second.events[0].workflow_execution_started_event_attributes
    assert started.attempt == 2
    assert started.continued_execution_run_id == handle.first_execution_run_id
    assert started.first_execution_run_id == handle.first_execution_run_id
    # the retry interval, or longer: as on the reference, the next run is due no sooner than a second
    # after the one before became due (a run that fails at once is not retried in a tight loop)
    backoff = started.first_workflow_task_backoff.ToNanoseconds()
    due = second.events[0].event_time.ToNanoseconds() + backoff
    assert backoff >= 200_000_000 and due - first.events[0].event_time.ToNanoseconds() >= 1_000_000_000
    assert started.continued_failure.message == "first attempt fails"


async def test_start_delay_postpones_the_first_workflow_task(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[HelloWorkflow], activities=[greet]):
        started = time.monotonic()
        handle = await client.start_workflow(
            HelloWorkflow.run, "later", id=new_id(), task_queue=task_queue, start_delay=timedelta(seconds=1.5)
        )
        assert await within(handle.result()) == "Hello, later!"
        assert time.monotonic() - started >= 1.4
    events = (await handle.fetch_history()).events
    assert events[0].workflow_execution_started_event_attributes.first_workflow_task_backoff.ToMilliseconds() == 1500
    assert events[1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED


async def test_memo_search_attributes_reach_the_workflow_and_describe(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[InfoWorkflow]):
        handle = await client.start_workflow(
            InfoWorkflow.run,
            id=new_id(),
            task_queue=task_queue,
            memo={"note": "remember me"},
            search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER_ID, "c-42")]),
        )
        assert await within(handle.result()) == "1|remember me|c-42"
    desc = await handle.describe()
    assert await desc.memo_value("note") == "remember me"
    assert desc.typed_search_attributes.get(CUSTOMER_ID) == "c-42"


async def test_start_request_id_is_idempotent(client: Client, task_queue: str) -> None:
    wid = new_id()
    req = StartWorkflowExecutionRequest(
        namespace="default", workflow_id=wid, request_id="same-request", identity="test"
    )
    req.workflow_type.name = "HelloWorkflow"
    req.task_queue.name = task_queue
    first = await client.workflow_service.start_workflow_execution(req)
    again = await client.workflow_service.start_workflow_execution(req)
    assert first.started and again.run_id == first.run_id
    await client.get_workflow_handle(wid).terminate("done")


async def test_conflict_policies(client: Client, task_queue: str) -> None:
    wid = new_id()
    first = await client.start_workflow(SleepWorkflow.run, 60.0, id=wid, task_queue=task_queue)
    with pytest.raises(WorkflowAlreadyStartedError):
        await client.start_workflow(SleepWorkflow.run, 60.0, id=wid, task_queue=task_queue)
    existing = await client.start_workflow(
        SleepWorkflow.run, 60.0, id=wid, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
    )
    assert existing.result_run_id == first.result_run_id
    replaced = await client.start_workflow(
        SleepWorkflow.run,
        60.0,
        id=wid,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING,
    )
    assert replaced.result_run_id != first.result_run_id
    first_run = client.get_workflow_handle(wid, run_id=first.result_run_id)
    assert (await first_run.describe()).status == WorkflowExecutionStatus.TERMINATED
    assert (await replaced.describe()).status == WorkflowExecutionStatus.RUNNING
    await replaced.terminate("done")


async def test_long_history_is_paged_to_the_worker_and_the_client(client: Client, task_queue: str) -> None:
    signals = 1500
    handle = await client.start_workflow(CountSignalsWorkflow.run, signals, id=new_id(), task_queue=task_queue)
    for i in range(signals):
        await handle.signal(CountSignalsWorkflow.hit, i)
    # the first workflow task now carries more events than one page: the worker must page
    async with Worker(client, task_queue=task_queue, workflows=[CountSignalsWorkflow]):
        assert await within(handle.result()) == signals
    pages = 0
    events: list[HistoryEvent] = []
    token = b""
    while True:
        resp = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace="default",
                execution=WorkflowExecution(workflow_id=handle.id),
                maximum_page_size=400,
                next_page_token=token,
            )
        )
        pages += 1
        events.extend(resp.history.events)
        token = resp.next_page_token
        if not token:
            break
    assert pages >= 4
    assert [e.event_id for e in events] == list(range(1, len(events) + 1))
    assert sum(e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events) == signals
    assert events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


async def test_history_long_poll_follows_a_running_workflow(client: Client, task_queue: str) -> None:
    async with Worker(client, task_queue=task_queue, workflows=[SleepWorkflow]):
        handle = await client.start_workflow(SleepWorkflow.run, 1.0, id=new_id(), task_queue=task_queue)
        seen = []

        async def follow() -> None:
            async for event in handle.fetch_history_events(wait_new_event=True):
                seen.append(event.event_type)

        await within(follow())  # returns only once the close event has been delivered
    assert seen[0] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
    assert EventType.EVENT_TYPE_TIMER_FIRED in seen
    assert seen[-1] == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
