"""Crash recovery with --db-filename: SIGKILL the server, start it again on the same port and database.

What must hold (the durability issue): no started workflow is lost, no workflow task is run twice
into a history, every started workflow completes; timers are durable, fire after a restart and never
early; the outbox gives back dispatch tasks nobody had polled yet; a workflow task or an activity
caught by the crash times out and is retried; sticky workflows move on when their worker is gone;
updates caught by the crash apply exactly once; a start acknowledged to its client survives (with
the default `PRAGMA synchronous=NORMAL` in WAL mode a process kill loses no committed transaction;
only an OS crash could, which `--sqlite-sync FULL` covers).

Every wait is bounded. The SDK client and worker stay up through the outages; client calls that
fail while the server is down are retried here, a start always with the same workflow id.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import pytest
from temporalio.api.common.v1 import WorkflowType
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tempyral.proto.internal_pb2 import Task, TaskCategory, TaskType
from tests.crash import workloads
from tests.crash.workloads import (
    CounterWorkflow,
    EchoChild,
    HangingActivityWorkflow,
    LoadWorkflow,
    LongActivityWorkflow,
    RemoteActivityWorkflow,
    TimerWorkflow,
    hang_on_first_attempt,
    increment,
    take_a_while,
)
from tests.support.servers import ServerProcess, tempyral

T = TypeVar("T")
E = EventType
# Bound of any single wait. Generous: the machine is shared, and a workflow task lost in a crash
# comes back only after its start-to-close timeout (10 s by default).
DEADLINE_S = 90.0
# Client errors that mean "the server is away": retried until the deadline.
TRANSIENT = {
    RPCStatusCode.UNAVAILABLE,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.CANCELLED,
    RPCStatusCode.UNKNOWN,
}
CLOSE_EVENTS = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}
WFT_EVENTS = {
    E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
}
ACTIVITY_CLOSE_EVENTS = {
    E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: "activity_task_completed_event_attributes",
    E.EVENT_TYPE_ACTIVITY_TASK_FAILED: "activity_task_failed_event_attributes",
    E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT: "activity_task_timed_out_event_attributes",
    E.EVENT_TYPE_ACTIVITY_TASK_CANCELED: "activity_task_canceled_event_attributes",
}
WFT_CLOSE_EVENTS = {
    E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: "workflow_task_completed_event_attributes",
    E.EVENT_TYPE_WORKFLOW_TASK_FAILED: "workflow_task_failed_event_attributes",
    E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT: "workflow_task_timed_out_event_attributes",
}


# ---------------------------------------------------------------------- helpers
@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "crash.db")


@pytest.fixture
def crashable(db_path: str) -> Iterator[ServerProcess]:
    proc = tempyral(db_path).start()
    try:
        yield proc
    finally:
        proc.stop()


def _transient(err: RPCError) -> bool:
    return err.status in TRANSIENT


async def retrying(call: Callable[[], Awaitable[T]], what: str, timeout: float = DEADLINE_S) -> T:
    """Run a client call, retrying it while the server is away; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"{what}: no answer within {timeout}s")
        try:
            return await asyncio.wait_for(call(), remaining)
        except TimeoutError:
            raise AssertionError(f"{what}: no answer within {timeout}s") from None
        except RPCError as err:
            if not _transient(err):
                raise
            await asyncio.sleep(0.2)


async def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def crash(server: ServerProcess, down_for: float) -> float:
    """SIGKILL the server, keep it down for `down_for` seconds, start it again on the same port and
    database. Returns the wall-clock time at which it listens again."""
    await asyncio.to_thread(server.kill)
    await asyncio.sleep(down_for)
    await asyncio.to_thread(server.start)
    return time.time()


