"""Durations of no time and of centuries, and instants far in the future, on the reference server and on
tempyral: what each records (timers, timeouts, delays, retry intervals, retention), the errors for
negative and malformed durations, and visibility of Datetime values up to the year 9999.

The reference caps every duration it is given at 100 years (3153600000 s) in place; 64-bit
nanoseconds end after ~292 years, so anything longer must neither overflow nor be refused."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio.api.command.v1 import Command
from temporalio.api.common.v1 import Payload, RetryPolicy, SearchAttributes, WorkflowExecution, WorkflowType
from temporalio.api.enums.v1 import CommandType, EventType
from temporalio.api.failure.v1 import Failure
from temporalio.api.filter.v1 import StartTimeFilter
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.nexus.v1 import EndpointSpec, EndpointTarget
from temporalio.api.operatorservice.v1 import CreateNexusEndpointRequest
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    DescribeWorkflowExecutionRequest,
    ListClosedWorkflowExecutionsRequest,
    ListWorkflowExecutionsRequest,
    PollActivityTaskQueueRequest,
    PollWorkflowTaskQueueRequest,
    RegisterNamespaceRequest,
    RespondActivityTaskFailedRequest,
    RespondWorkflowTaskCompletedRequest,
    SignalWithStartWorkflowExecutionRequest,
    StartWorkflowExecutionRequest,
    UpdateNamespaceRequest,
)
from temporalio.client import Client
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.differential import duration_workflows as dw
from tests.support.servers import ServerProcess

BIG = 10**15  # seconds: far past what 64-bit nanoseconds hold
YEARS_100 = 3153600000
C = CommandType
Outcome = dict[str, Any]
TIMEOUT = 60.0


@dataclass
class Ctx:
    client: Client
    endpoint: str  # a Nexus endpoint name, for the operation commands

    @property
    def ws(self) -> Any:
        return self.client.workflow_service


def d(seconds: int, nanos: int = 0) -> Duration:
    return Duration(seconds=seconds, nanos=nanos)


def durations(message: Message, prefix: str = "") -> dict[str, str]:
    """The message's duration fields (and those of its retry policy), as `<seconds>s<nanos>n`."""
    out: dict[str, str] = {}
    for descriptor, value in message.ListFields():
        kind = descriptor.message_type.full_name if descriptor.message_type else ""
        if kind == "google.protobuf.Duration":
            out[prefix + descriptor.name] = f"{value.seconds}s{value.nanos}n"
        elif kind == "temporal.api.common.v1.RetryPolicy":
            out.update(durations(value, prefix + descriptor.name + "."))
    return out


def event_outcome(event: Any) -> Outcome:
    return {"event": EventType.Name(event.event_type), **durations(getattr(event, event.WhichOneof("attributes")))}


def _rpc_error(err: RPCError) -> Outcome:
    return {"error": err.status.name, "message": re.sub(r"(child|dur)-[0-9a-f]{32}", r"\1-<id>", err.message)}


def _new_id(prefix: str = "dur") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


# ---------------------------------------------------------------- raw requests
async def start(ctx: Ctx, **fields: Any) -> Outcome:
    """A start request as given: the error, or what the started event and describe record."""
    workflow_id = _new_id()
    request = StartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Nobody"),
        task_queue=TaskQueue(name="durations-nobody"),
        request_id=str(uuid.uuid4()),
        **fields,
    )
    try:
        await ctx.ws.start_workflow_execution(request)
    except RPCError as err:
        return _rpc_error(err)
    handle = ctx.client.get_workflow_handle(workflow_id)
    first = (await handle.fetch_history()).events[0]
    started = first.workflow_execution_started_event_attributes
    out = event_outcome(first)
    if started.HasField("workflow_execution_expiration_time"):
        out["expiration - start (s)"] = started.workflow_execution_expiration_time.seconds - first.event_time.seconds
    described = await ctx.ws.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id))
    )
    info = described.workflow_execution_info
    out["describe"] = durations(described.execution_config)
    out["describe: execution - start (s)"] = info.execution_time.seconds - info.start_time.seconds
    await handle.terminate("done")
    return out


