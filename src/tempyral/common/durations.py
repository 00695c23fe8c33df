"""Durations a client or a workflow gives the server, bounded as the reference bounds them.

The reference caps every timeout, delay and interval it accepts at 100 years, in place, so that
what it records and the instants it derives stay representable (its durations are 64-bit
nanoseconds, which end after ~292 years); it refuses negative durations and ones whose seconds and
nanos have different signs. Durations it reads without that check it saturates instead.
"""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from tempyral.common.clock import NANOS_PER_SECOND, duration_ns, int64_ns

MAX_DURATION_SECONDS = 100 * 365 * 24 * 3600  # 100 years, a whole number of seconds
MAX_DURATION_NS = MAX_DURATION_SECONDS * NANOS_PER_SECOND


class InvalidDuration(ValueError):
    """A duration the reference refuses; str() is its reason, worded as the reference words it."""


def validate_and_cap(d: Duration) -> None:
    """Refuse a negative duration or one with mismatched signs; cap one over 100 years to exactly 100
    years, in place. Unset durations are zero, hence valid (and stay unset)."""
    if (d.seconds > 0 and d.nanos < 0) or (d.seconds < 0 and d.nanos > 0):
        raise InvalidDuration("duration has seconds and nanos with different signs")
    value = duration_ns(d)
    if value < 0:
        raise InvalidDuration("negative duration")
    if value > MAX_DURATION_NS:
        d.seconds, d.nanos = MAX_DURATION_SECONDS, 0


def saturated_ns(d: Duration) -> int:
    """The duration in nanoseconds, saturated to the range of Go's time.Duration (64-bit): what the
    reference makes of a duration it does not validate (a retry delay a worker asks for, a sticky
    queue's timeout)."""
    return int64_ns(duration_ns(d))
