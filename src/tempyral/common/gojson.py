"""JSON read as the reference reads it (Go's encoding/json into untyped values), without recursion.

Python's json module recurses once per nesting level and fails at the interpreter's recursion limit
(about 1000 levels); clients can send far deeper values. Go takes values nested up to 10,000 levels
and refuses deeper ones, NaN and Infinity, and numbers beyond float64; so does this reader, with a
stack of open containers instead of the call stack. Lone surrogate escapes become U+FFFD, as in Go.
"""

from __future__ import annotations

import json.decoder
import re
from collections.abc import Callable
from typing import Any

MAX_DEPTH = 10_000  # encoding/json's maxNestingDepth
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = (("true", True), ("false", False), ("null", None))
_SURROGATE = re.compile("[\ud800-\udfff]")
_CLOSER = {"[": "]", "{": "}"}
# The json module's (C) string scanner: public in the module, missing from its type stubs.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]


def loads(text: str, parse_int: Callable[[str], Any] = int) -> Any:
    """The value of a JSON text; ValueError for what Go's decoder refuses."""
    containers: list[list[Any] | dict[str, Any]] = []
    keys: list[str] = []  # per open container: the key its next value goes under (objects)
    i = _skip(text, 0)
    while True:
        value: Any
        opener = text[i : i + 1]
        if opener in _CLOSER:
            if len(containers) == MAX_DEPTH:
                raise ValueError("exceeded max depth")
            i = _skip(text, i + 1)
            if text[i : i + 1] == _CLOSER[opener]:
                value, i = ([] if opener == "[" else {}), i + 1
            else:
                containers.append([] if opener == "[" else {})
                key = ""
                if opener == "{":
                    key, i = _key(text, i)
                keys.append(key)
                continue
        elif opener == '"':
            value, i = _string(text, i + 1)
        else:
            value, i = _scalar(text, i, parse_int)
        # The value is complete: add it to its container, and close the containers that end here.
        while True:
            i = _skip(text, i)
            if not containers:
                if i != len(text):
                    raise ValueError(f"invalid character after top-level value at {i}")
                return value
            top = containers[-1]
            if isinstance(top, list):
                top.append(value)
            else:
                top[keys[-1]] = value
            separator = text[i : i + 1]
            if separator == ",":
                i = _skip(text, i + 1)
                if isinstance(top, dict):
                    keys[-1], i = _key(text, i)
                break
            if separator != ("]" if isinstance(top, list) else "}"):
                raise ValueError(f"invalid character at {i}")
            value = containers.pop()
            keys.pop()
            i += 1


def _skip(text: str, i: int) -> int:
    match = _WHITESPACE.match(text, i)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _string(text: str, i: int) -> tuple[str, int]:
    """The string whose opening quote is just before `i`."""
    value, end = _scanstring(text, i, True)
    return _SURROGATE.sub("\ufffd", value), end


def _key(text: str, i: int) -> tuple[str, int]:
    if text[i : i + 1] != '"':
        raise ValueError(f"object key expected at {i}")
    key, i = _string(text, i + 1)
    i = _skip(text, i)
    if text[i : i + 1] != ":":
        raise ValueError(f"':' expected at {i}")
    return key, _skip(text, i + 1)


def _scalar(text: str, i: int, parse_int: Callable[[str], Any]) -> tuple[Any, int]:
    number = _NUMBER.match(text, i)
    if number is not None:
        value = float(number[0]) if number[1] or number[2] else parse_int(number[0])
        if isinstance(value, float) and value in (float("inf"), float("-inf")):
            raise ValueError(f"number at {i} does not fit a float64")
        return value, number.end()
    for word, literal in _LITERALS:
        if text.startswith(word, i):
            return literal, i + len(word)
    raise ValueError(f"invalid character at {i}")
