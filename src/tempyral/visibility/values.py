"""Search attributes a client or a workflow sets: checked against the namespace's attribute types
the way the reference's SQL-visibility validator checks them, and stamped with their type.

The reference returns search attribute payloads with a `type` metadata entry on every read
(describe, history, workflow tasks) so that SDKs can decode typed search attributes; stamping it
once, when the attributes come in, gives the same payloads on every read without any work there.
"""

from __future__ import annotations

from typing import Any

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import IndexedValueType

from tempyral.common import gojson
from tempyral.common.errors import InvalidArgument
from tempyral.visibility.attributes import SYSTEM_ATTRIBUTES
from tempyral.visibility.query import TYPE_NAMES, go_float, go_v, parse_rfc3339_ns

T = IndexedValueType
MAX_KEYS = 100  # frontend.searchAttributesNumberOfKeysLimit
MAX_VALUE_BYTES = 2 * 1024  # frontend.searchAttributesSizeOfValueLimit
MAX_TOTAL_BYTES = 40 * 1024  # frontend.searchAttributesTotalSizeLimit

# Attributes only the server sets (columns of every execution).
SERVER_ONLY = frozenset(
    [
        "WorkflowId",
        "RunId",
        "WorkflowType",
        "StartTime",
        "ExecutionTime",
        "CloseTime",
        "ExecutionStatus",
        "TaskQueue",
        "HistoryLength",
        "ExecutionDuration",
        "StateTransitionCount",
        "HistorySizeBytes",
        "ParentWorkflowId",
        "ParentRunId",
        "RootWorkflowId",
        "RootRunId",
    ]
)
# Predefined attributes a workflow or client may still set (the reference's allow-list).
SETTABLE_PREDEFINED = frozenset(
    [
        "TemporalChangeVersion",
        "BinaryChecksums",
        "BuildIds",
        "BatcherNamespace",
        "BatcherUser",
        "TemporalScheduledStartTime",
        "TemporalScheduledById",
        "TemporalSchedulePaused",
        "TemporalNamespaceDivision",
        "TemporalPauseInfo",
        "TemporalReportedProblems",
    ]
)
_UNSET = object()


def prepare_search_attributes(namespace: str, custom: dict[str, int], attributes: common.SearchAttributes) -> None:
    """Refuse attributes that are unknown, server-only or of the wrong type (InvalidArgument with
    the reference's messages); give every payload its `type` metadata."""
    fields = attributes.indexed_fields
    if len(fields) > MAX_KEYS:
        raise InvalidArgument(f"number of search attributes {len(fields)} exceeds limit {MAX_KEYS}")
    for name, payload in fields.items():
        value_type = _type_of(namespace, custom, name)
        _check_value(name, value_type, payload)
        if "type" not in payload.metadata:
            payload.metadata["type"] = TYPE_NAMES[value_type].encode()
    for name, payload in fields.items():
        if len(payload.data) > MAX_VALUE_BYTES:
            raise InvalidArgument(
                f"search attribute {name} value size {len(payload.data)} exceeds size limit {MAX_VALUE_BYTES}"
            )
    total = attributes.ByteSize()
    if total > MAX_TOTAL_BYTES:
        raise InvalidArgument(f"total size of search attributes {total} exceeds size limit {MAX_TOTAL_BYTES}")


def _type_of(namespace: str, custom: dict[str, int], name: str) -> int:
    if name in SERVER_ONLY or (name in SYSTEM_ATTRIBUTES and name not in SETTABLE_PREDEFINED):
        raise InvalidArgument(f"{name} attribute can't be set in SearchAttributes")
    if name in SETTABLE_PREDEFINED:
        return SYSTEM_ATTRIBUTES[name]
    if name not in custom:
        raise InvalidArgument(f"Namespace {namespace} has no mapping defined for search attribute {name}")
    return custom[name]


def _check_value(name: str, value_type: int, payload: common.Payload) -> None:
    value = _decoded(payload)
    if value is _UNSET or _fits(value_type, value):
        return
    raise InvalidArgument(
        f"invalid value for search attribute {name} of type {TYPE_NAMES[value_type]}: {_shown(payload)}"
    )


