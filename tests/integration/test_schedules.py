"""Schedules through the SDK and the CLI: create, describe, update, pause, trigger, backfill, delete, list and
count; each overlap policy with workflows that run until signalled; pause on failure; limited actions."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
import pytest_asyncio
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleDescription,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.integration.schedule_workflows import FailWorkflow, WaitWorkflow
from tests.support.servers import ServerProcess, reference_binary

T = TypeVar("T")
WAIT_S = 30.0
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")


async def eventually(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = WAIT_S) -> T:
    """Poll until `check` gives something other than None (or False), within a bound."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture
async def worker(client: Client) -> AsyncIterator[str]:
    task_queue = f"sched-{uuid.uuid4().hex[:8]}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[WaitWorkflow, FailWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield task_queue


def _schedule(
    task_queue: str,
    workflow: str = "ScheduleWait",
    spec: ScheduleSpec | None = None,
    overlap: ScheduleOverlapPolicy = ScheduleOverlapPolicy.SKIP,
    **policy: Any,
) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow(workflow, "x", id=f"wf-{uuid.uuid4().hex[:8]}", task_queue=task_queue),
        spec=spec or ScheduleSpec(),
        policy=SchedulePolicy(overlap=overlap, **policy),
    )


async def _described(handle: ScheduleHandle, check: Callable[[ScheduleDescription], bool], what: str) -> Any:
    async def look() -> ScheduleDescription | None:
        d = await handle.describe()
        return d if check(d) else None

    return await eventually(look, what)


async def _finish(client: Client, workflow_id: str, closed_ok: bool = False) -> None:
    try:
        await client.get_workflow_handle(workflow_id).signal(WaitWorkflow.finish)
    except RPCError as err:
        if not (closed_ok and err.status == RPCStatusCode.NOT_FOUND):
            raise


async def test_lifecycle(client: Client, worker: str) -> None:
    sid = f"life-{uuid.uuid4().hex[:8]}"
    handle = await client.create_schedule(
        sid,
        _schedule(worker),
        memo={"team": "ops"},
        search_attributes=TypedSearchAttributes([SearchAttributePair(CUSTOMER, "acme")]),
    )
    with pytest.raises(ScheduleAlreadyRunningError):
        await client.create_schedule(sid, _schedule(worker))
    d = await handle.describe()
    assert d.schedule.policy.catchup_window == timedelta(days=365)
    assert d.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
    assert await d.memo_value("team") == "ops"
    assert d.typed_search_attributes.get(CUSTOMER) == "acme"
    assert d.info.num_actions == 0 and not d.info.running_actions

    await handle.pause(note="maintenance")
    d = await handle.describe()
    assert d.schedule.state.paused and d.schedule.state.note == "maintenance"
    await handle.unpause(note="back")
    d = await handle.describe()
    assert not d.schedule.state.paused and d.schedule.state.note == "back"

    # a triggered action: the workflow id ends with the nominal time, the search attributes name the schedule
    await handle.trigger()
    d = await _described(handle, lambda d: bool(d.info.running_actions), "triggered workflow running")
    started = d.info.running_actions[0].workflow_id
    action = d.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert started.startswith(action.id + "-") and started.endswith("Z")
    wf = await client.get_workflow_handle(started).describe()
    assert wf.search_attributes["TemporalScheduledById"] == [sid]
    assert "TemporalScheduledStartTime" in wf.search_attributes
    await _finish(client, started)
    await _described(handle, lambda d: not d.info.running_actions, "triggered workflow closed")

    # update: a new spec, through the conflict token
    def update(input: ScheduleUpdateInput) -> ScheduleUpdate:
        s = input.description.schedule
        s.spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])
        return ScheduleUpdate(schedule=s)

    await handle.update(update)
    d = await handle.describe()
    assert [i.every for i in d.schedule.spec.intervals] == [timedelta(hours=1)]
    assert len(d.info.next_action_times) == 10
    assert d.info.last_updated_at is not None

    # lists: schedules only (the scheduler runs are not workflows), with queries
    async def listed(query: str) -> list[str]:
        return [s.id async for s in await client.list_schedules(query=query)]

    assert sid in await eventually(lambda: listed(f"ScheduleId = '{sid}'"), "listed")
    assert sid in await listed("CustomerId = 'acme'")
    assert sid not in await listed("TemporalSchedulePaused = true")
    assert not [w async for w in client.list_workflows(f"WorkflowId = 'temporal-sys-scheduler:{sid}'")]
    count = await client.workflow_service.count_schedules(
        ws.CountSchedulesRequest(namespace="default", query=f"ScheduleId = '{sid}'")
    )
    assert count.count == 1
    (entry,) = [s async for s in await client.list_schedules(query=f"ScheduleId = '{sid}'")]
    assert entry.info is not None and entry.info.recent_actions and entry.info.next_action_times
    assert await entry.memo_value("team") == "ops"

    await handle.delete()
    with pytest.raises(RPCError) as err:
        await handle.describe()
    assert err.value.status == RPCStatusCode.NOT_FOUND
    assert err.value.message == "schedule not found"  # the scheduler run is kept, closed, for a while
    assert sid not in await listed(f"ScheduleId = '{sid}'")


