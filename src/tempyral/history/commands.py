"""Turn the commands of a completed workflow task into events, validating them as the reference does.

A command that fails validation raises `WorkflowTaskFailure`: the caller drops every event
the task produced and records WorkflowTaskFailed with the cause instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common_pb
from temporalio.api.common.v1.message_pb2 import Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import (
    CommandType,
    ParentClosePolicy,
    TaskQueueKind,
    WorkflowTaskFailedCause,
)
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1.message_pb2 import TaskQueue

from tempyral.common import cron, ids
from tempyral.common.clock import duration, duration_ns, ts_ns
from tempyral.common.durations import InvalidDuration, validate_and_cap
from tempyral.common.errors import InvalidArgument
from tempyral.common.ids import is_uuid
from tempyral.common.limits import MAX_PENDING_ACTIVITIES, exceeds_blob_limit, max_id_length, workflow_timeouts
from tempyral.common.retry import RetryDecision, next_retry, normalize_retry_policy
from tempyral.history import next_run
from tempyral.history.mutable_state import MutableState
from tempyral.history.payloads import encode_string
from tempyral.namespace.registry import Namespace
from tempyral.proto.internal_pb2 import ActivityInfo
from tempyral.visibility.values import prepare_search_attributes

Cause = WorkflowTaskFailedCause
RetryState = wf_enums.RetryState
MAX_NEXUS_NAME_LENGTH = 1000
MAX_NEXUS_HEADER_SIZE = 8192
# Headers the server sets itself on Nexus requests (the reference also refuses its internal routing headers).
DISALLOWED_NEXUS_HEADERS = frozenset({"request-timeout"})
CLOSE_COMMANDS = frozenset(
    {
        CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
    }
)
KNOWN_COMMANDS = CLOSE_COMMANDS | frozenset(
    {
        CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK,
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK,
        CommandType.COMMAND_TYPE_START_TIMER,
        CommandType.COMMAND_TYPE_CANCEL_TIMER,
        CommandType.COMMAND_TYPE_RECORD_MARKER,
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION,
        CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
        CommandType.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES,
        CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE,
        CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION,
        CommandType.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION,
    }
)


class WorkflowTaskFailure(Exception):
    """A command the server rejects. With `terminate`, the workflow is terminated as well."""

    def __init__(self, cause: int, message: str, terminate: bool = False) -> None:
        super().__init__(message)
        self.cause = cause
        self.message = message
        self.terminate = terminate

    def full_message(self) -> str:
        """The reference's wording: the cause in CamelCase, then the reason."""
        name = Cause.Name(self.cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")  # type: ignore[arg-type]
        camel = "".join(word.capitalize() for word in name.split("_"))
        return f"{camel}: {self.message}" if self.message else camel


def _check_size(size: int, cause: int, message: str) -> None:
    if exceeds_blob_limit(size):
        raise WorkflowTaskFailure(cause, message, terminate=True)


def _check_duration(value: Duration, cause: int, before: str, after: str = "") -> None:
    """Cap a duration of a command at 100 years in place, or fail the task, the reason between
    `before` and `after` in the message."""
    try:
        validate_and_cap(value)
    except InvalidDuration as err:
        raise WorkflowTaskFailure(cause, f"{before}{err}{after}") from err


def _task_queue_text(tq: TaskQueue) -> str:
    """A task queue as the reference's messages show it: Go's protobuf text format, whose field
    separator the reference's build makes two spaces."""
    fields = []
    if tq.name:
        fields.append(f"name:{json.dumps(tq.name, ensure_ascii=False)}")
    if tq.kind:
        fields.append(f"kind:{TaskQueueKind.Name(tq.kind)}")
    if tq.normal_name:
        fields.append(f"normal_name:{json.dumps(tq.normal_name, ensure_ascii=False)}")
    return "  ".join(fields)


def _copy_set_fields(source: Message, target: Message, names: tuple[str, ...]) -> None:
    """Copy the message fields among `names` that are set on `source`."""
    for descriptor, value in source.ListFields():
        if descriptor.name in names:
            getattr(target, descriptor.name).CopyFrom(value)


def _map_size(fields: Mapping[str, Payload] | Mapping[str, Payloads]) -> int:
    return sum(p.ByteSize() for p in fields.values())


@dataclass(slots=True)
class CommandResult:
    eager_activities: list[ActivityInfo] = field(default_factory=list)
    # Set when the run closed into a new one (retry, continue-as-new, cron): its start.
    next_run: history.WorkflowExecutionStartedEventAttributes | None = None
    activity_cancelled_before_start: bool = False


def validate_command_sequence(commands: list[command_pb.Command]) -> None:
    """A close command must come last (answered with INVALID_ARGUMENT, not a task failure)."""
    close: CommandType.ValueType | None = None
    for command in commands:
        if close is not None:
            names = ", ".join(CommandType.Name(c.command_type) for c in commands)
            raise InvalidArgument(
                f"invalid command sequence: [{names}], command {CommandType.Name(close)} must be the last command."
            )
        if command.command_type not in KNOWN_COMMANDS:
            raise InvalidArgument(f"unknown command type: {command.command_type}")
        if command.command_type in CLOSE_COMMANDS:
            close = command.command_type


class CommandProcessor:
    def __init__(
        self,
        ms: MutableState,
        ns: Namespace,
        wft_completed_event_id: int,
        identity: str,
        has_buffered_events: bool,
        namespaces: Callable[[str], Namespace | None] = lambda name: None,
        on_message: Callable[[str], None] = lambda message_id: None,
        find_endpoint: Callable[[str], str | None] = lambda name: None,
        max_pending_nexus: int = 30,
    ) -> None:
        self.ms = ms
        self.find_endpoint = find_endpoint  # endpoint name -> id
        self.max_pending_nexus = max_pending_nexus
        self.ns = ns
        self.namespaces = namespaces
        self.on_message = on_message
        self.children_started: set[str] = set()
        self.completed_id = wft_completed_event_id
        self.identity = identity
        self.has_buffered = has_buffered_events
        self.result = CommandResult()

    def process(self, commands: list[command_pb.Command]) -> CommandResult:
        for command in commands:
            handler = _HANDLERS.get(command.command_type)
            if handler is None:
                raise WorkflowTaskFailure(
                    Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND,
                    f"command {CommandType.Name(command.command_type)} is not supported by this server yet",
                )
            handler(self, command)
            if not self.ms.running:
                break  # the first close command wins
        return self.result

    # ------------------------------------------------------------------ activities
    def _schedule_activity(self, command: command_pb.Command) -> None:
        a = command.schedule_activity_task_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
        if not a.activity_id:
            raise WorkflowTaskFailure(cause, "activityId is not set")
        if not a.activity_type.name:
            raise WorkflowTaskFailure(cause, "activityType is not set")
        if len(a.activity_id) > max_id_length():
            raise WorkflowTaskFailure(
                cause, f"activityId exceeds length limit. Length={len(a.activity_id)} Limit={max_id_length()}"
            )
        _check_size(a.input.ByteSize(), cause, "ScheduleActivityTaskCommandAttributes.Input exceeds size limit.")
        if len(self.ms.state.activities) >= MAX_PENDING_ACTIVITIES:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_ACTIVITIES_LIMIT_EXCEEDED,
                "the number of pending activities exceeds the limit",
            )
        if self.ms.activity_by_id(a.activity_id) is not None:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_SCHEDULE_ACTIVITY_DUPLICATE_ID,
                f"Duplicate activity ID: {a.activity_id}",
            )
        attrs = history.ActivityTaskScheduledEventAttributes(
            activity_id=a.activity_id,
            activity_type=a.activity_type,
            header=a.header,
            workflow_task_completed_event_id=self.completed_id,
            use_workflow_build_id=a.use_workflow_build_id,
        )
        attrs.task_queue.CopyFrom(a.task_queue)
        if not attrs.task_queue.name:
            attrs.task_queue.CopyFrom(self.ms.normal_task_queue)
        if not attrs.task_queue.kind:
            attrs.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
        if a.HasField("input"):
            attrs.input.CopyFrom(a.input)
        if a.HasField("priority"):
            attrs.priority.CopyFrom(a.priority)
        else:
            attrs.priority.SetInParent()
        self._normalize_activity_timeouts(a, attrs)
        policy = attrs.retry_policy
        policy.CopyFrom(a.retry_policy)
        try:
            normalize_retry_policy(policy)
        except InvalidArgument as err:
            raise WorkflowTaskFailure(cause, err.message) from err
        eager = a.request_eager_execution
        ai = self.ms.add_activity_task_scheduled(attrs, dispatch=not eager)
        if eager:
            self.result.eager_activities.append(ai)

    def _normalize_activity_timeouts(
        self, a: command_pb.ScheduleActivityTaskCommandAttributes, attrs: history.ActivityTaskScheduledEventAttributes
    ) -> None:
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES
        for name, value in (
            ("ScheduleToCloseTimeout", a.schedule_to_close_timeout),
            ("ScheduleToStartTimeout", a.schedule_to_start_timeout),
            ("StartToCloseTimeout", a.start_to_close_timeout),
            ("HeartbeatTimeout", a.heartbeat_timeout),
        ):
            _check_duration(value, cause, f"invalid {name}: ")
        s2c = duration_ns(a.schedule_to_close_timeout)
        s2s = duration_ns(a.schedule_to_start_timeout)
        stc = duration_ns(a.start_to_close_timeout)
        hb = duration_ns(a.heartbeat_timeout)
        run_timeout = duration_ns(self.ms.state.start.workflow_run_timeout)
        if s2c > 0:
            s2s = min(s2s, s2c) if s2s > 0 else s2c
            stc = min(stc, s2c) if stc > 0 else s2c
        elif stc > 0:
            s2c = run_timeout
            if s2s <= 0:
                s2s = run_timeout
        else:
            raise WorkflowTaskFailure(
                cause,
                "a valid StartToCloseTimeout or ScheduleToCloseTimeout must be set on the activity. "
                f"ActivityId={a.activity_id} ActivityType={a.activity_type.name}",
            )
        if run_timeout > 0:
            s2c, s2s, stc, hb = (min(v, run_timeout) for v in (s2c, s2s, stc, hb))
        hb = min(hb, stc)
        attrs.schedule_to_close_timeout.CopyFrom(duration(s2c))
        attrs.schedule_to_start_timeout.CopyFrom(duration(s2s))
        attrs.start_to_close_timeout.CopyFrom(duration(stc))
        attrs.heartbeat_timeout.CopyFrom(duration(hb))

    def _request_cancel_activity(self, command: command_pb.Command) -> None:
        a = command.request_cancel_activity_task_command_attributes
        ai = self.ms.state.activities.get(a.scheduled_event_id)
        if ai is None:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_ACTIVITY_ATTRIBUTES,
                f"invalid history builder state for action: add-activitytask-cancel-requested-event, "
                f"ScheduledEventID: {a.scheduled_event_id}",
            )
        cancel_id = self.ms.add_activity_task_cancel_requested(a.scheduled_event_id, self.completed_id)
        ai = self.ms.state.activities[a.scheduled_event_id]
        if not ai.started:
            ai.cancel_request_event_id = cancel_id
            self.ms.add_activity_task_canceled(ai, encode_string("ACTIVITY_ID_NOT_STARTED"), self.identity)
            self.result.activity_cancelled_before_start = True
            self.result.eager_activities = [
                e for e in self.result.eager_activities if e.scheduled_event_id != a.scheduled_event_id
            ]

    # ------------------------------------------------------------------ timers
    def _start_timer(self, command: command_pb.Command) -> None:
        a = command.start_timer_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_TIMER_ATTRIBUTES
        if not a.timer_id:
            raise WorkflowTaskFailure(cause, "TimerId is not set on StartTimerCommand.")
        if len(a.timer_id) > max_id_length():
            raise WorkflowTaskFailure(cause, "TimerId on StartTimerCommand exceeds length limit.")
        # A zero timeout is valid (`workflow.sleep(0)`): the timer fires right away.
        _check_duration(
            a.start_to_fire_timeout,
            cause,
            "An invalid StartToFireTimeout is set on StartTimerCommand: ",
            f". TimerId={a.timer_id}",
        )
        if a.timer_id in self.ms.state.timers:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_START_TIMER_DUPLICATE_ID, f"Duplicate timer ID: {a.timer_id}"
            )
        start_to_fire = a.start_to_fire_timeout if a.HasField("start_to_fire_timeout") else None
        self.ms.add_timer_started(a.timer_id, start_to_fire, self.completed_id)

    def _cancel_timer(self, command: command_pb.Command) -> None:
        a = command.cancel_timer_command_attributes
        if not a.timer_id:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
                "TimerId is not set on CancelTimerCommand.",
            )
        if a.timer_id not in self.ms.state.timers:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CANCEL_TIMER_ATTRIBUTES,
                f"invalid history builder state for action: add-timer-canceled-event, TimerID: {a.timer_id}",
            )
        self.ms.add_timer_canceled(a.timer_id, self.completed_id, self.identity)

    def _protocol_message(self, command: command_pb.Command) -> None:
        self.on_message(command.protocol_message_command_attributes.message_id)

    # ------------------------------------------------------------------ markers, attributes
    def _record_marker(self, command: command_pb.Command) -> None:
        a = command.record_marker_command_attributes
        if not a.marker_name:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
                "MarkerName is not set on RecordMarkerCommand.",
            )
        _check_size(
            _map_size(a.details),
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_RECORD_MARKER_ATTRIBUTES,
            "RecordMarkerCommandAttributes.Details exceeds size limit.",
        )
        attrs = history.MarkerRecordedEventAttributes(
            marker_name=a.marker_name, workflow_task_completed_event_id=self.completed_id
        )
        for key, value in a.details.items():
            attrs.details[key].CopyFrom(value)
        if a.HasField("header"):
            attrs.header.CopyFrom(a.header)
        if a.HasField("failure"):
            attrs.failure.CopyFrom(a.failure)
        self.ms.add_marker_recorded(attrs)

    def _upsert_search_attributes(self, command: command_pb.Command) -> None:
        a = command.upsert_workflow_search_attributes_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SEARCH_ATTRIBUTES
        if not a.search_attributes.indexed_fields:
            raise WorkflowTaskFailure(cause, "IndexedFields is empty on command.")
        _check_size(
            _map_size(a.search_attributes.indexed_fields),
            cause,
            "UpsertWorkflowSearchAttributesCommandAttributes exceeds size limit.",
        )
        try:
            check_and_type_search_attributes(self.ns, a.search_attributes)
        except InvalidArgument as err:
            raise WorkflowTaskFailure(cause, err.message) from err
        self.ms.add_upsert_search_attributes(self.completed_id, a.search_attributes)

    def _modify_properties(self, command: command_pb.Command) -> None:
        a = command.modify_workflow_properties_command_attributes
        if not a.upserted_memo.fields:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
                "UpsertedMemo is empty on command.",
            )
        _check_size(
            _map_size(a.upserted_memo.fields),
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_MODIFY_WORKFLOW_PROPERTIES_ATTRIBUTES,
            "ModifyWorkflowPropertiesCommandAttributes exceeds size limit.",
        )
        self.ms.add_properties_modified(self.completed_id, a.upserted_memo)

    # ------------------------------------------------------------------ close
    def _check_can_close(self) -> None:
        if self.has_buffered:
            # new events arrived while the task ran: the workflow has to see them first
            raise WorkflowTaskFailure(Cause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND, "")

    def _complete(self, command: command_pb.Command) -> None:
        self._check_can_close()
        a = command.complete_workflow_execution_command_attributes
        _check_size(
            a.result.ByteSize(),
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_ACTIVITY_ATTRIBUTES,  # sic: the reference's cause
            "CompleteWorkflowExecutionCommandAttributes.Result exceeds size limit.",
        )
        result = a.result if a.HasField("result") else None
        new_run_id = self._cron_run_id()
        self.ms.add_completed(self.completed_id, result, new_run_id)
        if new_run_id:
            self.result.next_run = next_run.cron(
                self.ms.state, new_run_id, self._cron_backoff(), result, None, self.ms.now
            )

    def _fail(self, command: command_pb.Command) -> None:
        self._check_can_close()
        a = command.fail_workflow_execution_command_attributes
        _check_size(
            a.failure.ByteSize(),
            Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_FAIL_WORKFLOW_EXECUTION_ATTRIBUTES,
            "FailWorkflowExecutionCommandAttributes.Failure exceeds size limit.",
        )
        s = self.ms.state
        decision = RetryDecision(RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET)
        if s.start.HasField("retry_policy"):
            decision = next_retry(
                s.start.retry_policy,
                s.start.attempt,
                a.failure,
                self.ms.now,
                s.execution_expiration_time.seconds * 1_000_000_000 + s.execution_expiration_time.nanos,
                delay_within_maximum=True,
            )
        if decision.retry:
            new_run_id = ids.new_run_id()
            self.ms.add_failed(self.completed_id, a.failure, decision.state, new_run_id)
            self.result.next_run = next_run.retry(
                self.ms.state, new_run_id, decision.backoff_ns, a.failure, self.ms.now
            )
            return
        new_run_id = self._cron_run_id()
        self.ms.add_failed(self.completed_id, a.failure, decision.state, new_run_id)
        if new_run_id:
            backoff = self._cron_backoff()
            self.result.next_run = next_run.cron(self.ms.state, new_run_id, backoff, None, a.failure, self.ms.now)

    def _cron_run_id(self) -> str:
        return ids.new_run_id() if self.ms.state.start.cron_schedule else ""

    def _cron_backoff(self) -> int:
        s = self.ms.state
        return cron.backoff_ns(s.start.cron_schedule, ts_ns(s.execution_time), self.ms.now)

    def _cancel(self, command: command_pb.Command) -> None:
        self._check_can_close()
        a = command.cancel_workflow_execution_command_attributes
        self.ms.add_canceled(self.completed_id, a.details if a.HasField("details") else None)

    def _continue_as_new(self, command: command_pb.Command) -> None:
        self._check_can_close()
        a = command.continue_as_new_workflow_execution_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_CONTINUE_AS_NEW_ATTRIBUTES
        s = self.ms.state
        if not a.workflow_type.name:
            a.workflow_type.CopyFrom(s.start.workflow_type)
        if not a.task_queue.name:
            a.task_queue.CopyFrom(s.start.task_queue)
        if not a.task_queue.kind:
            a.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
        where = f"WorkflowType={a.workflow_type.name} TaskQueue={_task_queue_text(a.task_queue)}"
        for name, value in (
            ("WorkflowRunTimeout", a.workflow_run_timeout),
            ("WorkflowTaskTimeout", a.workflow_task_timeout),
            ("BackoffStartInterval", a.backoff_start_interval),
        ):
            _check_duration(
                value,
                cause,
                f"Invalid {name} on ContinueAsNewWorkflowExecutionCommand: ",
                f". {where}",
            )
        if duration_ns(a.workflow_run_timeout) == 0:
            a.workflow_run_timeout.CopyFrom(s.start.workflow_run_timeout)
        if duration_ns(a.workflow_task_timeout) == 0:
            a.workflow_task_timeout.CopyFrom(s.start.workflow_task_timeout)
        # The new run gets them as a start would: within the execution timeout, a task within 120 s.
        run_timeout, task_timeout = workflow_timeouts(
            duration_ns(s.start.workflow_execution_timeout),
            duration_ns(a.workflow_run_timeout),
            duration_ns(a.workflow_task_timeout),
        )
        a.workflow_run_timeout.CopyFrom(duration(run_timeout))
        a.workflow_task_timeout.CopyFrom(duration(task_timeout))
        if a.HasField("retry_policy"):
            try:
                normalize_retry_policy(a.retry_policy)
            except InvalidArgument as err:
                raise WorkflowTaskFailure(
                    cause,
                    f"invalid WorkflowRetryPolicy on ContinueAsNewWorkflowExecutionCommand: {err.message}. {where}",
                ) from err
        try:
            cron.validate(a.cron_schedule)
            check_and_type_search_attributes(self.ns, a.search_attributes)
        except InvalidArgument as err:
            raise WorkflowTaskFailure(cause, err.message) from err
        _check_size(
            a.input.ByteSize(), cause, "ContinueAsNewWorkflowExecutionCommandAttributes. Input exceeds size limit."
        )
        new_run_id = ids.new_run_id()
        event = history.WorkflowExecutionContinuedAsNewEventAttributes(
            new_execution_run_id=new_run_id,
            workflow_type=a.workflow_type,
            task_queue=a.task_queue,
            workflow_run_timeout=a.workflow_run_timeout,
            workflow_task_timeout=a.workflow_task_timeout,
            workflow_task_completed_event_id=self.completed_id,
            initiator=a.initiator,
            inherit_build_id=a.inherit_build_id,
        )
        _copy_set_fields(
            a,
            event,
            (
                "input",
                "failure",
                "last_completion_result",
                "header",
                "memo",
                "search_attributes",
                "backoff_start_interval",
            ),
        )
        self.ms.add_continued_as_new(event)
        self.result.next_run = next_run.continue_as_new(s, new_run_id, a, self.ms.now)

    # ------------------------------------------------------------------ children and other workflows
    def _start_child(self, command: command_pb.Command) -> None:
        a = command.start_child_workflow_execution_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_START_CHILD_EXECUTION_ATTRIBUTES
        wid, wtype, namespace = a.workflow_id, a.workflow_type.name, a.namespace or self.ns.name
        where = f"WorkflowId={wid} WorkflowType={wtype} Namespace={namespace}"
        if not wid:
            raise WorkflowTaskFailure(
                cause,
                f"Required field WorkflowId is not set on StartChildWorkflowExecutionCommand. "
                f"WorkflowType={wtype} Namespace={namespace}",
            )
        if not wtype:
            raise WorkflowTaskFailure(
                cause,
                f"Required field WorkflowType is not set on StartChildWorkflowExecutionCommand. "
                f"WorkflowId={wid} Namespace={namespace}",
            )
        if len(wid) > max_id_length() or len(wtype) > max_id_length():
            raise WorkflowTaskFailure(
                cause, f"Id or type on StartChildWorkflowExecutionCommand exceeds length limit. {where}"
            )
        target = self.namespaces(namespace) if namespace != self.ns.name else self.ns
        if target is None:
            raise WorkflowTaskFailure(cause, f"Namespace {namespace} is not found. {where}")
        for name, value in (
            ("WorkflowExecutionTimeout", a.workflow_execution_timeout),
            ("WorkflowRunTimeout", a.workflow_run_timeout),
            ("WorkflowTaskTimeout", a.workflow_task_timeout),
        ):
            _check_duration(
                value,
                cause,
                f"Invalid {name} on StartChildWorkflowExecutionCommand: ",
                f". {where}",
            )
        if a.HasField("retry_policy"):
            try:
                normalize_retry_policy(a.retry_policy)
            except InvalidArgument as err:
                raise WorkflowTaskFailure(
                    cause,
                    f"invalid WorkflowRetryPolicy on StartChildWorkflowExecutionCommand: {err.message}. {where}",
                ) from err
        try:
            cron.validate(a.cron_schedule)
            check_and_type_search_attributes(target, a.search_attributes)
        except InvalidArgument as err:
            raise WorkflowTaskFailure(cause, f"{err.message} {where}") from err
        _check_size(a.input.ByteSize(), cause, "StartChildWorkflowExecutionCommandAttributes.Input exceeds size limit.")
        attrs = history.StartChildWorkflowExecutionInitiatedEventAttributes(
            namespace=target.name,
            namespace_id=target.id,
            workflow_id=wid,
            workflow_type=a.workflow_type,
            task_queue=a.task_queue if a.task_queue.name else self.ms.normal_task_queue,
            parent_close_policy=a.parent_close_policy or ParentClosePolicy.PARENT_CLOSE_POLICY_TERMINATE,
            control=a.control,
            workflow_task_completed_event_id=self.completed_id,
            workflow_id_reuse_policy=a.workflow_id_reuse_policy,
            cron_schedule=a.cron_schedule,
            inherit_build_id=a.inherit_build_id,
        )
        if not attrs.task_queue.kind:
            attrs.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
        _copy_set_fields(
            a, attrs, ("input", "retry_policy", "header", "search_attributes", "priority", "workflow_execution_timeout")
        )
        if a.memo.fields:  # an empty memo is left out, as on the reference
            attrs.memo.CopyFrom(a.memo)
        # The reference writes the run and task timeouts the child will get, defaults filled in.
        run_timeout, task_timeout = workflow_timeouts(
            duration_ns(a.workflow_execution_timeout),
            duration_ns(a.workflow_run_timeout),
            duration_ns(a.workflow_task_timeout),
        )
        attrs.workflow_run_timeout.CopyFrom(duration(run_timeout))
        attrs.workflow_task_timeout.CopyFrom(duration(task_timeout))
        self.ms.add_start_child_initiated(attrs)
        self.children_started.add(wid)

    def _signal_external(self, command: command_pb.Command) -> None:
        a = command.signal_external_workflow_execution_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SIGNAL_WORKFLOW_EXECUTION_ATTRIBUTES
        wid, rid, namespace = a.execution.workflow_id, a.execution.run_id, a.namespace or self.ns.name
        where = f"Namespace={namespace} RunId={rid} SignalName={a.signal_name}"
        if not wid:
            raise WorkflowTaskFailure(
                cause, f"WorkflowId is not set on SignalExternalWorkflowExecutionCommand. {where}"
            )
        if rid and not is_uuid(rid):
            raise WorkflowTaskFailure(
                cause, f"Invalid RunId set on SignalExternalWorkflowExecutionCommand. WorkflowId={wid} {where}"
            )
        if not a.signal_name:
            raise WorkflowTaskFailure(
                cause,
                f"SignalName is not set on SignalExternalWorkflowExecutionCommand. "
                f"WorkflowId={wid} Namespace={namespace} RunId={rid}",
            )
        target = self.namespaces(namespace) if namespace != self.ns.name else self.ns
        _check_size(
            a.input.ByteSize(), cause, "SignalExternalWorkflowExecutionCommandAttributes.Input exceeds size limit."
        )
        attrs = history.SignalExternalWorkflowExecutionInitiatedEventAttributes(
            workflow_task_completed_event_id=self.completed_id,
            namespace=namespace,
            namespace_id=target.id if target else "",
            workflow_execution=a.execution,
            signal_name=a.signal_name,
            control=a.control,
            child_workflow_only=a.child_workflow_only,
        )
        _copy_set_fields(a, attrs, ("input", "header"))
        self.ms.add_signal_external_initiated(attrs)

    def _cancel_external(self, command: command_pb.Command) -> None:
        a = command.request_cancel_external_workflow_execution_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION_ATTRIBUTES
        namespace = a.namespace or self.ns.name
        where = f"Namespace={namespace} RunId={a.run_id}"
        if not a.workflow_id:
            raise WorkflowTaskFailure(
                cause, f"WorkflowId is not set on RequestCancelExternalWorkflowExecutionCommand. {where}"
            )
        if a.run_id and not is_uuid(a.run_id):
            raise WorkflowTaskFailure(
                cause,
                f"Invalid RunId set on RequestCancelExternalWorkflowExecutionCommand. "
                f"WorkflowId={a.workflow_id} RunId={a.run_id} Namespace={namespace}",
            )
        if a.workflow_id in self.children_started:
            raise WorkflowTaskFailure(
                cause,
                "Start and RequestCancel for child workflow is not allowed in same workflow task. "
                f"WorkflowId={a.workflow_id} RunId={a.run_id} Namespace={namespace}",
            )
        target = self.namespaces(namespace) if namespace != self.ns.name else self.ns
        attrs = history.RequestCancelExternalWorkflowExecutionInitiatedEventAttributes(
            workflow_task_completed_event_id=self.completed_id,
            namespace=namespace,
            namespace_id=target.id if target else "",
            workflow_execution=common_pb.WorkflowExecution(workflow_id=a.workflow_id, run_id=a.run_id),
            control=a.control,
            child_workflow_only=a.child_workflow_only,
            reason=a.reason,
        )
        self.ms.add_cancel_external_initiated(attrs)

    # ------------------------------------------------------------------ Nexus operations
    def _schedule_nexus(self, command: command_pb.Command) -> None:
        a = command.schedule_nexus_operation_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_SCHEDULE_NEXUS_OPERATION_ATTRIBUTES
        endpoint_id = self.find_endpoint(a.endpoint)
        if endpoint_id is None:
            raise WorkflowTaskFailure(cause, f'endpoint "{a.endpoint}" not found')
        if len(a.service) > MAX_NEXUS_NAME_LENGTH:
            raise WorkflowTaskFailure(
                cause,
                f"ScheduleNexusOperationCommandAttributes.Service exceeds length limit of {MAX_NEXUS_NAME_LENGTH}",
            )
        if len(a.operation) > MAX_NEXUS_NAME_LENGTH:
            raise WorkflowTaskFailure(
                cause,
                f"ScheduleNexusOperationCommandAttributes.Operation exceeds length limit of {MAX_NEXUS_NAME_LENGTH}",
            )
        for name in ("ScheduleToCloseTimeout", "ScheduleToStartTimeout", "StartToCloseTimeout"):
            _check_duration(
                getattr(a, _snake(name)),
                cause,
                f"ScheduleNexusOperationCommandAttributes.{name} is invalid: ",
            )
        _check_size(a.input.ByteSize(), cause, "ScheduleNexusOperationCommandAttributes.Input exceeds size limit")
        header: dict[str, str] = {}
        for key, value in a.nexus_header.items():
            lower = key.lower()
            if lower in DISALLOWED_NEXUS_HEADERS:
                raise WorkflowTaskFailure(
                    cause,
                    f'ScheduleNexusOperationCommandAttributes.NexusHeader contains a disallowed header key: "{key}"',
                )
            header[lower] = value
        if sum(len(k) + len(v) for k, v in header.items()) > MAX_NEXUS_HEADER_SIZE:
            raise WorkflowTaskFailure(cause, "ScheduleNexusOperationCommandAttributes.NexusHeader exceeds size limit")
        if len(self.ms.state.nexus_operations) >= self.max_pending_nexus:
            raise WorkflowTaskFailure(
                Cause.WORKFLOW_TASK_FAILED_CAUSE_PENDING_NEXUS_OPERATIONS_LIMIT_EXCEEDED,
                f"workflow has reached the pending nexus operation limit of {self.max_pending_nexus} "
                "for this namespace",
            )
        attrs = history.NexusOperationScheduledEventAttributes(
            endpoint=a.endpoint,
            endpoint_id=endpoint_id,
            service=a.service,
            operation=a.operation,
            nexus_header=header,
            request_id=ids.new_id(),
            workflow_task_completed_event_id=self.completed_id,
        )
        if a.HasField("input"):
            attrs.input.CopyFrom(a.input)
        # The operation may not outlive the run: its timeout is capped by the run timeout.
        s2c = duration_ns(a.schedule_to_close_timeout)
        run_timeout = duration_ns(self.ms.state.start.workflow_run_timeout)
        if run_timeout > 0 and (s2c == 0 or s2c > run_timeout):
            s2c = run_timeout
        if s2c:
            attrs.schedule_to_close_timeout.CopyFrom(duration(s2c))
        for field_name in ("schedule_to_start_timeout", "start_to_close_timeout"):
            value_ns = duration_ns(getattr(a, field_name))
            if value_ns:
                getattr(attrs, field_name).CopyFrom(duration(min(value_ns, s2c) if s2c else value_ns))
        metadata = command.user_metadata if command.HasField("user_metadata") else None
        self.ms.add_nexus_scheduled(attrs, metadata)

    def _cancel_nexus(self, command: command_pb.Command) -> None:
        a = command.request_cancel_nexus_operation_command_attributes
        cause = Cause.WORKFLOW_TASK_FAILED_CAUSE_BAD_REQUEST_CANCEL_NEXUS_OPERATION_ATTRIBUTES
        sid = a.scheduled_event_id
        info = self.ms.state.nexus_operations.get(sid)
        if info is None and not self.has_buffered:
            raise WorkflowTaskFailure(
                cause,
                "requested cancelation for a non-existing or already completed operation with scheduled event ID "
                f"of {sid}",
            )
        if info is not None and info.cancellation.requested_event_id:
            raise WorkflowTaskFailure(
                cause, f"cancelation was already requested for an operation with scheduled event ID {sid}"
            )
        # Written even when a buffered completion got there first: the worker's replay expects it.
        self.ms.add_nexus_cancel_requested(sid, self.completed_id)


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def check_and_type_search_attributes(ns: Namespace, search_attributes: SearchAttributes) -> None:
    """Refuse search attributes the namespace does not define or values of the wrong type; stamp
    each payload with its attribute's type, as the reference shows them."""
    prepare_search_attributes(ns.name, dict(ns.record.search_attributes), search_attributes)