def _decoded(payload: common.Payload) -> Any:
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return _UNSET
    if encoding != b"json/plain":
        return ValueError  # a value no type accepts
    try:
        value = gojson.loads(payload.data.decode())
    except ValueError:  # UnicodeDecodeError too
        return ValueError
    return _UNSET if value is None or value == [] else value


def _fits(value_type: int, value: Any) -> bool:
    if value_type == T.INDEXED_VALUE_TYPE_KEYWORD_LIST:
        return isinstance(value, list) and all(v is None or isinstance(v, str) for v in value)
    if isinstance(value, list):
        # SQL visibility takes a list for other types only when it holds one value (not a list).
        return len(value) == 1 and not isinstance(value[0], list) and _fits(value_type, value[0])
    if value_type in (T.INDEXED_VALUE_TYPE_KEYWORD, T.INDEXED_VALUE_TYPE_TEXT):
        return isinstance(value, str)
    if value_type == T.INDEXED_VALUE_TYPE_INT:
        return isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63
    if value_type == T.INDEXED_VALUE_TYPE_DOUBLE:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if value_type == T.INDEXED_VALUE_TYPE_BOOL:
        return isinstance(value, bool)
    if value_type == T.INDEXED_VALUE_TYPE_DATETIME:
        if not isinstance(value, str):
            return False
        try:
            parse_rfc3339_ns(value)
        except ValueError:
            return False
        return True
    return False


def _shown(payload: common.Payload) -> str:
    """The value as the reference prints it: decoded as untyped JSON, formatted with Go's %v."""
    if payload.metadata.get("encoding", b"") == b"json/plain":
        try:
            return _go_any(gojson.loads(payload.data.decode(), parse_int=float))
        except ValueError:
            pass
    return f"value from <{go_text(payload)}>"


def _go_any(value: Any) -> str:
    """Go's %v of an untyped JSON value, without recursion (values may nest 10,000 deep)."""
    out: list[str] = []
    todo: list[tuple[bool, Any]] = [(False, value)]  # (is text to write, item), last first
    while todo:
        is_text, item = todo.pop()
        if is_text:
            out.append(item)
        elif item is None:
            out.append("<nil>")
        elif isinstance(item, float):
            out.append(go_float(item))
        elif isinstance(item, list | dict):
            parts: list[tuple[bool, Any]] = [(True, "[" if isinstance(item, list) else "map[")]
            entries = [(None, v) for v in item] if isinstance(item, list) else [(k, item[k]) for k in sorted(item)]
            for n, (key, entry) in enumerate(entries):
                if n:
                    parts.append((True, " "))
                if key is not None:
                    parts.append((True, f"{key}:"))
                parts.append((False, entry))
            parts.append((True, "]"))
            todo.extend(reversed(parts))
        else:
            out.append(go_v(item))
    return "".join(out)


def go_text(payload: common.Payload) -> str:
    """A payload in Go's one-line protobuf text format (what the reference's String() gives)."""
    fields = [
        f"metadata:{{key:{_go_text_string(key.encode())} value:{_go_text_string(value)}}}"
        for key, value in sorted(payload.metadata.items())
    ]
    if payload.data:
        fields.append(f"data:{_go_text_string(payload.data)}")
    for external in payload.external_payloads:
        fields.append(f"external_payloads:{{{f'size_bytes:{external.size_bytes}' if external.size_bytes else ''}}}")
    return " ".join(fields)


def _go_text_string(data: bytes) -> str:
    """Bytes quoted as Go's protobuf text format quotes them."""
    out = ['"']
    for char in data.decode(errors="surrogateescape"):
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
            out.append(f"\\x{code - 0xDC00:02x}")
        elif char in '"\\':
            out.append("\\" + char)
        elif char in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[char])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif 0x80 <= code <= 0x9F:
            out.append(f"\\u{code:04x}")
        else:
            out.append(char)
    out.append('"')
    return "".join(out)
