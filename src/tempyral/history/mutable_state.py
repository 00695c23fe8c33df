"""An execution's mutable state and the operations that add events to it.

Every `add_*` method builds one event, assigns it an id (or buffers it while a workflow task
runs), applies it through `appliers.apply` and records the tasks it implies. What a
transaction changed is collected in `new_events` / `new_tasks` until the shard commits it.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ActivityExecutionStatus as ActivityStatus
from temporalio.api.enums.v1 import (
    CallbackState as CallbackStateEnum,
)
from temporalio.api.enums.v1 import (
    NexusOperationCancellationState,
    PendingNexusOperationState,
    UpdateAdmittedEventOrigin,
)
from temporalio.api.enums.v1 import task_queue_pb2 as tq_enums
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.update.v1 import message_pb2 as update_pb

from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.common.standalone import TO_WORKFLOW_STATUS
from tempyral.history import appliers, version_history
from tempyral.history import events as ev
from tempyral.history import task_generator as tg
from tempyral.proto.internal_pb2 import (
    ActivityInfo,
    ExecutionState,
    NexusOperationInfo,
    Task,
)

Status = wf_enums.WorkflowExecutionStatus
NexusState = PendingNexusOperationState
CancelState = NexusOperationCancellationState
_NEXUS_ATTR_TYPES = {
    ev.NEXUS_FAILED: "NexusOperationFailedEventAttributes",
    ev.NEXUS_CANCELED: "NexusOperationCanceledEventAttributes",
    ev.NEXUS_TIMED_OUT: "NexusOperationTimedOutEventAttributes",
}
TimeoutType = wf_enums.TimeoutType
RUNNING = Status.WORKFLOW_EXECUTION_STATUS_RUNNING
STICKY = tq_enums.TASK_QUEUE_KIND_STICKY
NORMAL = tq_enums.TASK_QUEUE_KIND_NORMAL


class InvalidStateError(Exception):
    """An operation does not fit the execution's state (a bug or a stale request)."""