_HANDLERS = {
    CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK: CommandProcessor._schedule_activity,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_ACTIVITY_TASK: CommandProcessor._request_cancel_activity,
    CommandType.COMMAND_TYPE_START_TIMER: CommandProcessor._start_timer,
    CommandType.COMMAND_TYPE_CANCEL_TIMER: CommandProcessor._cancel_timer,
    CommandType.COMMAND_TYPE_RECORD_MARKER: CommandProcessor._record_marker,
    CommandType.COMMAND_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES: CommandProcessor._upsert_search_attributes,
    CommandType.COMMAND_TYPE_MODIFY_WORKFLOW_PROPERTIES: CommandProcessor._modify_properties,
    CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION: CommandProcessor._complete,
    CommandType.COMMAND_TYPE_FAIL_WORKFLOW_EXECUTION: CommandProcessor._fail,
    CommandType.COMMAND_TYPE_CANCEL_WORKFLOW_EXECUTION: CommandProcessor._cancel,
    CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION: CommandProcessor._continue_as_new,
    CommandType.COMMAND_TYPE_PROTOCOL_MESSAGE: CommandProcessor._protocol_message,
    CommandType.COMMAND_TYPE_START_CHILD_WORKFLOW_EXECUTION: CommandProcessor._start_child,
    CommandType.COMMAND_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION: CommandProcessor._signal_external,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_EXTERNAL_WORKFLOW_EXECUTION: CommandProcessor._cancel_external,
    CommandType.COMMAND_TYPE_SCHEDULE_NEXUS_OPERATION: CommandProcessor._schedule_nexus,
    CommandType.COMMAND_TYPE_REQUEST_CANCEL_NEXUS_OPERATION: CommandProcessor._cancel_nexus,
}
