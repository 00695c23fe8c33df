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
    __slots__ = ("tasks", "high_watermark_task_id", "shard_last_task_id")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    HIGH_WATERMARK_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SHARD_LAST_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ReplicationTask]
    high_watermark_task_id: int
    shard_last_task_id: int
    def __init__(self, tasks: _Optional[_Iterable[_Union[ReplicationTask, _Mapping]]] = ..., high_watermark_task_id: _Optional[int] = ..., shard_last_task_id: _Optional[int] = ...) -> None: ...

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

class GetReplicationStatusRequest(_message.Message):
    __slots__ = ("namespace",)
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    def __init__(self, namespace: _Optional[str] = ...) -> None: ...

class ShardProgress(_message.Message):
    __slots__ = ("shard_id", "last_task_id")
    SHARD_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    shard_id: int
    last_task_id: int
    def __init__(self, shard_id: _Optional[int] = ..., last_task_id: _Optional[int] = ...) -> None: ...

class PeerInbound(_message.Message):
    __slots__ = ("cluster_name", "connected", "applied_task_id", "announced_task_id", "tasks_lag", "lag_seconds", "last_applied_time", "dlq_size")
    class AppliedTaskIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    class AnnouncedTaskIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    CONNECTED_FIELD_NUMBER: _ClassVar[int]
    APPLIED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    ANNOUNCED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    TASKS_LAG_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_TIME_FIELD_NUMBER: _ClassVar[int]
    DLQ_SIZE_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    connected: bool
    applied_task_id: _containers.ScalarMap[int, int]
    announced_task_id: _containers.ScalarMap[int, int]
    tasks_lag: int
    lag_seconds: float
    last_applied_time: _timestamp_pb2.Timestamp
    dlq_size: int
    def __init__(self, cluster_name: _Optional[str] = ..., connected: _Optional[bool] = ..., applied_task_id: _Optional[_Mapping[int, int]] = ..., announced_task_id: _Optional[_Mapping[int, int]] = ..., tasks_lag: _Optional[int] = ..., lag_seconds: _Optional[float] = ..., last_applied_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dlq_size: _Optional[int] = ...) -> None: ...

class PeerOutbound(_message.Message):
    __slots__ = ("cluster_name", "acked_task_id", "backlog")
    class AckedTaskIdEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    ACKED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    acked_task_id: _containers.ScalarMap[int, int]
    backlog: int
    def __init__(self, cluster_name: _Optional[str] = ..., acked_task_id: _Optional[_Mapping[int, int]] = ..., backlog: _Optional[int] = ...) -> None: ...

class NamespaceReplicationStatus(_message.Message):
    __slots__ = ("namespace", "active_cluster", "replication_state", "peer_cluster", "lag_seconds", "tasks_lag", "backlog", "last_applied_task_id", "last_applied_time", "dlq_size")
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_STATE_FIELD_NUMBER: _ClassVar[int]
    PEER_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    LAG_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASKS_LAG_FIELD_NUMBER: _ClassVar[int]
    BACKLOG_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_TASK_ID_FIELD_NUMBER: _ClassVar[int]
    LAST_APPLIED_TIME_FIELD_NUMBER: _ClassVar[int]
    DLQ_SIZE_FIELD_NUMBER: _ClassVar[int]
    namespace: str
    active_cluster: str
    replication_state: str
    peer_cluster: str
    lag_seconds: float
    tasks_lag: int
    backlog: int
    last_applied_task_id: int
    last_applied_time: _timestamp_pb2.Timestamp
    dlq_size: int
    def __init__(self, namespace: _Optional[str] = ..., active_cluster: _Optional[str] = ..., replication_state: _Optional[str] = ..., peer_cluster: _Optional[str] = ..., lag_seconds: _Optional[float] = ..., tasks_lag: _Optional[int] = ..., backlog: _Optional[int] = ..., last_applied_task_id: _Optional[int] = ..., last_applied_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dlq_size: _Optional[int] = ...) -> None: ...