class MutableState:
    __slots__ = ("new_events", "new_tasks", "now", "retention_ns", "state", "visibility_dirty")

    def __init__(self, state: ExecutionState, now: int = 0) -> None:
        self.state = state
        self.now = now
        self.new_events: list[history.HistoryEvent] = []
        self.new_tasks: list[Task] = []
        self.visibility_dirty = False
        # How long the run is kept once closed (set by the engine from the namespace).
        self.retention_ns = 0

    # ------------------------------------------------------------------ views
    @property
    def namespace_id(self) -> str:
        return self.state.namespace_id

    @property
    def workflow_id(self) -> str:
        return self.state.workflow_id

    @property
    def run_id(self) -> str:
        return self.state.run_id

    @property
    def running(self) -> bool:
        return self.state.status == RUNNING

    @property
    def wft_pending(self) -> bool:
        return self.state.workflow_task.scheduled

    @property
    def wft_started(self) -> bool:
        wt = self.state.workflow_task
        return wt.scheduled and wt.started_event_id != 0

    @property
    def normal_task_queue(self) -> taskqueue.TaskQueue:
        return self.state.start.task_queue

    def begin(self, now: int) -> None:
        """Start a new transaction at time `now` (ns)."""
        self.now = now
        self.new_events = []
        self.new_tasks = []
        self.visibility_dirty = False

    # ------------------------------------------------------------------ events
    def _event(self, event_type: int, **attributes: object) -> history.HistoryEvent:
        event = history.HistoryEvent(event_type=event_type, version=self.state.version, **attributes)  # type: ignore[arg-type]
        event.event_time.CopyFrom(timestamp(self.now))
        if self.wft_started and event_type not in ev.UNBUFFERED:
            event.event_id = ev.BUFFERED_EVENT_ID
            self.state.buffered_events.append(event)
        else:
            event.event_id = self.state.next_event_id
            version_history.record(self.state, event.event_id, event.version)
            self.state.next_event_id += 1
            self.new_events.append(event)
        appliers.apply(self.state, event)
        return event

    def flush_buffered_events(self) -> None:
        """Give buffered events their ids, completions last, and wire the started-event ids."""
        if not self.state.buffered_events:
            return
        buffered = list(self.state.buffered_events)
        del self.state.buffered_events[:]
        ordered = [e for e in buffered if e.event_type not in ev.REORDERED_TO_END]
        ordered += [e for e in buffered if e.event_type in ev.REORDERED_TO_END]
        started_ids: dict[int, int] = {}
        child_started: dict[int, int] = {}
        for event in ordered:
            event.event_id = self.state.next_event_id
            version_history.record(self.state, event.event_id, event.version)
            self.state.next_event_id += 1
            if event.event_type == ev.ACTIVITY_TASK_STARTED:
                started_ids[event.activity_task_started_event_attributes.scheduled_event_id] = event.event_id
            elif event.event_type in ev.ACTIVITY_CLOSE_ATTRS:
                attrs = getattr(event, ev.ACTIVITY_CLOSE_ATTRS[event.event_type])
                if attrs.scheduled_event_id in started_ids:
                    attrs.started_event_id = started_ids[attrs.scheduled_event_id]
            elif event.event_type == ev.CHILD_STARTED:
                initiated = event.child_workflow_execution_started_event_attributes.initiated_event_id
                child_started[initiated] = event.event_id
                info = self.state.children.get(initiated)
                if info is not None:
                    info.started_event_id = event.event_id
            elif event.event_type in ev.CHILD_CLOSE_ATTRS:
                attrs = getattr(event, ev.CHILD_CLOSE_ATTRS[event.event_type])
                if attrs.initiated_event_id in child_started:
                    attrs.started_event_id = child_started[attrs.initiated_event_id]
                    info = self.state.children.get(attrs.initiated_event_id)
                    if info is not None:
                        info.started_event_id = attrs.started_event_id
            self.new_events.append(event)

    # ------------------------------------------------------------------ tasks
    def _tasks(self, tasks: list[Task]) -> None:
        """Tasks from `task_generator` that this transaction commits."""
        self.new_tasks.extend(tasks)

    # ------------------------------------------------------------------ start
    def add_workflow_execution_started(
        self,
        attrs: history.WorkflowExecutionStartedEventAttributes,
        schedule_first_task: bool = True,
        links: list[common.Link] | None = None,
        user_metadata: object | None = None,
    ) -> history.HistoryEvent:
        if self.state.next_event_id == 0:
            self.state.next_event_id = 1
        extra: dict[str, object] = {}
        if links:
            extra["links"] = links
        if user_metadata is not None:
            extra["user_metadata"] = user_metadata
        event = self._event(ev.WORKFLOW_EXECUTION_STARTED, workflow_execution_started_event_attributes=attrs, **extra)
        self.visibility_dirty = True
        self._tasks(tg.workflow_timeouts(self.state))
        if duration_ns(attrs.first_workflow_task_backoff) > 0:
            self._tasks(tg.workflow_backoff(self.state))
        elif schedule_first_task:
            self.schedule_workflow_task()
        return event

    # ------------------------------------------------------------------ workflow tasks
    def current_task_queue(self) -> taskqueue.TaskQueue:
        if self.state.sticky_task_queue.name:
            return self.state.sticky_task_queue
        return self.normal_task_queue

    def schedule_workflow_task(self, dispatch: bool = True) -> None:
        """Schedule the next workflow task: written now, or transient while attempts keep failing."""
        if self.wft_pending:
            raise InvalidStateError("a workflow task is already pending")
        s = self.state
        attempt = s.workflow_task.attempt or 1
        if s.buffered_events:
            self.flush_buffered_events()
            attempt = 1
        tq = self.current_task_queue()
        timeout = s.start.workflow_task_timeout
        if attempt > 1:
            stamp = s.workflow_task.stamp + 1
            wt = s.workflow_task
            wt.Clear()
            wt.stamp = stamp
            wt.scheduled = True
            wt.transient = True
            wt.attempt = attempt
            wt.scheduled_event_id = s.next_event_id  # virtual until the task completes
            wt.task_queue.CopyFrom(tq)
            wt.start_to_close_timeout.CopyFrom(timeout)
            wt.scheduled_time.CopyFrom(timestamp(self.now))
            wt.original_scheduled_time.CopyFrom(timestamp(self.now))
            wt.version = s.version
        else:
            attrs = history.WorkflowTaskScheduledEventAttributes(attempt=1)
            attrs.task_queue.CopyFrom(tq)
            attrs.start_to_close_timeout.CopyFrom(timeout)
            self._event(ev.WORKFLOW_TASK_SCHEDULED, workflow_task_scheduled_event_attributes=attrs)
        if dispatch:
            self._generate_workflow_task_dispatch()

    def schedule_speculative_workflow_task(self) -> None:
        """A workflow task that only carries updates: its events are written only if the worker
        does something with it (accepts an update, sends commands); a rejection leaves no trace."""
        if self.wft_pending:
            raise InvalidStateError("a workflow task is already pending")
        s = self.state
        wt = s.workflow_task
        stamp = wt.stamp + 1
        wt.Clear()
        wt.stamp = stamp
        wt.scheduled = True
        wt.transient = True
        wt.attempt = 1
        wt.scheduled_event_id = s.next_event_id  # virtual until the task completes
        wt.task_queue.CopyFrom(self.current_task_queue())
        wt.start_to_close_timeout.CopyFrom(s.start.workflow_task_timeout)
        wt.scheduled_time.CopyFrom(timestamp(self.now))
        wt.original_scheduled_time.CopyFrom(timestamp(self.now))
        wt.version = s.version
        s.speculative_workflow_task = True
        self._generate_workflow_task_dispatch()

    def discard_speculative_workflow_task(self) -> None:
        """The worker rejected every update of a speculative task: nothing enters history."""
        appliers.reset_workflow_task(self.state, 1)
        self.state.speculative_workflow_task = False

    def _generate_workflow_task_dispatch(self) -> None:
        self._tasks(tg.workflow_task_dispatch(self.state, self.now))

    def start_workflow_task(
        self, request_id: str, identity: str, worker_version: common.WorkerVersionStamp | None = None
    ) -> None:
        """Record that a worker took the pending workflow task (`worker_version`: the stamp of the
        worker's build, recorded on the started event)."""
        s = self.state
        wt = s.workflow_task
        if not wt.scheduled or wt.started_event_id:
            raise InvalidStateError("no workflow task to start")
        write_scheduled = False
        if wt.transient and wt.scheduled_event_id != s.next_event_id:
            # Events arrived since the transient task was scheduled: it becomes a normal task,
            # written after them.
            wt.transient = False
            wt.attempt = 1
            write_scheduled = True
            s.speculative_workflow_task = False
        if wt.transient:
            wt.started_event_id = s.next_event_id + 1
            wt.started_time.CopyFrom(timestamp(self.now))
            wt.request_id = request_id
            wt.identity = identity
        else:
            if write_scheduled:
                attrs = history.WorkflowTaskScheduledEventAttributes(attempt=1)
                attrs.task_queue.CopyFrom(wt.task_queue)
                attrs.start_to_close_timeout.CopyFrom(wt.start_to_close_timeout)
                stamp = wt.stamp
                self._event(ev.WORKFLOW_TASK_SCHEDULED, workflow_task_scheduled_event_attributes=attrs)
                wt.stamp = stamp
            attrs_started = history.WorkflowTaskStartedEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                identity=identity,
                request_id=request_id,
                history_size_bytes=s.history_size_bytes,
            )
            if worker_version is not None:
                attrs_started.worker_version.CopyFrom(worker_version)
            self._event(ev.WORKFLOW_TASK_STARTED, workflow_task_started_event_attributes=attrs_started)
        self._tasks(tg.workflow_task_timeout(s))

    def transient_workflow_task_events(self, identity: str) -> list[history.HistoryEvent]:
        """The scheduled/started events a transient task shows its worker, not yet in history."""
        wt = self.state.workflow_task
        if not (wt.scheduled and wt.transient):
            return []
        scheduled = history.HistoryEvent(
            event_id=wt.scheduled_event_id,
            event_type=ev.WORKFLOW_TASK_SCHEDULED,
            version=self.state.version,
            workflow_task_scheduled_event_attributes=history.WorkflowTaskScheduledEventAttributes(
                task_queue=wt.task_queue, start_to_close_timeout=wt.start_to_close_timeout, attempt=wt.attempt
            ),
        )
        scheduled.event_time.CopyFrom(wt.scheduled_time)
        if not wt.started_event_id:
            return [scheduled]
        started = history.HistoryEvent(
            event_id=wt.started_event_id,
            event_type=ev.WORKFLOW_TASK_STARTED,
            version=self.state.version,
            workflow_task_started_event_attributes=history.WorkflowTaskStartedEventAttributes(
                scheduled_event_id=wt.scheduled_event_id,
                identity=identity,
                request_id=wt.request_id,
                history_size_bytes=self.state.history_size_bytes,
            ),
        )
        started.event_time.CopyFrom(wt.started_time)
        return [scheduled, started]

    def _write_transient_workflow_task(self, worker_version: common.WorkerVersionStamp | None = None) -> None:
        """A transient task completes: its scheduled and started events enter history now (the
        started event with the version stamp the completing worker sent)."""
        wt = self.state.workflow_task
        if not wt.transient:
            return
        stamp, attempt, request_id, identity = wt.stamp, wt.attempt, wt.request_id, wt.identity
        start_to_close = history.WorkflowTaskScheduledEventAttributes().start_to_close_timeout
        start_to_close.CopyFrom(wt.start_to_close_timeout)
        task_queue = taskqueue.TaskQueue()
        task_queue.CopyFrom(wt.task_queue)
        scheduled_time, started_time = ts_ns(wt.scheduled_time), ts_ns(wt.started_time)
        now = self.now
        self.now = scheduled_time
        self._event(
            ev.WORKFLOW_TASK_SCHEDULED,
            workflow_task_scheduled_event_attributes=history.WorkflowTaskScheduledEventAttributes(
                task_queue=task_queue, start_to_close_timeout=start_to_close, attempt=attempt
            ),
        )
        self.now = started_time
        started = history.WorkflowTaskStartedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            identity=identity,
            request_id=request_id,
            history_size_bytes=self.state.history_size_bytes,
        )
        if worker_version is not None and not worker_version.use_versioning:
            started.worker_version.CopyFrom(worker_version)
        self._event(ev.WORKFLOW_TASK_STARTED, workflow_task_started_event_attributes=started)
        self.now = now
        wt.stamp = stamp
        self.state.speculative_workflow_task = False

    def add_workflow_task_completed(
        self, identity: str, sdk_metadata: object, metering: object, worker_version: common.WorkerVersionStamp | None
    ) -> history.HistoryEvent:
        self._write_transient_workflow_task(worker_version)
        build_ids_before = self.state.search_attributes.indexed_fields.get("BuildIds")
        wt = self.state.workflow_task
        attrs = history.WorkflowTaskCompletedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id, started_event_id=wt.started_event_id, identity=identity
        )
        if sdk_metadata is not None:
            attrs.sdk_metadata.CopyFrom(sdk_metadata)  # type: ignore[arg-type]
        if metering is not None:
            attrs.metering_metadata.CopyFrom(metering)  # type: ignore[arg-type]
        if worker_version is not None:
            attrs.worker_version.CopyFrom(worker_version)
        event = self._event(ev.WORKFLOW_TASK_COMPLETED, workflow_task_completed_event_attributes=attrs)
        if self.state.search_attributes.indexed_fields.get("BuildIds") != build_ids_before:
            self.visibility_dirty = True  # the applier recorded a new build id
        return event

    def add_workflow_task_failed(
        self,
        cause: int,
        failure: failure_pb.Failure | None,
        identity: str,
        base_run_id: str = "",
        new_run_id: str = "",
    ) -> history.HistoryEvent | None:
        wt = self.state.workflow_task
        if self.state.speculative_workflow_task:
            self._write_transient_workflow_task()  # a failed speculative task is recorded
        elif wt.transient:
            appliers.fail_workflow_task(self.state, increment_attempt=True)
            return None
        attrs = history.WorkflowTaskFailedEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            cause=cause,  # type: ignore[arg-type]
            identity=identity,
            base_run_id=base_run_id,
            new_run_id=new_run_id,
        )
        if failure is not None:
            attrs.failure.CopyFrom(failure)
        return self._event(ev.WORKFLOW_TASK_FAILED, workflow_task_failed_event_attributes=attrs)

    def add_workflow_task_timed_out(self, timeout_type: int) -> history.HistoryEvent | None:
        wt = self.state.workflow_task
        if self.state.speculative_workflow_task:
            if not wt.started_event_id:
                # never picked up: nothing to record, and the updates wait for the next task
                self.discard_speculative_workflow_task()
                return None
            self._write_transient_workflow_task()
        elif wt.transient:
            appliers.fail_workflow_task(
                self.state, increment_attempt=timeout_type != TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
            )
            return None
        attrs = history.WorkflowTaskTimedOutEventAttributes(
            scheduled_event_id=wt.scheduled_event_id,
            started_event_id=wt.started_event_id,
            timeout_type=timeout_type,  # type: ignore[arg-type]
        )
        return self._event(ev.WORKFLOW_TASK_TIMED_OUT, workflow_task_timed_out_event_attributes=attrs)

    def set_sticky(self, task_queue: taskqueue.TaskQueue | None, schedule_to_start: object | None) -> None:
        if task_queue is None or not task_queue.name:
            appliers.clear_sticky(self.state)
            return
        self.state.sticky_task_queue.CopyFrom(task_queue)
        self.state.sticky_task_queue.kind = STICKY
        if not self.state.sticky_task_queue.normal_name:
            self.state.sticky_task_queue.normal_name = self.normal_task_queue.name
        if schedule_to_start is not None:
            self.state.sticky_schedule_to_start_timeout.CopyFrom(schedule_to_start)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ activities
    def activity_by_id(self, activity_id: str) -> ActivityInfo | None:
        for ai in self.state.activities.values():
            if ai.scheduled.activity_id == activity_id:
                return ai
        return None

    def add_activity_task_scheduled(
        self, attrs: history.ActivityTaskScheduledEventAttributes, dispatch: bool = True
    ) -> ActivityInfo:
        event = self._event(ev.ACTIVITY_TASK_SCHEDULED, activity_task_scheduled_event_attributes=attrs)
        ai = self.state.activities[event.event_id]
        if dispatch:
            self._tasks(tg.activity_dispatch(self.state, ai, self.now))
        self._tasks(tg.activity_schedule_to_close(self.state, ai))
        return ai

    def start_activity(self, ai: ActivityInfo, request_id: str, identity: str) -> None:
        """A worker took the activity: no event yet (ActivityTaskStarted is written when it closes)."""
        self.standalone_step()
        if self.is_standalone_activity:
            self.state.standalone_activity.last_started_time.CopyFrom(timestamp(self.now))
        ai.started = True
        ai.ClearField("worker_version")  # set by the worker that closes this attempt
        ai.started_time.CopyFrom(timestamp(self.now))
        ai.started_identity = identity
        ai.request_id = request_id
        ai.last_worker_identity = identity
        ai.ClearField("next_attempt_schedule_time")
        self._tasks(tg.activity_start_to_close(self.state, ai))
        self.schedule_heartbeat_timeout(ai)

    def schedule_heartbeat_timeout(self, ai: ActivityInfo) -> None:
        self._tasks(tg.activity_heartbeat_timeout(self.state, ai))

    def _add_activity_started_event(self, ai: ActivityInfo) -> int:
        """Write ActivityTaskStarted for the attempt that is closing; returns its event id."""
        attrs = history.ActivityTaskStartedEventAttributes(
            scheduled_event_id=ai.scheduled_event_id,
            identity=ai.started_identity,
            request_id=ai.request_id,
            attempt=ai.attempt,
        )
        if ai.HasField("last_failure"):
            attrs.last_failure.CopyFrom(ai.last_failure)
        if ai.HasField("worker_version") and not ai.worker_version.use_versioning:
            attrs.worker_version.CopyFrom(ai.worker_version)
        event = self._event(ev.ACTIVITY_TASK_STARTED, activity_task_started_event_attributes=attrs)
        if ai.HasField("started_time"):  # written at close, dated when the attempt started, as the reference does
            event.event_time.CopyFrom(ai.started_time)
        return event.event_id

    # ------------------------------------------------------------------ standalone activities
    @property
    def is_standalone_activity(self) -> bool:
        """A standalone activity: one activity, no workflow, no history (history/standalone_activities.py)."""
        return self.state.HasField("standalone_activity")

    def standalone_step(self, visible: bool = False) -> None:
        """A standalone activity's state transition (counted, as the reference's describe shows);
        `visible`: its visibility row changes too."""
        if self.is_standalone_activity:
            self.state.standalone_activity.state_transition_count += 1
            self.visibility_dirty = self.visibility_dirty or visible

    def close_standalone(
        self,
        ai: ActivityInfo,
        status: int,
        result: common.Payloads | None = None,
        failure: failure_pb.Failure | None = None,
        retry_state: int = 0,
    ) -> None:
        """Close a standalone activity with its outcome; the closing methods below come here instead of writing
        events, so that the activity handler's completion, failure, timeout and retry paths serve both kinds."""
        s = self.state
        sa = s.standalone_activity
        sa.status = status
        s.status = TO_WORKFLOW_STATUS[status]
        s.close_time.CopyFrom(timestamp(self.now))
        if result is not None:
            sa.result.CopyFrom(result)
        if failure is not None:
            sa.failure.CopyFrom(failure)
            sa.retry_state = retry_state
            if status in (STANDALONE_FAILED, STANDALONE_TIMED_OUT):
                ai.last_failure.CopyFrom(failure)  # the reference shows the final failure as the last one too
        if ai.started and status != STANDALONE_CANCELED:  # as the reference: a canceled attempt did not complete
            sa.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        self.standalone_step(visible=True)
        self._tasks(tg.delete_history(s, self.retention_ns))

    def add_activity_task_completed(self, ai: ActivityInfo, result: common.Payloads | None, identity: str) -> None:
        if self.is_standalone_activity:
            return self.close_standalone(ai, STANDALONE_COMPLETED, result=result or common.Payloads())
        scheduled_id = ai.scheduled_event_id
        started_id = self._add_activity_started_event(ai)
        attrs = history.ActivityTaskCompletedEventAttributes(
            scheduled_event_id=scheduled_id, started_event_id=started_id, identity=identity
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._event(ev.ACTIVITY_TASK_COMPLETED, activity_task_completed_event_attributes=attrs)

    def add_activity_task_failed(
        self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int, identity: str
    ) -> None:
        if self.is_standalone_activity:
            return self.close_standalone(ai, STANDALONE_FAILED, failure=failure, retry_state=retry_state)
        scheduled_id = ai.scheduled_event_id
        started_id = self._add_activity_started_event(ai) if ai.started else 0
        attrs = history.ActivityTaskFailedEventAttributes(
            scheduled_event_id=scheduled_id,
            started_event_id=started_id,
            identity=identity,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        attrs.failure.CopyFrom(failure)
        self._event(ev.ACTIVITY_TASK_FAILED, activity_task_failed_event_attributes=attrs)

    def add_activity_task_timed_out(self, ai: ActivityInfo, failure: failure_pb.Failure, retry_state: int) -> None:
        if self.is_standalone_activity:
            timeout = failure_pb.Failure()
            timeout.CopyFrom(failure)
            timeout.ClearField("source")  # the reference marks no source on a standalone activity's timeout
            return self.close_standalone(ai, STANDALONE_TIMED_OUT, failure=timeout, retry_state=retry_state)
        scheduled_id = ai.scheduled_event_id
        started_id = self._add_activity_started_event(ai) if ai.started else 0
        attrs = history.ActivityTaskTimedOutEventAttributes(
            scheduled_event_id=scheduled_id,
            started_event_id=started_id,
            retry_state=retry_state,  # type: ignore[arg-type]
        )
        attrs.failure.CopyFrom(failure)
        self._event(ev.ACTIVITY_TASK_TIMED_OUT, activity_task_timed_out_event_attributes=attrs)

    def add_activity_task_cancel_requested(self, scheduled_event_id: int, wft_completed_event_id: int) -> int:
        attrs = history.ActivityTaskCancelRequestedEventAttributes(
            scheduled_event_id=scheduled_event_id, workflow_task_completed_event_id=wft_completed_event_id
        )
        event = self._event(ev.ACTIVITY_TASK_CANCEL_REQUESTED, activity_task_cancel_requested_event_attributes=attrs)
        return event.event_id

    def add_activity_task_canceled(self, ai: ActivityInfo, details: common.Payloads | None, identity: str) -> None:
        if self.is_standalone_activity:
            # the outcome names who asked for the cancellation, as the reference's does
            requester = self.state.standalone_activity.cancel_identity
            return self.close_standalone(ai, STANDALONE_CANCELED, failure=_canceled_failure(details, requester))
        scheduled_id = ai.scheduled_event_id
        latest_cancel = ai.cancel_request_event_id
        started_id = self._add_activity_started_event(ai) if ai.started else 0
        attrs = history.ActivityTaskCanceledEventAttributes(
            scheduled_event_id=scheduled_id,
            started_event_id=started_id,
            latest_cancel_requested_event_id=latest_cancel,
            identity=identity,
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._event(ev.ACTIVITY_TASK_CANCELED, activity_task_canceled_event_attributes=attrs)

    def retry_activity(self, ai: ActivityInfo, failure: failure_pb.Failure, backoff_ns: int) -> None:
        """The attempt failed and another follows after `backoff_ns`: bookkeeping only, no event."""
        self.standalone_step()
        if self.is_standalone_activity:
            self.state.standalone_activity.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        ai.attempt += 1
        ai.stamp += 1
        ai.started = False
        ai.ClearField("started_time")
        ai.started_identity = ""
        ai.request_id = ""
        ai.last_failure.CopyFrom(failure)
        fire_at = self.now + backoff_ns
        ai.next_attempt_schedule_time.CopyFrom(timestamp(fire_at))
        ai.current_attempt_scheduled_time.CopyFrom(timestamp(fire_at))
        self._tasks(tg.activity_retry_timer(self.state, ai))

    def dispatch_activity_retry(self, ai: ActivityInfo) -> None:
        ai.ClearField("next_attempt_schedule_time")
        ai.current_attempt_scheduled_time.CopyFrom(timestamp(self.now))
        self._tasks(tg.activity_dispatch(self.state, ai, self.now))

    # ------------------------------------------------------------------ timers
    def add_timer_started(self, timer_id: str, start_to_fire: Duration | None, wft_completed_event_id: int) -> None:
        """`start_to_fire` None: the command left it unset, and so does the event (it fires at once)."""
        attrs = history.TimerStartedEventAttributes(
            timer_id=timer_id, workflow_task_completed_event_id=wft_completed_event_id
        )
        if start_to_fire is not None:
            attrs.start_to_fire_timeout.CopyFrom(start_to_fire)
        self._event(ev.TIMER_STARTED, timer_started_event_attributes=attrs)
        self._tasks(tg.user_timer(self.state, self.state.timers[timer_id]))

    def add_timer_fired(self, timer_id: str) -> None:
        info = self.state.timers[timer_id]
        attrs = history.TimerFiredEventAttributes(timer_id=timer_id, started_event_id=info.started_event_id)
        self._event(ev.TIMER_FIRED, timer_fired_event_attributes=attrs)

    def add_timer_canceled(self, timer_id: str, wft_completed_event_id: int, identity: str) -> None:
        info = self.state.timers[timer_id]
        attrs = history.TimerCanceledEventAttributes(
            timer_id=timer_id,
            started_event_id=info.started_event_id,
            workflow_task_completed_event_id=wft_completed_event_id,
            identity=identity,
        )
        self._event(ev.TIMER_CANCELED, timer_canceled_event_attributes=attrs)

    # ------------------------------------------------------------------ external events
    def add_signaled(
        self,
        signal_name: str,
        input: common.Payloads | None,
        identity: str,
        header: common.Header | None,
        request_id: str,
        external: common.WorkflowExecution | None = None,
    ) -> history.HistoryEvent:
        attrs = history.WorkflowExecutionSignaledEventAttributes(
            signal_name=signal_name, identity=identity, request_id=request_id
        )
        if external is not None:
            attrs.external_workflow_execution.CopyFrom(external)
        if input is not None:
            attrs.input.CopyFrom(input)
        if header is not None and header.fields:
            attrs.header.CopyFrom(header)
        return self._event(ev.WORKFLOW_EXECUTION_SIGNALED, workflow_execution_signaled_event_attributes=attrs)

    def add_cancel_requested(
        self,
        cause: str,
        identity: str,
        request_id: str,
        external: common.WorkflowExecution | None = None,
        external_initiated_event_id: int = 0,
    ) -> None:
        attrs = history.WorkflowExecutionCancelRequestedEventAttributes(
            cause=cause, identity=identity, external_initiated_event_id=external_initiated_event_id
        )
        if external is not None:
            attrs.external_workflow_execution.CopyFrom(external)
        self.state.cancel_request_id = request_id
        self._event(ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED, workflow_execution_cancel_requested_event_attributes=attrs)

    def add_marker_recorded(self, attrs: history.MarkerRecordedEventAttributes) -> None:
        self._event(ev.MARKER_RECORDED, marker_recorded_event_attributes=attrs)

    def add_upsert_search_attributes(
        self, wft_completed_event_id: int, search_attributes: common.SearchAttributes
    ) -> None:
        attrs = history.UpsertWorkflowSearchAttributesEventAttributes(
            workflow_task_completed_event_id=wft_completed_event_id
        )
        attrs.search_attributes.CopyFrom(search_attributes)
        self._event(ev.UPSERT_WORKFLOW_SEARCH_ATTRIBUTES, upsert_workflow_search_attributes_event_attributes=attrs)
        self.visibility_dirty = True

    def add_properties_modified(self, wft_completed_event_id: int, memo: common.Memo) -> None:
        attrs = history.WorkflowPropertiesModifiedEventAttributes(
            workflow_task_completed_event_id=wft_completed_event_id
        )
        attrs.upserted_memo.CopyFrom(memo)
        self._event(ev.WORKFLOW_PROPERTIES_MODIFIED, workflow_properties_modified_event_attributes=attrs)
        self.visibility_dirty = True

    # ------------------------------------------------------------------ children
    def add_start_child_initiated(self, attrs: history.StartChildWorkflowExecutionInitiatedEventAttributes) -> int:
        event = self._event(ev.START_CHILD_INITIATED, start_child_workflow_execution_initiated_event_attributes=attrs)
        self._tasks(tg.start_child(self.state, self.state.children[event.event_id]))
        return event.event_id

    def add_child_started(self, initiated_event_id: int, run_id: str) -> None:
        info = self.state.children[initiated_event_id]
        init = info.initiated
        attrs = history.ChildWorkflowExecutionStartedEventAttributes(
            namespace=init.namespace,
            namespace_id=init.namespace_id,
            initiated_event_id=initiated_event_id,
            workflow_execution=common.WorkflowExecution(workflow_id=init.workflow_id, run_id=run_id),
            workflow_type=init.workflow_type,
            header=init.header,
        )
        # buffered, it gets its id (and the child its started event id) when the buffer is flushed
        self._event(ev.CHILD_STARTED, child_workflow_execution_started_event_attributes=attrs)

    def add_start_child_failed(self, initiated_event_id: int, cause: int) -> None:
        init = self.state.children[initiated_event_id].initiated
        attrs = history.StartChildWorkflowExecutionFailedEventAttributes(
            namespace=init.namespace,
            namespace_id=init.namespace_id,
            workflow_id=init.workflow_id,
            workflow_type=init.workflow_type,
            cause=cause,  # type: ignore[arg-type]
            control=init.control,
            initiated_event_id=initiated_event_id,
        )  # no workflow task completed event id: the reference leaves it empty on these failures
        self._event(ev.START_CHILD_FAILED, start_child_workflow_execution_failed_event_attributes=attrs)

    def add_child_closed(self, initiated_event_id: int, run_id: str, close: history.HistoryEvent) -> None:
        """Record how a child ended, from the close event of its last run."""
        info = self.state.children[initiated_event_id]
        init = info.initiated
        common_fields: dict[str, Any] = dict(
            namespace=init.namespace,
            namespace_id=init.namespace_id,
            workflow_execution=common.WorkflowExecution(workflow_id=init.workflow_id, run_id=run_id),
            workflow_type=init.workflow_type,
            initiated_event_id=initiated_event_id,
            started_event_id=info.started_event_id,
        )
        t = close.event_type
        if t == ev.WORKFLOW_EXECUTION_COMPLETED:
            attrs_c = history.ChildWorkflowExecutionCompletedEventAttributes(
                result=close.workflow_execution_completed_event_attributes.result, **common_fields
            )
            self._event(ev.CHILD_COMPLETED, child_workflow_execution_completed_event_attributes=attrs_c)
        elif t == ev.WORKFLOW_EXECUTION_FAILED:
            src = close.workflow_execution_failed_event_attributes
            attrs_f = history.ChildWorkflowExecutionFailedEventAttributes(
                failure=src.failure, retry_state=src.retry_state, **common_fields
            )
            self._event(ev.CHILD_FAILED, child_workflow_execution_failed_event_attributes=attrs_f)
        elif t == ev.WORKFLOW_EXECUTION_CANCELED:
            attrs_x = history.ChildWorkflowExecutionCanceledEventAttributes(
                details=close.workflow_execution_canceled_event_attributes.details, **common_fields
            )
            self._event(ev.CHILD_CANCELED, child_workflow_execution_canceled_event_attributes=attrs_x)
        elif t == ev.WORKFLOW_EXECUTION_TIMED_OUT:
            attrs_t = history.ChildWorkflowExecutionTimedOutEventAttributes(
                retry_state=close.workflow_execution_timed_out_event_attributes.retry_state, **common_fields
            )
            self._event(ev.CHILD_TIMED_OUT, child_workflow_execution_timed_out_event_attributes=attrs_t)
        else:
            attrs_k = history.ChildWorkflowExecutionTerminatedEventAttributes(**common_fields)
            self._event(ev.CHILD_TERMINATED, child_workflow_execution_terminated_event_attributes=attrs_k)

    # ------------------------------------------------------------------ external signals and cancels
    def add_signal_external_initiated(
        self, attrs: history.SignalExternalWorkflowExecutionInitiatedEventAttributes
    ) -> None:
        event = self._event(
            ev.SIGNAL_EXTERNAL_INITIATED, signal_external_workflow_execution_initiated_event_attributes=attrs
        )
        self._tasks(tg.signal_external(self.state, self.state.external_signals[event.event_id]))

    def add_external_signal_result(self, initiated_event_id: int, failed_cause: int = 0) -> None:
        init = self.state.external_signals[
            initiated_event_id
        ].initiated.signal_external_workflow_execution_initiated_event_attributes
        if failed_cause:
            failed = history.SignalExternalWorkflowExecutionFailedEventAttributes(
                cause=failed_cause,  # type: ignore[arg-type]
                namespace=init.namespace,
                namespace_id=init.namespace_id,
                workflow_execution=init.workflow_execution,
                initiated_event_id=initiated_event_id,
                control=init.control,
            )
            self._event(ev.SIGNAL_EXTERNAL_FAILED, signal_external_workflow_execution_failed_event_attributes=failed)
            return
        done = history.ExternalWorkflowExecutionSignaledEventAttributes(
            initiated_event_id=initiated_event_id,
            namespace=init.namespace,
            namespace_id=init.namespace_id,
            workflow_execution=init.workflow_execution,
            control=init.control,
        )
        self._event(ev.EXTERNAL_SIGNALED, external_workflow_execution_signaled_event_attributes=done)

    def add_cancel_external_initiated(
        self, attrs: history.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes
    ) -> None:
        event = self._event(
            ev.CANCEL_EXTERNAL_INITIATED, request_cancel_external_workflow_execution_initiated_event_attributes=attrs
        )
        self._tasks(tg.cancel_external(self.state, self.state.external_cancels[event.event_id]))

    def add_external_cancel_result(self, initiated_event_id: int, failed_cause: int = 0) -> None:
        init = self.state.external_cancels[
            initiated_event_id
        ].initiated.request_cancel_external_workflow_execution_initiated_event_attributes
        if failed_cause:
            failed = history.RequestCancelExternalWorkflowExecutionFailedEventAttributes(
                cause=failed_cause,  # type: ignore[arg-type]
                namespace=init.namespace,
                namespace_id=init.namespace_id,
                workflow_execution=init.workflow_execution,
                initiated_event_id=initiated_event_id,
                control=init.control,
            )
            self._event(
                ev.CANCEL_EXTERNAL_FAILED, request_cancel_external_workflow_execution_failed_event_attributes=failed
            )
            return
        done = history.ExternalWorkflowExecutionCancelRequestedEventAttributes(
            initiated_event_id=initiated_event_id,
            namespace=init.namespace,
            namespace_id=init.namespace_id,
            workflow_execution=init.workflow_execution,
        )
        self._event(ev.EXTERNAL_CANCEL_REQUESTED, external_workflow_execution_cancel_requested_event_attributes=done)

    # ------------------------------------------------------------------ Nexus operations
    def add_nexus_scheduled(
        self, attrs: history.NexusOperationScheduledEventAttributes, user_metadata: object | None = None
    ) -> NexusOperationInfo:
        extra: dict[str, object] = {}
        if user_metadata is not None:
            extra["user_metadata"] = user_metadata
        event = self._event(ev.NEXUS_SCHEDULED, nexus_operation_scheduled_event_attributes=attrs, **extra)
        info = self.state.nexus_operations[event.event_id]
        self._tasks(tg.nexus_start(self.state, info))
        self._tasks(tg.nexus_timeouts(self.state, info))
        return info

    def nexus_attempt_failed(self, info: NexusOperationInfo, failure: failure_pb.Failure, retry_at: int) -> None:
        """A start request failed and will be sent again at `retry_at` (no event: bookkeeping only)."""
        info.state = NexusState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF
        info.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        info.last_attempt_failure.CopyFrom(failure)
        info.next_attempt_schedule_time.CopyFrom(timestamp(retry_at))
        info.blocked_reason = ""
        self._tasks(tg.nexus_backoff(self.state, info))

    def nexus_blocked(self, info: NexusOperationInfo, reason: str, retry_at: int) -> None:
        """The request was not sent (circuit breaker open, rate limit): try again later, same attempt."""
        info.state = NexusState.PENDING_NEXUS_OPERATION_STATE_BLOCKED
        info.blocked_reason = reason
        info.next_attempt_schedule_time.CopyFrom(timestamp(retry_at))
        self._tasks(tg.nexus_backoff(self.state, info))

    def nexus_rescheduled(self, info: NexusOperationInfo) -> None:
        """The backoff is over: send the start request again."""
        info.state = NexusState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
        info.blocked_reason = ""
        info.ClearField("next_attempt_schedule_time")
        self._tasks(tg.nexus_start(self.state, info))

    def add_nexus_started(
        self,
        scheduled_event_id: int,
        operation_token: str,
        links: list[common.Link],
        event_time: int = 0,
    ) -> None:
        info = self.state.nexus_operations[scheduled_event_id]
        attrs = history.NexusOperationStartedEventAttributes(
            scheduled_event_id=scheduled_event_id,
            operation_id=operation_token,
            operation_token=operation_token,
            request_id=info.request_id,
        )
        now = self.now
        if event_time:
            self.now = event_time
        self._event(ev.NEXUS_STARTED, nexus_operation_started_event_attributes=attrs, links=links)
        self.now = now
        info.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        self._tasks(tg.nexus_start_to_close(self.state, info))
        if info.cancellation.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED:
            self._tasks(tg.nexus_cancel(self.state, info))

    def add_nexus_completed(
        self, scheduled_event_id: int, result: common.Payload | None, links: list[common.Link]
    ) -> None:
        info = self.state.nexus_operations[scheduled_event_id]
        attrs = history.NexusOperationCompletedEventAttributes(
            scheduled_event_id=scheduled_event_id, request_id=info.request_id
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._event(ev.NEXUS_COMPLETED, nexus_operation_completed_event_attributes=attrs, links=links)

    def add_nexus_closed_unsuccessfully(
        self, event_type: int, scheduled_event_id: int, failure: failure_pb.Failure
    ) -> None:
        """Failed, canceled or timed out: `failure` is the whole failure the caller sees."""
        info = self.state.nexus_operations[scheduled_event_id]
        attr = ev.NEXUS_CLOSE_ATTRS[event_type]  # type: ignore[index]
        attrs = getattr(history, _NEXUS_ATTR_TYPES[event_type])(  # type: ignore[index]
            scheduled_event_id=scheduled_event_id, request_id=info.request_id
        )
        attrs.failure.CopyFrom(failure)
        self._event(event_type, **{attr: attrs})

    def add_nexus_cancel_requested(self, scheduled_event_id: int, wft_completed_event_id: int) -> None:
        attrs = history.NexusOperationCancelRequestedEventAttributes(
            scheduled_event_id=scheduled_event_id, workflow_task_completed_event_id=wft_completed_event_id
        )
        self._event(ev.NEXUS_CANCEL_REQUESTED, nexus_operation_cancel_requested_event_attributes=attrs)
        info = self.state.nexus_operations.get(scheduled_event_id)
        if info is not None and info.cancellation.state == CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED:
            self._tasks(tg.nexus_cancel(self.state, info))

    def nexus_cancel_attempt_failed(self, info: NexusOperationInfo, failure: failure_pb.Failure, retry_at: int) -> None:
        c = info.cancellation
        c.attempt += 1
        c.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF
        c.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        c.last_attempt_failure.CopyFrom(failure)
        c.next_attempt_schedule_time.CopyFrom(timestamp(retry_at))
        self._tasks(tg.nexus_cancel_backoff(self.state, info))

    def nexus_cancel_rescheduled(self, info: NexusOperationInfo) -> None:
        info.cancellation.state = CancelState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
        info.cancellation.ClearField("next_attempt_schedule_time")
        self._tasks(tg.nexus_cancel(self.state, info))

    def add_nexus_cancel_request_result(
        self, scheduled_event_id: int, failure: failure_pb.Failure | None = None
    ) -> None:
        info = self.state.nexus_operations[scheduled_event_id]
        info.cancellation.attempt += 1
        requested = info.cancellation.requested_event_id
        if failure is None:
            done = history.NexusOperationCancelRequestCompletedEventAttributes(
                requested_event_id=requested, scheduled_event_id=scheduled_event_id
            )
            self._event(
                ev.NEXUS_CANCEL_REQUEST_COMPLETED,
                nexus_operation_cancel_request_completed_event_attributes=done,
                worker_may_ignore=True,
            )
            return
        failed = history.NexusOperationCancelRequestFailedEventAttributes(
            requested_event_id=requested, scheduled_event_id=scheduled_event_id
        )
        failed.failure.CopyFrom(failure)
        self._event(
            ev.NEXUS_CANCEL_REQUEST_FAILED,
            nexus_operation_cancel_request_failed_event_attributes=failed,
            worker_may_ignore=True,
        )

    # ------------------------------------------------------------------ completion callbacks
    def callback_due(self, index: int, attempt: int) -> bool:
        if index >= len(self.state.callbacks):
            return False
        state = self.state.callbacks[index]
        return state.state == CallbackStateEnum.CALLBACK_STATE_SCHEDULED and state.attempt + 1 == attempt

    def callback_succeeded(self, index: int) -> None:
        state = self.state.callbacks[index]
        state.attempt += 1
        state.state = CallbackStateEnum.CALLBACK_STATE_SUCCEEDED
        state.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        state.ClearField("next_attempt_schedule_time")

    def callback_failed(self, index: int, failure: failure_pb.Failure, retry_at: int) -> None:
        """A delivery failed; with `retry_at` it is tried again then, else it has failed for good."""
        state = self.state.callbacks[index]
        state.attempt += 1
        state.last_attempt_complete_time.CopyFrom(timestamp(self.now))
        state.last_attempt_failure.CopyFrom(failure)
        if not retry_at:
            state.state = CallbackStateEnum.CALLBACK_STATE_FAILED
            return
        state.state = CallbackStateEnum.CALLBACK_STATE_BACKING_OFF
        state.next_attempt_schedule_time.CopyFrom(timestamp(retry_at))
        self._tasks(tg.callback_backoff(self.state, index))

    def callback_rescheduled(self, index: int, attempt: int) -> bool:
        if index >= len(self.state.callbacks):
            return False
        state = self.state.callbacks[index]
        if state.state != CallbackStateEnum.CALLBACK_STATE_BACKING_OFF or state.attempt != attempt:
            return False
        state.state = CallbackStateEnum.CALLBACK_STATE_SCHEDULED
        state.ClearField("next_attempt_schedule_time")
        self._tasks(tg.callback(self.state, index))
        return True

    # ------------------------------------------------------------------ updates
    def add_update_admitted(self, request: update_pb.Request) -> int:
        """An update re-applied by a reset: admitted durably, for the worker to find in history."""
        attrs = history.WorkflowExecutionUpdateAdmittedEventAttributes(
            request=request, origin=UpdateAdmittedEventOrigin.UPDATE_ADMITTED_EVENT_ORIGIN_REAPPLY
        )
        return self._event(ev.UPDATE_ADMITTED, workflow_execution_update_admitted_event_attributes=attrs).event_id

    def add_update_accepted(self, attrs: history.WorkflowExecutionUpdateAcceptedEventAttributes) -> int:
        event = self._event(ev.UPDATE_ACCEPTED, workflow_execution_update_accepted_event_attributes=attrs)
        return event.event_id

    def add_update_completed(self, attrs: history.WorkflowExecutionUpdateCompletedEventAttributes) -> int:
        event = self._event(ev.UPDATE_COMPLETED, workflow_execution_update_completed_event_attributes=attrs)
        return event.event_id

    # ------------------------------------------------------------------ close
    def _closing(self) -> None:
        """The run is about to close: a closed run keeps no buffered events."""
        self.visibility_dirty = True
        self.flush_buffered_events()

    def _closed(self) -> None:
        """The close event is applied: tell the parent and apply the children's parent-close
        policies, deliver the completion callbacks (the applier scheduled them unless a new run
        carries on), and delete the run after its retention."""
        self._tasks(tg.close_execution(self.state))
        self._tasks(tg.callbacks(self.state))
        self._tasks(tg.delete_history(self.state, self.retention_ns))

    def add_completed(self, wft_completed_event_id: int, result: common.Payloads | None, new_run_id: str = "") -> None:
        self._closing()
        attrs = history.WorkflowExecutionCompletedEventAttributes(
            workflow_task_completed_event_id=wft_completed_event_id, new_execution_run_id=new_run_id
        )
        if result is not None:
            attrs.result.CopyFrom(result)
        self._event(ev.WORKFLOW_EXECUTION_COMPLETED, workflow_execution_completed_event_attributes=attrs)
        self._closed()

    def add_failed(
        self, wft_completed_event_id: int, failure: failure_pb.Failure, retry_state: int, new_run_id: str = ""
    ) -> None:
        self._closing()
        attrs = history.WorkflowExecutionFailedEventAttributes(
            workflow_task_completed_event_id=wft_completed_event_id,
            retry_state=retry_state,  # type: ignore[arg-type]
            new_execution_run_id=new_run_id,
        )
        attrs.failure.CopyFrom(failure)
        self._event(ev.WORKFLOW_EXECUTION_FAILED, workflow_execution_failed_event_attributes=attrs)
        self._closed()

    def add_timed_out(self, retry_state: int, new_run_id: str = "") -> None:
        self._closing()
        attrs = history.WorkflowExecutionTimedOutEventAttributes(
            retry_state=retry_state,  # type: ignore[arg-type]
            new_execution_run_id=new_run_id,
        )
        self._event(ev.WORKFLOW_EXECUTION_TIMED_OUT, workflow_execution_timed_out_event_attributes=attrs)
        self._closed()

    def add_canceled(self, wft_completed_event_id: int, details: common.Payloads | None) -> None:
        self._closing()
        attrs = history.WorkflowExecutionCanceledEventAttributes(
            workflow_task_completed_event_id=wft_completed_event_id
        )
        if details is not None:
            attrs.details.CopyFrom(details)
        self._event(ev.WORKFLOW_EXECUTION_CANCELED, workflow_execution_canceled_event_attributes=attrs)
        self._closed()

    def add_continued_as_new(self, attrs: history.WorkflowExecutionContinuedAsNewEventAttributes) -> None:
        self._closing()
        self._event(ev.WORKFLOW_EXECUTION_CONTINUED_AS_NEW, workflow_execution_continued_as_new_event_attributes=attrs)
        self._closed()

    def add_terminated(self, reason: str, details: common.Payloads | None, identity: str) -> None:
        self._closing()
        attrs = history.WorkflowExecutionTerminatedEventAttributes(reason=reason, identity=identity)
        if details is not None:
            attrs.details.CopyFrom(details)
        self._event(ev.WORKFLOW_EXECUTION_TERMINATED, workflow_execution_terminated_event_attributes=attrs)
        self._closed()


STANDALONE_COMPLETED = ActivityStatus.ACTIVITY_EXECUTION_STATUS_COMPLETED
STANDALONE_FAILED = ActivityStatus.ACTIVITY_EXECUTION_STATUS_FAILED
STANDALONE_CANCELED = ActivityStatus.ACTIVITY_EXECUTION_STATUS_CANCELED
STANDALONE_TIMED_OUT = ActivityStatus.ACTIVITY_EXECUTION_STATUS_TIMED_OUT


def _canceled_failure(details: common.Payloads | None, identity: str) -> failure_pb.Failure:
    """A standalone activity's outcome when it is canceled (the reference's message, and who canceled it)."""
    failure = failure_pb.Failure(message="Activity canceled")
    failure.canceled_failure_info.SetInParent()
    failure.canceled_failure_info.identity = identity
    if details is not None:
        failure.canceled_failure_info.details.CopyFrom(details)
    return failure
