"""The Nexus HTTP conversions: bodies ↔ payloads, failure JSON ↔ Temporal failures, links, times."""

from __future__ import annotations

import json

import pytest
from multidict import CIMultiDict
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import NexusHandlerErrorRetryBehavior
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

from tempyral.nexus import http_client
from tempyral.nexus import http_wire as wire
from tempyral.nexus.outcomes import Kind, Outcome


def test_durations() -> None:
    assert wire.parse_duration("1500ms") == pytest.approx(1.5)
    assert wire.parse_duration("2s") == 2.0
    assert wire.parse_duration("0.5m") == 30.0
    for bad in ("", "10", "1h", "-1s", "s", "1.s"):
        with pytest.raises(ValueError):
            wire.parse_duration(bad)
    assert wire.format_duration(2.5) == "2500ms"
    assert wire.format_duration(-1) == "0ms"


def test_http_times_round_trip_to_the_second() -> None:
    ns = 1_700_000_000_123_000_000
    text = wire.format_http_time(ns)
    assert text.endswith("GMT")
    assert wire.parse_http_time(text) == 1_700_000_000 * 10**9
    with pytest.raises(ValueError):
        wire.parse_http_time("yesterday")
    assert wire.format_rfc3339(ns) == "2023-11-14T22:13:20.123Z"


@pytest.mark.parametrize(
    ("content_type", "body", "metadata"),
    [
        ("application/json", b'{"a": 1}', {"encoding": b"json/plain"}),
        ("application/json; charset=utf-8", b"[1]", {"encoding": b"json/plain"}),
        ("application/octet-stream", b"\x00\x01", {"encoding": b"binary/plain"}),
        ("text/plain", b"hi", {"encoding": b"binary/plain"}),
        (None, b"raw", {"encoding": b"binary/plain"}),
        (None, b"", {"encoding": b"binary/null"}),
        (
            'application/x-protobuf; message-type="a.B"',
            b"\x08\x01",
            {"encoding": b"binary/protobuf", "messageType": b"a.B"},
        ),
        (
            "application/json; format=protobuf; message-type=a.B",
            b"{}",
            {"encoding": b"json/protobuf", "messageType": b"a.B"},
        ),
    ],
)
def test_bodies_become_payloads(content_type: str | None, body: bytes, metadata: dict[str, bytes]) -> None:
    payload = wire.body_to_payload(content_type, body)
    assert dict(payload.metadata) == metadata
    assert payload.data == (b"" if metadata["encoding"] == b"binary/null" else body)


def test_bad_bodies_are_refused() -> None:
    with pytest.raises(ValueError):
        wire.body_to_payload("application/json", b"{not json")
    with pytest.raises(ValueError):
        wire.body_to_payload("application/x-temporal-payload", b"\xff\xff\xff")


def test_payloads_become_bodies_and_come_back() -> None:
    cases = [
        (common.Payload(metadata={"encoding": b"json/plain"}, data=b'"x"'), "application/json"),
        (common.Payload(metadata={"encoding": b"binary/plain"}, data=b"\x01"), "application/octet-stream"),
        (common.Payload(metadata={"encoding": b"binary/null"}), None),
        (
            common.Payload(metadata={"encoding": b"binary/protobuf", "messageType": b"a.B"}, data=b"\x08\x01"),
            'application/x-protobuf; message-type="a.B"',
        ),
        # metadata HTTP has no header for: the whole payload travels
        (
            common.Payload(metadata={"encoding": b"json/plain", "encryption-key": b"k1"}, data=b"1"),
            "application/x-temporal-payload",
        ),
    ]
    for payload, content_type in cases:
        got_type, body = wire.payload_to_body(payload)
        assert got_type == content_type
        assert wire.body_to_payload(got_type, body) == payload
    assert wire.payload_to_body(None) == (None, b"")


def test_links_round_trip_and_bad_ones_are_refused() -> None:
    first = nexus_pb.Link(url="temporal:///namespaces/ns/workflows/w/r/history?a=1,2", type="temporal.api.x")
    second = nexus_pb.Link(url="https://example.com/x", type="com.example.Thing")
    joined = ", ".join(wire.format_link(link) for link in (first, second))
    assert wire.parse_links([joined]) == [first, second]
    assert wire.parse_links([wire.format_link(first), wire.format_link(second)]) == [first, second]
    assert wire.parse_links([]) == []
    for bad in ("no-brackets", '<>; type="t"', "<http://x>", '<http://x>; type="bad type"', '<http://x>; type="t'):
        with pytest.raises(ValueError):
            wire.parse_links([bad])


def test_handler_failures_round_trip() -> None:
    failure = failure_pb.Failure(message="nope", stack_trace="at x")
    failure.nexus_handler_failure_info.type = "BAD_REQUEST"
    failure.nexus_handler_failure_info.retry_behavior = (
        NexusHandlerErrorRetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE
    )
    failure.cause.message = "because"
    failure.cause.application_failure_info.type = "MyError"
    as_json = wire.temporal_to_json(failure)
    assert as_json["metadata"] == {"type": "nexus.HandlerError"}
    assert as_json["details"] == {"type": "BAD_REQUEST", "retryableOverride": False}
    assert as_json["cause"]["metadata"] == {"type": "temporal.api.failure.v1.Failure"}
    back = wire.json_to_temporal(json.loads(wire.dumps(as_json)))
    assert back == failure


