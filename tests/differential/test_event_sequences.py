"""Differential tests: the same scenario on the reference server and on tempyral, through the
same SDK worker code, must produce the same histories (event types, in order, and the
attributes that carry meaning: attempts, retry states, timeout types, causes, queue kinds)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import ContinueAsNewInitiator, EventType, PendingActivityState
from temporalio.api.history.v1 import HistoryEvent, WorkflowExecutionStartedEventAttributes
from temporalio.api.workflowservice.v1 import (
    PollWorkflowTaskQueueRequest,
    ResetWorkflowExecutionRequest,
    RespondWorkflowTaskCompletedRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from tests.differential import diff_workflows as w
from tests.support.servers import ServerProcess

WORKFLOWS = [
    w.OneActivity, w.Failing, w.RetryThenSucceed, w.NonRetryable, w.StartToCloseRetry, w.ScheduleToCloseStop,
    w.HeartbeatTimeout, w.CancelActivity, w.LocalActivity, w.Sleeper, w.WaitForSignal, w.CleanupOnCancel,
    w.Blocked, w.FailFirstRun, w.UpsertBoth, w.BrokenTask, w.ScheduleToCloseWhileRunning, w.CollectSignals,
    w.Child, w.Parent, w.ParentOfExisting, w.ParentLeavesChild, w.Chain, w.SignalSender, w.CancelSender, w.CronJob,
    w.Counter, w.Resettable,
]  # fmt: skip
ACTIVITIES: list[Callable[..., Any]] = [
    w.echo, w.fail_until, w.fail_hard, w.outlive_start_to_close, w.always_fail, w.heartbeat_once_then_hang,
    w.wait_for_cancel, w.sleep_long,
]  # fmt: skip
TIMEOUT = 60.0
MANUAL_WORKER = "differential-test"  # identity of the test when it takes a workflow task itself
Handles = list[tuple[str, str]]  # (workflow id, run id) of every run whose history is compared
Scenario = Callable[[Client, str], Awaitable[Handles]]


def _run(handle: WorkflowHandle[Any, Any]) -> tuple[str, str]:
    return handle.id, handle.result_run_id or ""


async def _until_event(
    client: Client, workflow_id: str, event_type: EventType.ValueType, timeout: float = 20.0, run_id: str | None = None
) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        if any(e.event_type == event_type for e in history.events):
            return
        assert asyncio.get_running_loop().time() < deadline, f"no {EventType.Name(event_type)} in {workflow_id}"
        await asyncio.sleep(0.1)


async def _until_quiet(client: Client, workflow_id: str, events: int, timeout: float = 20.0) -> None:
    """Wait until the history has `events` events and ends with a completed workflow task."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = (await client.get_workflow_handle(workflow_id).fetch_history()).events
        if len(history) >= events and history[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{workflow_id} never settled"
        await asyncio.sleep(0.1)


async def _until_quiet_after(
    client: Client, workflow_id: str, event_type: EventType.ValueType, run_id: str | None = None, timeout: float = 20.0
) -> None:
    """Wait until the history has `event_type` and ends with a workflow task completed after it:
    the workflow saw the event and nothing is in flight, so what comes next cannot interleave."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        history = (await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()).events
        kinds = [e.event_type for e in history]
        if event_type in kinds and kinds[-1] == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            if kinds.index(event_type) < len(kinds) - 1:
                return
        assert asyncio.get_running_loop().time() < deadline, f"{workflow_id} never settled"
        await asyncio.sleep(0.1)


async def _result_ignoring_failure(handle: WorkflowHandle[Any, Any]) -> None:
    try:
        await asyncio.wait_for(handle.result(), TIMEOUT)
    except Exception as err:
        if isinstance(err, asyncio.TimeoutError):
            raise


# ---------------------------------------------------------------- scenarios
async def one_activity(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.OneActivity.run, id=f"{tq}-1", task_queue=tq)
    await _result_ignoring_failure(h)
    return [_run(h)]


def _simple(workflow: Any, *args: Any) -> Scenario:
    async def scenario(c: Client, tq: str) -> Handles:
        h = await c.start_workflow(workflow, *args, id=f"{tq}-1", task_queue=tq)
        await _result_ignoring_failure(h)
        return [_run(h)]

    return scenario


async def _until_activity_runs(client: Client, workflow_id: str, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        pending = (await client.get_workflow_handle(workflow_id).describe()).raw_description.pending_activities
        if any(a.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for a in pending):
            return
        assert asyncio.get_running_loop().time() < deadline, f"the activity of {workflow_id} never started"
        await asyncio.sleep(0.1)


async def cancel_activity(c: Client, tq: str) -> Handles:
    handles = []
    for kind in ("TRY_CANCEL", "WAIT_CANCELLATION_COMPLETED", "ABANDON"):
        h = await c.start_workflow(w.CancelActivity.run, kind, id=f"{tq}-{kind}", task_queue=tq)
        await _until_activity_runs(c, h.id)
        await h.signal(w.CancelActivity.cancel)
        if kind == "ABANDON":  # the server hears nothing of it: the activity runs on
            await _until_quiet_after(c, h.id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        else:  # the worker saw the cancellation and acknowledged it
            await _until_quiet_after(c, h.id, EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED)
        await h.signal(w.CancelActivity.finish)
        await _result_ignoring_failure(h)
        handles.append(_run(h))
    return handles


async def timer_cancelled_by_signal(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.WaitForSignal.run, args=[1, 30.0], id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_TIMER_STARTED)
    await h.signal(w.WaitForSignal.add, "go")
    await _result_ignoring_failure(h)
    return [_run(h)]


async def signal_with_start_and_query(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(
        w.WaitForSignal.run, args=[2, 30.0], id=f"{tq}-1", task_queue=tq, start_signal="add", start_signal_args=["a"]
    )
    await _until_event(c, h.id, EventType.EVENT_TYPE_TIMER_STARTED)
    assert await h.query(w.WaitForSignal.count) == 1
    await h.signal(w.WaitForSignal.add, "b")
    await _result_ignoring_failure(h)
    assert await h.query(w.WaitForSignal.count) == 2
    return [_run(h)]


async def cancel_with_cleanup(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.CleanupOnCancel.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_TIMER_STARTED)
    await h.cancel()
    await _result_ignoring_failure(h)
    return [_run(h)]


async def terminate(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Blocked.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    await h.terminate("enough")
    await _result_ignoring_failure(h)
    return [_run(h)]


def _idle(tq: str) -> str:
    """A task queue no worker polls. A workflow timeout races the worker's first workflow task
    (the history differs as it wins or loses), so the timed-out runs have no worker: their first
    task stays scheduled until the timeout closes the run, on both servers."""
    return f"{tq}-idle"


async def execution_timeout(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(
        w.Blocked.run, id=f"{tq}-1", task_queue=_idle(tq), execution_timeout=timedelta(seconds=2)
    )
    await _result_ignoring_failure(h)
    return [_run(h)]


async def run_timeout(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Blocked.run, id=f"{tq}-1", task_queue=_idle(tq), run_timeout=timedelta(seconds=2))
    await _result_ignoring_failure(h)
    return [_run(h)]


async def workflow_retry(c: Client, tq: str) -> Handles:
    from temporalio.common import RetryPolicy

    h = await c.start_workflow(
        w.FailFirstRun.run,
        id=f"{tq}-1",
        task_queue=tq,
        retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=500), maximum_attempts=2),
    )
    await _result_ignoring_failure(h)
    first = h.first_execution_run_id or ""
    return [(h.id, first), _run(h)]


async def start_delay(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.OneActivity.run, id=f"{tq}-1", task_queue=tq, start_delay=timedelta(seconds=1))
    await _result_ignoring_failure(h)
    return [_run(h)]


async def broken_workflow_task(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.BrokenTask.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
    await asyncio.sleep(1.5)
    await h.terminate("stop retrying")
    return [_run(h)]


async def signals_while_a_task_runs(c: Client, tq: str) -> Handles:
    """Signals that arrive while a workflow task runs are buffered. The test takes the first task
    itself, so that it runs for as long as the signals take, then a worker takes over."""
    queue = f"{tq}-manual"
    h = await c.start_workflow(w.CollectSignals.run, 3, id=f"{tq}-1", task_queue=queue)
    poll = PollWorkflowTaskQueueRequest(namespace=c.namespace, identity=MANUAL_WORKER)
    poll.task_queue.name = queue
    task = await c.workflow_service.poll_workflow_task_queue(poll)
    for item in ("a", "b", "c"):
        await h.signal(w.CollectSignals.add, item)
    await c.workflow_service.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace=c.namespace, task_token=task.task_token, identity=MANUAL_WORKER)
    )
    async with Worker(c, task_queue=queue, workflows=[w.CollectSignals]):
        await _result_ignoring_failure(h)
    return [_run(h)]


async def sticky_worker_goes_away(c: Client, tq: str) -> Handles:
    queue = f"{tq}-sticky"
    async with Worker(c, task_queue=queue, workflows=[w.WaitForSignal]):
        h = await c.start_workflow(w.WaitForSignal.run, args=[1, 30.0], id=f"{tq}-1", task_queue=queue)
        await _until_event(c, h.id, EventType.EVENT_TYPE_TIMER_STARTED)
    # the first worker shut down (its sticky queue with it) before the next task exists; another
    # one finishes the workflow
    await h.signal(w.WaitForSignal.add, "after")
    async with Worker(c, task_queue=queue, workflows=[w.WaitForSignal]):
        await _result_ignoring_failure(h)
    return [_run(h)]


async def child_succeeds(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Parent.run, 21, id=f"{tq}-1", task_queue=tq)
    await _result_ignoring_failure(h)
    return [_run(h), (f"{tq}-1-child", "")]


async def child_fails(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Parent.run, -1, id=f"{tq}-1", task_queue=tq)
    await _result_ignoring_failure(h)
    return [_run(h), (f"{tq}-1-child", "")]


async def child_id_taken(c: Client, tq: str) -> Handles:
    blocker = await c.start_workflow(w.Blocked.run, id=f"{tq}-taken", task_queue=tq)
    h = await c.start_workflow(w.ParentOfExisting.run, f"{tq}-taken", id=f"{tq}-1", task_queue=tq)
    await _result_ignoring_failure(h)
    await blocker.terminate("done")
    return [_run(h)]


async def parent_close_policies(c: Client, tq: str) -> Handles:
    runs: Handles = []
    for policy in ("TERMINATE", "REQUEST_CANCEL", "ABANDON"):
        h = await c.start_workflow(w.ParentLeavesChild.run, policy, id=f"{tq}-{policy}", task_queue=tq)
        child = c.get_workflow_handle(f"{tq}-{policy}-child")
        # the parent closes only once the child's first task is done and the parent saw it start
        await _until_quiet_after(c, h.id, EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED)
        await _until_event(c, child.id, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
        await h.signal(w.ParentLeavesChild.leave)
        await _result_ignoring_failure(h)
        closed = {
            "TERMINATE": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            "REQUEST_CANCEL": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        }.get(policy)
        if closed:  # the policy has run its course on the child
            await _until_event(c, child.id, closed)
        runs += [_run(h), (child.id, "")]
        if policy == "ABANDON":
            await child.terminate("cleanup")
    return runs


async def continue_as_new_chain(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Chain.run, 2, id=f"{tq}-1", task_queue=tq)
    await _result_ignoring_failure(h)
    runs: Handles = []
    run_id = h.first_execution_run_id or ""
    while run_id:
        runs.append((h.id, run_id))
        close = (await c.get_workflow_handle(h.id, run_id=run_id).fetch_history()).events[-1]
        run_id = close.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return runs


async def external_signal(c: Client, tq: str) -> Handles:
    target = await c.start_workflow(w.WaitForSignal.run, args=[1, 30.0], id=f"{tq}-target", task_queue=tq)
    await _until_event(c, target.id, EventType.EVENT_TYPE_TIMER_STARTED)
    sender = await c.start_workflow(w.SignalSender.run, target.id, id=f"{tq}-sender", task_queue=tq)
    await _result_ignoring_failure(sender)
    await _result_ignoring_failure(target)
    missing = await c.start_workflow(w.SignalSender.run, f"{tq}-nobody", id=f"{tq}-missing", task_queue=tq)
    await _result_ignoring_failure(missing)
    return [_run(sender), _run(target), _run(missing)]


async def external_cancel(c: Client, tq: str) -> Handles:
    target = await c.start_workflow(w.CleanupOnCancel.run, id=f"{tq}-target", task_queue=tq)
    await _until_event(c, target.id, EventType.EVENT_TYPE_TIMER_STARTED)
    sender = await c.start_workflow(w.CancelSender.run, target.id, id=f"{tq}-sender", task_queue=tq)
    await _result_ignoring_failure(sender)
    await _result_ignoring_failure(target)
    return [_run(sender), _run(target)]


async def cron_schedule(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.CronJob.run, id=f"{tq}-1", task_queue=tq, cron_schedule="@every 2s")
    first = h.first_execution_run_id or ""
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED, run_id=first)
    second = (
        (await c.get_workflow_handle(h.id, run_id=first).fetch_history())
        .events[-1]
        .workflow_execution_completed_event_attributes.new_execution_run_id
    )
    # the second run waits for this: terminated at its scheduled time or before, its history would differ
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, run_id=second)
    await h.terminate("enough")
    return [(h.id, first), (h.id, second)]


async def updates(c: Client, tq: str) -> Handles:
    from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage

    h = await c.start_workflow(w.Counter.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert await h.execute_update(w.Counter.add, 5, id="first") == 5
    try:
        await h.execute_update(w.Counter.add, -1, id="rejected")
    except WorkflowUpdateFailedError:
        pass
    assert await h.execute_update(w.Counter.add, 5, id="first") == 5  # same id: same outcome, no new events
    slow = await h.start_update(w.Counter.add, 200, id="slow", wait_for_stage=WorkflowUpdateStage.ACCEPTED)
    assert await slow.result() == 205
    await h.signal(w.Counter.finish)
    await _result_ignoring_failure(h)
    return [_run(h)]


async def _reset_to_first_task(c: Client, tq: str, workflow_id: str, run_id: str, reason: str) -> str:
    """Reset a run (the current one when `run_id` is empty) to its first completed workflow task;
    the new run's id."""
    resp = await c.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace="default",
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason=reason,
            workflow_task_finish_event_id=4,
            request_id=f"{tq}-reset",
        )
    )
    return resp.run_id