async def fetch_history(client: Client, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    return await retrying(handle.fetch_history, f"history of {workflow_id}")


def history_problems(history: WorkflowHistory) -> list[str]:
    """What a crash must never do to a history."""
    found: list[str] = []
    events = list(history.events)
    if [e.event_id for e in events] != list(range(1, len(events) + 1)):
        found.append(f"event ids are not contiguous from 1: {[e.event_id for e in events]}")
    if not events or events[0].event_type != E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        found.append("the first event is not WorkflowExecutionStarted")
    closes = [i for i, e in enumerate(events) if e.event_type in CLOSE_EVENTS]
    if len(closes) > 1 or (closes and closes[0] != len(events) - 1):
        found.append(f"close events at {closes} of {len(events)}: not a single last one")
    types = {e.event_id: e.event_type for e in events}
    wft_started: Counter[int] = Counter()
    wft_closed: Counter[int] = Counter()
    wft_completed: Counter[int] = Counter()
    activity_closed: Counter[int] = Counter()
    for i, e in enumerate(events):
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            scheduled = e.workflow_task_started_event_attributes.scheduled_event_id
            wft_started[scheduled] += 1
            # Events that arrive while a task is scheduled but not started are written before its
            # WorkflowTaskStarted (the reference server does the same), but no other workflow task
            # event may come between the two.
            between = [x.event_type for x in events if scheduled < x.event_id < e.event_id]
            if types.get(scheduled) != E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED or WFT_EVENTS.intersection(between):
                found.append(f"WorkflowTaskStarted {e.event_id} does not follow its scheduled event {scheduled}")
        elif e.event_type in WFT_CLOSE_EVENTS:
            attrs = getattr(e, WFT_CLOSE_EVENTS[e.event_type])
            wft_closed[attrs.scheduled_event_id] += 1
            if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                wft_completed[attrs.scheduled_event_id] += 1
            if attrs.started_event_id and events[i - 1].event_id != attrs.started_event_id:
                # what arrives while a task runs is buffered and written after its outcome
                found.append(f"workflow task close {e.event_id} does not directly follow its started event")
            if attrs.started_event_id and types.get(attrs.started_event_id) != E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                found.append(f"workflow task close {e.event_id} names no started event")
        elif e.event_type in ACTIVITY_CLOSE_EVENTS:
            attrs = getattr(e, ACTIVITY_CLOSE_EVENTS[e.event_type])
            activity_closed[attrs.scheduled_event_id] += 1
            if types.get(attrs.scheduled_event_id) != E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                found.append(f"activity close {e.event_id} points at no scheduled activity")
    found += [f"workflow task {s} started {n} times" for s, n in wft_started.items() if n > 1]
    found += [f"workflow task {s} completed {n} times" for s, n in wft_completed.items() if n > 1]
    found += [f"workflow task {s} closed {n} times" for s, n in wft_closed.items() if n > 1]
    found += [f"activity {s} closed {n} times" for s, n in activity_closed.items() if n > 1]
    activity_ids = Counter(
        e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    found += [f"activity id {a} scheduled {n} times" for a, n in activity_ids.items() if n > 1]
    timers = Counter(
        e.timer_fired_event_attributes.timer_id for e in events if e.event_type == E.EVENT_TYPE_TIMER_FIRED
    )
    found += [f"timer {t} fired {n} times" for t, n in timers.items() if n > 1]
    return found


def describe_events(history: WorkflowHistory) -> str:
    lines = []
    for e in history.events:
        name = E.Name(e.event_type).removeprefix("EVENT_TYPE_")
        attr = e.WhichOneof("attributes")
        detail = str(getattr(e, attr)).replace("\n", " ")[:160] if attr else ""
        lines.append(f"  {e.event_id:3d} {name} {detail}")
    return "\n".join(lines)


async def assert_well_formed(client: Client, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
    history = await fetch_history(client, workflow_id, run_id)
    found = history_problems(history)
    assert not found, f"{workflow_id}: {found}\n{describe_events(history)}"
    return history


def overdue_outbox_rows(db_path: str, slack_s: float) -> list[str]:
    """Outbox rows that should have been processed and deleted by now: every transfer row, and timer
    rows due more than `slack_s` ago. Retention timers of closed runs are legitimately pending."""
    conn = sqlite3.connect(db_path, timeout=10)
    try:
        rows = conn.execute("SELECT category, visibility_ns, data FROM tasks").fetchall()
    finally:
        conn.close()
    limit = time.time_ns() - int(slack_s * 1e9)
    found = []
    for category, visibility_ns, data in rows:
        task = Task.FromString(data)
        if task.type == TaskType.TASK_TYPE_DELETE_HISTORY:
            continue
        if category == TaskCategory.TASK_CATEGORY_TIMER and visibility_ns > limit:
            continue
        found.append(f"{TaskType.Name(task.type)} of {task.workflow_id} (event {task.event_id})")
    return found


async def assert_outbox_drains(db_path: str, what: str, timeout: float = 30.0) -> None:
    """Stale tasks are acknowledged: their rows go, instead of lingering (and coming back at every
    restart)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await asyncio.to_thread(overdue_outbox_rows, db_path, 3.0)
        if not rows:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: {len(rows)} outbox rows never deleted, e.g. {rows[:5]}")
        await asyncio.sleep(0.5)


@dataclass
class Started:
    workflow_id: str
    # The run the server acknowledged; None when a retry found the id already started (the
    # acknowledgement of the first attempt was lost in the crash).
    run_id: str | None


async def start_surviving(client: Client, workflow: Any, arg: Any, workflow_id: str, task_queue: str) -> Started:
    """Start a workflow through outages: retried with the same workflow id until the server answers."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            handle = await client.start_workflow(workflow, arg, id=workflow_id, task_queue=task_queue)
            return Started(workflow_id, handle.result_run_id)
        except WorkflowAlreadyStartedError:
            return Started(workflow_id, None)  # an earlier attempt got in before the crash
        except RPCError as err:
            if not _transient(err) or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.2)


async def result_of(client: Client, workflow_id: str) -> Any:
    handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(workflow_id)
    return await retrying(handle.result, f"result of {workflow_id}")


def events_of(history: WorkflowHistory, event_type: EventType.ValueType) -> list[Any]:
    return [e for e in history.events if e.event_type == event_type]


async def wait_for_event(
    client: Client, workflow_id: str, event_type: EventType.ValueType, timeout: float = 30.0
) -> None:
    deadline = time.monotonic() + timeout
    while not events_of(await fetch_history(client, workflow_id), event_type):
        assert time.monotonic() < deadline, f"{workflow_id}: no {E.Name(event_type)} within {timeout}s"
        await asyncio.sleep(0.1)


# ---------------------------------------------------------------------- 1. load + SIGKILL
async def test_load_survives_repeated_sigkill(crashable: ServerProcess, db_path: str) -> None:
    """150 workflows (activity, timer, for every third a child workflow, activity) under a steady
    stream of starts; the server is killed four times: while the starts stream in, half a second
    into its recovery, when a third of the workflows are done, and, down for 3 s, at two thirds."""
    client = await Client.connect(crashable.address)
    task_queue = f"load-{uuid.uuid4().hex[:8]}"
    count = 150
    started: dict[str, Started] = {}
    results: dict[str, int] = {}
    slots = asyncio.Semaphore(40)

    async def one(i: int) -> None:
        workflow_id = f"{task_queue}-{i}"
        async with slots:
            started[workflow_id] = await start_surviving(client, LoadWorkflow.run, i, workflow_id, task_queue)
        results[workflow_id] = await result_of(client, workflow_id)

    def in_flight() -> int:
        return len(started) - len(results)

    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[LoadWorkflow, EchoChild],
        activities=[increment],
        max_concurrent_workflow_tasks=50,
        max_concurrent_activities=50,
    ):
        runners = [asyncio.create_task(one(i)) for i in range(count)]
        try:
            await wait_until(lambda: len(started) >= 25, "25 workflows started")
            assert in_flight() > 0
            await crash(crashable, down_for=0.2)  # while starts stream in
            await asyncio.sleep(0.5)
            assert in_flight() > 0
            await crash(crashable, down_for=1.0)  # during the recovery from the first crash
            await wait_until(lambda: len(results) >= count // 3, "a third of the workflows completed")
            assert in_flight() > 0
            await crash(crashable, down_for=0.5)
            await wait_until(lambda: len(results) >= 2 * count // 3, "two thirds of the workflows completed")
            assert in_flight() > 0, "the last crash must hit workflows in flight"
            await crash(crashable, down_for=3.0)  # long enough for timers and activity timeouts to come due
            await asyncio.wait_for(asyncio.gather(*runners), DEADLINE_S * 2)
        finally:
            for runner in runners:
                runner.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
        assert results == {f"{task_queue}-{i}": i + 2 for i in range(count)}
        await assert_outbox_drains(db_path, "after the load")

    # acknowledged starts are the runs that exist; a retried start never made a second run
    query = f"TaskQueue = '{task_queue}' AND WorkflowType = 'LoadWorkflow'"
    runs = Counter([wf.id async for wf in client.list_workflows(query)])
    assert runs == Counter({f"{task_queue}-{i}": 1 for i in range(count)})
    query = f"TaskQueue = '{task_queue}' AND WorkflowType = 'EchoChild'"
    children = Counter([wf.id async for wf in client.list_workflows(query)])
    assert children == Counter({f"{task_queue}-{i}-child": 1 for i in range(count) if (i + 1) % 3 == 0})
    for child_id in children:
        await assert_well_formed(client, child_id)
    for s in started.values():
        if s.run_id is not None:
            desc = await retrying(client.get_workflow_handle(s.workflow_id, run_id=s.run_id).describe, "describe")
            assert desc.status == WorkflowExecutionStatus.COMPLETED
        await assert_well_formed(client, s.workflow_id, s.run_id)


# ---------------------------------------------------------------------- 2. durable timers
async def test_durable_timers_fire_after_restart_and_never_early(crashable: ServerProcess) -> None:
    """Timers of 3 to 6 s; the server is killed after 1 s and stays down 3 s, so some timers come due
    while it is away and some after it is back. None fires early, none much later than due (or than
    the restart, for overdue ones)."""
    client = await Client.connect(crashable.address)
    task_queue = f"timers-{uuid.uuid4().hex[:8]}"
    durations = {f"{task_queue}-{i}": 3.0 + (i % 4) for i in range(12)}
    late_slack_s = 15.0  # generous: a shared machine; this only catches timers left to rot
    async with Worker(client, task_queue=task_queue, workflows=[TimerWorkflow]):
        first_start = time.monotonic()
        for workflow_id, seconds in durations.items():
            await client.start_workflow(TimerWorkflow.run, seconds, id=workflow_id, task_queue=task_queue)
        # every timer is started (the worker ran the first task) before the crash
        for workflow_id in durations:
            await wait_for_event(client, workflow_id, E.EVENT_TYPE_TIMER_STARTED)
        await asyncio.sleep(max(0.0, first_start + 1.0 - time.monotonic()))
        back_at = await crash(crashable, down_for=3.0)
        slept = await asyncio.wait_for(asyncio.gather(*(result_of(client, wid) for wid in durations)), DEADLINE_S)
    overdue = 0
    for (workflow_id, seconds), measured in zip(durations.items(), slept, strict=True):
        assert measured >= seconds, f"{workflow_id}: the workflow woke after {measured}s of a {seconds}s timer"
        history = await assert_well_formed(client, workflow_id)
        [timer_started] = events_of(history, E.EVENT_TYPE_TIMER_STARTED)
        [timer_fired] = events_of(history, E.EVENT_TYPE_TIMER_FIRED)
        due = timer_started.event_time.ToNanoseconds() + int(seconds * 1e9)
        fired = timer_fired.event_time.ToNanoseconds()
        assert fired >= due, f"{workflow_id}: timer fired {(due - fired) / 1e9:.3f}s early"
        overdue += due / 1e9 < back_at
        latest = max(due / 1e9, back_at) + late_slack_s
        assert fired / 1e9 <= latest, f"{workflow_id}: timer fired {fired / 1e9 - latest:.1f}s after the bound"
    assert overdue > 0, "some timers must have come due while the server was down"


async def test_sticky_workflows_go_to_a_new_worker_after_restart(crashable: ServerProcess) -> None:
    """The worker that held the workflows in its sticky cache dies while the server is down (it can
    not say goodbye); after the restart their tasks reach a new worker instead of waiting on the
    old worker's sticky queue."""
    client = await Client.connect(crashable.address)
    task_queue = f"sticky-{uuid.uuid4().hex[:8]}"
    workflow_ids = [f"{task_queue}-{i}" for i in range(10)]
    old_worker = Worker(client, task_queue=task_queue, workflows=[TimerWorkflow])
    old_run = asyncio.create_task(old_worker.run())
    try:
        for workflow_id in workflow_ids:
            await client.start_workflow(TimerWorkflow.run, 2.0, id=workflow_id, task_queue=task_queue)
        for workflow_id in workflow_ids:  # the first task ran: each workflow is sticky to the old worker
            await wait_for_event(client, workflow_id, E.EVENT_TYPE_TIMER_STARTED)
        await asyncio.to_thread(crashable.kill)
        await asyncio.wait_for(old_worker.shutdown(), 60)
    finally:
        old_run.cancel()
        await asyncio.gather(old_run, return_exceptions=True)
    await asyncio.sleep(2.5)  # the timers come due while nobody is there
    await asyncio.to_thread(crashable.start)
    async with Worker(client, task_queue=task_queue, workflows=[TimerWorkflow]):
        slept = await asyncio.wait_for(asyncio.gather(*(result_of(client, w) for w in workflow_ids)), DEADLINE_S)
    assert all(s >= 2.0 for s in slept)
    for workflow_id in workflow_ids:
        await assert_well_formed(client, workflow_id)


# ---------------------------------------------------------------------- 3. the outbox gives back dispatch tasks
async def test_undispatched_tasks_come_back_from_the_outbox(crashable: ServerProcess, db_path: str) -> None:
    """Workflow tasks nobody polled yet (no worker at all), and activity tasks nobody polled yet
    (no activity worker), survive a SIGKILL: after the restart, workers that come get them all."""
    client = await Client.connect(crashable.address)
    suffix = uuid.uuid4().hex[:8]
    wft_queue, wf_queue, activity_queue = f"backlog-{suffix}", f"wf-{suffix}", f"act-{suffix}"
    backlog_ids = [f"{wft_queue}-{i}" for i in range(30)]
    remote_ids = [f"{wf_queue}-{i}" for i in range(20)]
    for i, workflow_id in enumerate(backlog_ids):
        await client.start_workflow(LoadWorkflow.run, i, id=workflow_id, task_queue=wft_queue)
    async with Worker(client, task_queue=wf_queue, workflows=[RemoteActivityWorkflow]):
        for i, workflow_id in enumerate(remote_ids):
            await client.start_workflow(
                RemoteActivityWorkflow.run, args=[i, activity_queue], id=workflow_id, task_queue=wf_queue
            )
        # wait until every remote workflow has its first activity scheduled (and not polled)
        for workflow_id in remote_ids:
            deadline = time.monotonic() + 30
            while not (
                await retrying(client.get_workflow_handle(workflow_id).describe, "describe")
            ).raw_description.pending_activities:
                assert time.monotonic() < deadline, f"{workflow_id} never scheduled its activity"
                await asyncio.sleep(0.1)
        await crash(crashable, down_for=0.5)
        for workflow_id in backlog_ids + remote_ids:  # acknowledged starts survived
            desc = await retrying(client.get_workflow_handle(workflow_id).describe, "describe")
            assert desc.status == WorkflowExecutionStatus.RUNNING
        async with (
            Worker(client, task_queue=wft_queue, workflows=[LoadWorkflow, EchoChild], activities=[increment]),
            Worker(client, task_queue=activity_queue, activities=[increment]),
        ):
            backlog_results = await asyncio.wait_for(
                asyncio.gather(*(result_of(client, wid) for wid in backlog_ids)), DEADLINE_S
            )
            remote_results = await asyncio.wait_for(
                asyncio.gather(*(result_of(client, wid) for wid in remote_ids)), DEADLINE_S
            )
            await assert_outbox_drains(db_path, "after the backlog")
    assert backlog_results == [i + 2 for i in range(30)]
    assert remote_results == [i + 2 for i in range(20)]
    for workflow_id in backlog_ids + remote_ids:
        history = await assert_well_formed(client, workflow_id)
        # the backlog was delivered, not recovered by timeouts
        assert not events_of(history, E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT), workflow_id


async def test_workflow_task_started_but_never_answered(crashable: ServerProcess) -> None:
    """A worker polled a workflow task (WorkflowTaskStarted committed) and the server died before
    the worker could answer. After the restart, the task times out and a new one completes the
    workflow; the lost attempt appears once in history, as started then timed out."""
    client = await Client.connect(crashable.address)
    task_queue = f"lost-{uuid.uuid4().hex[:8]}"
    workflow_id = f"{task_queue}-1"
    await client.start_workflow(
        LoadWorkflow.run, 1, id=workflow_id, task_queue=task_queue, task_timeout=timedelta(seconds=2)
    )
    poll = ws.PollWorkflowTaskQueueRequest(
        namespace=client.namespace, task_queue=TaskQueue(name=task_queue), identity="lost-worker"
    )
    taken = await client.workflow_service.poll_workflow_task_queue(poll, timeout=timedelta(seconds=20))
    assert taken.task_token, "the workflow task was not handed out"
    await crash(crashable, down_for=0.3)
    async with Worker(client, task_queue=task_queue, workflows=[LoadWorkflow, EchoChild], activities=[increment]):
        assert await asyncio.wait_for(result_of(client, workflow_id), DEADLINE_S) == 3
    history = await assert_well_formed(client, workflow_id)
    started = events_of(history, E.EVENT_TYPE_WORKFLOW_TASK_STARTED)
    assert started[0].workflow_task_started_event_attributes.identity == "lost-worker"
    [timed_out] = events_of(history, E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
    attrs = timed_out.workflow_task_timed_out_event_attributes
    assert attrs.started_event_id == started[0].event_id
    assert attrs.timeout_type == TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE


# ---------------------------------------------------------------------- 4. activities in flight
async def test_activities_in_flight_during_the_crash(crashable: ServerProcess) -> None:
    """Two kinds of activity are running when the server dies. One never answers: its start-to-close
    timeout, durable, fires after the restart and the retry completes the workflow. The other
    answers after the restart: the fresh server accepts that completion (attempt 1, no retry)."""
    client = await Client.connect(crashable.address)
    task_queue = f"inflight-{uuid.uuid4().hex[:8]}"
    hanging = [f"{task_queue}-hang-{i}" for i in range(5)]
    long_running = [f"{task_queue}-long-{i}" for i in range(5)]
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[HangingActivityWorkflow, LongActivityWorkflow],
        activities=[hang_on_first_attempt, take_a_while],
    ):
        for i, workflow_id in enumerate(hanging):
            await client.start_workflow(HangingActivityWorkflow.run, i, id=workflow_id, task_queue=task_queue)
        for workflow_id in long_running:
            await client.start_workflow(LongActivityWorkflow.run, 4.0, id=workflow_id, task_queue=task_queue)
        await wait_until(
            lambda: all(workloads.ACTIVITY_STARTS.get(w) for w in hanging + long_running),
            "every activity is running",
            timeout=30,
        )
        await crash(crashable, down_for=0.5)
        hang_results = await asyncio.wait_for(asyncio.gather(*(result_of(client, w) for w in hanging)), DEADLINE_S)
        long_results = await asyncio.wait_for(asyncio.gather(*(result_of(client, w) for w in long_running)), DEADLINE_S)
    assert hang_results == [i * 100 + 2 for i in range(5)]  # the second attempt did it
    assert long_results == [1] * 5  # the first attempt's answer reached the restarted server
    for workflow_id in hanging:
        assert workloads.ACTIVITY_STARTS[workflow_id] == [1, 2]
        history = await assert_well_formed(client, workflow_id)
        [activity_started] = events_of(history, E.EVENT_TYPE_ACTIVITY_TASK_STARTED)
        assert activity_started.activity_task_started_event_attributes.attempt == 2
    for workflow_id in long_running:
        assert workloads.ACTIVITY_STARTS[workflow_id] == [1]
        await assert_well_formed(client, workflow_id)


async def test_updates_across_a_crash_apply_exactly_once(crashable: ServerProcess) -> None:
    """Updates stream into workflows while the server is killed; a client retries an update with
    its id. Each update is applied once: the k-th answers k(k+1)/2, and history holds one
    acceptance and one completion per update id."""
    client = await Client.connect(crashable.address)
    task_queue = f"updates-{uuid.uuid4().hex[:8]}"
    workflow_ids = [f"{task_queue}-{i}" for i in range(5)]
    rounds = 12
    answers: dict[str, list[int]] = {w: [] for w in workflow_ids}

    async def send_updates(workflow_id: str) -> None:
        handle = client.get_workflow_handle(workflow_id)
        for k in range(1, rounds + 1):

            async def update(k: int = k) -> int:
                return await handle.execute_update(CounterWorkflow.add, k, id=f"u{k}")

            answers[workflow_id].append(await retrying(update, f"update {k} of {workflow_id}"))

    async with Worker(client, task_queue=task_queue, workflows=[CounterWorkflow]):
        for workflow_id in workflow_ids:
            await client.start_workflow(CounterWorkflow.run, id=workflow_id, task_queue=task_queue)
        senders = [asyncio.create_task(send_updates(w)) for w in workflow_ids]
        try:
            await wait_until(lambda: sum(map(len, answers.values())) >= 10, "some updates answered", timeout=60)
            await crash(crashable, down_for=0.5)
            await wait_until(lambda: sum(map(len, answers.values())) >= 30, "more updates answered")
            await crash(crashable, down_for=0.2)
            await asyncio.wait_for(asyncio.gather(*senders), DEADLINE_S)
        finally:
            for sender in senders:
                sender.cancel()
            await asyncio.gather(*senders, return_exceptions=True)
        for workflow_id in workflow_ids:
            handle = client.get_workflow_handle(workflow_id)
            await retrying(partial(handle.signal, CounterWorkflow.finish), "finish")
        totals = await asyncio.wait_for(asyncio.gather(*(result_of(client, w) for w in workflow_ids)), DEADLINE_S)
    expected = [k * (k + 1) // 2 for k in range(1, rounds + 1)]
    assert answers == {w: expected for w in workflow_ids}
    assert totals == [expected[-1]] * len(workflow_ids)
    for workflow_id in workflow_ids:
        history = await assert_well_formed(client, workflow_id)
        accepted = Counter(
            e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
            for e in events_of(history, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED)
        )
        completed = Counter(
            e.workflow_execution_update_completed_event_attributes.meta.update_id
            for e in events_of(history, E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
        )
        assert accepted == completed == Counter({f"u{k}": 1 for k in range(1, rounds + 1)}), workflow_id
        # an acceptance that reaches the restarted server brings its update back (no failed task)
        assert not events_of(history, E.EVENT_TYPE_WORKFLOW_TASK_FAILED), describe_events(history)


# ---------------------------------------------------------------------- 5. acknowledged starts
@pytest.mark.parametrize("synchronous", ["NORMAL", "FULL"])
async def test_acknowledged_starts_are_never_lost(tmp_path: Path, synchronous: str) -> None:
    """Starts stream in from several clients; the server is SIGKILLed in the middle. Every start
    that was acknowledged is there after the restart, with the run id it was given. A start sent
    again with the same request id is answered with that same run, not a second one."""
    db = str(tmp_path / "starts.db")
    server = tempyral(db, extra=["--sqlite-sync", synchronous]).start()
    try:
        client = await Client.connect(server.address)
        task_queue = f"acks-{uuid.uuid4().hex[:8]}"
        acknowledged: dict[str, str] = {}
        # raw requests, so that the test knows their request ids
        raw: dict[str, tuple[ws.StartWorkflowExecutionRequest, str]] = {}
        stop = asyncio.Event()

        async def starter(n: int) -> None:
            i = 0
            while not stop.is_set():
                workflow_id = f"{task_queue}-{n}-{i}"
                i += 1
                try:
                    if n == 0:
                        req = ws.StartWorkflowExecutionRequest(
                            namespace=client.namespace,
                            workflow_id=workflow_id,
                            workflow_type=WorkflowType(name="LoadWorkflow"),
                            task_queue=TaskQueue(name=task_queue),
                            request_id=str(uuid.uuid4()),
                        )
                        resp = await client.workflow_service.start_workflow_execution(
                            req, retry=False, timeout=timedelta(seconds=5)
                        )
                        raw[workflow_id] = (req, resp.run_id)
                        acknowledged[workflow_id] = resp.run_id
                    else:
                        handle = await client.start_workflow(
                            "LoadWorkflow", 0, id=workflow_id, task_queue=task_queue, rpc_timeout=timedelta(seconds=5)
                        )
                        assert handle.result_run_id is not None
                        acknowledged[workflow_id] = handle.result_run_id
                except RPCError as err:
                    if not _transient(err):
                        raise
                    await asyncio.sleep(0.1)

        starters = [asyncio.create_task(starter(n)) for n in range(8)]
        try:
            await wait_until(lambda: len(acknowledged) >= 150, "150 starts acknowledged", timeout=60)
            killed_with = len(acknowledged)
            await asyncio.to_thread(server.kill)
            # no acknowledgement after the kill can change the set below
            at_kill = dict(acknowledged)
            await asyncio.sleep(0.5)
            await asyncio.to_thread(server.start)
            await wait_until(lambda: len(acknowledged) >= len(at_kill) + 50, "starts resumed after the restart")
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(*starters, return_exceptions=True), 30)
        for task in starters:
            assert task.exception() is None, task.exception()
        assert killed_with > 0
        conn = sqlite3.connect(db, timeout=10)
        try:
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        finally:
            conn.close()
        for workflow_id, run_id in acknowledged.items():
            desc = await retrying(client.get_workflow_handle(workflow_id, run_id=run_id).describe, "describe")
            assert desc.run_id == run_id
            assert desc.status == WorkflowExecutionStatus.RUNNING
        # the same request again (a client retrying after the crash) gets the run it was given
        for workflow_id, (req, run_id) in raw.items():
            if workflow_id in at_kill:
                resp = await retrying(partial(client.workflow_service.start_workflow_execution, req), "start again")
                assert resp.run_id == run_id and resp.started
        # ... and a new request for a running id is refused, no second run
        some_id = next(iter(at_kill))
        with pytest.raises(WorkflowAlreadyStartedError):
            await client.start_workflow("LoadWorkflow", 0, id=some_id, task_queue=task_queue)
    finally:
        server.stop()