async def signal_with_start(ctx: Ctx, **fields: Any) -> Outcome:
    workflow_id = _new_id()
    request = SignalWithStartWorkflowExecutionRequest(
        namespace="default",
        workflow_id=workflow_id,
        workflow_type=WorkflowType(name="Nobody"),
        task_queue=TaskQueue(name="durations-nobody"),
        request_id=str(uuid.uuid4()),
        signal_name="s",
        **fields,
    )
    try:
        await ctx.ws.signal_with_start_workflow_execution(request)
    except RPCError as err:
        return _rpc_error(err)
    handle = ctx.client.get_workflow_handle(workflow_id)
    out = event_outcome((await handle.fetch_history()).events[0])
    await handle.terminate("done")
    return out


async def _first_task(ctx: Ctx, **start_fields: Any) -> tuple[str, str, str, bytes]:
    """Start a workflow on a queue of its own and take its first workflow task:
    (workflow id, run id, task queue, task token)."""
    workflow_id, task_queue = _new_id(), f"durations-{uuid.uuid4().hex[:12]}"
    started = await ctx.ws.start_workflow_execution(
        StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id=workflow_id,
            workflow_type=WorkflowType(name="Raw"),
            task_queue=TaskQueue(name=task_queue),
            request_id=str(uuid.uuid4()),
            **start_fields,
        )
    )
    task = await ctx.ws.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="test")
    )
    return workflow_id, started.run_id, task_queue, task.task_token


async def command(ctx: Ctx, cmd: Command) -> Outcome:
    """Complete a workflow's first task with one command: the error, and the event recorded after the
    task (the command's, or the next task's when it was refused)."""
    workflow_id, run_id, _, token = await _first_task(ctx)
    out: Outcome = {}
    try:
        await ctx.ws.respond_workflow_task_completed(
            RespondWorkflowTaskCompletedRequest(namespace="default", task_token=token, commands=[cmd], identity="test")
        )
    except RPCError as err:
        out = _rpc_error(err)
    handle = ctx.client.get_workflow_handle(workflow_id, run_id=run_id)
    events = (await handle.fetch_history()).events
    out.update(event_outcome(events[4]))
    if events[-1].event_type != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        await handle.terminate("done")
    return out


def timer(timeout: Duration | None) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_START_TIMER)
    cmd.start_timer_command_attributes.timer_id = "t"
    if timeout is not None:
        cmd.start_timer_command_attributes.start_to_fire_timeout.CopyFrom(timeout)
    return cmd


def _set_retry_and_timeouts(attrs: Any, retry: RetryPolicy | None, timeouts: dict[str, Duration]) -> None:
    if retry is not None:
        attrs.retry_policy.CopyFrom(retry)
    for name, value in timeouts.items():
        getattr(attrs, name).CopyFrom(value)


def activity(retry: RetryPolicy | None = None, **timeouts: Duration) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK)
    a = cmd.schedule_activity_task_command_attributes
    a.activity_id, a.activity_type.name, a.task_queue.name = "a", "A", "durations-nobody"
    _set_retry_and_timeouts(a, retry, timeouts)
    return cmd


def child(retry: RetryPolicy | None = None, **timeouts: Duration) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION)
    a = cmd.start_child_workflow_execution_command_attributes
    a.workflow_id, a.workflow_type.name, a.task_queue.name = _new_id("child"), "Child", "durations-nobody"
    a.namespace = "default"
    _set_retry_and_timeouts(a, retry, timeouts)
    return cmd


def continue_as_new(retry: RetryPolicy | None = None, **timeouts: Duration) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION)
    a = cmd.continue_as_new_workflow_execution_command_attributes
    a.workflow_type.name, a.task_queue.name = "Raw", "durations-nobody"
    _set_retry_and_timeouts(a, retry, timeouts)
    return cmd


