"""The transfer and timer tasks an execution's state needs.

Functions of the state (and the entity a task serves, and the time where a deadline counts from
"now"); none changes the state. The active path (`MutableState`, right after an event was applied
or bookkeeping changed) and a rebuild (`regenerate`: every task the pending work of a state needs)
build their tasks here, so both give the same task for the same pending entity.

Every task carries a version (docs/DESIGN.md §4): the version of the entity it serves (the event
that created the activity, timer, child, external request, Nexus operation or workflow task), the
version of the start event for the run's timeouts and start backoff, and the version of the last
event for the tasks of a closed run (close, delete, callbacks). `task_is_current` says whether a
task's version still matches its entity's.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import (
    CallbackState,
    NexusOperationCancellationState,
    PendingNexusOperationState,
)
from temporalio.api.enums.v1 import task_queue_pb2 as tq_enums
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums

from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.common.durations import saturated_ns
from tempyral.history import version_history
from tempyral.persistence.branches import current_branch_id
from tempyral.proto.internal_pb2 import (
    ActivityInfo,
    ChildInfo,
    ExecutionState,
    ExternalRequestInfo,
    NexusOperationInfo,
    Task,
    TaskCategory,
    TaskType,
    TimerInfo,
)

TimeoutType = wf_enums.TimeoutType
NexusState = PendingNexusOperationState
CancelState = NexusOperationCancellationState
TRANSFER = TaskCategory.TASK_CATEGORY_TRANSFER
TIMER = TaskCategory.TASK_CATEGORY_TIMER
REPLICATION = TaskCategory.TASK_CATEGORY_REPLICATION
STICKY = tq_enums.TASK_QUEUE_KIND_STICKY
RUNNING = wf_enums.WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING


# ------------------------------------------------------------------ building blocks
def _transfer(state: ExecutionState, task_type: int, version: int, **fields: object) -> Task:
    return Task(
        type=task_type,  # type: ignore[arg-type]
        category=TRANSFER,
        namespace_id=state.namespace_id,
        workflow_id=state.workflow_id,
        run_id=state.run_id,
        version=version,
        **fields,  # type: ignore[arg-type]
    )


def _timer(state: ExecutionState, task_type: int, fire_at: int, version: int, **fields: object) -> Task:
    task = Task(
        type=task_type,  # type: ignore[arg-type]
        category=TIMER,
        namespace_id=state.namespace_id,
        workflow_id=state.workflow_id,
        run_id=state.run_id,
        version=version,
        **fields,  # type: ignore[arg-type]
    )
    task.visibility_time.CopyFrom(timestamp(fire_at))
    return task


def start_version(state: ExecutionState) -> int:
    """The version of the start event: the version of the run's timeouts and start backoff."""
    try:
        return version_history.version_at(state, 1)
    except version_history.VersionHistoryError:
        return state.version


def close_version(state: ExecutionState) -> int:
    """The version of the tasks of a closed run: the version of its last event."""
    return version_history.last_version(state)


# ------------------------------------------------------------------ the run
def workflow_timeouts(state: ExecutionState) -> list[Task]:
    """The run timeout, and the execution timeout when it comes first."""
    version = start_version(state)
    run, execution = ts_ns(state.run_expiration_time), ts_ns(state.execution_expiration_time)
    tasks = []
    if run:
        tasks.append(_timer(state, TaskType.TASK_TYPE_WORKFLOW_RUN_TIMEOUT, run, version))
    if execution and (not run or execution < run):
        tasks.append(_timer(state, TaskType.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT, execution, version))
    return tasks


def workflow_backoff(state: ExecutionState) -> list[Task]:
    """The timer that schedules the first workflow task of a delayed start (a cron or retry run,
    or a start delay), when the start's backoff is over."""
    return [_timer(state, TaskType.TASK_TYPE_WORKFLOW_BACKOFF_TIMER, ts_ns(state.execution_time), start_version(state))]


def backoff_pending(state: ExecutionState) -> bool:
    """The run waits out its start backoff: no workflow task was ever scheduled."""
    wt = state.workflow_task
    return (
        state.status == RUNNING
        and duration_ns(state.start.first_workflow_task_backoff) > 0
        and not wt.scheduled
        and wt.stamp == 0
        and wt.attempt <= 1
        and not state.last_workflow_task_completed_event_id
    )


