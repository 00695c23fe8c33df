"""How Nexus values travel over HTTP (the Nexus RPC HTTP spec, github.com/nexus-rpc/api SPEC.md):
request and response bodies ↔ Temporal payloads, Nexus failure JSON ↔ Temporal failures,
`Nexus-Link` headers ↔ links, and the duration and time formats of the headers.

The conversions follow the reference server's (`common/nexus/payload_serializer.go`,
`common/nexus/failure.go`), so a payload or failure crosses HTTP and comes back unchanged.
Both the HTTP API (`http_api`) and the outbound client (`http_client`) use them.
"""

from __future__ import annotations

import email.utils
import json
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import NexusHandlerErrorRetryBehavior
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.nexus.v1 import message_pb2 as nexus_pb

# The reference limits a Nexus request body to the blob size limit (2 MiB by default).
MAX_BODY_BYTES = 2 * 1024 * 1024

# Headers (lowercase: aiohttp and the Nexus header maps compare them case-insensitively).
REQUEST_ID = "nexus-request-id"
REQUEST_TIMEOUT = "request-timeout"
OPERATION_STATE = "nexus-operation-state"
OPERATION_TOKEN = "nexus-operation-token"
OPERATION_START_TIME = "nexus-operation-start-time"
OPERATION_CLOSE_TIME = "nexus-operation-close-time"
LINK = "nexus-link"
RETRYABLE = "nexus-request-retryable"
CALLBACK_PREFIX = "nexus-callback-"
CONTENT_PREFIX = "content-"
CALLBACK_QUERY = "callback"  # the spec passes the callback URL as a query parameter

HANDLER_ERROR = "nexus.HandlerError"
OPERATION_ERROR = "nexus.OperationError"
TEMPORAL_FAILURE = failure_pb.Failure.DESCRIPTOR.full_name
# Marks an OperationError that only wraps its cause (the reference's MarkAsWrapperError).
UNWRAP_ERROR = "unwrap-error"

STATUS_UPSTREAM_TIMEOUT = 520
STATUS_BY_HANDLER_ERROR = {
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "UNAUTHORIZED": 403,
    "NOT_FOUND": 404,
    "REQUEST_TIMEOUT": 408,
    "CONFLICT": 409,
    "RESOURCE_EXHAUSTED": 429,
    "INTERNAL": 500,
    "NOT_IMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "UPSTREAM_TIMEOUT": STATUS_UPSTREAM_TIMEOUT,
}
HANDLER_ERROR_BY_STATUS = {status: name for name, status in STATUS_BY_HANDLER_ERROR.items()}

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_LINK_TYPE = re.compile(r"^[A-Za-z0-9_./]+$")
RetryBehavior = NexusHandlerErrorRetryBehavior


