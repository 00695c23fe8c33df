from temporalio.api.common.v1 import message_pb2 as _message_pb2
from temporalio.api.failure.v1 import message_pb2 as _message_pb2_1
from temporalio.api.history.v1 import message_pb2 as _message_pb2_1_1
from tempyral.proto import internal_pb2 as _internal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ParentInfo(_message.Message):
    __slots__ = ("namespace", "namespace_id", "workflow_id", "run_id", "initiated_event_id", "root")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INITIATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROOT_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    initiated_event_id: int
    root: _message_pb2.WorkflowExecution
    def __init__(self, namespace: _Optional[str] = ..., namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., initiated_event_id: _Optional[int] = ..., root: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ...) -> None: ...

class StartWorkflowRequest(_message.Message):
    __slots__ = ("namespace_id", "request", "parent")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    request: bytes
    parent: ParentInfo
    def __init__(self, namespace_id: _Optional[str] = ..., request: _Optional[bytes] = ..., parent: _Optional[_Union[ParentInfo, _Mapping]] = ...) -> None: ...

class StartWorkflowResponse(_message.Message):
    __slots__ = ("run_id", "started", "status")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    started: bool
    status: int
    def __init__(self, run_id: _Optional[str] = ..., started: _Optional[bool] = ..., status: _Optional[int] = ...) -> None: ...

class SignalWorkflowRequest(_message.Message):
    __slots__ = ("namespace_id", "request", "external", "child_of")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    CHILD_OF_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    request: bytes
    external: _message_pb2.WorkflowExecution
    child_of: _message_pb2.WorkflowExecution
    def __init__(self, namespace_id: _Optional[str] = ..., request: _Optional[bytes] = ..., external: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ..., child_of: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ...) -> None: ...

class RequestCancelWorkflowRequest(_message.Message):
    __slots__ = ("namespace_id", "request", "external", "external_initiated_event_id", "child_of")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_FIELD_NUMBER: _ClassVar[int]
    EXTERNAL_INITIATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CHILD_OF_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    request: bytes
    external: _message_pb2.WorkflowExecution
    external_initiated_event_id: int
    child_of: _message_pb2.WorkflowExecution
    def __init__(self, namespace_id: _Optional[str] = ..., request: _Optional[bytes] = ..., external: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ..., external_initiated_event_id: _Optional[int] = ..., child_of: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ...) -> None: ...

class TerminateWorkflowRequest(_message.Message):
    __slots__ = ("namespace_id", "request")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    request: bytes
    def __init__(self, namespace_id: _Optional[str] = ..., request: _Optional[bytes] = ...) -> None: ...

class ScheduleFirstTaskRequest(_message.Message):
    __slots__ = ("namespace_id", "workflow_id", "run_id")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    workflow_id: str
    run_id: str
    def __init__(self, namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class RecordChildClosedRequest(_message.Message):
    __slots__ = ("parent_namespace_id", "parent", "initiated_event_id", "first_execution_run_id", "run_id", "close_event")
    PARENT_NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    INITIATED_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_EXECUTION_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CLOSE_EVENT_FIELD_NUMBER: _ClassVar[int]
    parent_namespace_id: str
    parent: _message_pb2.WorkflowExecution
    initiated_event_id: int
    first_execution_run_id: str
    run_id: str
    close_event: _message_pb2_1_1.HistoryEvent
    def __init__(self, parent_namespace_id: _Optional[str] = ..., parent: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ..., initiated_event_id: _Optional[int] = ..., first_execution_run_id: _Optional[str] = ..., run_id: _Optional[str] = ..., close_event: _Optional[_Union[_message_pb2_1_1.HistoryEvent, _Mapping]] = ...) -> None: ...

class CompleteNexusOperationRequest(_message.Message):
    __slots__ = ("token", "operation_token", "start_links", "start_time_ns", "result", "failure", "canceled")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    OPERATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    START_LINKS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_NS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    CANCELED_FIELD_NUMBER: _ClassVar[int]
    token: _internal_pb2.NexusCallbackToken
    operation_token: str
    start_links: _containers.RepeatedCompositeFieldContainer[_message_pb2.Link]
    start_time_ns: int
    result: _message_pb2.Payload
    failure: _message_pb2_1.Failure
    canceled: bool
    def __init__(self, token: _Optional[_Union[_internal_pb2.NexusCallbackToken, _Mapping]] = ..., operation_token: _Optional[str] = ..., start_links: _Optional[_Iterable[_Union[_message_pb2.Link, _Mapping]]] = ..., start_time_ns: _Optional[int] = ..., result: _Optional[_Union[_message_pb2.Payload, _Mapping]] = ..., failure: _Optional[_Union[_message_pb2_1.Failure, _Mapping]] = ..., canceled: _Optional[bool] = ...) -> None: ...

class QueryTaskInfo(_message.Message):
    __slots__ = ("query_id", "namespace_id", "workflow_id", "run_id", "query")
    QUERY_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    query_id: str
    namespace_id: str
    workflow_id: str
    run_id: str
    query: bytes
    def __init__(self, query_id: _Optional[str] = ..., namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., query: _Optional[bytes] = ...) -> None: ...

class AddTaskRequest(_message.Message):
    __slots__ = ("namespace_id", "task_queue", "kind", "sticky_normal_name", "task", "hops", "query", "reroute")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STICKY_NORMAL_NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    REROUTE_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    task_queue: str
    kind: int
    sticky_normal_name: str
    task: _internal_pb2.Task
    hops: int
    query: QueryTaskInfo
    reroute: bool
    def __init__(self, namespace_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., kind: _Optional[int] = ..., sticky_normal_name: _Optional[str] = ..., task: _Optional[_Union[_internal_pb2.Task, _Mapping]] = ..., hops: _Optional[int] = ..., query: _Optional[_Union[QueryTaskInfo, _Mapping]] = ..., reroute: _Optional[bool] = ...) -> None: ...

class ReportPollersRequest(_message.Message):
    __slots__ = ("node", "queues")
    NODE_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    node: str
    queues: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, node: _Optional[str] = ..., queues: _Optional[_Iterable[int]] = ...) -> None: ...