def nexus_operation(endpoint: str, **timeouts: Duration) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION)
    a = cmd.schedule_nexus_operation_command_attributes
    a.endpoint, a.service, a.operation = endpoint, "Service", "operation"
    for name, value in timeouts.items():
        getattr(a, name).CopyFrom(value)
    return cmd


async def retention(ctx: Ctx, value: Duration, update: bool = False) -> Outcome:
    name = f"durations-{uuid.uuid4().hex[:12]}"
    try:
        if update:
            await ctx.ws.register_namespace(
                RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=d(86400))
            )
            await ctx.ws.update_namespace(
                UpdateNamespaceRequest(namespace=name, config=NamespaceConfig(workflow_execution_retention_ttl=value))
            )
        else:
            await ctx.ws.register_namespace(
                RegisterNamespaceRequest(namespace=name, workflow_execution_retention_period=value)
            )
    except RPCError as err:
        return _rpc_error(err)
    described = await ctx.ws.describe_namespace(DescribeNamespaceRequest(namespace=name))
    return durations(described.config)


async def retry_delay(ctx: Ctx, delay: Duration) -> Outcome:
    """An activity attempt fails asking for `delay` before the next: how far off the next attempt is."""
    workflow_id, _, task_queue, token = await _first_task(ctx)
    cmd = activity(start_to_close_timeout=d(100))
    cmd.schedule_activity_task_command_attributes.task_queue.name = task_queue
    await ctx.ws.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=token, commands=[cmd], identity="test")
    )
    task = await ctx.ws.poll_activity_task_queue(
        PollActivityTaskQueueRequest(namespace="default", task_queue=TaskQueue(name=task_queue), identity="test")
    )
    failure = Failure(message="later")
    failure.application_failure_info.next_retry_delay.CopyFrom(delay)
    failed_at = time.time()
    await ctx.ws.respond_activity_task_failed(
        RespondActivityTaskFailedRequest(namespace="default", task_token=task.task_token, failure=failure)
    )
    described = await ctx.ws.describe_workflow_execution(
        DescribeWorkflowExecutionRequest(namespace="default", execution=WorkflowExecution(workflow_id=workflow_id))
    )
    pending = described.pending_activities[0]
    await ctx.client.get_workflow_handle(workflow_id).terminate("done")
    return {
        "attempt": pending.attempt,
        "next attempt in (days)": round((pending.next_attempt_schedule_time.seconds - failed_at) / 86400),
    }


async def workflow_retry_delay(ctx: Ctx, delay: Duration, policy: RetryPolicy) -> Outcome:
    """A run fails asking for `delay` before the next: how long the next run's first task waits."""
    workflow_id, _, _, token = await _first_task(ctx, retry_policy=policy)
    cmd = Command(command_type=C.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION)
    failure = cmd.fail_workflow_execution_command_attributes.failure
    failure.message = "later"
    failure.application_failure_info.next_retry_delay.CopyFrom(delay)
    await ctx.ws.respond_workflow_task_completed(
        RespondWorkflowTaskCompletedRequest(namespace="default", task_token=token, commands=[cmd], identity="test")
    )
    handle = ctx.client.get_workflow_handle(workflow_id)
    first = (await handle.fetch_history()).events[0]
    described = await handle.describe()
    info = described.raw_description.workflow_execution_info
    await handle.terminate("done")
    return {
        "attempt": first.workflow_execution_started_event_attributes.attempt,
        **durations(first.workflow_execution_started_event_attributes),
        "describe: execution - start (s)": info.execution_time.seconds - info.start_time.seconds,
    }


