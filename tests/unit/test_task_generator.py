"""task_generator: `regenerate` gives every task a state's pending work needs (the same tasks the live path
made, versions included) without changing the state, and `task_is_current` compares a task's version with
its entity's."""

from __future__ import annotations

from temporalio.api.enums.v1 import CallbackState, TimeoutType
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration, seconds, ts_ns
from tempyral.history import rebuild, task_generator, version_history
from tempyral.history.mutable_state import MutableState
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskType
from tests.support.replay_check import stale
from tests.support.started import start_attributes

T = TaskType
TT = TimeoutType
T0 = 1_700_000_000 * 1_000_000_000
Key = tuple[int, int, str, int, int]


def key(task: Task) -> Key:
    return (task.type, task.event_id, task.timer_id, task.timeout_type, task.version)


def keys(tasks: list[Task]) -> set[Key]:
    return {key(t) for t in tasks}


class Run:
    """A run driven through MutableState, keeping every event and task it made."""

    def __init__(self, callbacks: int = 0, backoff_s: float = 0, run_timeout_s: float = 100) -> None:
        self.ms = MutableState(ExecutionState(namespace_id="ns", workflow_id="wf", run_id="run", next_event_id=1), T0)
        self.events: list[history.HistoryEvent] = []
        self.tasks: list[Task] = []
        self.ms.begin(T0)
        self.ms.state.version = 1
        attrs = start_attributes(backoff_s=backoff_s, run_timeout_s=run_timeout_s, callbacks=callbacks)
        attrs.parent_workflow_execution.workflow_id = "parent"
        self.ms.add_workflow_execution_started(attrs)
        self.commit()

    @property
    def state(self) -> ExecutionState:
        return self.ms.state

    def commit(self, advance_s: float = 1) -> None:
        self.events += [history.HistoryEvent.FromString(e.SerializeToString()) for e in self.ms.new_events]
        self.tasks += self.ms.new_tasks
        self.ms.begin(self.ms.now + seconds(advance_s))

    def replayed(self) -> ExecutionState:
        return rebuild.replay("ns", "wf", "run", self.events)


def activity(activity_id: str, heartbeat_s: float = 0) -> history.ActivityTaskScheduledEventAttributes:
    attrs = history.ActivityTaskScheduledEventAttributes(activity_id=activity_id)
    attrs.activity_type.name = "A"
    attrs.task_queue.name = "q"
    attrs.start_to_close_timeout.CopyFrom(duration(seconds(5)))
    attrs.schedule_to_close_timeout.CopyFrom(duration(seconds(60)))
    attrs.schedule_to_start_timeout.CopyFrom(duration(seconds(30)))
    if heartbeat_s:
        attrs.heartbeat_timeout.CopyFrom(duration(seconds(heartbeat_s)))
    return attrs


def nexus(request_id: str) -> history.NexusOperationScheduledEventAttributes:
    attrs = history.NexusOperationScheduledEventAttributes(
        endpoint="e", endpoint_id="eid", service="s", operation="o", request_id=request_id
    )
    attrs.schedule_to_close_timeout.CopyFrom(duration(seconds(300)))
    attrs.schedule_to_start_timeout.CopyFrom(duration(seconds(60)))
    attrs.start_to_close_timeout.CopyFrom(duration(seconds(120)))
    return attrs


class Rich:
    """Event ids of the pending work `rich()` leaves."""

    a1 = a2 = a3 = child = signal = cancel = n1 = n2 = n3 = wft = 0


