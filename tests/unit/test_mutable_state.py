"""Mutable state: workflow-task life cycle, buffering, activities and timers, and that replaying the
recorded events through the appliers rebuilds the same state (DESIGN.md invariant 1): every scenario
ends by comparing the live state with its replayed history as whole messages (`rebuild.comparable`)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType, TaskQueueKind, TimeoutType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import TaskQueue

from tempyral.common.clock import duration, seconds, ts_ns
from tempyral.history import rebuild
from tempyral.history.mutable_state import MutableState
from tempyral.proto.internal_pb2 import ExecutionState, TaskType
from tests.support.started import start_attributes

E = EventType
T0 = 1_700_000_000 * 1_000_000_000


class Recorded(MutableState):
    """A MutableState that keeps every event it wrote (each `begin` commits the last transaction's)."""

    __slots__ = ("written",)

    def __init__(self, state: ExecutionState, now: int = 0) -> None:
        super().__init__(state, now)
        self.written: list[history.HistoryEvent] = []

    def begin(self, now: int) -> None:
        self.written += [history.HistoryEvent.FromString(e.SerializeToString()) for e in self.new_events]
        super().begin(now)

    def history(self) -> list[history.HistoryEvent]:
        return self.written + list(self.new_events)


def assert_replays(ms: MutableState) -> None:
    """The run's written history, and then its buffered events, replay to its live state, but for what no event
    carries."""
    assert isinstance(ms, Recorded)
    replayed = rebuild.replay("ns", "wf", "run", ms.history(), ms.state.buffered_events)
    assert rebuild.comparable(replayed) == rebuild.comparable(ms.state)


def new_state(backoff_s: float = 0.0, run_timeout_s: float = 0.0) -> MutableState:
    ms = Recorded(ExecutionState(namespace_id="ns", workflow_id="wf", run_id="run", next_event_id=1), T0)
    ms.begin(T0)
    ms.add_workflow_execution_started(start_attributes(backoff_s=backoff_s, run_timeout_s=run_timeout_s or None))
    return ms


def types(ms: MutableState) -> list[int]:
    return [e.event_type for e in ms.new_events]


def activity_attrs(activity_id: str = "a1") -> history.ActivityTaskScheduledEventAttributes:
    attrs = history.ActivityTaskScheduledEventAttributes(activity_id=activity_id)
    attrs.activity_type.name = "A"
    attrs.task_queue.name = "q"
    attrs.start_to_close_timeout.CopyFrom(duration(seconds(5)))
    attrs.schedule_to_close_timeout.CopyFrom(duration(seconds(60)))
    attrs.schedule_to_start_timeout.CopyFrom(duration(seconds(60)))
    attrs.heartbeat_timeout.CopyFrom(duration(seconds(2)))
    return attrs


def complete_task(ms: MutableState) -> history.HistoryEvent:
    return ms.add_workflow_task_completed("worker", None, None, None)


def test_start_schedules_the_first_workflow_task_and_timeouts() -> None:
    ms = new_state(run_timeout_s=30)
    assert types(ms) == [E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED, E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED]
    kinds = [t.type for t in ms.new_tasks]
    assert TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK in kinds
    run_timeout = next(t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_WORKFLOW_RUN_TIMEOUT)
    assert ts_ns(run_timeout.visibility_time) == T0 + seconds(30)
    assert_replays(ms)


def test_start_delay_sets_a_backoff_timer_instead_of_a_task() -> None:
    ms = new_state(backoff_s=5)
    assert types(ms) == [E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED]
    timer = next(t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_WORKFLOW_BACKOFF_TIMER)
    assert ts_ns(timer.visibility_time) == T0 + seconds(5)
    assert ts_ns(ms.state.execution_time) == T0 + seconds(5)
    assert_replays(ms)


def test_events_arriving_during_a_task_are_buffered_and_flushed_completions_last() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    complete_task(ms)
    ai = ms.add_activity_task_scheduled(activity_attrs())
    ms.schedule_workflow_task()
    ms.start_workflow_task("r2", "worker")
    ms.begin(T0 + 1)
    ms.start_activity(ai, "ra", "worker")
    ms.add_activity_task_completed(ai, None, "worker")
    ms.add_signaled("s", None, "client", None, "req-1")
    assert ms.new_events == []  # all buffered while the task runs
    assert [e.event_type for e in ms.state.buffered_events] == [
        E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
    ]
    assert ai.scheduled_event_id not in ms.state.activities  # state changes at once
    assert_replays(ms)  # a state with buffered events is its history and then those events
    complete_task(ms)
    ms.flush_buffered_events()
    assert types(ms) == [
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        E.EVENT_TYPE_ACTIVITY_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    ]
    started, completed = ms.new_events[1], ms.new_events[3]
    assert completed.activity_task_completed_event_attributes.started_event_id == started.event_id
    assert [e.event_id for e in ms.new_events] == list(range(ms.new_events[0].event_id, ms.state.next_event_id))
    assert_replays(ms)


def test_failed_task_becomes_transient_and_is_written_only_when_it_completes() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    ms.add_workflow_task_failed(
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, None, "w"
    )
    ms.schedule_workflow_task()
    written = ms.state.next_event_id
    assert ms.state.workflow_task.transient and ms.state.workflow_task.attempt == 2
    ms.begin(T0 + 1)
    ms.start_workflow_task("r2", "worker")
    assert ms.new_events == []  # nothing written for attempt 2
    virtual = ms.transient_workflow_task_events("worker")
    assert [e.event_id for e in virtual] == [written, written + 1]
    assert virtual[0].workflow_task_scheduled_event_attributes.attempt == 2
    complete_task(ms)
    assert types(ms) == [
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    ]
    assert [e.event_id for e in ms.new_events] == [written, written + 1, written + 2]
    assert_replays(ms)


def test_transient_task_becomes_normal_when_an_event_arrives_before_it_starts() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    ms.add_workflow_task_failed(
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, None, "w"
    )
    ms.schedule_workflow_task()
    ms.begin(T0 + 1)
    ms.add_signaled("s", None, "client", None, "")
    ms.start_workflow_task("r2", "worker")
    assert types(ms) == [
        E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
    ]
    assert ms.state.workflow_task.attempt == 1 and not ms.state.workflow_task.transient
    assert_replays(ms)


def test_failure_on_a_sticky_queue_retries_once_on_the_normal_queue() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    ms.set_sticky(TaskQueue(name="sticky-1"), duration(seconds(5)))
    complete_task(ms)
    ms.schedule_workflow_task()
    assert ms.state.workflow_task.task_queue.kind == TaskQueueKind.TASK_QUEUE_KIND_STICKY
    ms.start_workflow_task("r2", "worker")
    ms.add_workflow_task_failed(
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE, None, "w"
    )
    assert not ms.state.sticky_task_queue.name
    ms.schedule_workflow_task()
    wt = ms.state.workflow_task
    assert wt.attempt == 1 and not wt.transient and wt.task_queue.name == "q"
    assert_replays(ms)


def test_activity_start_retry_and_timers() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    complete_task(ms)
    ms.begin(T0)
    ai = ms.add_activity_task_scheduled(activity_attrs())
    timeouts = {t.timeout_type for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_ACTIVITY_TIMEOUT}
    assert timeouts == {TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START}
    ms.begin(T0 + seconds(1))
    ms.start_activity(ai, "req", "worker")
    started = {t.timeout_type: ts_ns(t.visibility_time) for t in ms.new_tasks}
    assert started[TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE] == T0 + seconds(6)
    assert started[TimeoutType.TIMEOUT_TYPE_HEARTBEAT] == T0 + seconds(3)
    ms.begin(T0 + seconds(2))
    from temporalio.api.failure.v1 import Failure

    ms.retry_activity(ai, Failure(message="boom"), seconds(1))
    assert ai.attempt == 2 and not ai.started and ai.last_failure.message == "boom"
    retry = next(t for t in ms.new_tasks if t.type == TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER)
    assert ts_ns(retry.visibility_time) == T0 + seconds(3) and retry.attempt == 2
    assert ms.new_events == []  # retries write no events
    assert_replays(ms)


def test_the_started_event_written_at_close_is_dated_when_the_attempt_started() -> None:
    """As on the reference: the event's time is the attempt's start, not the time it is written."""
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    complete_task(ms)
    ai = ms.add_activity_task_scheduled(activity_attrs())
    ms.begin(T0 + seconds(1))
    ms.start_activity(ai, "req", "worker")
    ms.begin(T0 + seconds(4))
    ms.add_activity_task_completed(ai, None, "worker")
    started, completed = ms.new_events
    assert started.event_type == E.EVENT_TYPE_ACTIVITY_TASK_STARTED
    assert ts_ns(started.event_time) == T0 + seconds(1)
    assert ts_ns(completed.event_time) == T0 + seconds(4)
    assert_replays(ms)


def test_replaying_the_events_rebuilds_the_state() -> None:
    ms = new_state(run_timeout_s=100)
    ms.start_workflow_task("r1", "worker")
    ms.begin(ms.now + 1)
    done = complete_task(ms)
    first = ms.add_activity_task_scheduled(activity_attrs("a1"))
    ms.add_activity_task_scheduled(activity_attrs("a2"))
    ms.add_timer_started("t1", duration(seconds(30)), done.event_id)
    ms.add_timer_started("t2", duration(seconds(60)), done.event_id)
    ms.begin(ms.now + 1)
    ms.start_activity(first, "ra", "worker")
    ms.add_activity_task_completed(first, None, "worker")
    ms.add_timer_fired("t1")
    ms.schedule_workflow_task()
    assert sorted(ms.state.timers) == ["t2"] and len(ms.state.activities) == 1
    assert_replays(ms)
    ms.begin(ms.now + 1)
    ms.start_workflow_task("r2", "worker")
    ms.add_signaled("during", None, "client", None, "req-9")  # buffered
    complete_task(ms)
    ms.add_timer_canceled("t2", ms.state.last_workflow_task_completed_event_id, "worker")
    ms.flush_buffered_events()
    assert_replays(ms)


def test_a_transient_task_that_keeps_failing_leaves_the_history_that_replays() -> None:
    ms = new_state()
    cause = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE
    ms.start_workflow_task("r1", "worker")
    ms.add_workflow_task_failed(cause, None, "w")
    for attempt in (2, 3):
        ms.schedule_workflow_task()
        assert_replays(ms)  # the transient task is not in history
        ms.begin(ms.now + 1)
        ms.start_workflow_task(f"r{attempt}", "worker")
        ms.add_workflow_task_failed(cause, None, "w")
    ms.schedule_workflow_task()
    ms.start_workflow_task("r4", "worker")
    complete_task(ms)
    assert ms.state.workflow_task.attempt == 1
    assert_replays(ms)


def test_terminating_flushes_buffered_events_before_the_close_event() -> None:
    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    ms.begin(T0 + 1)
    ms.add_signaled("late", None, "client", None, "")
    ms.add_terminated("stop", None, "me")
    assert types(ms) == [E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED, E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED]
    assert not ms.running and not ms.wft_pending
    assert_replays(ms)


def test_children_external_requests_nexus_and_updates_replay() -> None:
    from temporalio.api.failure.v1 import Failure

    ms = new_state()
    ms.start_workflow_task("r1", "worker")
    complete_task(ms)
    child = history.StartChildWorkflowExecutionInitiatedEventAttributes(namespace="ns", workflow_id="kid")
    child.workflow_type.name = "K"
    initiated = ms.add_start_child_initiated(child)
    signal = history.SignalExternalWorkflowExecutionInitiatedEventAttributes(signal_name="s")
    signal.workflow_execution.workflow_id = "other"
    ms.add_signal_external_initiated(signal)
    cancel = history.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes()
    cancel.workflow_execution.workflow_id = "other"
    ms.add_cancel_external_initiated(cancel)
    nexus = history.NexusOperationScheduledEventAttributes(endpoint="e", service="s", operation="o", request_id="n")
    op = ms.add_nexus_scheduled(nexus).scheduled_event_id
    ms.add_cancel_requested("because", "client", "cancel-req")
    ms.schedule_workflow_task()
    ms.begin(ms.now + 1)
    ms.start_workflow_task("r2", "worker")
    ms.add_child_started(initiated, "kid-run")  # buffered while the task runs
    ms.add_external_signal_result(next(iter(ms.state.external_signals)))
    ms.add_nexus_started(op, "token", [])
    accepted = history.WorkflowExecutionUpdateAcceptedEventAttributes(protocol_instance_id="u1")
    complete_task(ms)
    ms.add_update_accepted(accepted)
    ms.add_nexus_cancel_requested(op, ms.state.last_workflow_task_completed_event_id)
    ms.flush_buffered_events()
    assert ms.state.children[initiated].started_event_id > 0
    assert_replays(ms)
    ms.begin(ms.now + 1)
    ms.nexus_cancel_attempt_failed(ms.state.nexus_operations[op], Failure(message="busy"), ms.now + 5)
    ms.add_external_cancel_result(next(iter(ms.state.external_cancels)), failed_cause=1)
    close = history.HistoryEvent(event_type=E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED)
    close.workflow_execution_completed_event_attributes.result.payloads.add(data=b"1")
    ms.add_child_closed(initiated, "kid-run", close)
    ms.schedule_workflow_task()
    assert_replays(ms)
    assert ms.state.cancel_requested and ms.state.cancel_request_id == "cancel-req"
