from tempyral.proto import replication_pb2 as _replication_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ApplyReplicationTaskRequest(_message.Message):
    __slots__ = ("source_cluster", "source_shard", "task", "once")
    SOURCE_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_SHARD_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    ONCE_FIELD_NUMBER: _ClassVar[int]
    source_cluster: str
    source_shard: int
    task: _replication_pb2.ReplicationTask
    once: bool
    def __init__(self, source_cluster: _Optional[str] = ..., source_shard: _Optional[int] = ..., task: _Optional[_Union[_replication_pb2.ReplicationTask, _Mapping]] = ..., once: _Optional[bool] = ...) -> None: ...

class ApplyReplicationTaskResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
