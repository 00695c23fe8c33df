"""Wall-clock helpers and conversions between protobuf times and nanoseconds."""

from __future__ import annotations

import time

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

NANOS_PER_SECOND = 1_000_000_000
# Nanoseconds in a signed 64-bit integer, as database columns and Go's time.Duration hold them.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def now_ns() -> int:
    return time.time_ns()


def timestamp(ns: int) -> Timestamp:
    ts = Timestamp()
    ts.seconds, ts.nanos = divmod(ns, NANOS_PER_SECOND)
    return ts


def ts_ns(ts: Timestamp) -> int:
    return ts.seconds * NANOS_PER_SECOND + ts.nanos


def duration(ns: int) -> Duration:
    d = Duration()
    d.seconds, d.nanos = divmod(ns, NANOS_PER_SECOND)
    return d


def duration_ns(d: Duration) -> int:
    return d.seconds * NANOS_PER_SECOND + d.nanos


def seconds(value: float) -> int:
    """Nanoseconds in `value` seconds."""
    return int(value * NANOS_PER_SECOND)


def int64_ns(ns: int) -> int:
    """`ns` saturated to the signed 64-bit range. As an instant that range ends on 2262-04-11, while
    the API accepts later ones (Timestamps run to the year 9999): a later instant becomes the last
    one, after every earlier one, and never due."""
    return min(max(ns, INT64_MIN), INT64_MAX)