# ---------------------------------------------------------------- SDK workflows
async def sdk_history(
    ctx: Ctx,
    workflow: Any,
    *args: Any,
    until: EventType.ValueType = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    **options: Any,
) -> Outcome:
    """Run a workflow with the SDK until `until` is in its history: the events up to there, with the
    durations they record, and the durations describe shows."""
    task_queue = f"durations-sdk-{uuid.uuid4().hex[:12]}"
    async with Worker(ctx.client, task_queue=task_queue, workflows=[dw.SleepZero, dw.SleepYears, dw.WaitYears]):
        handle = await ctx.client.start_workflow(workflow, *args, id=_new_id(), task_queue=task_queue, **options)
        deadline = time.monotonic() + TIMEOUT
        while True:
            events = list((await handle.fetch_history()).events)
            types = [e.event_type for e in events]
            if until in types:
                break
            failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED in types
            assert not failed and time.monotonic() < deadline, f"no {EventType.Name(until)}: {events}"
            await asyncio.sleep(0.1)
        described = await handle.describe()
        if until != EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED:
            await handle.terminate("done")
    started = events[0]
    expiration = started.workflow_execution_started_event_attributes.workflow_execution_expiration_time
    return {
        "events": [event_outcome(e) for e in events[: types.index(until) + 1]],
        "expiration - start (s)": expiration.seconds - started.event_time.seconds if expiration.seconds else 0,
        "describe": durations(described.raw_description.execution_config),
    }


# ---------------------------------------------------------------- Datetime search attributes
DATETIMES = {
    "last": "9999-12-31T23:59:59.999999999Z",
    "first": "0001-01-01T00:00:00Z",
    "after 2262": "2300-01-01T00:00:00Z",
    "sub-millisecond": "2024-01-01T12:00:00.9996+02:00",
}
DATETIME_QUERIES = [
    "VisTime > '9000-01-01T00:00:00Z'",
    "VisTime < '0002-01-01T00:00:00Z'",
    "VisTime > '2262-04-12T00:00:00Z'",
    "VisTime = '2024-01-01T10:00:00.999Z'",
    "VisTime >= '9999-12-31T23:59:59.999Z'",
    "StartTime < '9999-12-31T00:00:00Z'",
    "ExecutionTime > '0001-01-01T00:00:00Z'",
]


