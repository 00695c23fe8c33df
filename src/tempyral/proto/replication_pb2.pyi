import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from temporalio.api.history.v1 import message_pb2 as _message_pb2
from tempyral.proto import internal_pb2 as _internal_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterMetadataRecord(_message.Message):
    __slots__ = ("cluster_name", "history_shard_count", "cluster_id", "cluster_address", "http_address", "failover_version_increment", "initial_failover_version", "is_global_namespace_enabled", "is_connection_enabled", "is_replication_enabled", "version")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    HISTORY_SHARD_COUNT_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    HTTP_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    FAILOVER_VERSION_INCREMENT_FIELD_NUMBER: _ClassVar[int]
    INITIAL_FAILOVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    IS_GLOBAL_NAMESPACE_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IS_CONNECTION_ENABLED_FIELD_NUMBER: _ClassVar[int]
    IS_REPLICATION_ENABLED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    history_shard_count: int
    cluster_id: str
    cluster_address: str
    http_address: str
    failover_version_increment: int
    initial_failover_version: int
    is_global_namespace_enabled: bool
    is_connection_enabled: bool
    is_replication_enabled: bool
    version: int
    def __init__(self, cluster_name: _Optional[str] = ..., history_shard_count: _Optional[int] = ..., cluster_id: _Optional[str] = ..., cluster_address: _Optional[str] = ..., http_address: _Optional[str] = ..., failover_version_increment: _Optional[int] = ..., initial_failover_version: _Optional[int] = ..., is_global_namespace_enabled: _Optional[bool] = ..., is_connection_enabled: _Optional[bool] = ..., is_replication_enabled: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class DescribeClusterRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeClusterResponse(_message.Message):
    __slots__ = ("cluster", "server_version")
    CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SERVER_VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster: ClusterMetadataRecord
    server_version: str
    def __init__(self, cluster: _Optional[_Union[ClusterMetadataRecord, _Mapping]] = ..., server_version: _Optional[str] = ...) -> None: ...

class GetNamespaceReplicationMessagesRequest(_message.Message):
    __slots__ = ("cluster_name", "after_notification_version")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_NOTIFICATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    after_notification_version: int
    def __init__(self, cluster_name: _Optional[str] = ..., after_notification_version: _Optional[int] = ...) -> None: ...

class GetNamespaceReplicationMessagesResponse(_message.Message):
    __slots__ = ("namespaces", "last_notification_version", "shard_watermarks")
    class ShardWatermarksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    LAST_NOTIFICATION_VERSION_FIELD_NUMBER: _ClassVar[int]
    SHARD_WATERMARKS_FIELD_NUMBER: _ClassVar[int]
    namespaces: _containers.RepeatedCompositeFieldContainer[_internal_pb2.NamespaceRecord]
    last_notification_version: int
    shard_watermarks: _containers.ScalarMap[int, int]
    def __init__(self, namespaces: _Optional[_Iterable[_Union[_internal_pb2.NamespaceRecord, _Mapping]]] = ..., last_notification_version: _Optional[int] = ..., shard_watermarks: _Optional[_Mapping[int, int]] = ...) -> None: ...

class ReplicationStreamRequest(_message.Message):
    __slots__ = ("cluster_name", "shard_id", "acked_task_id")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    ACKED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    shard_id: int
    acked_task_id: int
    def __init__(self, cluster_name: _Optional[str] = ..., shard_id: _Optional[int] = ..., acked_task_id: _Optional[int] = ...) -> None: ...

class ReplicationTask(_message.Message):
    __slots__ = ("task", "events", "version_history", "activity", "created_time", "branch_id", "reapplied_events")
    TASK_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_HISTORY_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    REAPPLIED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    task: _internal_pb2.Task
    events: _message_pb2.History
    version_history: _containers.RepeatedCompositeFieldContainer[_internal_pb2.VersionHistoryItem]
    activity: _internal_pb2.ActivityInfo
    created_time: _timestamp_pb2.Timestamp
    branch_id: str
    reapplied_events: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task: _Optional[_Union[_internal_pb2.Task, _Mapping]] = ..., events: _Optional[_Union[_message_pb2.History, _Mapping]] = ..., version_history: _Optional[_Iterable[_Union[_internal_pb2.VersionHistoryItem, _Mapping]]] = ..., activity: _Optional[_Union[_internal_pb2.ActivityInfo, _Mapping]] = ..., created_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., branch_id: _Optional[str] = ..., reapplied_events: _Optional[_Iterable[str]] = ...) -> None: ...

class ReplicationStreamResponse(_message.Message):
    __slots__ = ("tasks", "high_watermark_task_id")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATERMARK_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ReplicationTask]
    high_watermark_task_id: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[ReplicationTask, _Mapping]]] = ..., high_watermark_task_id: _Optional[int] = ...) -> None: ...

class GetReplicationHistoryRequest(_message.Message):
    __slots__ = ("namespace_id", "workflow_id", "run_id", "first_event_id", "next_event_id", "cluster_name", "branch_id")
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    NEXT_EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    BRANCH_ID_FIELD_NUMBER: _ClassVar[int]
    namespace_id: str
    workflow_id: str
    run_id: str
    first_event_id: int
    next_event_id: int
    cluster_name: str
    branch_id: str
    def __init__(self, namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., first_event_id: _Optional[int] = ..., next_event_id: _Optional[int] = ..., cluster_name: _Optional[str] = ..., branch_id: _Optional[str] = ...) -> None: ...

class GetReplicationHistoryResponse(_message.Message):
    __slots__ = ("events", "version_history")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_HISTORY_FIELD_NUMBER: _ClassVar[int]
    events: _message_pb2.History
    version_history: _containers.RepeatedCompositeFieldContainer[_internal_pb2.VersionHistoryItem]
    def __init__(self, events: _Optional[_Union[_message_pb2.History, _Mapping]] = ..., version_history: _Optional[_Iterable[_Union[_internal_pb2.VersionHistoryItem, _Mapping]]] = ...) -> None: ...