class DescribeQueueRequest(_message.Message):
    __slots__ = ("namespace_id", "task_queue", "kind")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    task_queue: str
    kind: int
    def __init__(self, namespace_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., kind: _Optional[int] = ...) -> None: ...

class QueuePoller(_message.Message):
    __slots__ = ("identity", "last_access_ns", "build_id")
    IDENTITY_FIELD_NUMBER: _ClassVar[int]
    LAST_ACCESS_NS_FIELD_NUMBER: _ClassVar[int]
    BUILD_ID_FIELD_NUMBER: _ClassVar[int]
    identity: str
    last_access_ns: int
    build_id: str
    def __init__(self, identity: _Optional[str] = ..., last_access_ns: _Optional[int] = ..., build_id: _Optional[str] = ...) -> None: ...

class DescribeQueueResponse(_message.Message):
    __slots__ = ("pollers", "backlog")
    POLLERS_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    pollers: _containers.RepeatedCompositeFieldContainer[QueuePoller]
    backlog: int
    def __init__(self, pollers: _Optional[_Iterable[_Union[QueuePoller, _Mapping]]] = ..., backlog: _Optional[int] = ...) -> None: ...

class RecordTaskStartedRequest(_message.Message):
    __slots__ = ("task", "poll_request", "query")
    TASK_FIELD_NUMBER: _ClassVar[int]
    POLL_REQUEST_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    task: _internal_pb2.Task
    poll_request: bytes
    query: QueryTaskInfo
    def __init__(self, task: _Optional[_Union[_internal_pb2.Task, _Mapping]] = ..., poll_request: _Optional[bytes] = ..., query: _Optional[_Union[QueryTaskInfo, _Mapping]] = ...) -> None: ...

class DispatchNexusTaskRequest(_message.Message):
    __slots__ = ("namespace_id", "task_queue", "request", "timeout_s")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_QUEUE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    task_queue: str
    request: bytes
    timeout_s: float
    def __init__(self, namespace_id: _Optional[str] = ..., task_queue: _Optional[str] = ..., request: _Optional[bytes] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class DispatchNexusTaskResponse(_message.Message):
    __slots__ = ("completed", "failed")
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    completed: bytes
    failed: bytes
    def __init__(self, completed: _Optional[bytes] = ..., failed: _Optional[bytes] = ...) -> None: ...

class RecordTaskStartedResponse(_message.Message):
    __slots__ = ("poll_response",)
    POLL_RESPONSE_FIELD_NUMBER: _ClassVar[int]
    poll_response: bytes
    def __init__(self, poll_response: _Optional[bytes] = ...) -> None: ...
