"""Versions and history branches through the update path (history/executions.py) over the in-memory harness:
every change stamps the namespace's failover version on the events, entities and tasks it makes and keeps the
run's version history; reads and new events follow the run's current branch."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.history import reads, rebuild, version_history
from tempyral.persistence import branches
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskType, VersionHistoryItem
from tests.support.history_harness import Harness, event_name, start_timer

pytestmark = pytest.mark.asyncio(loop_scope="function")
FORK_ID = "fork-1"


def make_global(h: Harness, failover_version: int) -> None:
    """The namespace becomes global at `failover_version` (what a failover will do to its record)."""
    h.ns.record.is_global_namespace = True
    h.ns.record.failover_version = failover_version


def items(state: ExecutionState) -> list[tuple[int, int]]:
    return [(i.event_id, i.version) for i in version_history.current(state).items]


async def started_with_a_timer(h: Harness, failover_version: int) -> None:
    """Workflow wf in the namespace made global at `failover_version`, its first task done, timer t1 pending."""
    make_global(h, failover_version)
    await h.start("wf")
    await h.run_workflow_task(start_timer("t1"))


async def test_a_local_namespace_writes_version_0_and_one_history_item(h: Harness) -> None:
    await h.start("wf")
    await h.signal("wf")
    events = await h.events("wf")
    assert {e.version for e in events} == {0}
    state = await h.state("wf")
    assert items(state) == [(len(events), 0)]
    assert branches.current_branch(state).branch_id == state.run_id  # a run's first branch is named after it


async def test_events_entities_and_tasks_carry_the_failover_version_in_force(h: Harness) -> None:
    await started_with_a_timer(h, failover_version=2)
    before = await h.events("wf")
    assert {e.version for e in before} == {2}
    make_global(h, 12)  # failed over: new events carry the new version, the history gets a second item
    await h.signal("wf")
    after = await h.events("wf")
    assert [e.version for e in after[len(before) :]] == [12, 12]  # the signal and the workflow task it schedules
    state = await h.state("wf")
    assert items(state) == [(len(before), 2), (len(after), 12)]
    assert state.timers["t1"].version == 2  # the entity keeps the version of the event that created it
    assert state.workflow_task.version == 12
    (timer,) = h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    assert timer.version == 2
    dispatches = [t for t in h.engine.handed if t.type == TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK]
    assert dispatches[-1].version == 12
    # a replay of the events gives the same version history and entity versions
    replayed = rebuild.replay(state.namespace_id, state.workflow_id, state.run_id, after)
    assert rebuild.comparable(replayed) == rebuild.comparable(state)


async def test_a_task_of_a_superseded_version_is_dropped(h: Harness) -> None:
    await started_with_a_timer(h, failover_version=2)
    (timer,) = h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    events_before = await h.event_types("wf")
    stale = Task()
    stale.CopyFrom(timer)
    stale.version = 1  # written by a branch this run no longer follows
    await h.fire_timer(stale)
    assert await h.event_types("wf") == events_before
    await h.fire_timer(timer)
    assert (await h.event_types("wf"))[len(events_before)] == "TIMER_FIRED"


async def test_reads_and_new_events_follow_the_current_branch(h: Harness) -> None:
    run_id = await h.start("wf")
    for _ in range(3):
        await h.signal("wf")
    original = await h.events("wf")
    assert len(original) == 5  # started, task scheduled, three signals
    executions = h.engine.executions
    # The run forks after event 2 (what conflict resolution does): the state becomes that of the shared prefix on a
    # new branch, and a new event 3 is written there.
    async with executions.update(h.ns.id, "wf", run_id) as change:
        prefix = rebuild.replay(h.ns.id, "wf", run_id, original[:2])  # its version history: events 1-2
        forked = version_history.current(prefix)
        forked.branch.CopyFrom(branches.fork(branches.current_branch(change.ms.state), 2, FORK_ID))
        histories = prefix.version_histories
        histories.histories.insert(0, change.ms.state.version_histories.histories[0])  # the first branch stays
        histories.current_index = 1
        prefix.db_version = change.ms.state.db_version
        change.ms.state.CopyFrom(prefix)
        change.ms.add_signaled("on-the-fork", None, "test", common.Header(), "")
        await change.commit()
    entry = h.cache_entry("wf", run_id)
    assert entry is not None
    h.shard("wf").evict_state(entry)  # read from the store, not from the cache
    events = await h.events("wf")
    assert [(e.event_id, event_name(e)) for e in events] == [
        (1, "WORKFLOW_EXECUTION_STARTED"),
        (2, "WORKFLOW_TASK_SCHEDULED"),
        (3, "WORKFLOW_EXECUTION_SIGNALED"),
    ]
    assert events[2].workflow_execution_signaled_event_attributes.signal_name == "on-the-fork"
    state = await h.state("wf")
    assert branches.current_branch(state).branch_id == FORK_ID
    assert list(version_history.current(state).items) == [VersionHistoryItem(event_id=3, version=0)]
    # the history API serves the current branch too; the first branch keeps its own events
    page = await reads.get_history(
        executions,
        h.ns,
        ws.GetWorkflowExecutionHistoryRequest(
            namespace=h.ns.name, execution=common.WorkflowExecution(workflow_id="wf", run_id=run_id)
        ),
        0.1,
    )
    assert [e.event_id for e in page.history.events] == [1, 2, 3]
    assert await h.stored_events("wf") == original