def rich() -> tuple[Run, Rich]:
    """A running run with every kind of pending work: activities waiting, running (heartbeating) and backing
    off; a timer; a child to start; a signal and a cancel to send; Nexus operations scheduled, started with a
    cancel requested, and backing off; a workflow task scheduled; a run timeout. The start is at version 1,
    the rest at version 3."""
    run, ids = Run(), Rich()
    ms = run.ms
    ms.start_workflow_task("r1", "worker")
    run.commit()
    ms.state.version = 3
    done = ms.add_workflow_task_completed("worker", None, None, None).event_id
    ids.a1 = ms.add_activity_task_scheduled(activity("a1")).scheduled_event_id
    ids.a2 = ms.add_activity_task_scheduled(activity("a2", heartbeat_s=2)).scheduled_event_id
    ids.a3 = ms.add_activity_task_scheduled(activity("a3")).scheduled_event_id
    ms.add_timer_started("t1", duration(seconds(30)), done)
    child = history.StartChildWorkflowExecutionInitiatedEventAttributes(namespace="ns", workflow_id="kid")
    child.workflow_type.name = "K"
    ids.child = ms.add_start_child_initiated(child)
    signal = history.SignalExternalWorkflowExecutionInitiatedEventAttributes(signal_name="s")
    signal.workflow_execution.workflow_id = "other"
    ms.add_signal_external_initiated(signal)
    ids.signal = ms.state.next_event_id - 1
    cancel = history.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes()
    cancel.workflow_execution.workflow_id = "other"
    ms.add_cancel_external_initiated(cancel)
    ids.cancel = ms.state.next_event_id - 1
    ids.n1 = ms.add_nexus_scheduled(nexus("n1")).scheduled_event_id
    ids.n2 = ms.add_nexus_scheduled(nexus("n2")).scheduled_event_id
    ids.n3 = ms.add_nexus_scheduled(nexus("n3")).scheduled_event_id
    run.commit()
    ms.add_nexus_started(ids.n2, "token", [])
    ms.add_nexus_cancel_requested(ids.n2, done)
    n3 = ms.state.nexus_operations[ids.n3]
    n3.attempt += 1  # as the Nexus handler counts a failed attempt
    ms.nexus_attempt_failed(n3, failure_pb.Failure(message="unavailable"), ms.now + seconds(2))
    a2, a3 = ms.state.activities[ids.a2], ms.state.activities[ids.a3]
    ms.start_activity(a2, "ra2", "worker")
    ms.start_activity(a3, "ra3", "worker")
    run.commit()
    ms.retry_activity(a3, failure_pb.Failure(message="boom"), seconds(4))
    ms.schedule_workflow_task()
    ids.wft = ms.state.workflow_task.scheduled_event_id
    run.commit()
    return run, ids


def test_regenerate_gives_every_task_the_pending_work_needs() -> None:
    run, i = rich()
    expected = {
        (T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT, 0, "", 0, 1),
        (T.TASK_TYPE_DISPATCH_WORKFLOW_TASK, i.wft, "", 0, 3),
        # waiting for a worker
        (T.TASK_TYPE_DISPATCH_ACTIVITY_TASK, i.a1, "", 0, 3),
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a1, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_START, 3),
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a1, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        # running
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a2, "", TT.TIMEOUT_TYPE_START_TO_CLOSE, 3),
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a2, "", TT.TIMEOUT_TYPE_HEARTBEAT, 3),
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a2, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        # backing off
        (T.TASK_TYPE_ACTIVITY_RETRY_TIMER, i.a3, "", 0, 3),
        (T.TASK_TYPE_ACTIVITY_TIMEOUT, i.a3, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        (T.TASK_TYPE_USER_TIMER, run.state.timers["t1"].started_event_id, "t1", 0, 3),
        (T.TASK_TYPE_START_CHILD, i.child, "", 0, 3),
        (T.TASK_TYPE_SIGNAL_EXTERNAL, i.signal, "", 0, 3),
        (T.TASK_TYPE_CANCEL_EXTERNAL, i.cancel, "", 0, 3),
        # Nexus: scheduled
        (T.TASK_TYPE_NEXUS_START, i.n1, "", 0, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n1, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n1, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_START, 3),
        # started, cancel requested
        (T.TASK_TYPE_NEXUS_CANCEL, i.n2, "", 0, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n2, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n2, "", TT.TIMEOUT_TYPE_START_TO_CLOSE, 3),
        # backing off
        (T.TASK_TYPE_NEXUS_BACKOFF, i.n3, "", 0, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n3, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, 3),
        (T.TASK_TYPE_NEXUS_TIMEOUT, i.n3, "", TT.TIMEOUT_TYPE_SCHEDULE_TO_START, 3),
    }
    tasks = task_generator.regenerate(run.state, run.ms.now)
    assert sorted(key(t) for t in tasks) == sorted(expected)  # exactly these, each once


