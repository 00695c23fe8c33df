import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from temporalio.api.common.v1 import message_pb2 as _message_pb2
from temporalio.api.failure.v1 import message_pb2 as _message_pb2_1
from temporalio.api.history.v1 import message_pb2 as _message_pb2_1_1
from temporalio.api.namespace.v1 import message_pb2 as _message_pb2_1_1_1
from temporalio.api.replication.v1 import message_pb2 as _message_pb2_1_1_1_1
from temporalio.api.schedule.v1 import message_pb2 as _message_pb2_1_1_1_1_1
from temporalio.api.sdk.v1 import user_metadata_pb2 as _user_metadata_pb2
from temporalio.api.taskqueue.v1 import message_pb2 as _message_pb2_1_1_1_1_1_1
from temporalio.api.workflow.v1 import message_pb2 as _message_pb2_1_1_1_1_1_1_1
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskCategory(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_CATEGORY_UNSPECIFIED: _ClassVar[TaskCategory]
    TASK_CATEGORY_TRANSFER: _ClassVar[TaskCategory]
    TASK_CATEGORY_TIMER: _ClassVar[TaskCategory]
    TASK_CATEGORY_REPLICATION: _ClassVar[TaskCategory]

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_DISPATCH_WORKFLOW_TASK: _ClassVar[TaskType]
    TASK_TYPE_DISPATCH_ACTIVITY_TASK: _ClassVar[TaskType]
    TASK_TYPE_CLOSE_EXECUTION: _ClassVar[TaskType]
    TASK_TYPE_START_CHILD: _ClassVar[TaskType]
    TASK_TYPE_SIGNAL_EXTERNAL: _ClassVar[TaskType]
    TASK_TYPE_CANCEL_EXTERNAL: _ClassVar[TaskType]
    TASK_TYPE_NEXUS_START: _ClassVar[TaskType]
    TASK_TYPE_NEXUS_CANCEL: _ClassVar[TaskType]
    TASK_TYPE_CALLBACK: _ClassVar[TaskType]
    TASK_TYPE_WORKFLOW_TASK_TIMEOUT: _ClassVar[TaskType]
    TASK_TYPE_ACTIVITY_TIMEOUT: _ClassVar[TaskType]
    TASK_TYPE_USER_TIMER: _ClassVar[TaskType]
    TASK_TYPE_WORKFLOW_RUN_TIMEOUT: _ClassVar[TaskType]
    TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT: _ClassVar[TaskType]
    TASK_TYPE_ACTIVITY_RETRY_TIMER: _ClassVar[TaskType]
    TASK_TYPE_WORKFLOW_BACKOFF_TIMER: _ClassVar[TaskType]
    TASK_TYPE_DELETE_HISTORY: _ClassVar[TaskType]
    TASK_TYPE_NEXUS_BACKOFF: _ClassVar[TaskType]
    TASK_TYPE_NEXUS_TIMEOUT: _ClassVar[TaskType]
    TASK_TYPE_NEXUS_CANCEL_BACKOFF: _ClassVar[TaskType]
    TASK_TYPE_CALLBACK_BACKOFF: _ClassVar[TaskType]
    TASK_TYPE_REPLICATE_HISTORY: _ClassVar[TaskType]
    TASK_TYPE_REPLICATE_ACTIVITY: _ClassVar[TaskType]
    TASK_TYPE_SCHEDULE_WAKE: _ClassVar[TaskType]
TASK_CATEGORY_UNSPECIFIED: TaskCategory
TASK_CATEGORY_TRANSFER: TaskCategory
TASK_CATEGORY_TIMER: TaskCategory
TASK_CATEGORY_REPLICATION: TaskCategory
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_DISPATCH_WORKFLOW_TASK: TaskType
TASK_TYPE_DISPATCH_ACTIVITY_TASK: TaskType
TASK_TYPE_CLOSE_EXECUTION: TaskType
TASK_TYPE_START_CHILD: TaskType
TASK_TYPE_SIGNAL_EXTERNAL: TaskType
TASK_TYPE_CANCEL_EXTERNAL: TaskType
TASK_TYPE_NEXUS_START: TaskType
TASK_TYPE_NEXUS_CANCEL: TaskType
TASK_TYPE_CALLBACK: TaskType
TASK_TYPE_WORKFLOW_TASK_TIMEOUT: TaskType
TASK_TYPE_ACTIVITY_TIMEOUT: TaskType
TASK_TYPE_USER_TIMER: TaskType
TASK_TYPE_WORKFLOW_RUN_TIMEOUT: TaskType
TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT: TaskType
TASK_TYPE_ACTIVITY_RETRY_TIMER: TaskType
TASK_TYPE_WORKFLOW_BACKOFF_TIMER: TaskType
TASK_TYPE_DELETE_HISTORY: TaskType
TASK_TYPE_NEXUS_BACKOFF: TaskType
TASK_TYPE_NEXUS_TIMEOUT: TaskType
TASK_TYPE_NEXUS_CANCEL_BACKOFF: TaskType
TASK_TYPE_CALLBACK_BACKOFF: TaskType
TASK_TYPE_REPLICATE_HISTORY: TaskType
TASK_TYPE_REPLICATE_ACTIVITY: TaskType
TASK_TYPE_SCHEDULE_WAKE: TaskType

class VersionHistoryItem(_message.Message):
    __slots__ = ("event_id", "version")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    event_id: int
    version: int
    def __init__(self, event_id: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class HistoryBranchRange(_message.Message):
    __slots__ = ("branch_id", "end_event_id")
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    END_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    branch_id: str
    end_event_id: int
    def __init__(self, branch_id: _Optional[str] = ..., end_event_id: _Optional[int] = ...) -> None: ...

class HistoryBranch(_message.Message):
    __slots__ = ("branch_id", "ancestors")
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    ANCESTORS_FIELD_NUMBER: _ClassVar[int]
    branch_id: str
    ancestors: _containers.RepeatedCompositeFieldContainer[HistoryBranchRange]
    def __init__(self, branch_id: _Optional[str] = ..., ancestors: _Optional[_Iterable[_Union[HistoryBranchRange, _Mapping]]] = ...) -> None: ...

class VersionHistory(_message.Message):
    __slots__ = ("branch", "items")
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    branch: HistoryBranch
    items: _containers.RepeatedCompositeFieldContainer[VersionHistoryItem]
    def __init__(self, branch: _Optional[_Union[HistoryBranch, _Mapping]] = ..., items: _Optional[_Iterable[_Union[VersionHistoryItem, _Mapping]]] = ...) -> None: ...

class VersionHistories(_message.Message):
    __slots__ = ("current_index", "histories")
    CURRENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    HISTORIES_FIELD_NUMBER: _ClassVar[int]
    current_index: int
    histories: _containers.RepeatedCompositeFieldContainer[VersionHistory]
    def __init__(self, current_index: _Optional[int] = ..., histories: _Optional[_Iterable[_Union[VersionHistory, _Mapping]]] = ...) -> None: ...

class WorkflowTaskInfo(_message.Message):
    __slots__ = ("scheduled_event_id", "started_event_id", "attempt", "scheduled_time", "started_time", "task_queue", "start_to_close_timeout", "request_id", "identity", "transient", "stamp", "original_scheduled_time", "scheduled", "version")
    SCHEDULED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    START_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    scheduled_event_id: int
    started_event_id: int
    attempt: int
    scheduled_time: _timestamp_pb2.Timestamp
    started_time: _timestamp_pb2.Timestamp
    task_queue: _message_pb2_1_1_1_1_1_1.TaskQueue
    start_to_close_timeout: _duration_pb2.Duration
    request_id: str
    identity: str
    transient: bool
    stamp: int
    original_scheduled_time: _timestamp_pb2.Timestamp
    scheduled: bool
    version: int
    def __init__(self, scheduled_event_id: _Optional[int] = ..., started_event_id: _Optional[int] = ..., attempt: _Optional[int] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., task_queue: _Optional[_Union[_message_pb2_1_1_1_1_1_1.TaskQueue, _Mapping]] = ..., start_to_close_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., request_id: _Optional[str] = ..., identity: _Optional[str] = ..., transient: _Optional[bool] = ..., stamp: _Optional[int] = ..., original_scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., scheduled: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class ActivityInfo(_message.Message):
    __slots__ = ("scheduled_event_id", "scheduled", "scheduled_time", "current_attempt_scheduled_time", "attempt", "started", "started_time", "started_identity", "request_id", "heartbeat_details", "last_heartbeat_time", "last_failure", "last_worker_identity", "cancel_requested", "cancel_request_event_id", "next_attempt_schedule_time", "stamp", "version", "started_event_id", "expiration_time", "has_retry_policy", "worker_version")
    SCHEDULED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ATTEMPT_SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    STARTED_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_DETAILS_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    LAST_WORKER_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    HAS_RETRY_POLICY_FIELD_NUMBER: _ClassVar[int]
    WORKER_VERSION_FIELD_NUMBER: _ClassVar[int]
    scheduled_event_id: int
    scheduled: _message_pb2_1_1.ActivityTaskScheduledEventAttributes
    scheduled_time: _timestamp_pb2.Timestamp
    current_attempt_scheduled_time: _timestamp_pb2.Timestamp
    attempt: int
    started: bool
    started_time: _timestamp_pb2.Timestamp
    started_identity: str
    request_id: str
    heartbeat_details: _message_pb2.Payloads
    last_heartbeat_time: _timestamp_pb2.Timestamp
    last_failure: _message_pb2_1.Failure
    last_worker_identity: str
    cancel_requested: bool
    cancel_request_event_id: int
    next_attempt_schedule_time: _timestamp_pb2.Timestamp
    stamp: int
    version: int
    started_event_id: int
    expiration_time: _timestamp_pb2.Timestamp
    has_retry_policy: bool
    worker_version: _message_pb2.WorkerVersionStamp
    def __init__(self, scheduled_event_id: _Optional[int] = ..., scheduled: _Optional[_Union[_message_pb2_1_1.ActivityTaskScheduledEventAttributes, _Mapping]] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current_attempt_scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempt: _Optional[int] = ..., started: _Optional[bool] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_identity: _Optional[str] = ..., request_id: _Optional[str] = ..., heartbeat_details: _Optional[_Union[_message_pb2.Payloads, _Mapping]] = ..., last_heartbeat_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., last_worker_identity: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., cancel_request_event_id: _Optional[int] = ..., next_attempt_schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., stamp: _Optional[int] = ..., version: _Optional[int] = ..., started_event_id: _Optional[int] = ..., expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., has_retry_policy: _Optional[bool] = ..., worker_version: _Optional[_Union[_message_pb2.WorkerVersionStamp, _Mapping]] = ...) -> None: ...

class TimerInfo(_message.Message):
    __slots__ = ("timer_id", "started_event_id", "expiry_time", "version")
    TIMER_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRY_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    timer_id: str
    started_event_id: int
    expiry_time: _timestamp_pb2.Timestamp
    version: int
    def __init__(self, timer_id: _Optional[str] = ..., started_event_id: _Optional[int] = ..., expiry_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ChildInfo(_message.Message):
    __slots__ = ("initiated_event_id", "initiated", "started_event_id", "started_run_id", "create_request_id", "version")
    INITIATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    INITIATED_FIELD_NUMBER: _ClassVar[int]
    STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CREATE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    initiated_event_id: int
    initiated: _message_pb2_1_1.StartChildWorkflowExecutionInitiatedEventAttributes
    started_event_id: int
    started_run_id: str
    create_request_id: str
    version: int
    def __init__(self, initiated_event_id: _Optional[int] = ..., initiated: _Optional[_Union[_message_pb2_1_1.StartChildWorkflowExecutionInitiatedEventAttributes, _Mapping]] = ..., started_event_id: _Optional[int] = ..., started_run_id: _Optional[str] = ..., create_request_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ExternalRequestInfo(_message.Message):
    __slots__ = ("initiated_event_id", "request_id", "initiated", "version")
    INITIATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    INITIATED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    initiated_event_id: int
    request_id: str
    initiated: _message_pb2_1_1.HistoryEvent
    version: int
    def __init__(self, initiated_event_id: _Optional[int] = ..., request_id: _Optional[str] = ..., initiated: _Optional[_Union[_message_pb2_1_1.HistoryEvent, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateInfo(_message.Message):
    __slots__ = ("update_id", "accepted_event_id", "completed_event_id")
    UPDATE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    update_id: str
    accepted_event_id: int
    completed_event_id: int
    def __init__(self, update_id: _Optional[str] = ..., accepted_event_id: _Optional[int] = ..., completed_event_id: _Optional[int] = ...) -> None: ...

class NexusOperationInfo(_message.Message):
    __slots__ = ("scheduled_event_id", "endpoint", "endpoint_id", "service", "operation", "request_id", "scheduled_time", "schedule_to_close_timeout", "schedule_to_start_timeout", "start_to_close_timeout", "state", "attempt", "last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time", "blocked_reason", "operation_token", "started_time", "version", "cancellation")
    SCHEDULED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVICE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_TIME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_TO_START_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    START_TO_CLOSE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FAILURE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    scheduled_event_id: int
    endpoint: str
    endpoint_id: str
    service: str
    operation: str
    request_id: str
    scheduled_time: _timestamp_pb2.Timestamp
    schedule_to_close_timeout: _duration_pb2.Duration
    schedule_to_start_timeout: _duration_pb2.Duration
    start_to_close_timeout: _duration_pb2.Duration
    state: int
    attempt: int
    last_attempt_complete_time: _timestamp_pb2.Timestamp
    last_attempt_failure: _message_pb2_1.Failure
    next_attempt_schedule_time: _timestamp_pb2.Timestamp
    blocked_reason: str
    operation_token: str
    started_time: _timestamp_pb2.Timestamp
    version: int
    cancellation: NexusCancellationInfo
    def __init__(self, scheduled_event_id: _Optional[int] = ..., endpoint: _Optional[str] = ..., endpoint_id: _Optional[str] = ..., service: _Optional[str] = ..., operation: _Optional[str] = ..., request_id: _Optional[str] = ..., scheduled_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., schedule_to_close_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., schedule_to_start_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., start_to_close_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., state: _Optional[int] = ..., attempt: _Optional[int] = ..., last_attempt_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., next_attempt_schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., blocked_reason: _Optional[str] = ..., operation_token: _Optional[str] = ..., started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., version: _Optional[int] = ..., cancellation: _Optional[_Union[NexusCancellationInfo, _Mapping]] = ...) -> None: ...

class NexusCancellationInfo(_message.Message):
    __slots__ = ("requested_event_id", "requested_time", "state", "attempt", "last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time", "blocked_reason")
    REQUESTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_TIME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FAILURE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_REASON_FIELD_NUMBER: _ClassVar[int]
    requested_event_id: int
    requested_time: _timestamp_pb2.Timestamp
    state: int
    attempt: int
    last_attempt_complete_time: _timestamp_pb2.Timestamp
    last_attempt_failure: _message_pb2_1.Failure
    next_attempt_schedule_time: _timestamp_pb2.Timestamp
    blocked_reason: str
    def __init__(self, requested_event_id: _Optional[int] = ..., requested_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state: _Optional[int] = ..., attempt: _Optional[int] = ..., last_attempt_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., next_attempt_schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., blocked_reason: _Optional[str] = ...) -> None: ...

class CallbackState(_message.Message):
    __slots__ = ("state", "attempt", "last_attempt_complete_time", "last_attempt_failure", "next_attempt_schedule_time")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_FAILURE_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_SCHEDULE_TIME_FIELD_NUMBER: _ClassVar[int]
    state: int
    attempt: int
    last_attempt_complete_time: _timestamp_pb2.Timestamp
    last_attempt_failure: _message_pb2_1.Failure
    next_attempt_schedule_time: _timestamp_pb2.Timestamp
    def __init__(self, state: _Optional[int] = ..., attempt: _Optional[int] = ..., last_attempt_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_attempt_failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., next_attempt_schedule_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NexusCallbackToken(_message.Message):
    __slots__ = ("namespace_id", "workflow_id", "run_id", "scheduled_event_id", "request_id", "standalone")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STANDALONE_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    request_id: str
    standalone: bool
    def __init__(self, namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., scheduled_event_id: _Optional[int] = ..., request_id: _Optional[str] = ..., standalone: _Optional[bool] = ...) -> None: ...

class NexusTaskToken(_message.Message):
    __slots__ = ("namespace_id", "task_queue", "task_id")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    task_queue: str
    task_id: str
    def __init__(self, namespace_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., task_id: _Optional[str] = ...) -> None: ...

class ExecutionState(_message.Message):
    __slots__ = ("namespace_id", "workflow_id", "run_id", "start", "start_time", "execution_time", "close_time", "run_expiration_time", "execution_expiration_time", "status", "next_event_id", "last_completed_wft_started_event_id", "db_version", "start_request_id", "sticky_task_queue", "sticky_schedule_to_start_timeout", "workflow_task", "activities", "timers", "buffered_events", "cancel_requested", "cancel_request_id", "search_attributes", "memo", "completion_event_id", "new_execution_run_id", "history_size_bytes", "signal_request_ids", "signal_count", "last_event_task_id", "version", "activity_count", "last_workflow_task_completed_event_id", "start_request_ids", "header", "user_metadata", "children", "external_signals", "external_cancels", "updates", "reset_run_id", "speculative_workflow_task", "auto_reset_points", "nexus_operations", "callbacks", "version_histories", "reapplied_events", "zombie", "standalone_nexus", "schedule", "standalone_activity")
    class ActivitiesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ActivityInfo
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ActivityInfo, _Mapping]] = ...) -> None: ...
    class TimersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: TimerInfo
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[TimerInfo, _Mapping]] = ...) -> None: ...
    class ChildrenEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ChildInfo
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ChildInfo, _Mapping]] = ...) -> None: ...
    class ExternalSignalsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ExternalRequestInfo
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ExternalRequestInfo, _Mapping]] = ...) -> None: ...
    class ExternalCancelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: ExternalRequestInfo
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[ExternalRequestInfo, _Mapping]] = ...) -> None: ...
    class UpdatesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: UpdateInfo
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[UpdateInfo, _Mapping]] = ...) -> None: ...
    class NexusOperationsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: NexusOperationInfo
        def __init__(self, key: _Optional[int] = ..., value: _Optional[_Union[NexusOperationInfo, _Mapping]] = ...) -> None: ...
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_EXPIRATION_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_COMPLETED_WFT_STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DB_VERSION_FIELD_NUMBER: _ClassVar[int]
    START_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STICKY_TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    STICKY_SCHEDULE_TO_START_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_TASK_FIELD_NUMBER: _ClassVar[int]
    ACTIVITIES_FIELD_NUMBER: _ClassVar[int]
    TIMERS_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    MEMO_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_EXECUTION_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    SIGNAL_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_EVENT_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_WORKFLOW_TASK_COMPLETED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    START_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    CHILDREN_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_SIGNALS_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_CANCELS_FIELD_NUMBER: _ClassVar[int]
    UPDATES_FIELD_NUMBER: _ClassVar[int]
    RESET_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SPECULATIVE_WORKFLOW_TASK_FIELD_NUMBER: _ClassVar[int]
    AUTO_RESET_POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXUS_OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    CALLBACKS_FIELD_NUMBER: _ClassVar[int]
    VERSION_HISTORIES_FIELD_NUMBER: _ClassVar[int]
    REAPPLIED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    ZOMBIE_FIELD_NUMBER: _ClassVar[int]
    STANDALONE_NEXUS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    STANDALONE_ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    workflow_id: str
    run_id: str
    start: _message_pb2_1_1.WorkflowExecutionStartedEventAttributes
    start_time: _timestamp_pb2.Timestamp
    execution_time: _timestamp_pb2.Timestamp
    close_time: _timestamp_pb2.Timestamp
    run_expiration_time: _timestamp_pb2.Timestamp
    execution_expiration_time: _timestamp_pb2.Timestamp
    status: int
    next_event_id: int
    last_completed_wft_started_event_id: int
    db_version: int
    start_request_id: str
    sticky_task_queue: _message_pb2_1_1_1_1_1_1.TaskQueue
    sticky_schedule_to_start_timeout: _duration_pb2.Duration
    workflow_task: WorkflowTaskInfo
    activities: _containers.MessageMap[int, ActivityInfo]
    timers: _containers.MessageMap[str, TimerInfo]
    buffered_events: _containers.RepeatedCompositeFieldContainer[_message_pb2_1_1.HistoryEvent]
    cancel_requested: bool
    cancel_request_id: str
    search_attributes: _message_pb2.SearchAttributes
    memo: _message_pb2.Memo
    completion_event_id: int
    new_execution_run_id: str
    history_size_bytes: int
    signal_request_ids: _containers.RepeatedScalarFieldContainer[str]
    signal_count: int
    last_event_task_id: int
    version: int
    activity_count: int
    last_workflow_task_completed_event_id: int
    start_request_ids: _containers.RepeatedScalarFieldContainer[str]
    header: _message_pb2.Header
    user_metadata: _user_metadata_pb2.UserMetadata
    children: _containers.MessageMap[int, ChildInfo]
    external_signals: _containers.MessageMap[int, ExternalRequestInfo]
    external_cancels: _containers.MessageMap[int, ExternalRequestInfo]
    updates: _containers.MessageMap[str, UpdateInfo]
    reset_run_id: str
    speculative_workflow_task: bool
    auto_reset_points: _message_pb2_1_1_1_1_1_1_1.ResetPoints
    nexus_operations: _containers.MessageMap[int, NexusOperationInfo]
    callbacks: _containers.RepeatedCompositeFieldContainer[CallbackState]
    version_histories: VersionHistories
    reapplied_events: _containers.RepeatedScalarFieldContainer[str]
    zombie: bool
    standalone_nexus: StandaloneNexusOperation
    schedule: ScheduleState
    standalone_activity: StandaloneActivity
    def __init__(self, namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., start: _Optional[_Union[_message_pb2_1_1.WorkflowExecutionStartedEventAttributes, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., execution_expiration_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[int] = ..., next_event_id: _Optional[int] = ..., last_completed_wft_started_event_id: _Optional[int] = ..., db_version: _Optional[int] = ..., start_request_id: _Optional[str] = ..., sticky_task_queue: _Optional[_Union[_message_pb2_1_1_1_1_1_1.TaskQueue, _Mapping]] = ..., sticky_schedule_to_start_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., workflow_task: _Optional[_Union[WorkflowTaskInfo, _Mapping]] = ..., activities: _Optional[_Mapping[int, ActivityInfo]] = ..., timers: _Optional[_Mapping[str, TimerInfo]] = ..., buffered_events: _Optional[_Iterable[_Union[_message_pb2_1_1.HistoryEvent, _Mapping]]] = ..., cancel_requested: _Optional[bool] = ..., cancel_request_id: _Optional[str] = ..., search_attributes: _Optional[_Union[_message_pb2.SearchAttributes, _Mapping]] = ..., memo: _Optional[_Union[_message_pb2.Memo, _Mapping]] = ..., completion_event_id: _Optional[int] = ..., new_execution_run_id: _Optional[str] = ..., history_size_bytes: _Optional[int] = ..., signal_request_ids: _Optional[_Iterable[str]] = ..., signal_count: _Optional[int] = ..., last_event_task_id: _Optional[int] = ..., version: _Optional[int] = ..., activity_count: _Optional[int] = ..., last_workflow_task_completed_event_id: _Optional[int] = ..., start_request_ids: _Optional[_Iterable[str]] = ..., header: _Optional[_Union[_message_pb2.Header, _Mapping]] = ..., user_metadata: _Optional[_Union[_user_metadata_pb2.UserMetadata, _Mapping]] = ..., children: _Optional[_Mapping[int, ChildInfo]] = ..., external_signals: _Optional[_Mapping[int, ExternalRequestInfo]] = ..., external_cancels: _Optional[_Mapping[int, ExternalRequestInfo]] = ..., updates: _Optional[_Mapping[str, UpdateInfo]] = ..., reset_run_id: _Optional[str] = ..., speculative_workflow_task: _Optional[bool] = ..., auto_reset_points: _Optional[_Union[_message_pb2_1_1_1_1_1_1_1.ResetPoints, _Mapping]] = ..., nexus_operations: _Optional[_Mapping[int, NexusOperationInfo]] = ..., callbacks: _Optional[_Iterable[_Union[CallbackState, _Mapping]]] = ..., version_histories: _Optional[_Union[VersionHistories, _Mapping]] = ..., reapplied_events: _Optional[_Iterable[str]] = ..., zombie: _Optional[bool] = ..., standalone_nexus: _Optional[_Union[StandaloneNexusOperation, _Mapping]] = ..., schedule: _Optional[_Union[ScheduleState, _Mapping]] = ..., standalone_activity: _Optional[_Union[StandaloneActivity, _Mapping]] = ...) -> None: ...

class StandaloneActivity(_message.Message):
    __slots__ = ("activity_id", "status", "result", "failure", "retry_state", "cancel_request_id", "canceled_reason", "terminate_request_id", "state_transition_count", "last_attempt_complete_time", "start_delay", "total_heartbeat_count", "identity", "sdk_name", "sdk_version", "last_started_time", "cancel_identity")
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    RETRY_STATE_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    CANCELED_REASON_FIELD_NUMBER: _ClassVar[int]
    TERMINATE_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_ATTEMPT_COMPLETE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_DELAY_FIELD_NUMBER: _ClassVar[int]
    TOTAL_HEARTBEAT_COUNT_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    SDK_NAME_FIELD_NUMBER: _ClassVar[int]
    SDK_VERSION_FIELD_NUMBER: _ClassVar[int]
    LAST_STARTED_TIME_FIELD_NUMBER: _ClassVar[int]
    CANCEL_IDENTITY_FIELD_NUMBER: _ClassVar[int]
    activity_id: str
    status: int
    result: _message_pb2.Payloads
    failure: _message_pb2_1.Failure
    retry_state: int
    cancel_request_id: str
    canceled_reason: str
    terminate_request_id: str
    state_transition_count: int
    last_attempt_complete_time: _timestamp_pb2.Timestamp
    start_delay: _duration_pb2.Duration
    total_heartbeat_count: int
    identity: str
    sdk_name: str
    sdk_version: str
    last_started_time: _timestamp_pb2.Timestamp
    cancel_identity: str
    def __init__(self, activity_id: _Optional[str] = ..., status: _Optional[int] = ..., result: _Optional[_Union[_message_pb2.Payloads, _Mapping]] = ..., failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., retry_state: _Optional[int] = ..., cancel_request_id: _Optional[str] = ..., canceled_reason: _Optional[str] = ..., terminate_request_id: _Optional[str] = ..., state_transition_count: _Optional[int] = ..., last_attempt_complete_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_delay: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total_heartbeat_count: _Optional[int] = ..., identity: _Optional[str] = ..., sdk_name: _Optional[str] = ..., sdk_version: _Optional[str] = ..., last_started_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_identity: _Optional[str] = ...) -> None: ...

class StandaloneNexusOperation(_message.Message):
    __slots__ = ("namespace", "identity", "input", "nexus_header", "user_metadata", "links", "result", "failure", "state_transition_count", "cancel_reason", "start_request_ids", "cancel_request_id", "status")
    class NexusHeaderEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    NEXUS_HEADER_FIELD_NUMBER: _ClassVar[int]
    USER_METADATA_FIELD_NUMBER: _ClassVar[int]
    LINKS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    STATE_TRANSITION_COUNT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    START_REQUEST_IDS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    identity: str
    input: _message_pb2.Payload
    nexus_header: _containers.ScalarMap[str, str]
    user_metadata: _user_metadata_pb2.UserMetadata
    links: _containers.RepeatedCompositeFieldContainer[_message_pb2.Link]
    result: _message_pb2.Payload
    failure: _message_pb2_1.Failure
    state_transition_count: int
    cancel_reason: str
    start_request_ids: _containers.RepeatedScalarFieldContainer[str]
    cancel_request_id: str
    status: int
    def __init__(self, namespace: _Optional[str] = ..., identity: _Optional[str] = ..., input: _Optional[_Union[_message_pb2.Payload, _Mapping]] = ..., nexus_header: _Optional[_Mapping[str, str]] = ..., user_metadata: _Optional[_Union[_user_metadata_pb2.UserMetadata, _Mapping]] = ..., links: _Optional[_Iterable[_Union[_message_pb2.Link, _Mapping]]] = ..., result: _Optional[_Union[_message_pb2.Payload, _Mapping]] = ..., failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., state_transition_count: _Optional[int] = ..., cancel_reason: _Optional[str] = ..., start_request_ids: _Optional[_Iterable[str]] = ..., cancel_request_id: _Optional[str] = ..., status: _Optional[int] = ...) -> None: ...

class ScheduleStart(_message.Message):
    __slots__ = ("nominal_time", "actual_time", "overlap_policy", "manual", "stop_others")
    NOMINAL_TIME_FIELD_NUMBER: _ClassVar[int]
    ACTUAL_TIME_FIELD_NUMBER: _ClassVar[int]
    OVERLAP_POLICY_FIELD_NUMBER: _ClassVar[int]
    MANUAL_FIELD_NUMBER: _ClassVar[int]
    STOP_OTHERS_FIELD_NUMBER: _ClassVar[int]
    nominal_time: _timestamp_pb2.Timestamp
    actual_time: _timestamp_pb2.Timestamp
    overlap_policy: int
    manual: bool
    stop_others: int
    def __init__(self, nominal_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., actual_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., overlap_policy: _Optional[int] = ..., manual: _Optional[bool] = ..., stop_others: _Optional[int] = ...) -> None: ...

class ScheduleState(_message.Message):
    __slots__ = ("schedule_id", "schedule", "info", "last_processed_time", "buffered", "starting", "timer_stamp", "wake_time", "conflict_token", "list_info", "jitter_seed")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    LAST_PROCESSED_TIME_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_FIELD_NUMBER: _ClassVar[int]
    STARTING_FIELD_NUMBER: _ClassVar[int]
    TIMER_STAMP_FIELD_NUMBER: _ClassVar[int]
    WAKE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONFLICT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    LIST_INFO_FIELD_NUMBER: _ClassVar[int]
    JITTER_SEED_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    schedule: _message_pb2_1_1_1_1_1.Schedule
    info: _message_pb2_1_1_1_1_1.ScheduleInfo
    last_processed_time: _timestamp_pb2.Timestamp
    buffered: _containers.RepeatedCompositeFieldContainer[ScheduleStart]
    starting: _containers.RepeatedCompositeFieldContainer[ScheduleStart]
    timer_stamp: int
    wake_time: _timestamp_pb2.Timestamp
    conflict_token: int
    list_info: _message_pb2_1_1_1_1_1.ScheduleListInfo
    jitter_seed: str
    def __init__(self, schedule_id: _Optional[str] = ..., schedule: _Optional[_Union[_message_pb2_1_1_1_1_1.Schedule, _Mapping]] = ..., info: _Optional[_Union[_message_pb2_1_1_1_1_1.ScheduleInfo, _Mapping]] = ..., last_processed_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., buffered: _Optional[_Iterable[_Union[ScheduleStart, _Mapping]]] = ..., starting: _Optional[_Iterable[_Union[ScheduleStart, _Mapping]]] = ..., timer_stamp: _Optional[int] = ..., wake_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., conflict_token: _Optional[int] = ..., list_info: _Optional[_Union[_message_pb2_1_1_1_1_1.ScheduleListInfo, _Mapping]] = ..., jitter_seed: _Optional[str] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("type", "category", "task_id", "shard_id", "visibility_time", "namespace_id", "workflow_id", "run_id", "event_id", "attempt", "stamp", "timeout_type", "task_queue", "timer_id", "version", "callback_index", "next_event_id", "branch_id")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    VISIBILITY_TIME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    TIMER_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CALLBACK_INDEX_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    type: TaskType
    category: TaskCategory
    task_id: int
    shard_id: int
    visibility_time: _timestamp_pb2.Timestamp
    namespace_id: str
    workflow_id: str
    run_id: str
    event_id: int
    attempt: int
    stamp: int
    timeout_type: int
    task_queue: _message_pb2_1_1_1_1_1_1.TaskQueue
    timer_id: str
    version: int
    callback_index: int
    next_event_id: int
    branch_id: str
    def __init__(self, type: _Optional[_Union[TaskType, str]] = ..., category: _Optional[_Union[TaskCategory, str]] = ..., task_id: _Optional[int] = ..., shard_id: _Optional[int] = ..., visibility_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., event_id: _Optional[int] = ..., attempt: _Optional[int] = ..., stamp: _Optional[int] = ..., timeout_type: _Optional[int] = ..., task_queue: _Optional[_Union[_message_pb2_1_1_1_1_1_1.TaskQueue, _Mapping]] = ..., timer_id: _Optional[str] = ..., version: _Optional[int] = ..., callback_index: _Optional[int] = ..., next_event_id: _Optional[int] = ..., branch_id: _Optional[str] = ...) -> None: ...

class TaskToken(_message.Message):
    __slots__ = ("namespace_id", "workflow_id", "run_id", "scheduled_event_id", "attempt", "activity_id", "started_event_id", "query_id", "stamp", "activity_type")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_TYPE_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    workflow_id: str
    run_id: str
    scheduled_event_id: int
    attempt: int
    activity_id: str
    started_event_id: int
    query_id: str
    stamp: int
    activity_type: str
    def __init__(self, namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., scheduled_event_id: _Optional[int] = ..., attempt: _Optional[int] = ..., activity_id: _Optional[str] = ..., started_event_id: _Optional[int] = ..., query_id: _Optional[str] = ..., stamp: _Optional[int] = ..., activity_type: _Optional[str] = ...) -> None: ...

class NamespaceRecord(_message.Message):
    __slots__ = ("info", "config", "replication_config", "failover_version", "is_global_namespace", "notification_version", "search_attributes", "config_version", "failover_history", "failover_notification_version")
    class SearchAttributesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    INFO_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_CONFIG_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_GLOBAL_NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NOTIFICATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEARCH_ATTRIBUTES_FIELD_NUMBER: _ClassVar[int]
    CONFIG_VERSION_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_HISTORY_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_NOTIFICATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    info: _message_pb2_1_1_1.NamespaceInfo
    config: _message_pb2_1_1_1.NamespaceConfig
    replication_config: _message_pb2_1_1_1_1.NamespaceReplicationConfig
    failover_version: int
    is_global_namespace: bool
    notification_version: int
    search_attributes: _containers.ScalarMap[str, int]
    config_version: int
    failover_history: _containers.RepeatedCompositeFieldContainer[_message_pb2_1_1_1_1.FailoverStatus]
    failover_notification_version: int
    def __init__(self, info: _Optional[_Union[_message_pb2_1_1_1.NamespaceInfo, _Mapping]] = ..., config: _Optional[_Union[_message_pb2_1_1_1.NamespaceConfig, _Mapping]] = ..., replication_config: _Optional[_Union[_message_pb2_1_1_1_1.NamespaceReplicationConfig, _Mapping]] = ..., failover_version: _Optional[int] = ..., is_global_namespace: _Optional[bool] = ..., notification_version: _Optional[int] = ..., search_attributes: _Optional[_Mapping[str, int]] = ..., config_version: _Optional[int] = ..., failover_history: _Optional[_Iterable[_Union[_message_pb2_1_1_1_1.FailoverStatus, _Mapping]]] = ..., failover_notification_version: _Optional[int] = ...) -> None: ...

class HistoryPageToken(_message.Message):
    __slots__ = ("run_id", "next_event_id", "end_event_id", "transient_events", "seen_next_event_id")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    END_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSIENT_EVENTS_FIELD_NUMBER: _ClassVar[int]
    SEEN_NEXT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    next_event_id: int
    end_event_id: int
    transient_events: _message_pb2_1_1.History
    seen_next_event_id: int
    def __init__(self, run_id: _Optional[str] = ..., next_event_id: _Optional[int] = ..., end_event_id: _Optional[int] = ..., transient_events: _Optional[_Union[_message_pb2_1_1.History, _Mapping]] = ..., seen_next_event_id: _Optional[int] = ...) -> None: ...