def close_execution(state: ExecutionState) -> list[Task]:
    """Tell the parent, and apply the parent-close policies of the children."""
    if not (state.start.HasField("parent_workflow_execution") or state.children):
        return []
    return [_transfer(state, TaskType.TASK_TYPE_CLOSE_EXECUTION, close_version(state))]


def delete_history(state: ExecutionState, retention_ns: int) -> list[Task]:
    """Delete the closed run once its retention is over (none without a retention)."""
    if not retention_ns:
        return []
    fire_at = ts_ns(state.close_time) + retention_ns
    return [_timer(state, TaskType.TASK_TYPE_DELETE_HISTORY, fire_at, close_version(state))]


def callback(state: ExecutionState, index: int) -> list[Task]:
    """Deliver the run's outcome to completion callback `index` (its next attempt)."""
    attempt = state.callbacks[index].attempt + 1
    return [_transfer(state, TaskType.TASK_TYPE_CALLBACK, close_version(state), callback_index=index, attempt=attempt)]


def callback_backoff(state: ExecutionState, index: int) -> list[Task]:
    cb = state.callbacks[index]
    fire_at = ts_ns(cb.next_attempt_schedule_time)
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_CALLBACK_BACKOFF,
            fire_at,
            close_version(state),
            callback_index=index,
            attempt=cb.attempt,
        )
    ]


def callbacks(state: ExecutionState) -> list[Task]:
    """A task for every callback still to deliver: due now, or after its backoff."""
    tasks: list[Task] = []
    for index, cb in enumerate(state.callbacks):
        if cb.state == CallbackState.CALLBACK_STATE_SCHEDULED:
            tasks += callback(state, index)
        elif cb.state == CallbackState.CALLBACK_STATE_BACKING_OFF:
            tasks += callback_backoff(state, index)
    return tasks


# ------------------------------------------------------------------ workflow tasks
def workflow_task_dispatch(state: ExecutionState, now: int) -> list[Task]:
    """Send the pending workflow task to matching (and, on a sticky queue, give up on the sticky
    worker after its schedule-to-start timeout)."""
    wt = state.workflow_task
    tasks = [
        _transfer(
            state,
            TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK,
            wt.version,
            event_id=wt.scheduled_event_id,
            attempt=wt.attempt,
            stamp=wt.stamp,
            task_queue=wt.task_queue,
        )
    ]
    if wt.task_queue.kind == STICKY:
        s2s = saturated_ns(state.sticky_schedule_to_start_timeout)  # as the worker gave it: unchecked
        if s2s > 0:
            tasks.append(
                _timer(
                    state,
                    TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT,
                    now + s2s,
                    wt.version,
                    event_id=wt.scheduled_event_id,
                    attempt=wt.attempt,
                    stamp=wt.stamp,
                    timeout_type=TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START,
                )
            )
    return tasks


def workflow_task_timeout(state: ExecutionState) -> list[Task]:
    """The start-to-close timeout of the started workflow task."""
    wt = state.workflow_task
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT,
            ts_ns(wt.started_time) + duration_ns(wt.start_to_close_timeout),
            wt.version,
            event_id=wt.scheduled_event_id,
            attempt=wt.attempt,
            stamp=wt.stamp,
            timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
        )
    ]


# ------------------------------------------------------------------ activities
def _activity_timer(state: ExecutionState, ai: ActivityInfo, fire_at: int, timeout_type: int) -> Task:
    return _timer(
        state,
        TaskType.TASK_TYPE_ACTIVITY_TIMEOUT,
        fire_at,
        ai.version,
        event_id=ai.scheduled_event_id,
        attempt=ai.attempt,
        timeout_type=timeout_type,
    )


def activity_dispatch(state: ExecutionState, ai: ActivityInfo, now: int) -> list[Task]:
    """Send the activity's current attempt to matching, with its schedule-to-start timeout."""
    tasks = [
        _transfer(
            state,
            TaskType.TASK_TYPE_DISPATCH_ACTIVITY_TASK,
            ai.version,
            event_id=ai.scheduled_event_id,
            attempt=ai.attempt,
            stamp=ai.stamp,
            task_queue=ai.scheduled.task_queue,
        )
    ]
    s2s = duration_ns(ai.scheduled.schedule_to_start_timeout)
    if s2s > 0:
        tasks.append(_activity_timer(state, ai, now + s2s, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START))
    return tasks


def activity_schedule_to_close(state: ExecutionState, ai: ActivityInfo) -> list[Task]:
    if not ts_ns(ai.expiration_time):
        return []
    return [_activity_timer(state, ai, ts_ns(ai.expiration_time), TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE)]