async def test_unknown_schedule_errors(client: Client) -> None:
    handle = client.get_schedule_handle("no-such-schedule")
    for call in (handle.describe, handle.delete, handle.pause, handle.trigger):
        with pytest.raises(RPCError) as err:
            await call()
        assert err.value.status == RPCStatusCode.NOT_FOUND
        assert err.value.message == "workflow not found for ID: temporal-sys-scheduler:no-such-schedule"


async def test_invalid_spec_is_refused(client: Client, worker: str) -> None:
    bad = _schedule(worker, spec=ScheduleSpec(cron_expressions=["not a cron"]))
    with pytest.raises(RPCError) as err:
        await client.create_schedule(f"bad-{uuid.uuid4().hex[:8]}", bad)
    assert err.value.status == RPCStatusCode.INVALID_ARGUMENT


@pytest.mark.parametrize(
    "policy",
    [
        ScheduleOverlapPolicy.SKIP,
        ScheduleOverlapPolicy.BUFFER_ONE,
        ScheduleOverlapPolicy.BUFFER_ALL,
        ScheduleOverlapPolicy.CANCEL_OTHER,
        ScheduleOverlapPolicy.TERMINATE_OTHER,
        ScheduleOverlapPolicy.ALLOW_ALL,
    ],
)
async def test_overlap_policy(client: Client, worker: str, policy: ScheduleOverlapPolicy) -> None:
    """Three triggers while the first workflow runs; then the first is signalled to finish."""
    handle = await client.create_schedule(f"overlap-{uuid.uuid4().hex[:8]}", _schedule(worker, overlap=policy))
    await handle.trigger()
    d = await _described(handle, lambda d: len(d.raw_description.info.recent_actions) == 1, "first started")
    first = d.raw_description.info.recent_actions[0].start_workflow_result.workflow_id
    for _ in range(2):
        await asyncio.sleep(1.1)  # the ids carry the nominal time in seconds: one trigger per second
        await handle.trigger()

    if policy == ScheduleOverlapPolicy.SKIP:
        d = await _described(handle, lambda d: d.info.num_actions_skipped_overlap == 2, "two skipped")
        assert d.info.num_actions == 1
    elif policy == ScheduleOverlapPolicy.BUFFER_ONE:
        d = await _described(handle, lambda d: d.info.num_actions_skipped_overlap == 0 and _dropped(d) == 1, "drop")
        await _finish(client, first)
        d = await _described(handle, lambda d: d.info.num_actions == 2 and len(d.info.running_actions) == 1, "next")
    elif policy == ScheduleOverlapPolicy.BUFFER_ALL:
        await _finish(client, first)
        d = await _described(handle, lambda d: d.info.num_actions == 2 and len(d.info.running_actions) == 1, "2nd")
        await _finish(client, d.info.running_actions[0].workflow_id)
        await _described(handle, lambda d: d.info.num_actions == 3, "third")
    elif policy in (ScheduleOverlapPolicy.CANCEL_OTHER, ScheduleOverlapPolicy.TERMINATE_OTHER):
        d = await _described(handle, lambda d: len(_running(d)) == 1 and _running(d)[0] != first, "new")
        closed = await client.get_workflow_handle(first).describe()
        assert closed.status is not None and closed.status.name == (
            "CANCELED" if policy == ScheduleOverlapPolicy.CANCEL_OTHER else "TERMINATED"
        )
    else:
        d = await _described(handle, lambda d: len(d.raw_description.info.recent_actions) == 3, "all three started")
        assert not d.info.running_actions  # ALLOW_ALL starts are not watched, as on the reference
        for action in d.raw_description.info.recent_actions:
            await _finish(client, action.start_workflow_result.workflow_id)
    d = await handle.describe()
    for running in _running(d):
        await _finish(client, running, closed_ok=True)  # the schedule may not have seen a close yet
    await handle.delete()


def _running(d: ScheduleDescription) -> list[str]:
    return [r.workflow_id for r in d.raw_description.info.running_workflows]


def _dropped(d: ScheduleDescription) -> int:
    return d.raw_description.info.buffer_dropped


async def test_pause_on_failure(client: Client, worker: str) -> None:
    handle = await client.create_schedule(
        f"fail-{uuid.uuid4().hex[:8]}", _schedule(worker, workflow="ScheduleFail", pause_on_failure=True)
    )
    await handle.trigger()
    d = await _described(handle, lambda d: d.schedule.state.paused, "paused after the failure")
    failed = d.raw_description.info.recent_actions[0].start_workflow_result.workflow_id
    assert d.schedule.state.note == f"paused due to workflow failure: {failed}: boom x"
    await handle.delete()


