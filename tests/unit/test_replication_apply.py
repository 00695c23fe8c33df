"""Applying another cluster's history on a standby (history/replication.py, ReplicationApplier) between two
in-process clusters (tests/support/xdc_pair.py): a is active for the global namespace, b standby. What a commits
on a is replicated to b, and b must end up with the same events, versions and version history
(`rebuild.comparable`), the same current-run pointer, and parked tasks that are exactly what its state needs."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue

from tempyral.common.errors import StorageUnavailable
from tempyral.history import rebuild, version_history
from tempyral.history.replication import ConflictingHistory, NamespaceUnknown
from tempyral.proto.internal_pb2 import ActivityInfo, Task, TaskType
from tests.support.history_harness import (
    complete_workflow,
    outstanding_keys,
    schedule_activity,
    start_timer,
    task_keys,
)
from tests.support.replay_check import check_execution
from tests.support.xdc_pair import Cluster, continue_as_new, needed, no_gap, open_pair, replicate, without_task_ids

pytestmark = pytest.mark.asyncio(loop_scope="function")
Status = wf_enums.WorkflowExecutionStatus
HISTORY = TaskType.TASK_TYPE_REPLICATE_HISTORY


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[tuple[Cluster, Cluster]]:
    async with open_pair() as clusters:
        yield clusters


async def assert_replicated(a: Cluster, b: Cluster, workflow_id: str, run_id: str) -> None:
    """b has the run as a has it: events (but for each cluster's task ids), state, version history; and its
    parked tasks, like its outstanding rows, are what its state needs."""
    assert without_task_ids(await b.h.events(workflow_id, run_id)) == without_task_ids(
        await a.h.events(workflow_id, run_id)
    )
    source, target = await a.h.state(workflow_id, run_id), await b.h.state(workflow_id, run_id)
    assert rebuild.comparable(target) == rebuild.comparable(source)
    assert target.version_histories == source.version_histories
    want = [k for k in needed(target, b.ns.retention_ns) if k[0] != "DELETE_HISTORY"]
    assert task_keys(b.parked(workflow_id, run_id)) == want
    assert await outstanding_keys(b.h, workflow_id, run_id) == needed(target, b.ns.retention_ns)


def history_tasks(a: Cluster) -> list[Task]:
    return [t for t in a.replication if t.type == HISTORY]


async def events_of(a: Cluster, task: Task) -> list[history.HistoryEvent]:
    return (
        await a.engine.executions.committed_events(
            task.namespace_id, task.workflow_id, task.run_id, task.event_id, task.next_event_id
        )
    )[0]


# ---------------------------------------------------------------------- a new run
async def test_a_new_run_is_created_from_its_events_with_its_current_run_pointer(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    (task,) = a.replication
    events = await events_of(a, task)
    assert [e.event_id for e in events] == [1, 2] and {e.version for e in events} == {1}
    assert await b.applier.apply_events(b.ns.id, "wf", run_id, events, no_gap) is True
    current = await b.h.current("wf")
    assert current is not None and (current.run_id, current.status) == (
        run_id,
        Status.WORKFLOW_EXECUTION_STATUS_RUNNING,
    )
    await assert_replicated(a, b, "wf", run_id)
    assert task_keys(b.parked("wf", run_id)) == [("DISPATCH_WORKFLOW_TASK", 2)]
    # parked, not dispatched: b's workers get nothing while the namespace is standby there
    assert b.h.matching.added == []
    # the apply is passive: b writes no replication task of its own
    assert b.replication == []


async def test_each_batch_leaves_the_target_equal_to_the_source(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await replicate(a, b)
    await assert_replicated(a, b, "wf", run_id)
    await a.h.run_workflow_task(start_timer("t1"), schedule_activity("a1"))
    await replicate(a, b)
    await assert_replicated(a, b, "wf", run_id)
    await a.h.signal("wf")
    await a.h.signal("wf")
    await replicate(a, b)
    await assert_replicated(a, b, "wf", run_id)
    assert (await b.h.event_types("wf"))[-3:] == [
        "WORKFLOW_EXECUTION_SIGNALED",
        "WORKFLOW_TASK_SCHEDULED",
        "WORKFLOW_EXECUTION_SIGNALED",
    ]


async def test_events_of_a_new_failover_version_extend_the_version_history(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task()
    await replicate(a, b)
    await a.fail_over("b")  # a round trip: a writes under version 11 now
    await a.fail_over("a")
    await a.h.signal("wf")
    await replicate(a, b)
    target = await b.h.stored_state("wf")
    assert [(i.event_id, i.version) for i in version_history.current(target).items] == [(4, 1), (6, 11)]
    assert target.version == 11  # the version of its last event, as a replay has it
    await assert_replicated(a, b, "wf", run_id)


async def test_a_parked_task_the_new_events_made_pointless_is_dropped_with_its_row(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    await replicate(a, b)
    (parked_timer,) = b.parked("wf", run_id)
    assert parked_timer.type == TaskType.TASK_TYPE_USER_TIMER
    (timer,) = a.h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    await a.h.fire_timer(timer)  # the active fires it; b only hears of TimerFired
    await replicate(a, b)
    assert "TIMER_FIRED" in await b.h.event_types("wf")
    parked = b.parked("wf", run_id)
    assert parked_timer.task_id not in {t.task_id for t in parked}
    assert parked_timer.task_id not in {t.task_id for t in await b.h.outstanding()}
    assert task_keys(parked) == [("DISPATCH_WORKFLOW_TASK", 7)]
    await assert_replicated(a, b, "wf", run_id)


async def test_a_closed_run_is_closed_on_the_target_and_its_retention_is_not_parked(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(complete_workflow())
    await replicate(a, b)
    current = await b.h.current("wf")
    assert current is not None
    assert (current.run_id, current.status) == (run_id, Status.WORKFLOW_EXECUTION_STATUS_COMPLETED)
    await assert_replicated(a, b, "wf", run_id)
    # retention runs on every cluster: the delete is handed on, not parked
    deletes = [t for t in b.engine.handed if t.type == TaskType.TASK_TYPE_DELETE_HISTORY]
    assert len(deletes) == 1
    # the pending workflow task parked before the close went with the close (no parent: no close task)
    assert b.parked("wf", run_id) == []


async def test_a_next_run_takes_the_current_run_pointer_from_the_run_it_continues(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    first = await a.h.start("wf")
    await replicate(a, b)
    await a.h.run_workflow_task(continue_as_new())
    second = await a.h.current_run_id("wf")
    assert second != first
    await replicate(a, b)
    current = await b.h.current("wf")
    assert current is not None
    assert (current.run_id, current.status) == (second, Status.WORKFLOW_EXECUTION_STATUS_RUNNING)
    old = await b.h.state("wf", first)
    assert old.status == Status.WORKFLOW_EXECUTION_STATUS_CONTINUED_AS_NEW
    await assert_replicated(a, b, "wf", first)
    await assert_replicated(a, b, "wf", second)


# ---------------------------------------------------------------------- duplicates, gaps, conflicts
async def test_events_already_here_are_skipped_and_an_overlapping_batch_adds_only_the_rest(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    first, _, _ = history_tasks(a)
    await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, first), no_gap)
    commits = len(b.h.store.committed)
    # the same events again (a stream resumed from its last stored watermark): nothing is written
    assert await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, first), no_gap) is False
    assert len(b.h.store.committed) == commits
    # events 1..5 over 1..2: only 3..5 are new
    everything = (await a.engine.executions.committed_events(b.ns.id, "wf", run_id, 1, 6))[0]
    assert await b.applier.apply_events(b.ns.id, "wf", run_id, everything, no_gap) is True
    (txn,) = b.h.store.committed[commits:]
    assert [(w.first_event_id, w.last_event_id) for w in txn.history] == [(3, 5)]
    await assert_replicated(a, b, "wf", run_id)


async def test_a_gap_is_filled_from_the_source_before_the_events_are_applied(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    await a.h.signal("wf")
    first, _, _, last = history_tasks(a)
    await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, first), no_gap)
    asked: list[tuple[int, int]] = []

    async def fetch_missing(first_event_id: int, next_event_id: int) -> list[history.HistoryEvent]:
        asked.append((first_event_id, next_event_id))
        return (await a.engine.executions.committed_events(b.ns.id, "wf", run_id, first_event_id, next_event_id))[0]

    assert await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, last), fetch_missing) is True
    assert asked == [(3, last.event_id)]
    await assert_replicated(a, b, "wf", run_id)


async def test_a_run_first_heard_of_mid_history_gets_its_first_events_from_the_source(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    last = history_tasks(a)[-1]
    asked: list[tuple[int, int]] = []

    async def fetch_missing(first_event_id: int, next_event_id: int) -> list[history.HistoryEvent]:
        asked.append((first_event_id, next_event_id))
        return (await a.engine.executions.committed_events(b.ns.id, "wf", run_id, first_event_id, next_event_id))[0]

    assert await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, last), fetch_missing) is True
    assert asked == [(1, last.event_id)]
    assert await b.h.current_run_id("wf") == run_id
    await assert_replicated(a, b, "wf", run_id)


def with_version(events: list[history.HistoryEvent], event_id: int, version: int) -> list[history.HistoryEvent]:
    out = []
    for event in events:
        copy = history.HistoryEvent()
        copy.CopyFrom(event)
        if copy.event_id == event_id:
            copy.version = version
        out.append(copy)
    return out


async def test_events_here_with_another_version_are_a_conflict_and_change_nothing(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    first = history_tasks(a)[0]
    await b.applier.apply_events(b.ns.id, "wf", run_id, await events_of(a, first), no_gap)
    before = await b.h.stored_state("wf")
    commits = len(b.h.store.committed)
    # a duplicate whose event 2 carries another version
    with pytest.raises(ConflictingHistory):
        await b.applier.apply_events(b.ns.id, "wf", run_id, with_version(await events_of(a, first), 2, 12), no_gap)
    # an overlapping batch whose shared part differs: its new events are not applied either
    everything = (await a.engine.executions.committed_events(b.ns.id, "wf", run_id, 1, 6))[0]
    with pytest.raises(ConflictingHistory):
        await b.applier.apply_events(b.ns.id, "wf", run_id, with_version(everything, 1, 11), no_gap)
    assert len(b.h.store.committed) == commits
    assert await b.h.stored_state("wf") == before
    assert (await b.h.state("wf")).next_event_id == 3


async def test_a_namespace_unknown_here_is_refused_before_anything_is_read_or_written(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    events = await events_of(a, a.replication[0])
    commits = len(b.h.store.committed)
    with pytest.raises(NamespaceUnknown, match="no-such-id"):
        await b.applier.apply_events("no-such-id", "wf", run_id, events, no_gap)
    with pytest.raises(NamespaceUnknown):
        await b.applier.apply_events("no-such-id", "wf", run_id, [], no_gap)
    with pytest.raises(NamespaceUnknown):
        await b.applier.apply_activity("no-such-id", "wf", run_id, ActivityInfo(scheduled_event_id=5))
    assert len(b.h.store.committed) == commits
    assert await b.applier.apply_events(b.ns.id, "wf", run_id, [], no_gap) is False


# ---------------------------------------------------------------------- activities
async def started_activity(a: Cluster, b: Cluster) -> str:
    """wf on a with activity a1 (scheduled at event 5) started; everything replicated to b: its run id."""
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(schedule_activity("a1"))
    resp = await a.h.poll_activity_task()
    assert resp.task_token
    await replicate(a, b)
    return run_id


async def test_an_activitys_attempt_state_is_copied_and_its_parked_tasks_follow(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await started_activity(a, b)
    assert [t.type for t in a.replication][-1] == TaskType.TASK_TYPE_REPLICATE_ACTIVITY
    source, target = (await a.h.state("wf")).activities[5], (await b.h.state("wf")).activities[5]
    assert target.started and target.started_identity == source.started_identity
    assert target == source  # what events carry, and the attempt's bookkeeping copied
    # started: no dispatch any more, but the start-to-close timeout
    keys = task_keys(b.parked("wf", run_id))
    assert ("DISPATCH_ACTIVITY_TASK", 5) not in keys and ("ACTIVITY_TIMEOUT", 5) in keys
    await assert_replicated(a, b, "wf", run_id)


async def test_a_stale_attempt_or_another_version_of_an_activity_is_ignored(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await started_activity(a, b)
    info = ActivityInfo()
    info.CopyFrom((await a.h.state("wf")).activities[5])
    info.attempt = 3
    assert await b.applier.apply_activity(b.ns.id, "wf", run_id, info) is True
    commits = len(b.h.store.committed)
    stale = ActivityInfo()
    stale.CopyFrom(info)
    stale.attempt = 2
    stale.started_identity = "stale"
    assert await b.applier.apply_activity(b.ns.id, "wf", run_id, stale) is False
    other = ActivityInfo()
    other.CopyFrom(info)
    other.version = 12
    other.started_identity = "other"
    assert await b.applier.apply_activity(b.ns.id, "wf", run_id, other) is False
    unknown = ActivityInfo()
    unknown.CopyFrom(info)
    unknown.scheduled_event_id = 99
    assert await b.applier.apply_activity(b.ns.id, "wf", run_id, unknown) is False
    assert await b.applier.apply_activity(b.ns.id, "wf", "no-such-run", info) is False
    assert len(b.h.store.committed) == commits
    ai = (await b.h.stored_state("wf")).activities[5]
    assert (ai.attempt, ai.started_identity) == (3, info.started_identity)
    # the same attempt again (a heartbeat) is taken
    info.heartbeat_details.payloads.add(data=b"50%")
    assert await b.applier.apply_activity(b.ns.id, "wf", run_id, info) is True
    assert (await b.h.stored_state("wf")).activities[5].heartbeat_details == info.heartbeat_details


# ---------------------------------------------------------------------- found by these tests
def schedule_activity_with_schedule_to_start(seconds: int = 10) -> command_pb.Command:
    cmd = schedule_activity("a1")
    cmd.schedule_activity_task_command_attributes.schedule_to_start_timeout.CopyFrom(Duration(seconds=seconds))
    return cmd


async def test_an_activitys_schedule_to_start_timeout_stays_parked_across_later_events(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(schedule_activity_with_schedule_to_start())
    await replicate(a, b)
    wanted = [("ACTIVITY_TIMEOUT", 5), ("DISPATCH_ACTIVITY_TASK", 5)]
    assert task_keys(b.parked("wf", run_id)) == wanted
    await a.h.signal("wf")  # anything else that happens to the run while the activity waits for a worker
    await replicate(a, b)
    keys = task_keys(b.parked("wf", run_id))
    assert ("ACTIVITY_TIMEOUT", 5) in keys
    assert ("ACTIVITY_TIMEOUT", 5) in await outstanding_keys(b.h, "wf", run_id)


async def test_a_failed_apply_retried_still_deletes_the_rows_of_the_tasks_it_made_pointless(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    await replicate(a, b)
    (parked_timer,) = b.parked("wf", run_id)
    (timer,) = a.h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    await a.h.fire_timer(timer)
    (fired,) = a.replication[a.sent :]
    events = await events_of(a, fired)
    b.h.store.fail_next_commit()
    with pytest.raises(StorageUnavailable):
        await b.applier.apply_events(b.ns.id, "wf", run_id, events, no_gap)
    assert await b.applier.apply_events(b.ns.id, "wf", run_id, events, no_gap) is True  # the receiver's retry
    assert "TIMER_FIRED" in await b.h.event_types("wf")
    assert parked_timer.task_id not in {t.task_id for t in await b.h.outstanding()}


# ---------------------------------------------------------------------- a sticky workflow task's timer
async def sticky_task_pending(a: Cluster) -> str:
    """A run on a whose worker asked for a sticky queue; a signal then scheduled a workflow task on that queue,
    with a schedule-to-start timer (the row the replay check found left over, chaos seed 497082)."""
    run_id = await a.h.start("wf")
    resp = await a.h.next_workflow_task()
    sticky = taskqueue.StickyExecutionAttributes(
        worker_task_queue=taskqueue.TaskQueue(name="worker-1-sticky"), schedule_to_start_timeout=Duration(seconds=5)
    )
    await a.h.complete_workflow_task(resp.task_token, sticky_attributes=sticky)
    await a.h.signal("wf", "s1")
    assert schedule_to_start_rows(await a.h.outstanding(), run_id), "the sticky task has its timer"
    return run_id


def schedule_to_start_rows(tasks: list[Task], run_id: str) -> list[Task]:
    return [
        t
        for t in tasks
        if t.run_id == run_id
        and t.type == TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT
        and t.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
    ]


async def replay_problems(c: Cluster, workflow_id: str, run_id: str) -> list[tuple[str, str]]:
    """What tests/support/replay_check.py finds wrong with the run's stored state, events and task rows."""
    state = await c.h.stored_state(workflow_id, run_id)
    events = await c.h.stored_events(workflow_id, run_id)
    rows = [t for t in await c.h.outstanding() if t.run_id == run_id]
    return check_execution(state, events, rows, time.time_ns(), c.ns.retention_ns)


async def test_a_replicated_apply_leaves_a_pending_sticky_tasks_timer_explained(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await sticky_task_pending(a)
    await replicate(a, b)
    await a.fail_over("b")
    await b.fail_over("b")
    await b.h.signal("wf", "s2")  # b's event extends a's branch; the sticky task stays pending, not started
    await replicate(b, a)
    state = await a.h.stored_state("wf", run_id)
    assert not state.sticky_task_queue.name  # another cluster's worker may run it now
    assert schedule_to_start_rows(await a.h.outstanding(), run_id)  # the timer's row is still there...
    assert await replay_problems(a, "wf", run_id) == []  # ...and still one the run's state gives


async def test_resetting_stickiness_leaves_a_pending_sticky_tasks_timer_explained(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, _ = pair
    run_id = await sticky_task_pending(a)
    await a.engine.reset_sticky(a.ns, "wf", run_id)  # ResetStickyTaskQueue, as a worker shutting down calls it
    assert not (await a.h.stored_state("wf", run_id)).sticky_task_queue.name
    assert await replay_problems(a, "wf", run_id) == []
    # the next workflow task goes to the normal queue, with no schedule-to-start timer
    await a.h.run_workflow_task()
    await a.h.signal("wf", "s2")
    state = await a.h.stored_state("wf", run_id)
    assert not state.HasField("sticky_schedule_to_start_timeout")
    assert await replay_problems(a, "wf", run_id) == []