def activity_start_to_close(state: ExecutionState, ai: ActivityInfo) -> list[Task]:
    s2c = duration_ns(ai.scheduled.start_to_close_timeout)
    if s2c <= 0:
        return []
    return [_activity_timer(state, ai, ts_ns(ai.started_time) + s2c, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)]


def activity_heartbeat_timeout(state: ExecutionState, ai: ActivityInfo) -> list[Task]:
    """The heartbeat deadline of the started attempt, from its last heartbeat (or its start)."""
    hb = duration_ns(ai.scheduled.heartbeat_timeout)
    if hb <= 0:
        return []
    last = ts_ns(ai.last_heartbeat_time) or ts_ns(ai.started_time)
    fire_at = max(last, ts_ns(ai.started_time)) + hb
    return [_activity_timer(state, ai, fire_at, TimeoutType.TIMEOUT_TYPE_HEARTBEAT)]


def activity_retry_timer(state: ExecutionState, ai: ActivityInfo) -> list[Task]:
    """Dispatch the next attempt when its backoff is over."""
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER,
            ts_ns(ai.next_attempt_schedule_time),
            ai.version,
            event_id=ai.scheduled_event_id,
            attempt=ai.attempt,
            stamp=ai.stamp,
        )
    ]


def activity_tasks(state: ExecutionState, ai: ActivityInfo, now: int) -> list[Task]:
    """Every task a pending activity needs in its current phase: waiting for a worker, running,
    or backing off before its next attempt; and its schedule-to-close timeout."""
    tasks = activity_schedule_to_close(state, ai)
    if ai.started:
        tasks += activity_start_to_close(state, ai) + activity_heartbeat_timeout(state, ai)
    elif ai.HasField("next_attempt_schedule_time"):
        tasks += activity_retry_timer(state, ai)
    else:
        tasks += activity_dispatch(state, ai, now)
    return tasks


# ------------------------------------------------------------------ timers, children, external requests
def user_timer(state: ExecutionState, info: TimerInfo) -> list[Task]:
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_USER_TIMER,
            ts_ns(info.expiry_time),
            info.version,
            event_id=info.started_event_id,
            timer_id=info.timer_id,
        )
    ]


def start_child(state: ExecutionState, child: ChildInfo) -> list[Task]:
    return [_transfer(state, TaskType.TASK_TYPE_START_CHILD, child.version, event_id=child.initiated_event_id)]


def signal_external(state: ExecutionState, info: ExternalRequestInfo) -> list[Task]:
    return [_transfer(state, TaskType.TASK_TYPE_SIGNAL_EXTERNAL, info.version, event_id=info.initiated_event_id)]


def cancel_external(state: ExecutionState, info: ExternalRequestInfo) -> list[Task]:
    return [_transfer(state, TaskType.TASK_TYPE_CANCEL_EXTERNAL, info.version, event_id=info.initiated_event_id)]


# ------------------------------------------------------------------ Nexus operations
def nexus_start(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """Send the operation's start request (again: the handler knows it by its request id)."""
    return [
        _transfer(
            state, TaskType.TASK_TYPE_NEXUS_START, info.version, event_id=info.scheduled_event_id, attempt=info.attempt
        )
    ]


def nexus_backoff(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """Send the start request again when the backoff (or the block) is over."""
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_NEXUS_BACKOFF,
            ts_ns(info.next_attempt_schedule_time),
            info.version,
            event_id=info.scheduled_event_id,
            attempt=info.attempt,
        )
    ]


def _nexus_timer(state: ExecutionState, info: NexusOperationInfo, fire_at: int, timeout_type: int) -> Task:
    return _timer(
        state,
        TaskType.TASK_TYPE_NEXUS_TIMEOUT,
        fire_at,
        info.version,
        event_id=info.scheduled_event_id,
        timeout_type=timeout_type,
    )