def test_regenerate_of_the_replayed_state_sends_what_no_event_says_was_sent() -> None:
    """From events alone the activities have not started and the Nexus start has not failed: they are
    dispatched and sent again (the handlers recognise a repeated request)."""
    run, i = rich()
    replayed = run.replayed()
    tasks = keys(task_generator.regenerate(replayed, run.ms.now))
    for a in (i.a1, i.a2, i.a3):
        assert (T.TASK_TYPE_DISPATCH_ACTIVITY_TASK, a, "", 0, 3) in tasks
    assert (T.TASK_TYPE_NEXUS_START, i.n3, "", 0, 3) in tasks
    assert (T.TASK_TYPE_NEXUS_CANCEL, i.n2, "", 0, 3) in tasks
    live = keys(task_generator.regenerate(run.state, run.ms.now))
    bookkeeping = {
        T.TASK_TYPE_DISPATCH_ACTIVITY_TASK,
        T.TASK_TYPE_ACTIVITY_TIMEOUT,
        T.TASK_TYPE_ACTIVITY_RETRY_TIMER,
        T.TASK_TYPE_NEXUS_START,
        T.TASK_TYPE_NEXUS_BACKOFF,
    }
    assert {k for k in live if k[0] not in bookkeeping} == {k for k in tasks if k[0] not in bookkeeping}


def test_every_outstanding_task_of_the_live_path_is_regenerated() -> None:
    """The live path and regenerate give the same task (type, event id, timer id, timeout type, version)
    for each piece of pending work; tasks the processors would drop as stale are left out."""
    for run in (rich()[0], closed(callbacks=2), Run(backoff_s=5)):
        regenerated = keys(task_generator.regenerate(run.state, run.ms.now, retention_ns=seconds(3600)))
        outstanding = [t for t in run.tasks if not stale(t, run.state)]
        assert outstanding
        missing = [T.Name(t.type) for t in outstanding if key(t) not in regenerated]
        assert missing == []


def test_regenerate_leaves_the_state_as_it_is() -> None:
    for state in (rich()[0].state, rich()[0].replayed(), closed(callbacks=1).state):
        before = state.SerializeToString(deterministic=True)
        task_generator.regenerate(state, T0 + seconds(1000), retention_ns=seconds(10))
        assert state.SerializeToString(deterministic=True) == before


def closed(callbacks: int = 0) -> Run:
    run = Run(callbacks=callbacks)
    ms = run.ms
    ms.retention_ns = seconds(3600)
    ms.start_workflow_task("r1", "worker")
    ms.state.version = 2
    done = ms.add_workflow_task_completed("worker", None, None, None).event_id
    ms.add_completed(done, None)
    run.commit()
    return run


def test_a_closed_run_needs_its_close_callbacks_and_deletion() -> None:
    run = closed(callbacks=2)
    state = run.state
    tasks = task_generator.regenerate(state, run.ms.now, retention_ns=seconds(3600))
    assert sorted((t.type, t.callback_index, t.version) for t in tasks) == [
        (T.TASK_TYPE_CLOSE_EXECUTION, 0, 2),
        (T.TASK_TYPE_CALLBACK, 0, 2),
        (T.TASK_TYPE_CALLBACK, 1, 2),
        (T.TASK_TYPE_DELETE_HISTORY, 0, 2),
    ]
    delete = next(t for t in tasks if t.type == T.TASK_TYPE_DELETE_HISTORY)
    assert ts_ns(delete.visibility_time) == ts_ns(state.close_time) + seconds(3600)
    # a delivered callback needs nothing more; one backing off needs its backoff timer
    run.ms.callback_succeeded(0)
    run.ms.callback_failed(1, failure_pb.Failure(message="503"), T0 + seconds(50))
    backoff = [t for t in run.ms.new_tasks if t.type == T.TASK_TYPE_CALLBACK_BACKOFF]
    again = task_generator.regenerate(state, run.ms.now)
    assert [key(t) for t in again if t.type in (T.TASK_TYPE_CALLBACK, T.TASK_TYPE_CALLBACK_BACKOFF)] == [
        key(backoff[0])
    ]
    assert state.callbacks[1].state == CallbackState.CALLBACK_STATE_BACKING_OFF


