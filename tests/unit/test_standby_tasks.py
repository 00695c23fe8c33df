"""Standby and failover on the history side: the parked tasks of a namespace standby here (history/standby.py),
how the engine parks and releases them (HistoryEngine._on_tasks, _namespace_changed, _execute_timer), the active
check at commit, and the workflow task the old active started, failed on the new one
(executions.fail_workflow_task_of_old_active). Two in-process clusters, tests/support/xdc_pair.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from google.protobuf.timestamp_pb2 import Timestamp
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.errors import NamespaceNotActive
from tempyral.history.engine import HistoryEngine
from tempyral.history.standby import StandbyTasks, task_key
from tempyral.history.starts import ParentInfo
from tempyral.proto.internal_pb2 import NamespaceRecord, Task, TaskCategory, TaskType
from tests.support.history_harness import TASK_QUEUE, event_name, eventually, start_timer, task_keys
from tests.support.xdc_pair import Cluster, open_pair, replicate

pytestmark = pytest.mark.asyncio(loop_scope="function")
TIMER = TaskCategory.TASK_CATEGORY_TIMER
TRANSFER = TaskCategory.TASK_CATEGORY_TRANSFER
REPLICATION = TaskCategory.TASK_CATEGORY_REPLICATION
FAILOVER_CLOSE_COMMAND = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_FAILOVER_CLOSE_COMMAND


@pytest_asyncio.fixture(loop_scope="function")
async def pair() -> AsyncIterator[tuple[Cluster, Cluster]]:
    async with open_pair() as clusters:
        yield clusters


def task(
    task_id: int,
    task_type: int = TaskType.TASK_TYPE_USER_TIMER,
    category: int = TIMER,
    namespace_id: str = "ns",
    workflow_id: str = "wf",
    run_id: str = "run",
    event_id: int = 5,
    at: int = 100,
) -> Task:
    return Task(
        task_id=task_id,
        shard_id=1,
        category=category,  # type: ignore[arg-type]
        type=task_type,  # type: ignore[arg-type]
        namespace_id=namespace_id,
        workflow_id=workflow_id,
        run_id=run_id,
        event_id=event_id,
        visibility_time=Timestamp(seconds=at),
    )


# ---------------------------------------------------------------------- StandbyTasks
async def test_a_task_key_names_the_work_not_the_row() -> None:
    timer = task(7)
    moved = task(9)
    moved.shard_id = 3
    assert task_key(timer) == task_key(moved)  # another row (task id, shard) for the same work
    assert task_key(timer) != task_key(task(7, at=101))  # a timer's time is part of its work
    # a transfer task regenerated later is the same work, whatever its creation time
    dispatch = task(7, TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK, TRANSFER)
    assert task_key(dispatch) == task_key(task(8, TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK, TRANSFER, at=555))
    assert task_key(timer) != task_key(task(7, event_id=6))
    other_version = task(7)
    other_version.version = 12
    assert task_key(timer) != task_key(other_version)
    assert timer.task_id == 7 and timer.shard_id == 1  # the task itself is left alone


async def test_release_hands_back_one_namespaces_tasks_oldest_first() -> None:
    standby = StandbyTasks()
    for t in (task(30, run_id="r2"), task(10, run_id="r1"), task(20, run_id="r2"), task(5, namespace_id="other")):
        standby.park(t)
    assert len(standby) == 4
    assert [t.task_id for t in standby.parked("ns", "wf", "r2")] == [30, 20]
    standby.parked("ns", "wf", "r2").clear()  # a copy
    assert [t.task_id for t in standby.release("ns")] == [10, 20, 30]
    assert len(standby) == 1
    assert standby.release("ns") == [] and standby.parked("ns", "wf", "r1") == []
    assert [t.task_id for t in standby.parked("other", "wf", "run")] == [5]
    assert standby.release("unknown") == [] and len(standby) == 1


async def test_not_wanted_names_the_runs_tasks_whose_work_is_gone_and_drop_forgets_them() -> None:
    standby = StandbyTasks()
    keep, drop1, drop2 = task(1, event_id=5), task(2, event_id=6), task(3, event_id=7)
    elsewhere = task(4, event_id=6, run_id="other-run")
    for t in (keep, drop1, drop2, elsewhere):
        standby.park(t)
    wanted = {task_key(task(99, event_id=5))}  # the same work, regenerated under another id
    pointless = standby.not_wanted("ns", "wf", "run", wanted)
    assert [t.task_id for t in pointless] == [2, 3]
    assert len(standby) == 4  # named, not yet forgotten: the commit that deletes their rows may fail
    standby.drop(pointless)
    assert [t.task_id for t in standby.parked("ns", "wf", "run")] == [1]
    assert [t.task_id for t in standby.parked("ns", "wf", "other-run")] == [4]  # another run is not touched
    assert len(standby) == 2
    last = standby.not_wanted("ns", "wf", "run", set())
    assert [t.task_id for t in last] == [1]
    standby.drop(last)
    assert standby.parked("ns", "wf", "run") == [] and len(standby) == 1
    assert standby.not_wanted("ns", "wf", "run", set()) == []
    assert standby.not_wanted("unknown", "wf", "run", set()) == []
    standby.drop([task(7, event_id=1, run_id="never-parked")])  # nothing to forget: no effect
    assert len(standby) == 1
    assert [t.task_id for t in standby.release("ns")] == [4]


async def test_forget_run_drops_that_runs_tasks_only() -> None:
    standby = StandbyTasks()
    for t in (task(1), task(2), task(3, run_id="r2")):
        standby.park(t)
    standby.forget_run("ns", "wf", "run")
    assert standby.parked("ns", "wf", "run") == [] and len(standby) == 1
    standby.forget_run("ns", "wf", "run")
    standby.forget_run("unknown", "wf", "run")
    assert len(standby) == 1 and [t.task_id for t in standby.release("ns")] == [3]


# ---------------------------------------------------------------------- the engine parks and releases
async def test_tasks_of_a_namespace_standby_here_are_parked_but_retention_and_replication_go_on(
    pair: tuple[Cluster, Cluster],
) -> None:
    _, b = pair
    g, local = b.ns.id, b.namespaces.get("default").id
    announced: list[Task] = []
    b.engine.on_replication_tasks = announced.extend
    tasks = [
        task(1, namespace_id=g),
        task(2, TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK, TRANSFER, namespace_id=g),
        task(3, TaskType.TASK_TYPE_DELETE_HISTORY, namespace_id=g),
        task(4, TaskType.TASK_TYPE_REPLICATE_HISTORY, REPLICATION, namespace_id=g),
        task(5, namespace_id=local),
    ]
    HistoryEngine._on_tasks(b.engine, tasks)
    assert [t.task_id for t in b.engine.executions.standby.release(g)] == [1, 2]
    assert len(b.engine.timer_queue) == 2  # the retention timer and the local namespace's timer
    assert [t.task_id for t in announced] == [4]
    assert b.h.matching.added == []


async def test_a_failover_here_releases_the_parked_tasks_to_this_clusters_queues(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    await a.h.signal("wf")
    await replicate(a, b)
    parked = b.parked("wf", run_id)
    assert task_keys(parked) == [("DISPATCH_WORKFLOW_TASK", 7), ("USER_TIMER", 5)]
    rows = await b.h.outstanding()
    handed = len(b.engine.handed)
    await b.fail_over("b")
    assert len(b.engine.executions.standby) == 0 and b.parked("wf", run_id) == []
    # the dispatch reaches matching, the timer is handed on again; their rows are the same
    assert [t.task_id for t in b.engine.handed[handed:]] == sorted(t.task_id for t in parked)
    assert [item.task_id for _, item in b.h.matching.added] == [t.task_id for t in parked if t.category == TRANSFER]
    assert await b.h.outstanding() == rows
    # and b's workers take the workflow over, under b's version
    resp = await b.h.next_workflow_task()
    assert resp.workflow_execution.run_id == run_id
    assert (await b.h.events("wf"))[-1].version == 2


async def test_a_namespace_change_that_leaves_it_standby_here_releases_nothing(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await replicate(a, b)
    parked = b.parked("wf", run_id)
    assert parked
    handed = len(b.engine.handed)
    record = NamespaceRecord()
    record.CopyFrom(b.ns.record)
    record.info.description = "changed"
    record.config_version += 1
    await b.namespaces.save(record)  # not a failover
    await a.fail_over("a")  # the active takes a new version (a failover that keeps it in a): b hears of it
    assert await b.namespaces.apply_replicated(a.ns.record)
    assert b.ns.failover_version == 11 and b.ns.active_cluster == "a"
    assert b.parked("wf", run_id) == parked
    assert len(b.engine.handed) == handed  # not released (and parked again)


async def test_a_change_of_a_namespace_already_active_here_releases_nothing(
    pair: tuple[Cluster, Cluster], caplog: pytest.LogCaptureFixture
) -> None:
    a, _ = pair
    held = task(1, namespace_id=a.ns.id)  # parked while the namespace was standby here, not yet released
    a.engine.executions.standby.park(held)
    record = NamespaceRecord()
    record.CopyFrom(a.ns.record)
    record.config_version += 1
    await a.namespaces.save(record)
    assert a.parked("wf", "run") == [held]
    assert "is active on this cluster now" not in caplog.text


async def test_a_workflow_task_the_old_active_started_fails_when_the_namespace_fails_over_here(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.next_workflow_task()  # started on a under version 1; its worker will never complete it
    await replicate(a, b)
    assert [t.type for t in b.parked("wf", run_id)] == [TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT]
    commits = len(b.h.store.committed)
    await b.fail_over("b")
    await eventually(lambda: len(b.h.store.committed) > commits)
    events = await b.h.events("wf")
    assert [(event_name(e), e.version) for e in events[2:]] == [
        ("WORKFLOW_TASK_STARTED", 1),
        ("WORKFLOW_TASK_FAILED", 2),
        ("WORKFLOW_TASK_SCHEDULED", 2),
    ]
    assert events[3].workflow_task_failed_event_attributes.cause == FAILOVER_CLOSE_COMMAND
    assert events[4].workflow_task_scheduled_event_attributes.attempt == 1
    # b writes now, so its change goes to a, where the namespace is standby after the same failover
    assert await a.namespaces.apply_replicated(b.ns.record)
    await replicate(b, a)
    assert [event_name(e) for e in (await a.h.events("wf"))[3:]] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_TASK_SCHEDULED"]
    resp = await b.h.next_workflow_task()
    assert resp.attempt == 1


async def test_a_timer_that_fires_after_a_failover_away_is_parked(pair: tuple[Cluster, Cluster]) -> None:
    a, _ = pair
    run_id = await a.h.start("wf")
    await a.h.run_workflow_task(start_timer("t1"))
    (timer,) = a.h.handed_timers(TaskType.TASK_TYPE_USER_TIMER)
    before = await a.h.event_types("wf")
    await a.fail_over("b")
    await a.engine._execute_timer(timer)  # the timer queue's runner
    assert a.parked("wf", run_id) == [timer]
    assert await a.h.event_types("wf") == before


# ---------------------------------------------------------------------- the active check at commit
async def test_a_write_on_a_standby_cluster_is_refused_and_leaves_nothing(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await replicate(a, b)
    commits = len(b.h.store.committed)
    with pytest.raises(NamespaceNotActive, match="is active in cluster: a, while current cluster b is a standby"):
        await b.h.signal("wf")
    with pytest.raises(NamespaceNotActive):
        await b.h.start("wf2")
    assert len(b.h.store.committed) == commits
    assert await b.h.event_types("wf", run_id) == ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED"]
    assert await b.h.current("wf2") is None
    # a local namespace on the same cluster takes writes
    local = b.namespaces.get("default")
    await b.engine.start_workflow(
        local,
        ws.StartWorkflowExecutionRequest(
            namespace="default",
            workflow_id="wf3",
            workflow_type=common.WorkflowType(name="W"),
            task_queue=taskqueue.TaskQueue(name=TASK_QUEUE),
            request_id="r",
        ),
    )


async def test_a_workflow_task_of_an_older_version_is_failed_in_its_own_transaction(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, _ = pair
    run_id = await a.h.start("wf")
    await a.h.next_workflow_task()  # started under version 1
    await a.fail_over("b")
    await a.fail_over("a")  # back: version 11
    sent = len(a.replication)
    executions = a.engine.executions
    async with executions.update(a.ns.id, "wf", run_id):
        pass  # a handler that commits nothing
    state = await a.h.stored_state("wf")
    events = await a.h.stored_events("wf")
    assert [(event_name(e), e.version) for e in events[3:]] == [
        ("WORKFLOW_TASK_FAILED", 11),
        ("WORKFLOW_TASK_SCHEDULED", 11),
    ]
    assert events[3].workflow_task_failed_event_attributes.cause == FAILOVER_CLOSE_COMMAND
    wt = state.workflow_task
    assert wt.scheduled and not wt.started_event_id and wt.attempt == 1 and not wt.transient
    assert [(t.type, t.event_id, t.next_event_id) for t in a.replication[sent:]] == [
        (TaskType.TASK_TYPE_REPLICATE_HISTORY, 4, 6)
    ]
    async with executions.update(a.ns.id, "wf", run_id):
        pass  # once only
    assert len(await a.h.stored_events("wf")) == 5


async def test_a_workflow_task_is_left_alone_under_its_own_version_and_on_a_standby(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    run_id = await a.h.start("wf")
    await a.h.next_workflow_task()
    await replicate(a, b)
    async with a.engine.executions.update(a.ns.id, "wf", run_id):
        pass
    assert len(await a.h.stored_events("wf")) == 3
    # b hears of a failover b -> a it never took part in: version 11 > 1, but b is standby and writes nothing
    await a.fail_over("b")
    await a.fail_over("a")
    assert await b.namespaces.apply_replicated(a.ns.record)
    assert b.ns.failover_version == 11
    state = await b.h.state("wf")  # a read takes the run's update path: nothing is failed, nothing refused
    assert state.workflow_task.started_event_id == 3
    assert len(await b.h.stored_events("wf")) == 3


# ---------------------------------------------------------------------- retention on a standby
async def test_a_run_deleted_by_retention_on_a_standby_leaves_no_parked_task(pair: tuple[Cluster, Cluster]) -> None:
    a, b = pair
    parent = ParentInfo("g", a.ns.id, "parent", "parent-run", 5, common.WorkflowExecution(workflow_id="parent"))
    req = ws.StartWorkflowExecutionRequest(
        namespace="g",
        workflow_id="child",
        workflow_type=common.WorkflowType(name="W"),
        task_queue=taskqueue.TaskQueue(name=TASK_QUEUE),
        request_id="r",
    )
    run_id = (await a.engine.start_workflow(a.ns, req, parent=parent)).run_id
    await a.h.terminate("child")
    await replicate(a, b)
    # the closed child still has to tell its parent: that is parked on b; retention is not
    assert [t.type for t in b.parked("child", run_id)] == [TaskType.TASK_TYPE_CLOSE_EXECUTION]
    (delete,) = [t for t in b.engine.handed if t.type == TaskType.TASK_TYPE_DELETE_HISTORY]
    await b.h.fire_timer(delete)
    assert await b.h.current("child") is None  # the run is gone on b
    assert b.parked("child", run_id) == []
    assert len(b.engine.executions.standby) == 0


async def test_a_signal_the_old_active_buffered_is_not_lost_in_a_planned_failover(
    pair: tuple[Cluster, Cluster],
) -> None:
    a, b = pair
    await a.h.start("wf")
    await a.h.next_workflow_task()  # its worker is still working on it when the operator fails over
    await a.h.signal("wf", request_id="accepted")  # answered OK by the active cluster
    await a.fail_over("b")  # a planned failover, issued on a: a takes no more requests
    with pytest.raises(NamespaceNotActive):
        await a.h.signal("wf")
    # a writes what only it has, as the old active (the reference's "active -> passive" case): the task fails,
    # the signal is written, a new task is scheduled; b's pull of the failover waits for this (ReplicationService)
    await a.engine.handoffs_done()
    tail = await a.h.event_types("wf")
    assert tail[-3:] == ["WORKFLOW_TASK_FAILED", "WORKFLOW_EXECUTION_SIGNALED", "WORKFLOW_TASK_SCHEDULED"]
    assert {e.version for e in (await a.h.stored_events("wf"))} == {1}  # under a's version, not b's
    await replicate(a, b)  # b catches up with everything a wrote before it takes the namespace
    assert await b.namespaces.apply_replicated(a.ns.record)
    assert await b.h.event_types("wf") == await a.h.event_types("wf")
    assert b.engine.executions.standby.parked(a.ns.id, "wf", (await b.h.state("wf")).run_id) == []