def test_temporal_failures_travel_whole() -> None:
    failure = failure_pb.Failure(message="boom")
    failure.application_failure_info.type = "ValueError"
    failure.application_failure_info.non_retryable = True
    failure.application_failure_info.details.payloads.add(metadata={"encoding": b"json/plain"}, data=b"1")
    assert wire.json_to_temporal(wire.temporal_to_json(failure)) == failure


def test_operation_errors_and_foreign_failures() -> None:
    cause = wire.temporal_to_json(failure_pb.Failure(message="inner"))
    wrapped = wire.operation_error_json("canceled", cause)
    assert wire.operation_state(wrapped) == "canceled"
    assert wire.unwrap(wrapped) == cause
    # an OperationError that is not a wrapper is converted itself
    plain = {"message": "op failed", "metadata": {"type": "nexus.OperationError"}, "details": {"state": "failed"}}
    assert wire.unwrap(plain) is plain
    converted = wire.json_to_temporal(plain)
    assert converted.application_failure_info.type == "OperationError"
    assert converted.application_failure_info.non_retryable
    canceled = wire.json_to_temporal({**plain, "details": {"state": "canceled"}})
    assert canceled.HasField("canceled_failure_info")
    # a failure of unknown kind is kept, whole, as a NexusFailure application failure
    foreign = {"message": "x", "metadata": {"type": "com.example.Err"}, "details": {"code": 7}}
    got = wire.json_to_temporal(foreign)
    assert got.message == "x"
    assert got.application_failure_info.type == "NexusFailure"
    kept = json.loads(got.application_failure_info.details.payloads[0].data)
    assert kept == {"metadata": {"type": "com.example.Err"}, "details": {"code": 7}}
    # a bare message stays a bare failure
    assert wire.json_to_temporal({"message": "m"}) == failure_pb.Failure(message="m")


def test_malformed_failures_are_refused() -> None:
    for body in (b"not json", b"[]", b'{"message": 1}', b'{"metadata": {"a": 1}}', b'{"cause": "x"}'):
        with pytest.raises(ValueError):
            wire.parse_failure(body)
    with pytest.raises(ValueError):
        wire.json_to_temporal({"metadata": {"type": "temporal.api.failure.v1.Failure"}, "details": "x"})
    with pytest.raises(ValueError):
        wire.json_to_temporal({"metadata": {"type": "nexus.HandlerError"}, "details": []})


def test_nexus_proto_failures_as_json() -> None:
    failure = nexus_pb.Failure(message="m", metadata={"k": "v"}, details=b'{"x": 1}')
    failure.cause.message = "c"
    assert wire.nexus_proto_to_json(failure) == {
        "message": "m",
        "metadata": {"k": "v"},
        "details": {"x": 1},
        "cause": {"message": "c"},
    }


def test_handler_error_status_codes() -> None:
    assert wire.STATUS_BY_HANDLER_ERROR["UPSTREAM_TIMEOUT"] == 520
    assert wire.HANDLER_ERROR_BY_STATUS[403] == "UNAUTHORIZED"
    assert wire.HANDLER_ERROR_BY_STATUS[401] == "UNAUTHENTICATED"
    assert wire.handler_error_json("INTERNAL", "m", True)["details"] == {"type": "INTERNAL", "retryableOverride": True}


# ---------------------------------------------------------------- outbound answers → outcomes
class _Answer:
    """What `http_client` reads of an aiohttp response: the status and the headers."""

    def __init__(self, status: int, headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.headers = CIMultiDict(headers or {})


def _start(status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Outcome:
    return http_client._start_outcome(_Answer(status, headers), body)  # type: ignore[arg-type]


def test_start_answers_become_outcomes() -> None:
    ok = _start(200, b'{"a":1}', {"Content-Type": "application/json"})
    assert ok.kind == Kind.SUCCEEDED
    assert ok.result == common.Payload(metadata={"encoding": b"json/plain"}, data=b'{"a":1}')
    started = _start(201, b'{"token":"t1","state":"running"}', {"Content-Type": "application/json"})
    assert (started.kind, started.token) == (Kind.STARTED, "t1")
    assert _start(201, b"{}").kind == Kind.FAILED  # no token: the operation cannot go on

    cause = wire.temporal_to_json(failure_pb.Failure(message="why"))
    failed = _start(424, wire.dumps(wire.operation_error_json("failed", cause)), {"Nexus-Operation-State": "failed"})
    assert failed.kind == Kind.FAILED
    assert failed.failure is not None and failed.failure.message == "why"
    canceled = _start(424, wire.dumps({"message": "stop"}), {"Nexus-Operation-State": "canceled"})
    assert canceled.kind == Kind.CANCELED
    assert canceled.failure is not None and canceled.failure.HasField("canceled_failure_info")

    json_type = {"Content-Type": "application/json"}
    bad = _start(400, wire.dumps(wire.handler_error_json("BAD_REQUEST", "no")), json_type)
    assert bad.kind == Kind.FAILED and not bad.destination_down
    for status in (429, 500, 503, 520):
        retry = _start(status, b"oops")
        assert retry.kind == Kind.RETRY and retry.destination_down, status
        assert retry.failure is not None
        assert retry.failure.nexus_handler_failure_info.type == wire.HANDLER_ERROR_BY_STATUS[status]
    # the failure body wins over the status; Nexus-Request-Retryable overrides the type's default
    forced = _start(500, wire.dumps(wire.handler_error_json("INTERNAL", "x", retryable=False)), json_type)
    assert forced.kind == Kind.FAILED
    assert _start(404, b"", {"Nexus-Request-Retryable": "true"}).kind == Kind.RETRY
