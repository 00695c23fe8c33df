import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from temporalio.api.common.v1 import message_pb2 as _message_pb2
from temporalio.api.workflowservice.v1 import request_response_pb2 as _request_response_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchOperationRecord(_message.Message):
    __slots__ = ("request", "namespace_id", "state", "start_time", "close_time", "total_operation_count", "total_known", "complete_operation_count", "failure_operation_count", "cursor", "next_index", "run_id", "request_id", "failure", "inflight")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    NAMESPACE_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    CLOSE_TIME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_OPERATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_KNOWN_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_OPERATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    FAILURE_OPERATION_COUNT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    NEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    INFLIGHT_FIELD_NUMBER: _ClassVar[int]
    request: _request_response_pb2.StartBatchOperationRequest
    namespace_id: str
    state: int
    start_time: _timestamp_pb2.Timestamp
    close_time: _timestamp_pb2.Timestamp
    total_operation_count: int
    total_known: bool
    complete_operation_count: int
    failure_operation_count: int
    cursor: bytes
    next_index: int
    run_id: str
    request_id: str
    failure: str
    inflight: _message_pb2.WorkflowExecution
    def __init__(self, request: _Optional[_Union[_request_response_pb2.StartBatchOperationRequest, _Mapping]] = ..., namespace_id: _Optional[str] = ..., state: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., close_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., total_operation_count: _Optional[int] = ..., total_known: _Optional[bool] = ..., complete_operation_count: _Optional[int] = ..., failure_operation_count: _Optional[int] = ..., cursor: _Optional[bytes] = ..., next_index: _Optional[int] = ..., run_id: _Optional[str] = ..., request_id: _Optional[str] = ..., failure: _Optional[str] = ..., inflight: _Optional[_Union[_message_pb2.WorkflowExecution, _Mapping]] = ...) -> None: ...