# ---------------------------------------------------------------- durations and times
def parse_duration(text: str) -> float:
    """`Request-Timeout` / `Operation-Timeout` values: number + ms, s or m. Seconds."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise ValueError(f"invalid duration: {text!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def format_duration(seconds: float) -> str:
    return f"{max(int(seconds * 1000), 0)}ms"


def format_http_time(time_ns: int) -> str:
    """`Nexus-Operation-Start-Time` is an HTTP date (RFC 5322), second resolution."""
    return email.utils.formatdate(time_ns / 1e9, usegmt=True)


def parse_http_time(text: str) -> int:
    try:
        parsed = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid HTTP date: {text!r}") from err
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1e9)


def format_rfc3339(time_ns: int) -> str:
    """`Nexus-Operation-Close-Time`: RFC 3339 with milliseconds."""
    moment = datetime.fromtimestamp(time_ns / 1e9, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# ---------------------------------------------------------------- bodies and payloads
def _media_type(content_type: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in content_type.split(";")]
    params: dict[str, str] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if sep:
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


def is_json(content_type: str | None) -> bool:
    return bool(content_type) and _media_type(content_type or "")[0] == "application/json"


def body_to_payload(content_type: str | None, body: bytes) -> common.Payload:
    """A request or completion body as the payload a worker or a caller's history gets.
    Raises ValueError for a body that does not match its content type."""
    if not content_type:
        if not body:
            return common.Payload(metadata={"encoding": b"binary/null"})
        return common.Payload(metadata={"encoding": b"binary/plain"}, data=body)
    media, params = _media_type(content_type)
    if media == "application/x-temporal-payload":
        try:
            return common.Payload.FromString(body)
        except DecodeError as err:
            raise ValueError("invalid application/x-temporal-payload body") from err
    if media == "application/json":
        try:
            json.loads(body)
        except ValueError as err:
            raise ValueError("invalid JSON body") from err
        if params.get("format") == "protobuf" and params.get("message-type"):
            return common.Payload(
                metadata={"encoding": b"json/protobuf", "messageType": params["message-type"].encode()}, data=body
            )
        return common.Payload(metadata={"encoding": b"json/plain"}, data=body)
    if media == "application/x-protobuf" and params.get("message-type"):
        return common.Payload(
            metadata={"encoding": b"binary/protobuf", "messageType": params["message-type"].encode()}, data=body
        )
    # application/octet-stream and anything else: the bytes as they came, which every SDK decodes.
    return common.Payload(metadata={"encoding": b"binary/plain"}, data=body)


def payload_to_body(payload: common.Payload | None) -> tuple[str | None, bytes]:
    """A payload as (content type, body); payloads with metadata HTTP has no words for travel
    whole as `application/x-temporal-payload`, as on the reference."""
    if payload is None:
        return None, b""
    metadata = dict(payload.metadata)
    encoding = metadata.get("encoding", b"").decode(errors="replace")
    message_type = metadata.get("messageType", b"").decode(errors="replace")
    if encoding == "binary/null" and len(metadata) == 1:
        return None, b""
    if encoding == "json/plain" and len(metadata) == 1:
        return "application/json", payload.data
    if encoding == "binary/plain" and len(metadata) == 1:
        return "application/octet-stream", payload.data
    if encoding == "json/protobuf" and len(metadata) == 2 and message_type:
        return f'application/json; format=protobuf; message-type="{message_type}"', payload.data
    if encoding == "binary/protobuf" and len(metadata) == 2 and message_type:
        return f'application/x-protobuf; message-type="{message_type}"', payload.data
    return "application/x-temporal-payload", payload.SerializeToString()


# ---------------------------------------------------------------- links
def format_link(link: nexus_pb.Link) -> str:
    return f'<{link.url}>; type="{link.type}"'


def parse_links(values: list[str]) -> list[nexus_pb.Link]:
    """`Nexus-Link` header values (the HTTP `Link` format, `type` required). Raises ValueError."""
    links: list[nexus_pb.Link] = []
    for value in values:
        for encoded in _split_links(value):
            links.append(_parse_link(encoded))
    return links


def _split_links(value: str) -> list[str]:
    # Commas separate links, but a URL may contain commas: split only outside <...>.
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(value):
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(depth - 1, 0)
        elif ch == "," and depth == 0:
            parts.append(value[start:i])
            start = i + 1
    parts.append(value[start:])
    return [p for p in (part.strip() for part in parts) if p]


def _parse_link(encoded: str) -> nexus_pb.Link:
    if not encoded.startswith("<") or ">" not in encoded:
        raise ValueError(f"invalid link: {encoded!r}")
    end = encoded.index(">")
    url = encoded[1:end].strip()
    if not url:
        raise ValueError("invalid link: empty URL")
    params = encoded[end + 1 :].split(";")
    if len(params) < 2 or params[0].strip():
        raise ValueError(f"invalid link: {encoded!r}")
    link_type = ""
    for param in params[1:]:
        key, sep, value = param.strip().partition("=")
        value = value.strip()
        if not sep or value.startswith('"') != value.endswith('"') or (value == '"'):
            raise ValueError(f"invalid link parameter: {param.strip()!r}")
        if key.strip() == "type":
            link_type = value.strip('"')
    if not _LINK_TYPE.match(link_type):
        raise ValueError(f"invalid link: missing or invalid type in {encoded!r}")
    return nexus_pb.Link(url=url, type=link_type)


# ---------------------------------------------------------------- failures
Json = dict[str, Any]


def handler_error_json(error_type: str, message: str, retryable: bool | None = None) -> Json:
    details: Json = {"type": error_type}
    if retryable is not None:
        details["retryableOverride"] = retryable
    return {"message": message, "metadata": {"type": HANDLER_ERROR}, "details": details}


def operation_error_json(state: str, cause: Json | None, message: str = "operation error") -> Json:
    """The spec's OperationError, wrapping the failure that says why (marked so a Temporal
    reader takes the cause, as the reference marks it)."""
    failure: Json = {
        "message": message,
        "metadata": {"type": OPERATION_ERROR, UNWRAP_ERROR: "true"},
        "details": {"state": state},
    }
    if cause is not None:
        failure["cause"] = cause
    return failure


def temporal_to_json(failure: failure_pb.Failure) -> Json:
    """A Temporal failure as Nexus failure JSON: handler errors as `nexus.HandlerError`, every
    other failure whole (as protojson in `details`) so that it comes back unchanged."""
    out: Json = {"message": failure.message}
    if failure.stack_trace:
        out["stackTrace"] = failure.stack_trace
    if failure.HasField("nexus_handler_failure_info"):
        info = failure.nexus_handler_failure_info
        details: Json = {"type": info.type}
        if info.retry_behavior == RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE:
            details["retryableOverride"] = True
        elif info.retry_behavior == RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE:
            details["retryableOverride"] = False
        out["metadata"] = {"type": HANDLER_ERROR}
        out["details"] = details
    else:
        bare = failure_pb.Failure()
        bare.CopyFrom(failure)
        bare.message = ""
        bare.stack_trace = ""
        bare.ClearField("cause")
        out["metadata"] = {"type": TEMPORAL_FAILURE}
        out["details"] = json_format.MessageToDict(bare)
    if failure.HasField("cause"):
        out["cause"] = temporal_to_json(failure.cause)
    return out


def nexus_proto_to_json(failure: nexus_pb.Failure) -> Json:
    """The Nexus failure of the deprecated worker answers (operation_error, HandlerError)."""
    out: Json = {"message": failure.message}
    if failure.stack_trace:
        out["stackTrace"] = failure.stack_trace
    if failure.metadata:
        out["metadata"] = dict(failure.metadata)
    if failure.details:
        try:
            out["details"] = json.loads(failure.details)
        except ValueError:
            out["details"] = failure.details.decode(errors="replace")
    if failure.HasField("cause"):
        out["cause"] = nexus_proto_to_json(failure.cause)
    return out


def parse_failure(body: bytes) -> Json:
    """A Nexus failure JSON body. Raises ValueError."""
    try:
        value = json.loads(body)
    except ValueError as err:
        raise ValueError("invalid failure JSON") from err
    _check_failure(value)
    return value  # type: ignore[no-any-return]


def _check_failure(value: Any) -> None:
    if not isinstance(value, dict):
        raise ValueError("a failure must be a JSON object")
    if not isinstance(value.get("message", ""), str):
        raise ValueError("failure message must be a string")
    metadata = value.get("metadata", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError("failure metadata must map strings to strings")
    if "cause" in value and value["cause"] is not None:
        _check_failure(value["cause"])


def unwrap(failure: Json) -> Json:
    """The cause of a wrapper OperationError; other failures as they are."""
    cause = failure.get("cause")
    if (failure.get("metadata") or {}).get(UNWRAP_ERROR) == "true" and isinstance(cause, dict):
        return cause
    return failure


def operation_state(failure: Json) -> str | None:
    """`failed` / `canceled` if the failure is an OperationError."""
    if (failure.get("metadata") or {}).get("type") != OPERATION_ERROR:
        return None
    details = failure.get("details")
    state = details.get("state") if isinstance(details, dict) else None
    return state if state in ("failed", "canceled") else "failed"


def json_to_temporal(failure: Json) -> failure_pb.Failure:
    """Nexus failure JSON as a Temporal failure (the reference's NexusFailureToTemporalFailure).
    Raises ValueError for details that do not fit their declared type."""
    message = str(failure.get("message") or "")
    out = failure_pb.Failure(message=message, stack_trace=str(failure.get("stackTrace") or ""))
    metadata = failure.get("metadata") or {}
    details = failure.get("details")
    kind = metadata.get("type")
    if kind == TEMPORAL_FAILURE:
        if not isinstance(details, dict):
            raise ValueError("temporal failure details must be an object")
        try:
            json_format.ParseDict(details, out, ignore_unknown_fields=True)
        except json_format.ParseError as err:
            raise ValueError(f"invalid temporal failure details: {err}") from err
        out.message = str(failure.get("message") or "")
        out.stack_trace = str(failure.get("stackTrace") or "")
        out.ClearField("cause")
    elif kind == OPERATION_ERROR:
        # failed → a non-retryable OperationError application failure; canceled → a canceled failure
        if operation_state(failure) == "canceled":
            out.canceled_failure_info.SetInParent()
        else:
            out.application_failure_info.type = "OperationError"
            out.application_failure_info.non_retryable = True
    elif kind == HANDLER_ERROR:
        if not isinstance(details, dict):
            raise ValueError("handler error details must be an object")
        info = out.nexus_handler_failure_info
        info.type = str(details.get("type") or "")
        override = details.get("retryableOverride")
        if override is True:
            info.retry_behavior = RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_RETRYABLE
        elif override is False:
            info.retry_behavior = RetryBehavior.NEXUS_HANDLER_ERROR_RETRY_BEHAVIOR_NON_RETRYABLE
    elif metadata or details is not None:
        # A failure of a kind we do not know: keep it, whole, as the details of an application failure.
        kept = {k: v for k, v in failure.items() if k not in ("message", "stackTrace", "cause")}
        out.application_failure_info.type = "NexusFailure"
        out.application_failure_info.details.payloads.add(
            metadata={"encoding": b"json/plain"}, data=json.dumps(kept, separators=(",", ":")).encode()
        )
    cause = failure.get("cause")
    if isinstance(cause, dict):
        out.cause.CopyFrom(json_to_temporal(cause))
    return out


def dumps(value: Json) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
