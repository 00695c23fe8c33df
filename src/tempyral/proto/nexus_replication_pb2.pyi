from temporalio.api.nexus.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplicatedEndpoint(_message.Message):
    __slots__ = ("endpoint", "deleted", "stamp", "origin_cluster", "created_stamp")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_STAMP_FIELD_NUMBER: _ClassVar[int]
    endpoint: _message_pb2.Endpoint
    deleted: bool
    stamp: int
    origin_cluster: str
    created_stamp: int
    def __init__(self, endpoint: _Optional[_Union[_message_pb2.Endpoint, _Mapping]] = ..., deleted: _Optional[bool] = ..., stamp: _Optional[int] = ..., origin_cluster: _Optional[str] = ..., created_stamp: _Optional[int] = ...) -> None: ...

class GetNexusEndpointChangesRequest(_message.Message):
    __slots__ = ("cluster_name", "after_sequence")
    CLUSTER_NAME_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    cluster_name: str
    after_sequence: int
    def __init__(self, cluster_name: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class GetNexusEndpointChangesResponse(_message.Message):
    __slots__ = ("endpoints", "last_sequence")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[ReplicatedEndpoint]
    last_sequence: int
    def __init__(self, endpoints: _Optional[_Iterable[_Union[ReplicatedEndpoint, _Mapping]]] = ..., last_sequence: _Optional[int] = ...) -> None: ...