async def _listed(ctx: Ctx, query: str, count: int | None = None) -> list[str]:
    """Workflow ids the query lists; with `count`, waits (bounded) for that many to be visible."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = await ctx.ws.list_workflow_executions(ListWorkflowExecutionsRequest(namespace="default", query=query))
        ids = [e.execution.workflow_id for e in found.executions]
        if count is None or len(ids) >= count:
            return ids
        assert time.monotonic() < deadline, f"{query} never listed {count}"
        await asyncio.sleep(0.2)


async def far_datetimes(ctx: Ctx) -> Outcome:
    """Workflows with Datetime search attributes from the year 1 to the last instant of 9999: what
    describe gives back, and which of them queries find."""
    tag = uuid.uuid4().hex
    out: Outcome = {}
    for label, value in DATETIMES.items():
        attributes = SearchAttributes()
        for name, item in (("VisTime", value), ("VisKeyword", tag)):
            attributes.indexed_fields[name].CopyFrom(
                Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(item).encode())
            )
        await ctx.ws.start_workflow_execution(
            StartWorkflowExecutionRequest(
                namespace="default",
                workflow_id=f"{tag}-{label}",
                workflow_type=WorkflowType(name="Nobody"),
                task_queue=TaskQueue(name="durations-nobody"),
                request_id=str(uuid.uuid4()),
                search_attributes=attributes,
            )
        )
        described = await ctx.client.get_workflow_handle(f"{tag}-{label}").describe()
        out[f"describe {label}"] = described.raw_description.workflow_execution_info.search_attributes.indexed_fields[
            "VisTime"
        ].data.decode()
    await _listed(ctx, f"VisKeyword = '{tag}'", count=len(DATETIMES))
    for query in DATETIME_QUERIES:
        ids = await _listed(ctx, f"VisKeyword = '{tag}' AND {query}")
        out[query] = sorted(i.removeprefix(f"{tag}-") for i in ids)
    for label in DATETIMES:
        await ctx.client.get_workflow_handle(f"{tag}-{label}").terminate("done")
    return out


async def closed_since_the_year_one(ctx: Ctx) -> Outcome:
    """ListClosedWorkflowExecutions with a start-time filter from the year 1 to the end of 9999."""
    workflow_id = _new_id()
    handle = await ctx.client.start_workflow("Nobody", id=workflow_id, task_queue="durations-nobody")
    await handle.terminate("done")
    time_filter = StartTimeFilter()
    time_filter.earliest_time.FromDatetime(datetime(1, 1, 2, tzinfo=UTC))
    time_filter.latest_time.FromDatetime(datetime(9999, 12, 31, tzinfo=UTC))
    deadline = time.monotonic() + TIMEOUT
    while True:
        try:
            listed = await ctx.ws.list_closed_workflow_executions(
                ListClosedWorkflowExecutionsRequest(
                    namespace="default", start_time_filter=time_filter, maximum_page_size=1000
                )
            )
        except RPCError as err:
            return _rpc_error(err)
        if any(e.execution.workflow_id == workflow_id for e in listed.executions):
            return {"listed": True}
        assert time.monotonic() < deadline, "the closed workflow was never listed"
        await asyncio.sleep(0.2)


# ---------------------------------------------------------------- cases
Case = Callable[[Ctx], Awaitable[Outcome]]
CASES: dict[str, Case] = {
    # the SDK's own timers and timeouts
    "sdk: sleep(0)": lambda c: sdk_history(c, dw.SleepZero.run),
    "sdk: sleep 400 years": lambda c: sdk_history(c, dw.SleepYears.run, 400, until=EventType.EVENT_TYPE_TIMER_STARTED),
    "sdk: wait_condition 500 years": lambda c: sdk_history(
        c, dw.WaitYears.run, 500, until=EventType.EVENT_TYPE_TIMER_STARTED
    ),
    "sdk: execution timeout 500 years": lambda c: sdk_history(
        c, dw.SleepZero.run, execution_timeout=timedelta(days=500 * 365)
    ),
    # start requests
    "start: execution timeout 10^15 s": lambda c: start(c, workflow_execution_timeout=d(BIG)),
    "start: run timeout 10^15 s": lambda c: start(c, workflow_run_timeout=d(BIG)),
    "start: task timeout 10^15 s": lambda c: start(c, workflow_task_timeout=d(BIG)),
    "start: start delay 10^11 s": lambda c: start(c, workflow_start_delay=d(10**11)),
    "start: execution timeout of int64 seconds": lambda c: start(c, workflow_execution_timeout=d(2**63 - 1)),
    "start: execution timeout 100 years and a nanosecond": lambda c: start(
        c, workflow_execution_timeout=d(YEARS_100, 1)
    ),
    "start: execution timeout of mismatched signs": lambda c: start(c, workflow_execution_timeout=d(5, -1)),
    "start: execution timeout of -1 ns": lambda c: start(c, workflow_execution_timeout=d(0, -1)),
    "start: run timeout of mismatched signs": lambda c: start(c, workflow_run_timeout=d(-5, 1)),
    "start: task timeout of mismatched signs": lambda c: start(c, workflow_task_timeout=d(5, -1)),
    "start: negative start delay": lambda c: start(c, workflow_start_delay=d(-5)),
    "start: start delay of mismatched signs": lambda c: start(c, workflow_start_delay=d(5, -1)),
    "start: retry intervals 10^15 s": lambda c: start(
        c, retry_policy=RetryPolicy(initial_interval=d(BIG), maximum_interval=d(BIG))
    ),
    "start: retry initial interval 2 years": lambda c: start(
        c, retry_policy=RetryPolicy(initial_interval=d(2 * 365 * 86400))
    ),
    "start: retry maximum interval 10^15 s": lambda c: start(c, retry_policy=RetryPolicy(maximum_interval=d(BIG))),
    "start: negative retry initial interval": lambda c: start(c, retry_policy=RetryPolicy(initial_interval=d(-1))),
    "start: retry initial interval of mismatched signs": lambda c: start(
        c, retry_policy=RetryPolicy(initial_interval=d(1, -1))
    ),
    "start: negative retry maximum interval": lambda c: start(c, retry_policy=RetryPolicy(maximum_interval=d(-1))),
    "signal-with-start: execution timeout 10^15 s": lambda c: signal_with_start(c, workflow_execution_timeout=d(BIG)),
    "signal-with-start: start delay 10^11 s": lambda c: signal_with_start(c, workflow_start_delay=d(10**11)),
    "signal-with-start: run timeout of mismatched signs": lambda c: signal_with_start(c, workflow_run_timeout=d(5, -1)),
    # timers
    "timer: zero": lambda c: command(c, timer(d(0))),
    "timer: unset": lambda c: command(c, timer(None)),
    "timer: 10^15 s": lambda c: command(c, timer(d(BIG))),
    "timer: int64 seconds": lambda c: command(c, timer(d(2**63 - 1))),
    "timer: negative": lambda c: command(c, timer(d(-1))),
    "timer: mismatched signs": lambda c: command(c, timer(d(1, -1))),
    # activities
    "activity: schedule-to-close 10^15 s": lambda c: command(c, activity(schedule_to_close_timeout=d(BIG))),
    "activity: other timeouts 10^15 s": lambda c: command(
        c,
        activity(start_to_close_timeout=d(BIG), heartbeat_timeout=d(BIG), schedule_to_start_timeout=d(BIG)),
    ),
    "activity: negative schedule-to-close": lambda c: command(c, activity(schedule_to_close_timeout=d(-1))),
    "activity: start-to-close of mismatched signs": lambda c: command(c, activity(start_to_close_timeout=d(1, -1))),
    "activity: heartbeat of mismatched signs": lambda c: command(
        c, activity(start_to_close_timeout=d(1), heartbeat_timeout=d(-1, 1))
    ),
    "activity: retry intervals 10^15 s": lambda c: command(
        c,
        activity(RetryPolicy(initial_interval=d(BIG), maximum_interval=d(BIG)), start_to_close_timeout=d(10)),
    ),
    "activity: negative retry initial interval": lambda c: command(
        c, activity(RetryPolicy(initial_interval=d(-1)), start_to_close_timeout=d(10))
    ),
    "activity: retry maximum interval of mismatched signs": lambda c: command(
        c, activity(RetryPolicy(maximum_interval=d(1, -1)), start_to_close_timeout=d(10))
    ),
    # child workflows
    "child: execution timeout 10^15 s": lambda c: command(c, child(workflow_execution_timeout=d(BIG))),
    "child: run and task timeouts 10^15 s": lambda c: command(
        c, child(workflow_run_timeout=d(BIG), workflow_task_timeout=d(BIG))
    ),
    "child: execution timeout of mismatched signs": lambda c: command(c, child(workflow_execution_timeout=d(1, -1))),
    "child: negative run timeout": lambda c: command(c, child(workflow_run_timeout=d(-1))),
    "child: retry intervals 10^15 s": lambda c: command(
        c, child(RetryPolicy(initial_interval=d(BIG), maximum_interval=d(BIG)))
    ),
    "child: negative retry initial interval": lambda c: command(c, child(RetryPolicy(initial_interval=d(-1)))),
    # continue-as-new
    "continue-as-new: run and task timeouts 10^15 s": lambda c: command(
        c, continue_as_new(workflow_run_timeout=d(BIG), workflow_task_timeout=d(BIG))
    ),
    "continue-as-new: backoff 10^15 s": lambda c: command(c, continue_as_new(backoff_start_interval=d(BIG))),
    "continue-as-new: run timeout of mismatched signs": lambda c: command(
        c, continue_as_new(workflow_run_timeout=d(1, -1))
    ),
    "continue-as-new: negative backoff": lambda c: command(c, continue_as_new(backoff_start_interval=d(-1))),
    "continue-as-new: negative retry initial interval": lambda c: command(
        c, continue_as_new(RetryPolicy(initial_interval=d(-1)))
    ),
    # Nexus operations
    "nexus: schedule-to-close 10^15 s": lambda c: command(
        c, nexus_operation(c.endpoint, schedule_to_close_timeout=d(BIG))
    ),
    "nexus: every timeout 10^15 s": lambda c: command(
        c,
        nexus_operation(
            c.endpoint,
            schedule_to_close_timeout=d(BIG),
            schedule_to_start_timeout=d(BIG),
            start_to_close_timeout=d(BIG),
        ),
    ),
    "nexus: schedule-to-start 10^15 s": lambda c: command(
        c, nexus_operation(c.endpoint, schedule_to_start_timeout=d(BIG))
    ),
    "nexus: schedule-to-close of mismatched signs": lambda c: command(
        c, nexus_operation(c.endpoint, schedule_to_close_timeout=d(1, -1))
    ),
    "nexus: negative start-to-close": lambda c: command(c, nexus_operation(c.endpoint, start_to_close_timeout=d(-3))),
    # namespaces
    "namespace: retention 10^15 s": lambda c: retention(c, d(BIG)),
    "namespace: retention of mismatched signs": lambda c: retention(c, d(86400, -1)),
    "namespace: update to retention 10^15 s": lambda c: retention(c, d(BIG), update=True),
    "namespace: update to a negative retention": lambda c: retention(c, d(-1), update=True),
    # what a worker asks for: unchecked, read as 64-bit nanoseconds (~292 years at most)
    "activity retry: next retry delay 10^11 s": lambda c: retry_delay(c, d(10**11)),
    "activity retry: next retry delay 10^15 s": lambda c: retry_delay(c, d(BIG)),
    # ... while a workflow's stays within its policy's maximum interval
    "workflow retry: next retry delay 1 hour": lambda c: workflow_retry_delay(c, d(3600), RetryPolicy()),
    "workflow retry: next retry delay 10^15 s": lambda c: workflow_retry_delay(c, d(BIG), RetryPolicy()),
    "workflow retry: next retry delay 10^15 s, maximum 10^15 s": lambda c: workflow_retry_delay(
        c, d(BIG), RetryPolicy(maximum_interval=d(BIG))
    ),
    "workflow retry: next retry delay 0": lambda c: workflow_retry_delay(c, d(0), RetryPolicy()),
    # visibility
    "visibility: Datetime values from the year 1 to 9999": far_datetimes,
    "visibility: closed workflows since the year 1": closed_since_the_year_one,
}


@pytest.fixture(scope="module")
async def contexts(server: ServerProcess, reference_server: ServerProcess) -> tuple[Ctx, Ctx]:
    endpoint = f"durations-{uuid.uuid4().hex[:8]}"
    out = []
    for address in (reference_server.address, server.address):
        client = await Client.connect(address)
        await client.operator_service.create_nexus_endpoint(
            CreateNexusEndpointRequest(
                spec=EndpointSpec(
                    name=endpoint,
                    target=EndpointTarget(
                        worker=EndpointTarget.Worker(namespace="default", task_queue="durations-nobody")
                    ),
                )
            )
        )
        out.append(Ctx(client, endpoint))
    return out[0], out[1]


@pytest.mark.parametrize("name", list(CASES))
async def test_same_durations_as_reference(name: str, contexts: tuple[Ctx, Ctx]) -> None:
    reference, ours = contexts
    expected, got = await asyncio.gather(
        asyncio.wait_for(CASES[name](reference), TIMEOUT * 2), asyncio.wait_for(CASES[name](ours), TIMEOUT * 2)
    )
    assert got == expected
