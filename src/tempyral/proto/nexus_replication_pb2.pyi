from temporalio.api.nexus.v1 import message_pb2 as _message_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EndpointAccessChange(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINT_ACCESS_CHANGE_UNSPECIFIED: _ClassVar[EndpointAccessChange]
    ENDPOINT_ACCESS_CHANGE_ALLOW: _ClassVar[EndpointAccessChange]
    ENDPOINT_ACCESS_CHANGE_DENY: _ClassVar[EndpointAccessChange]
    ENDPOINT_ACCESS_CHANGE_OPEN: _ClassVar[EndpointAccessChange]
ENDPOINT_ACCESS_CHANGE_UNSPECIFIED: EndpointAccessChange
ENDPOINT_ACCESS_CHANGE_ALLOW: EndpointAccessChange
ENDPOINT_ACCESS_CHANGE_DENY: EndpointAccessChange
ENDPOINT_ACCESS_CHANGE_OPEN: EndpointAccessChange

class ReplicatedEndpoint(_message.Message):
    __slots__ = ("endpoint", "deleted", "stamp", "origin_cluster", "created_stamp", "access")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    STAMP_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_CLUSTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_STAMP_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    endpoint: _message_pb2.Endpoint
    deleted: bool
    stamp: int
    origin_cluster: str
    created_stamp: int
    access: EndpointAccessPolicy
    def __init__(self, endpoint: _Optional[_Union[_message_pb2.Endpoint, _Mapping]] = ..., deleted: _Optional[bool] = ..., stamp: _Optional[int] = ..., origin_cluster: _Optional[str] = ..., created_stamp: _Optional[int] = ..., access: _Optional[_Union[EndpointAccessPolicy, _Mapping]] = ...) -> None: ...

class EndpointAccessPolicy(_message.Message):
    __slots__ = ("restricted", "allowed", "denied")
    RESTRICTED_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FIELD_NUMBER: _ClassVar[int]
    DENIED_FIELD_NUMBER: _ClassVar[int]
    restricted: bool
    allowed: _containers.RepeatedScalarFieldContainer[str]
    denied: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, restricted: _Optional[bool] = ..., allowed: _Optional[_Iterable[str]] = ..., denied: _Optional[_Iterable[str]] = ...) -> None: ...

class StoredEndpointExtras(_message.Message):
    __slots__ = ("access",)
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    access: EndpointAccessPolicy
    def __init__(self, access: _Optional[_Union[EndpointAccessPolicy, _Mapping]] = ...) -> None: ...

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

class GetNexusEndpointAccessRequest(_message.Message):
    __slots__ = ("endpoint_name",)
    ENDPOINT_NAME_FIELD_NUMBER: _ClassVar[int]
    endpoint_name: str
    def __init__(self, endpoint_name: _Optional[str] = ...) -> None: ...

class UpdateNexusEndpointAccessRequest(_message.Message):
    __slots__ = ("endpoint_name", "change", "caller_namespaces")
    ENDPOINT_NAME_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CALLER_NAMESPACES_FIELD_NUMBER: _ClassVar[int]
    endpoint_name: str
    change: EndpointAccessChange
    caller_namespaces: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, endpoint_name: _Optional[str] = ..., change: _Optional[_Union[EndpointAccessChange, str]] = ..., caller_namespaces: _Optional[_Iterable[str]] = ...) -> None: ...

class NexusEndpointAccessResponse(_message.Message):
    __slots__ = ("endpoint_id", "endpoint_name", "endpoint_version", "access")
    ENDPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_NAME_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCESS_FIELD_NUMBER: _ClassVar[int]
    endpoint_id: str
    endpoint_name: str
    endpoint_version: int
    access: EndpointAccessPolicy
    def __init__(self, endpoint_id: _Optional[str] = ..., endpoint_name: _Optional[str] = ..., endpoint_version: _Optional[int] = ..., access: _Optional[_Union[EndpointAccessPolicy, _Mapping]] = ...) -> None: ...
