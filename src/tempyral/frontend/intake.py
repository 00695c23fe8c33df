"""What happens to a gRPC request before any handler sees it, as on the reference.

grpc-go decodes a request before the service's interceptors run and answers a body it cannot
decode with INTERNAL "grpc: error unmarshalling request: ..."; the reference's first interceptor
then refuses a namespace name longer than the ID length limit, before any lookup (so the name is
never echoed back whole); and every error message it sends is cut to 4000 bytes. Failure cause
chains are cut here too, to what tempyral can store (tempyral.frontend.deep_failures).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from google.protobuf.message import DecodeError, Message

from tempyral.common.errors import Internal, InvalidArgument, ServiceError
from tempyral.common.limits import MAX_ID_LENGTH
from tempyral.frontend.deep_failures import cut_deep_failures

MAX_ERROR_MESSAGE_BYTES = 4000  # the reference's system.maxServiceErrorMessageLength
TRUNCATED_SUFFIX = "... <truncated>"
# Go's protobuf errors for what protobuf's upb decoder reports (its status strings).
_GO_DECODE_ERRORS = {
    "Exceeded upb_DecodeOptions_MaxDepth": "proto: exceeded maximum recursion depth",
    "String field had bad UTF-8": "string field contains invalid UTF-8",
}
_GO_MALFORMED = "proto: cannot parse invalid wire-format data"


class Undecodable:
    """A request body protobuf could not decode, in place of the request."""

    def __init__(self, error: DecodeError) -> None:
        reason = str(error).rsplit(": ", 1)[-1]
        self.error = Internal(f"grpc: error unmarshalling request: {_GO_DECODE_ERRORS.get(reason, _GO_MALFORMED)}")


def decoder(cls: type[Message]) -> Callable[[bytes], Message | Undecodable]:
    """A request deserializer that never raises (gRPC Python would answer UNKNOWN), and cuts
    failure chains to what the server can store."""

    def decode(data: bytes) -> Message | Undecodable:
        try:
            request = cls.FromString(data)
        except DecodeError as err:
            return Undecodable(err)
        cut_deep_failures(request)
        return request

    return decode


def refusal(request: Any) -> ServiceError | None:
    """The error the reference answers a request with before its handler runs, if any."""
    if isinstance(request, Undecodable):
        return request.error
    namespace = getattr(request, "namespace", None)
    if isinstance(namespace, str) and len(namespace.encode()) > MAX_ID_LENGTH:
        return InvalidArgument("Namespace length exceeds limit.")
    return None


def truncated(message: str) -> str:
    """The message as the reference sends it: at most 4000 bytes, cut on a character boundary."""
    data = message.encode()
    if len(data) <= MAX_ERROR_MESSAGE_BYTES:
        return message
    keep = data[: MAX_ERROR_MESSAGE_BYTES - len(TRUNCATED_SUFFIX)].decode(errors="ignore")
    return keep + TRUNCATED_SUFFIX
