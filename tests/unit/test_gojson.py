"""JSON read as Go's encoding/json reads it, with no recursion: what clients send in search
attributes and page tokens can nest far deeper than Python's recursion limit."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tempyral.common import gojson
from tempyral.common.errors import InvalidArgument
from tempyral.visibility.service import decode_page_token


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "-0",
        "1.5e3",
        ' "a\\u00e9\\ud83d\\ude00\\n" ',
        '[1, [2, {"a": [true, false, null]}], {}, []]',
        '{"a": 1, "a": 2}',
        '{"": {"x": []}}',
        "123456789012345678901234567890",
    ],
)
def test_reads_what_json_reads(text: str) -> None:
    assert gojson.loads(text) == json.loads(text)


REFUSED = ["", "01", "[1,]", '{"a"}', '{"a":1,}', "NaN", "-Infinity", "1e400", "[1] x", '"\x01"', "tru", "{1:2}"]


@pytest.mark.parametrize("text", [*REFUSED, "[", '"a', "1.", ".5", "-"])
def test_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        gojson.loads(text)


def _depth(value: Any) -> int:
    depth = 0
    while isinstance(value, list):
        value = value[0] if value else None
        depth += 1
    return depth


def test_nesting_up_to_go_limit_without_recursion() -> None:
    assert _depth(gojson.loads("[" * 10_000 + "]" * 10_000)) == 10_000
    assert gojson.loads('{"a":' * 10_000 + "1" + "}" * 10_000) is not None
    with pytest.raises(ValueError, match="max depth"):
        gojson.loads("[" * 10_001 + "]" * 10_001)
    with pytest.raises(ValueError, match="max depth"):
        gojson.loads("[" * 1_000_000)


def test_numbers_as_floats_must_fit_a_float64() -> None:
    assert gojson.loads("[1, 2]", parse_int=float) == [1.0, 2.0]
    with pytest.raises(ValueError):
        gojson.loads("1" * 400, parse_int=float)


def test_lone_surrogate_escapes_become_replacement_characters() -> None:
    assert gojson.loads('"\\ud800x\\udc00"') == "\ufffdx\ufffd"


def test_a_page_token_nested_deep_is_an_invalid_token() -> None:
    with pytest.raises(InvalidArgument, match=r"Invalid NextPageToken\."):
        decode_page_token(b"[" * 100_000 + b"]" * 100_000)
