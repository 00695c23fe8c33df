"""Cron schedules: validation and the wait before the next run, as the reference computes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tempyral.common import cron
from tempyral.common.errors import InvalidArgument

S = 1_000_000_000


def _ns(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()) * S


def test_waits_until_the_next_scheduled_minute_rounded_up_to_whole_seconds() -> None:
    now = _ns("2026-01-01T10:00:20") + 250_000_000  # 10:00:20.25
    assert cron.backoff_ns("* * * * *", now, now) == 40 * S  # 39.75 s, rounded up


def test_every_is_anchored_at_the_start_of_the_first_run() -> None:
    start = _ns("2026-01-01T10:00:00")
    assert cron.backoff_ns("@every 10s", start, start + 3 * S) == 7 * S
    assert cron.backoff_ns("@every 10s", start, start + 13 * S + 1) == 7 * S


def test_exactly_on_the_schedule_waits_for_the_next_time() -> None:
    now = _ns("2026-01-01T10:01:00")
    assert cron.backoff_ns("* * * * *", now, now) == 60 * S


@pytest.mark.parametrize("schedule", ["not a cron", "61 * * * *", "* * *"])
def test_invalid_schedules_are_refused(schedule: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid CronSchedule"):
        cron.validate(schedule)
