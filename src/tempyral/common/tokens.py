"""Opaque tokens handed to clients: task tokens and page tokens."""

from __future__ import annotations

from google.protobuf.message import DecodeError

from tempyral.common.errors import InvalidArgument
from tempyral.proto.internal_pb2 import HistoryPageToken, TaskToken

_TASK_PREFIX = b"tt1"
_PAGE_PREFIX = b"hp1"


def encode_task_token(token: TaskToken) -> bytes:
    return _TASK_PREFIX + token.SerializeToString()


def decode_task_token(data: bytes) -> TaskToken:
    if not data:
        raise InvalidArgument("Task token not set on request.")
    if not data.startswith(_TASK_PREFIX):
        raise InvalidArgument("Error deserializing task token.")
    try:
        token = TaskToken.FromString(data[len(_TASK_PREFIX) :])
    except DecodeError as err:
        raise InvalidArgument("Error deserializing task token.") from err
    if not (token.namespace_id and token.workflow_id and token.run_id):
        raise InvalidArgument("Error deserializing task token.")
    return token


def encode_page_token(token: HistoryPageToken) -> bytes:
    return _PAGE_PREFIX + token.SerializeToString()


def decode_page_token(data: bytes) -> HistoryPageToken | None:
    if not data:
        return None
    if not data.startswith(_PAGE_PREFIX):
        raise InvalidArgument("Invalid NextPageToken.")
    try:
        return HistoryPageToken.FromString(data[len(_PAGE_PREFIX) :])
    except DecodeError as err:
        raise InvalidArgument("Invalid NextPageToken.") from err


def decode_offset_token(data: bytes) -> int:
    """Where a listing continues: the offset its last page handed out ("" for the first page)."""
    if not data:
        return 0
    try:
        return int(data.decode())
    except ValueError as err:
        raise InvalidArgument("Invalid NextPageToken.") from err
