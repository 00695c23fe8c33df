"""Task and page tokens: round trips, and the reference's errors for bad ones."""

from __future__ import annotations

import pytest

from tempyral.common.errors import InvalidArgument
from tempyral.common.tokens import decode_page_token, decode_task_token, encode_page_token, encode_task_token
from tempyral.proto.internal_pb2 import HistoryPageToken, TaskToken


def test_task_token_round_trip() -> None:
    token = TaskToken(namespace_id="n", workflow_id="w", run_id="r", scheduled_event_id=5, attempt=2, stamp=3)
    assert decode_task_token(encode_task_token(token)) == token


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "Task token not set on request."),
        (b"garbage", "Error deserializing task token."),
        (b"tt1\xff\xff\xff", "Error deserializing task token."),
        (b"tt1" + TaskToken(namespace_id="n").SerializeToString(), "Error deserializing task token."),
    ],
)
def test_bad_task_tokens(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        decode_task_token(data)


def test_page_tokens() -> None:
    token = HistoryPageToken(run_id="r", next_event_id=7)
    assert decode_page_token(encode_page_token(token)) == token
    assert decode_page_token(b"") is None
    with pytest.raises(InvalidArgument, match=r"Invalid NextPageToken\."):
        decode_page_token(b"zzz")