async def test_limited_actions_and_interval(client: Client, worker: str) -> None:
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=1))])
    schedule = _schedule(worker, spec=spec, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    schedule.state = ScheduleState(limited_actions=True, remaining_actions=2)
    handle = await client.create_schedule(f"limited-{uuid.uuid4().hex[:8]}", schedule)
    d = await _described(handle, lambda d: len(d.raw_description.info.recent_actions) == 2, "two actions")
    await asyncio.sleep(2.5)  # the next second's time passes: no third action
    d = await handle.describe()
    assert d.info.num_actions == 2 and d.schedule.state.remaining_actions == 0
    assert not d.info.next_action_times
    for action in d.raw_description.info.recent_actions:
        await _finish(client, action.start_workflow_result.workflow_id)
    await handle.delete()


async def test_backfill(client: Client, worker: str) -> None:
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=1))])
    handle = await client.create_schedule(
        f"backfill-{uuid.uuid4().hex[:8]}", _schedule(worker, spec=spec, overlap=ScheduleOverlapPolicy.ALLOW_ALL)
    )
    end = datetime(2024, 1, 1, 0, 3, 30, tzinfo=UTC)
    await handle.backfill(ScheduleBackfill(start_at=end - timedelta(minutes=3), end_at=end))
    d = await _described(handle, lambda d: len(d.raw_description.info.recent_actions) == 3, "three backfilled")
    ids = sorted(a.start_workflow_result.workflow_id for a in d.raw_description.info.recent_actions)
    action = d.schedule.action
    assert isinstance(action, ScheduleActionStartWorkflow)
    assert ids == [f"{action.id}-2024-01-01T00:0{m}:00Z" for m in (1, 2, 3)]
    for running in ids:
        await _finish(client, running)
    await handle.delete()


async def test_matching_times(client: Client, worker: str) -> None:
    spec = ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(minutes=10))])
    sid = f"times-{uuid.uuid4().hex[:8]}"
    await client.create_schedule(sid, _schedule(worker, spec=spec))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    req = ws.ListScheduleMatchingTimesRequest(namespace="default", schedule_id=sid)
    req.start_time.FromDatetime(start)
    req.end_time.FromDatetime(start + timedelta(minutes=35))
    resp = await client.workflow_service.list_schedule_matching_times(req)
    assert [t.ToDatetime(tzinfo=UTC) for t in resp.start_time] == [start + timedelta(minutes=m) for m in (10, 20, 30)]
    await client.get_schedule_handle(sid).delete()


async def _cli(server: ServerProcess, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        reference_binary(),
        "schedule",
        *args,
        "--address",
        server.address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={"NO_COLOR": "1", "PATH": "/usr/bin:/bin"},
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, f"temporal schedule {' '.join(args)}:\n{out.decode()}"
    return out.decode()


async def test_cli(server: ServerProcess, client: Client, worker: str) -> None:
    sid = f"cli-{uuid.uuid4().hex[:8]}"
    start_action = ("--workflow-id", "cli-wf", "--type", "ScheduleWait", "--task-queue", worker)  # update keeps it
    await _cli(server, "create", "--schedule-id", sid, "--interval", "1h", *start_action, "--input", '"x"')
    described = json.loads(await _cli(server, "describe", "--schedule-id", sid, "--output", "json"))
    assert described["schedule"]["spec"]["interval"][0]["interval"] == "3600s"
    await _cli(server, "toggle", "--schedule-id", sid, "--pause", "--reason", "cli pause")
    described = json.loads(await _cli(server, "describe", "--schedule-id", sid, "--output", "json"))
    assert described["schedule"]["state"]["paused"] is True
    await _cli(server, "toggle", "--schedule-id", sid, "--unpause", "--reason", "cli unpause")
    await _cli(server, "trigger", "--schedule-id", sid)
    handle = client.get_schedule_handle(sid)
    d = await _described(handle, lambda d: bool(d.info.running_actions), "cli trigger ran")
    await _finish(client, d.info.running_actions[0].workflow_id)
    await _cli(
        server,
        "backfill",
        "--schedule-id",
        sid,
        "--start-time",
        "2024-01-01T00:00:00Z",
        "--end-time",
        "2024-01-01T02:30:00Z",
        "--overlap-policy",
        "AllowAll",
    )
    await _described(handle, lambda d: d.info.num_actions == 3, "cli backfill ran")
    await _cli(server, "update", "--schedule-id", sid, "--interval", "2h", *start_action)
    d = await handle.describe()
    assert [i.every for i in d.schedule.spec.intervals] == [timedelta(hours=2)]
    listed = await _cli(server, "list")
    assert sid in listed
    for action in d.raw_description.info.recent_actions:
        await _finish(client, action.start_workflow_result.workflow_id, closed_ok=True)
    await _cli(server, "delete", "--schedule-id", sid)
    assert sid not in await _cli(server, "list")