def nexus_timeouts(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """The schedule-to-close timeout, and the schedule-to-start one until the operation starts,
    counted from when it was scheduled."""
    scheduled = ts_ns(info.scheduled_time)
    tasks = []
    s2c = duration_ns(info.schedule_to_close_timeout)
    if s2c > 0:
        tasks.append(_nexus_timer(state, info, scheduled + s2c, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE))
    s2s = duration_ns(info.schedule_to_start_timeout)
    if s2s > 0 and info.state != NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED:
        tasks.append(_nexus_timer(state, info, scheduled + s2s, TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START))
    return tasks


def nexus_start_to_close(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """The start-to-close timeout of a started operation, counted from its start."""
    start_to_close = duration_ns(info.start_to_close_timeout)
    if start_to_close <= 0:
        return []
    fire_at = ts_ns(info.started_time) + start_to_close
    return [_nexus_timer(state, info, fire_at, TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE)]


def nexus_cancel(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """Send the cancel request of a started operation (its next attempt)."""
    return [
        _transfer(
            state,
            TaskType.TASK_TYPE_NEXUS_CANCEL,
            info.version,
            event_id=info.scheduled_event_id,
            attempt=info.cancellation.attempt + 1,
        )
    ]


def nexus_cancel_backoff(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    c = info.cancellation
    return [
        _timer(
            state,
            TaskType.TASK_TYPE_NEXUS_CANCEL_BACKOFF,
            ts_ns(c.next_attempt_schedule_time),
            info.version,
            event_id=info.scheduled_event_id,
            attempt=c.attempt,
        )
    ]


def nexus_tasks(state: ExecutionState, info: NexusOperationInfo) -> list[Task]:
    """Every task a pending Nexus operation needs: its start request (now or after a backoff) or,
    once started, its start-to-close timeout and a requested cancel; and its timeouts."""
    tasks = nexus_timeouts(state, info)
    if info.state == NexusState.PENDING_NEXUS_OPERATION_STATE_STARTED:
        tasks += nexus_start_to_close(state, info)
        c = info.cancellation
        if c.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED:
            tasks += nexus_cancel(state, info)
        elif c.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF:
            if c.HasField("next_attempt_schedule_time"):
                tasks += nexus_cancel_backoff(state, info)
            else:
                tasks += nexus_cancel(state, info)
    elif info.state in (
        NexusState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF,
        NexusState.PENDING_NEXUS_OPERATION_STATE_BLOCKED,
    ) and info.HasField("next_attempt_schedule_time"):
        tasks += nexus_backoff(state, info)
    else:
        tasks += nexus_start(state, info)
    return tasks


# ------------------------------------------------------------------ everything
def regenerate(state: ExecutionState, now: int, retention_ns: int = 0) -> list[Task]:
    """Every task the pending work of `state` needs (a state rebuilt from events, or one whose tasks
    were lost). Leaves `state` as it is; `now` is when deadlines counted from "now" start (the
    schedule-to-start timeouts of dispatches), `retention_ns` how long a closed run is kept."""
    if state.status != RUNNING:
        return close_execution(state) + callbacks(state) + delete_history(state, retention_ns)
    tasks = workflow_timeouts(state)
    if backoff_pending(state):
        tasks += workflow_backoff(state)
    wt = state.workflow_task
    if wt.scheduled:
        tasks += workflow_task_timeout(state) if wt.started_event_id else workflow_task_dispatch(state, now)
    for ai in state.activities.values():
        tasks += activity_tasks(state, ai, now)
    for timer in state.timers.values():
        tasks += user_timer(state, timer)
    for child in state.children.values():
        if not child.started_run_id:
            tasks += start_child(state, child)
    for signal in state.external_signals.values():
        tasks += signal_external(state, signal)
    for cancel in state.external_cancels.values():
        tasks += cancel_external(state, cancel)
    for op in state.nexus_operations.values():
        tasks += nexus_tasks(state, op)
    if state.HasField("schedule"):
        tasks += schedule_wake(state)
    return tasks


def schedule_wake(state: ExecutionState) -> list[Task]:
    """The wake timer of a schedule's scheduler run (schedules/runner.py); its stamp tells the one in force."""
    sched = state.schedule
    wake = ts_ns(sched.wake_time)
    return [_timer(state, TaskType.TASK_TYPE_SCHEDULE_WAKE, wake, start_version(state), stamp=sched.timer_stamp)]


# ------------------------------------------------------------------ replication (global namespaces)
def _replication(state: ExecutionState, task_type: int, now: int, **fields: object) -> Task:
    task = Task(
        type=task_type,  # type: ignore[arg-type]
        category=REPLICATION,
        namespace_id=state.namespace_id,
        workflow_id=state.workflow_id,
        run_id=state.run_id,
        version=state.version,
        **fields,  # type: ignore[arg-type]
    )
    task.visibility_time.CopyFrom(timestamp(now))  # when it was written: the replication lag counts from it
    return task


def replicate_history(state: ExecutionState, first_event_id: int, next_event_id: int, now: int) -> Task:
    """Events [first_event_id, next_event_id) of the run go to the namespace's other clusters."""
    return _replication(
        state,
        TaskType.TASK_TYPE_REPLICATE_HISTORY,
        now,
        event_id=first_event_id,
        next_event_id=next_event_id,
        branch_id=current_branch_id(state),
    )


def replicate_activity(state: ExecutionState, ai: ActivityInfo, now: int) -> Task:
    """The attempt state of an activity (attempt, started, heartbeat) goes to the namespace's other clusters:
    no event carries it, and the cluster that takes over needs it to time the attempt out."""
    return _replication(
        state, TaskType.TASK_TYPE_REPLICATE_ACTIVITY, now, event_id=ai.scheduled_event_id, attempt=ai.attempt
    )


# ------------------------------------------------------------------ the version check
_ACTIVITY_TASKS = frozenset(
    {
        TaskType.TASK_TYPE_DISPATCH_ACTIVITY_TASK,
        TaskType.TASK_TYPE_ACTIVITY_TIMEOUT,
        TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER,
    }
)
_WORKFLOW_TASK_TASKS = frozenset({TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK, TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT})
_NEXUS_TASKS = frozenset(
    {
        TaskType.TASK_TYPE_NEXUS_START,
        TaskType.TASK_TYPE_NEXUS_CANCEL,
        TaskType.TASK_TYPE_NEXUS_BACKOFF,
        TaskType.TASK_TYPE_NEXUS_TIMEOUT,
        TaskType.TASK_TYPE_NEXUS_CANCEL_BACKOFF,
    }
)
_START_TASKS = frozenset(
    {
        TaskType.TASK_TYPE_WORKFLOW_RUN_TIMEOUT,
        TaskType.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT,
        TaskType.TASK_TYPE_WORKFLOW_BACKOFF_TIMER,
    }
)
_CLOSE_TASKS = frozenset(
    {
        TaskType.TASK_TYPE_CLOSE_EXECUTION,
        TaskType.TASK_TYPE_DELETE_HISTORY,
        TaskType.TASK_TYPE_CALLBACK,
        TaskType.TASK_TYPE_CALLBACK_BACKOFF,
    }
)


def task_is_current(state: ExecutionState, task: Task) -> bool:
    """Whether `task`'s version matches the entity it serves: the pending workflow task, the
    activity / child / external request / Nexus operation of its event id, the timer of its timer id
    and event id; the start event for the run's timeouts and backoff. Tasks of a closed run (close,
    delete, callbacks) are current unless they carry a version newer than the run's last event.
    False when the entity is gone. Other staleness (stamps, attempts) is for the processors. A zombie run (an
    older run kept after a newer one became current) does nothing."""
    t = task.type
    if state.zombie and t != TaskType.TASK_TYPE_DELETE_HISTORY:
        return False
    entity_version: int | None
    if t in _WORKFLOW_TASK_TASKS:
        wt = state.workflow_task
        entity_version = wt.version if wt.scheduled else None
    elif t in _ACTIVITY_TASKS:
        ai = state.activities.get(task.event_id)
        entity_version = ai.version if ai is not None else None
    elif t == TaskType.TASK_TYPE_USER_TIMER:
        timer = state.timers.get(task.timer_id)
        entity_version = timer.version if timer is not None and timer.started_event_id == task.event_id else None
    elif t == TaskType.TASK_TYPE_START_CHILD:
        child = state.children.get(task.event_id)
        entity_version = child.version if child is not None else None
    elif t == TaskType.TASK_TYPE_SIGNAL_EXTERNAL:
        signal = state.external_signals.get(task.event_id)
        entity_version = signal.version if signal is not None else None
    elif t == TaskType.TASK_TYPE_CANCEL_EXTERNAL:
        cancel = state.external_cancels.get(task.event_id)
        entity_version = cancel.version if cancel is not None else None
    elif t in _NEXUS_TASKS:
        op = state.nexus_operations.get(task.event_id)
        entity_version = op.version if op is not None else None
    elif t in _START_TASKS or t == TaskType.TASK_TYPE_SCHEDULE_WAKE:
        try:
            entity_version = version_history.version_at(state, 1)
        except version_history.VersionHistoryError:
            entity_version = None
    elif t in _CLOSE_TASKS:
        return task.version <= version_history.last_version(state)
    else:
        raise ValueError(f"no entity for task type {TaskType.Name(t)}")
    return entity_version is not None and entity_version == task.version