def test_the_start_backoff_timer_is_pending_until_the_first_workflow_task() -> None:
    run = Run(backoff_s=5)
    tasks = task_generator.regenerate(run.state, run.ms.now)
    backoff = [t for t in tasks if t.type == T.TASK_TYPE_WORKFLOW_BACKOFF_TIMER]
    assert [(ts_ns(t.visibility_time), t.version) for t in backoff] == [(T0 + seconds(5), 1)]
    assert keys(backoff) <= keys(run.tasks)
    run.ms.schedule_workflow_task()
    assert not [
        t for t in task_generator.regenerate(run.state, run.ms.now) if t.type == T.TASK_TYPE_WORKFLOW_BACKOFF_TIMER
    ]


def test_the_execution_timeout_is_generated_only_when_it_comes_before_the_run_timeout() -> None:
    run = Run(run_timeout_s=100)
    state = ExecutionState()
    state.CopyFrom(run.state)
    state.execution_expiration_time.FromNanoseconds(T0 + seconds(50))
    types = [t.type for t in task_generator.workflow_timeouts(state)]
    assert types == [T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT, T.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT]
    state.execution_expiration_time.FromNanoseconds(T0 + seconds(500))
    assert [t.type for t in task_generator.workflow_timeouts(state)] == [T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT]


# ------------------------------------------------------------------ task_is_current
def with_version(task: Task, version: int) -> Task:
    copy = Task()
    copy.CopyFrom(task)
    copy.version = version
    return copy


def test_every_regenerated_task_is_current_and_another_version_is_not() -> None:
    run, _ = rich()
    tasks = task_generator.regenerate(run.state, run.ms.now)
    for task in tasks:
        assert task_generator.task_is_current(run.state, task), T.Name(task.type)
        assert not task_generator.task_is_current(run.state, with_version(task, task.version + 1)), T.Name(task.type)


def test_a_task_whose_entity_is_gone_is_not_current() -> None:
    run, i = rich()
    tasks = task_generator.regenerate(run.state, run.ms.now)
    timer = next(t for t in tasks if t.type == T.TASK_TYPE_USER_TIMER)
    run.ms.add_timer_fired("t1")
    assert not task_generator.task_is_current(run.state, timer)
    # a new timer with the same id is another entity
    run.ms.add_timer_started("t1", duration(seconds(1)), run.state.last_workflow_task_completed_event_id)
    assert not task_generator.task_is_current(run.state, timer)
    dispatch = next(t for t in tasks if t.type == T.TASK_TYPE_DISPATCH_ACTIVITY_TASK and t.event_id == i.a1)
    run.state.activities.pop(i.a1)
    assert not task_generator.task_is_current(run.state, dispatch)


def test_run_timeouts_compare_with_the_start_event_and_close_tasks_with_the_last_event() -> None:
    run = closed(callbacks=1)
    state = run.state
    assert version_history.version_at(state, 1) == 1 and version_history.last_version(state) == 2
    run_timeout = next(t for t in run.tasks if t.type == T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT)
    assert run_timeout.version == 1 and task_generator.task_is_current(state, run_timeout)
    assert not task_generator.task_is_current(state, with_version(run_timeout, 2))
    callback = next(t for t in run.tasks if t.type == T.TASK_TYPE_CALLBACK)
    assert callback.version == 2
    assert task_generator.task_is_current(state, callback)
    assert task_generator.task_is_current(state, with_version(callback, 1))
    assert not task_generator.task_is_current(state, with_version(callback, 3))


def test_live_tasks_carry_the_version_of_their_entity() -> None:
    run, i = rich()
    by_event = {t.event_id: t.version for t in run.tasks if t.event_id and t.type != T.TASK_TYPE_WORKFLOW_TASK_TIMEOUT}
    assert by_event[i.a1] == run.state.activities[i.a1].version == 3
    first_wft = next(t for t in run.tasks if t.type == T.TASK_TYPE_DISPATCH_WORKFLOW_TASK)
    assert first_wft.version == 1  # scheduled with the start, before the failover to version 3
