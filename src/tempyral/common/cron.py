"""Cron schedules of workflows: validation and the wait until the next run (UTC, like the reference)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from croniter import croniter

from tempyral.common.errors import InvalidArgument

_EVERY = re.compile(r"^@every\s+(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNIT_NS = {"ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}


def validate(schedule: str) -> None:
    if schedule and not (_EVERY.match(schedule.strip()) or croniter.is_valid(schedule.strip())):
        raise InvalidArgument(f"invalid CronSchedule: {schedule!r}")


def backoff_ns(schedule: str, start_ns: int, now_ns: int) -> int:
    """How long to wait from now for the next scheduled time (anchored at start for @every),
    rounded up to whole seconds as the reference does."""
    return -(-_raw_backoff_ns(schedule, start_ns, now_ns) // _SECOND_NS) * _SECOND_NS


_SECOND_NS = 1_000_000_000


def _raw_backoff_ns(schedule: str, start_ns: int, now_ns: int) -> int:
    schedule = schedule.strip()
    every = _EVERY.match(schedule)
    if every:
        interval = int(float(every.group(1)) * _UNIT_NS[every.group(2)])
        if interval <= 0:
            return 0
        elapsed = max(now_ns - start_ns, 0)
        return interval - elapsed % interval
    now = datetime.fromtimestamp(now_ns / 1e9, tz=UTC)
    nxt: datetime = croniter(schedule, now).get_next(datetime)
    return max(int(nxt.timestamp() * 1e9) - now_ns, 0)