async def reset_to_first_task(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Resettable.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    await h.signal(w.Resettable.add, "a")
    await _until_quiet(c, h.id, 14)  # one workflow task per signal on both servers, whatever the timing
    await h.signal(w.Resettable.add, "b")
    await _result_ignoring_failure(h)
    first = h.first_execution_run_id or ""
    new_run_id = await _reset_to_first_task(c, tq, h.id, first, "try again")
    await _result_ignoring_failure(c.get_workflow_handle(h.id, run_id=new_run_id))
    return [(h.id, first), (h.id, new_run_id)]


async def reset_reapplies_updates(c: Client, tq: str) -> Handles:
    """Updates after the reset point are admitted again in the new run, and run there."""
    h = await c.start_workflow(w.Counter.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    assert await h.execute_update(w.Counter.add, 2, id="two") == 2
    assert await h.execute_update(w.Counter.add, 3, id="three") == 5
    first = h.first_execution_run_id or ""
    new_run_id = await _reset_to_first_task(c, tq, h.id, first, "again")
    new_run = c.get_workflow_handle(h.id, run_id=new_run_id)
    # both re-applied updates are answered by one workflow task: the first completion means both
    await _until_event(c, h.id, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED)
    await new_run.signal(w.Counter.finish)
    assert await new_run.result() == 5
    return [(h.id, first), (h.id, new_run_id)]


async def reset_running(c: Client, tq: str) -> Handles:
    h = await c.start_workflow(w.Resettable.run, id=f"{tq}-1", task_queue=tq)
    await _until_event(c, h.id, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED)
    await h.signal(w.Resettable.add, "a")
    await _until_quiet(c, h.id, 14)  # the signal has been processed: nothing is in flight
    first = h.first_execution_run_id or ""
    new_run_id = await _reset_to_first_task(c, tq, h.id, "", "back to the start")
    # the new run replays and waits for the second signal again, with nothing in flight
    await _until_quiet_after(c, h.id, EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED, run_id=new_run_id)
    await c.get_workflow_handle(h.id).signal(w.Resettable.add, "b")
    await _result_ignoring_failure(c.get_workflow_handle(h.id, run_id=new_run_id))
    return [(h.id, first), (h.id, new_run_id)]


SCENARIOS: dict[str, Scenario] = {
    "one_activity": one_activity,
    "workflow_fails": _simple(w.Failing.run),
    "activity_retried_then_succeeds": _simple(w.RetryThenSucceed.run),
    "activity_non_retryable": _simple(w.NonRetryable.run),
    "start_to_close_timeout_then_retry": _simple(w.StartToCloseRetry.run),
    "schedule_to_close_stops_retries": _simple(w.ScheduleToCloseStop.run),
    "schedule_to_close_while_running": _simple(w.ScheduleToCloseWhileRunning.run),
    "heartbeat_timeout_carries_details": _simple(w.HeartbeatTimeout.run),
    "activity_cancellation_types": cancel_activity,
    "local_activity": _simple(w.LocalActivity.run),
    "durable_timer": _simple(w.Sleeper.run, 1.0),
    "timer_cancelled_by_signal": timer_cancelled_by_signal,
    "signal_with_start_and_query": signal_with_start_and_query,
    "cancel_with_cleanup": cancel_with_cleanup,
    "terminate": terminate,
    "execution_timeout": execution_timeout,
    "run_timeout": run_timeout,
    "workflow_retry_policy": workflow_retry,
    "start_delay": start_delay,
    "upsert_search_attributes_and_memo": _simple(w.UpsertBoth.run),
    "workflow_task_failure": broken_workflow_task,
    "signals_while_a_task_runs": signals_while_a_task_runs,
    "sticky_worker_goes_away": sticky_worker_goes_away,
    "child_succeeds": child_succeeds,
    "child_fails": child_fails,
    "child_id_taken": child_id_taken,
    "parent_close_policies": parent_close_policies,
    "continue_as_new_chain": continue_as_new_chain,
    "external_signal": external_signal,
    "external_cancel": external_cancel,
    "cron_schedule": cron_schedule,
    "updates": updates,
    "reset_to_first_task": reset_to_first_task,
    "reset_running": reset_running,
    "reset_reapplies_updates": reset_reapplies_updates,
}


# ---------------------------------------------------------------- normalization
def field_paths(message: Message, prefix: str = "") -> list[str]:
    """The fields a message has set, two levels deep (times and durations count as values): the
    shape of an event, which must be the same on both servers even where values differ."""
    out = []
    for descriptor, value in message.ListFields():
        name = prefix + descriptor.name
        message_type = descriptor.message_type  # None unless the field is a message
        nested = (
            message_type is not None and not descriptor.is_repeated and message_type.full_name not in VALUE_MESSAGES
        )
        if nested and not prefix:
            out += field_paths(value, name + ".") or [name]
        else:
            out.append(name)
    return out


VALUE_MESSAGES = {"google.protobuf.Timestamp", "google.protobuf.Duration"}


def normalize(event: HistoryEvent, previous_run: Sequence[HistoryEvent] = ()) -> tuple[str, ...]:
    """The event's shape, and its type with the attributes whose values must agree between servers.
    `previous_run`: the history of the run this one continued as new from, for its start event."""
    attributes = getattr(event, event.WhichOneof("attributes") or "")
    fields = field_paths(attributes)
    min_interval = _min_interval_backoff(event, previous_run)
    if min_interval is not None:  # set or not by the rule, which min_interval checks
        fields = [f for f in fields if f != "first_workflow_task_backoff"]
    # the failover version every event carries: 0 in a local namespace on both servers
    return (*_values(event, min_interval), f"version={event.version}", "fields=" + ",".join(sorted(fields)))


# How far a server's own reading of the clock for the minimal interval (the reference reads it once more,
# apart from the event times) may be from what the events' times say.
CLOCK_READS_S = 0.05


def _min_interval_backoff(event: HistoryEvent, previous_run: Sequence[HistoryEvent]) -> str | None:
    """For the start of a run that a workflow continued as new: whether its first_workflow_task_backoff is what
    both servers' minimal interval between runs asks for, given how long the previous run lived on that server
    (from its own event times): what is left of w.MIN_RUN_INTERVAL_S after it became due, or none once it has
    passed. The value itself depends on the workers' speed, the rule does not. None for any other event."""
    a = event.workflow_execution_started_event_attributes
    if (
        event.event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED
        or a.initiator != ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW
        or not previous_run
    ):
        return None
    started, continued = previous_run[0], previous_run[-1]
    became_due = started.event_time.ToNanoseconds() + _backoff_ns(started.workflow_execution_started_event_attributes)
    lifetime_s = (continued.event_time.ToNanoseconds() - became_due) / 1e9
    wanted_s = max(w.MIN_RUN_INTERVAL_S - lifetime_s, 0.0)
    if a.HasField("first_workflow_task_backoff"):  # a delay: what was left of the interval
        backoff = f"{_backoff_ns(a) / 1e9:.3f} s"
        as_asked = abs(_backoff_ns(a) / 1e9 - wanted_s) <= CLOCK_READS_S
    else:  # none (not even zero): the interval had passed
        backoff = "none"
        as_asked = wanted_s <= CLOCK_READS_S
    if as_asked:
        return "as the minimal interval asks"
    return f"{backoff} after a run that lived {lifetime_s:.3f} s (the minimal interval asks {wanted_s:.3f} s)"


def _backoff_ns(a: WorkflowExecutionStartedEventAttributes) -> int:
    return int(a.first_workflow_task_backoff.ToNanoseconds())


def _values(event: HistoryEvent, min_interval: str | None = None) -> tuple[str, ...]:
    t = event.event_type
    name = EventType.Name(t).removeprefix("EVENT_TYPE_")
    E = EventType
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        started = event.workflow_execution_started_event_attributes
        # only whether the first task waits: how long depends on each server's timing; a run continued as new
        # waits as the minimal interval asks, which depends on how long the previous run lived on that server
        backoff = min_interval or (
            "cron" if started.cron_schedule else started.first_workflow_task_backoff.ToMilliseconds() > 0
        )
        parent = bool(started.parent_workflow_execution.workflow_id)
        return (
            name,
            f"attempt={started.attempt}",
            f"backoff={backoff}",
            f"initiator={started.initiator}",
            f"parent={parent}",
        )
    if t == E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
        scheduled = event.workflow_task_scheduled_event_attributes
        return name, f"attempt={scheduled.attempt}", f"kind={scheduled.task_queue.kind}"
    if t == E.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        task_failed = event.workflow_task_failed_event_attributes
        return (
            name,
            f"cause={task_failed.cause}",
            f"reset={bool(task_failed.new_run_id)}",
            f"failure={task_failed.failure.message!r}",
        )
    if t == E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        return name, f"type={event.workflow_task_timed_out_event_attributes.timeout_type}"
    if t == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        activity_started = event.activity_task_started_event_attributes
        return name, f"attempt={activity_started.attempt}", f"last_failure={activity_started.last_failure.message!r}"
    if t == E.EVENT_TYPE_ACTIVITY_TASK_FAILED:
        activity_failed = event.activity_task_failed_event_attributes
        return (
            name,
            f"retry_state={activity_failed.retry_state}",
            f"failure={activity_failed.failure.WhichOneof('failure_info')}",
        )
    if t == E.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT:
        activity_timed_out = event.activity_task_timed_out_event_attributes
        info = activity_timed_out.failure.timeout_failure_info
        return (
            name,
            f"retry_state={activity_timed_out.retry_state}",
            f"timeout={info.timeout_type}",
            f"cause={activity_timed_out.failure.cause.message!r}",
        )
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED:
        run_failed = event.workflow_execution_failed_event_attributes
        return name, f"retry_state={run_failed.retry_state}", f"new_run={bool(run_failed.new_execution_run_id)}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT:
        run_timed_out = event.workflow_execution_timed_out_event_attributes
        return name, f"retry_state={run_timed_out.retry_state}", f"new_run={bool(run_timed_out.new_execution_run_id)}"
    if t == E.EVENT_TYPE_TIMER_STARTED:
        return name, f"id={event.timer_started_event_attributes.timer_id}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        signaled = event.workflow_execution_signaled_event_attributes
        return (
            name,
            f"signal={signaled.signal_name}",
            f"external={bool(signaled.external_workflow_execution.workflow_id)}",
        )
    if t == E.EVENT_TYPE_MARKER_RECORDED:
        return name, f"marker={event.marker_recorded_event_attributes.marker_name}"
    if t == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_FAILED:
        return name, f"cause={event.start_child_workflow_execution_failed_event_attributes.cause}"
    if t == E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
        return name, f"cause={event.signal_external_workflow_execution_failed_event_attributes.cause}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        cancel_requested = event.workflow_execution_cancel_requested_event_attributes
        return name, f"external={bool(cancel_requested.external_workflow_execution.workflow_id)}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return name, f"initiator={event.workflow_execution_continued_as_new_event_attributes.initiator}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
        return name, f"new_run={bool(event.workflow_execution_completed_event_attributes.new_execution_run_id)}"
    if t == E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED:
        terminated = event.workflow_execution_terminated_event_attributes
        return name, f"reason={terminated.reason}", f"identity={terminated.identity}"
    return (name,)


async def _histories(address: str, scenario: Scenario) -> list[list[tuple[str, ...]]]:
    client = await Client.connect(address)
    task_queue = f"diff-{uuid.uuid4().hex[:10]}"
    # heartbeats without a heartbeat timeout go out at once, so a cancellation reaches the activity at once
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=ACTIVITIES,
        default_heartbeat_throttle_interval=timedelta(milliseconds=100),
    ):
        runs = await asyncio.wait_for(scenario(client, task_queue), TIMEOUT)
    histories = [(await client.get_workflow_handle(wid, run_id=rid).fetch_history()).events for wid, rid in runs]
    # the history of each run that continued as new, by the id of the run it continued as
    continued_as = {
        events[-1].workflow_execution_continued_as_new_event_attributes.new_execution_run_id: events
        for events in histories
        if events and events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    }
    out = []
    for (_, run_id), events in zip(runs, histories, strict=True):
        previous = continued_as.get(run_id, []) if run_id else []
        out.append([normalize(e, previous if i == 0 else ()) for i, e in enumerate(events)])
    return out


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_same_history_as_reference(name: str, server: ServerProcess, reference_server: ServerProcess) -> None:
    reference, ours = await asyncio.gather(
        _histories(reference_server.address, SCENARIOS[name]), _histories(server.address, SCENARIOS[name])
    )
    assert len(ours) == len(reference)
    for index, (theirs, mine) in enumerate(zip(reference, ours, strict=True)):
        assert mine == theirs, first_difference(f"run {index + 1}", theirs, mine)


def first_difference(label: str, reference: list[tuple[str, ...]], ours: list[tuple[str, ...]]) -> str:
    """Which event differs first, and in which of its values: pytest's own diff truncates them."""
    for index, (theirs, mine) in enumerate(zip(reference, ours, strict=False)):
        if theirs != mine:
            only_theirs = [v for v in theirs if v not in mine]
            only_mine = [v for v in mine if v not in theirs]
            return f"{label} event {index + 1} ({theirs[0]}): reference has {only_theirs}, tempyral has {only_mine}"
    return (
        f"{label}: reference has {len(reference)} events {[e[0] for e in reference]}, tempyral {[e[0] for e in ours]}"
    )
