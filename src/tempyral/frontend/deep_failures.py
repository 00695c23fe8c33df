"""Failure cause chains cut to a depth the server can store and read back.

A Failure nests through its `cause`; clients may send chains of any length. Protobuf's decoder
(upb) refuses messages nested more than 100 levels deep, and the server keeps failures inside
events, histories and workflow state, a few levels further down than the request had them; the
SDKs that read them back wrap them again (an activity's failure becomes the cause of the
workflow's, and so on). So a chain longer than MAX_FAILURE_DEPTH is cut there, and its last
failure's cause says so, the way the reference replaces a failure over the size limit with
"Failure exceeds size limit.". (The reference reads chains up to Go's limit of 10,000 levels.)
"""

from __future__ import annotations

from functools import cache

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from temporalio.api.failure.v1 import message_pb2 as failure_pb

MAX_FAILURE_DEPTH = 64
CUT_MESSAGE = "Failure causes exceed depth limit."
_FAILURE = failure_pb.Failure.DESCRIPTOR.full_name


def cut_deep_failures(message: Message) -> None:
    """Cut, in place, every failure chain in `message` longer than MAX_FAILURE_DEPTH."""
    todo = [message]
    while todo:
        current = todo.pop()
        for field in _fields_to_failures(current.DESCRIPTOR):
            value = getattr(current, field.name)
            if _is_map(field):
                children = list(value.values())
            elif field.is_repeated:
                children = list(value)
            else:
                children = [value] if current.HasField(field.name) else []
            for child in children:
                if child.DESCRIPTOR.full_name == _FAILURE:
                    _cut(child)
                else:
                    todo.append(child)


def _cut(failure: failure_pb.Failure) -> None:
    for _ in range(MAX_FAILURE_DEPTH - 1):
        if not failure.HasField("cause"):
            return
        failure = failure.cause
    if failure.HasField("cause"):
        failure.cause.Clear()
        failure.cause.message = CUT_MESSAGE
        failure.cause.server_failure_info.non_retryable = True


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _message_type(field: FieldDescriptor) -> Descriptor | None:
    """The message type a field holds: for a map, its values' type."""
    held = field.message_type
    if held is not None and held.GetOptions().map_entry:
        return held.fields_by_name["value"].message_type
    return held


@cache
def _fields_to_failures(descriptor: Descriptor) -> tuple[FieldDescriptor, ...]:
    """The fields of a message type through which a Failure can be reached (schema only)."""
    # Which types reach a Failure: a fixed point over the types reachable from this one.
    types: dict[str, Descriptor] = {}
    todo = [descriptor]
    while todo:
        current = todo.pop()
        if current.full_name in types:
            continue
        types[current.full_name] = current
        todo += [t for t in map(_message_type, current.fields) if t is not None]
    reaching = {_FAILURE}
    changed = True
    while changed:
        changed = False
        for name, current in types.items():
            if name not in reaching and any(
                (t := _message_type(f)) is not None and t.full_name in reaching for f in current.fields
            ):
                reaching.add(name)
                changed = True
    if descriptor.full_name == _FAILURE:
        return ()
    return tuple(f for f in descriptor.fields if (t := _message_type(f)) is not None and t.full_name in reaching)