class GetReplicationStatusResponse(_message.Message):
    __slots__ = ("cluster_name", "shards", "inbound", "outbound", "namespaces")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INBOUND_FIELD_NUMBER: _ClassVar[int]
    OUTBOUND_FIELD_NUMBER: _ClassVar[int]
    NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    shards: _containers.RepeatedCompositeFieldContainer[ShardProgress]
    inbound: _containers.RepeatedCompositeFieldContainer[PeerInbound]
    outbound: _containers.RepeatedCompositeFieldContainer[PeerOutbound]
    namespaces: _containers.RepeatedCompositeFieldContainer[NamespaceReplicationStatus]
    def __init__(self, cluster_name: _Optional[str] = ..., shards: _Optional[_Iterable[_Union[ShardProgress, _Mapping]]] = ..., inbound: _Optional[_Iterable[_Union[PeerInbound, _Mapping]]] = ..., outbound: _Optional[_Iterable[_Union[PeerOutbound, _Mapping]]] = ..., namespaces: _Optional[_Iterable[_Union[NamespaceReplicationStatus, _Mapping]]] = ...) -> None: ...

class ReplicationDlqTask(_message.Message):
    __slots__ = ("source_cluster", "source_shard", "task_id", "namespace", "namespace_id", "workflow_id", "run_id", "task_type", "error", "enqueue_time", "attempts")
    SOURCE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHARD_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TASK_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ENQUEUE_TIME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    source_cluster: str
    source_shard: int
    task_id: int
    namespace: str
    namespace_id: str
    workflow_id: str
    run_id: str
    task_type: str
    error: str
    enqueue_time: _timestamp_pb2.Timestamp
    attempts: int
    def __init__(self, source_cluster: _Optional[str] = ..., source_shard: _Optional[int] = ..., task_id: _Optional[int] = ..., namespace: _Optional[str] = ..., namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., task_type: _Optional[str] = ..., error: _Optional[str] = ..., enqueue_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ...) -> None: ...

class ListReplicationDlqRequest(_message.Message):
    __slots__ = ("source_cluster", "namespace", "page_size", "next_page_token")
    SOURCE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    source_cluster: str
    namespace: str
    page_size: int
    next_page_token: bytes
    def __init__(self, source_cluster: _Optional[str] = ..., namespace: _Optional[str] = ..., page_size: _Optional[int] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class ListReplicationDlqResponse(_message.Message):
    __slots__ = ("tasks", "next_page_token")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[ReplicationDlqTask]
    next_page_token: bytes
    def __init__(self, tasks: _Optional[_Iterable[_Union[ReplicationDlqTask, _Mapping]]] = ..., next_page_token: _Optional[bytes] = ...) -> None: ...

class ReapplyReplicationDlqRequest(_message.Message):
    __slots__ = ("source_cluster", "task_ids")
    SOURCE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    source_cluster: str
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, source_cluster: _Optional[str] = ..., task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ReapplyReplicationDlqResponse(_message.Message):
    __slots__ = ("applied", "failed")
    APPLIED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    applied: _containers.RepeatedCompositeFieldContainer[ReplicationDlqTask]
    failed: _containers.RepeatedCompositeFieldContainer[ReplicationDlqTask]
    def __init__(self, applied: _Optional[_Iterable[_Union[ReplicationDlqTask, _Mapping]]] = ..., failed: _Optional[_Iterable[_Union[ReplicationDlqTask, _Mapping]]] = ...) -> None: ...

class PurgeReplicationDlqRequest(_message.Message):
    __slots__ = ("source_cluster", "task_ids")
    SOURCE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    source_cluster: str
    task_ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, source_cluster: _Optional[str] = ..., task_ids: _Optional[_Iterable[int]] = ...) -> None: ...

class PurgeReplicationDlqResponse(_message.Message):
    __slots__ = ("purged",)
    PURGED_FIELD_NUMBER: _ClassVar[int]
    purged: int
    def __init__(self, purged: _Optional[int] = ...) -> None: ...

class ReapplyEventsRequest(_message.Message):
    __slots__ = ("cluster_name", "namespace_id", "workflow_id", "run_id", "events")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    namespace_id: str
    workflow_id: str
    run_id: str
    events: _message_pb2.History
    def __init__(self, cluster_name: _Optional[str] = ..., namespace_id: _Optional[str] = ..., workflow_id: _Optional[str] = ..., run_id: _Optional[str] = ..., events: _Optional[_Union[_message_pb2.History, _Mapping]] = ...) -> None: ...

class ReapplyEventsResponse(_message.Message):
    __slots__ = ("reapplied",)
    REAPPLIED_FIELD_NUMBER: _ClassVar[int]
    reapplied: int
    def __init__(self, reapplied: _Optional[int] = ...) -> None: ...
