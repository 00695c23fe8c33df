"""The timer queue retries a timer that fails with a growing, jittered delay (a timer that keeps failing on a
full disk must not come back every second), and logs the failures a line per interval, not one each."""

from __future__ import annotations

import logging

import pytest

from tempyral.common.errors import StorageUnavailable
from tempyral.common.logs import ThrottledLog
from tempyral.history.timer_queue import RETRY_FIRST_S, RETRY_JITTER, RETRY_MAX_S, TimerQueue
from tempyral.proto.internal_pb2 import Task

NS = 1_000_000_000


async def never(task: Task) -> None:
    raise AssertionError("not run in these tests")


def test_retry_delays_double_up_to_the_maximum_with_jitter() -> None:
    queue = TimerQueue(never)
    delays = [queue._retry_delay_ns(7) / NS for _ in range(10)]
    for attempt, delay in enumerate(delays):
        nominal = min(RETRY_FIRST_S * 2**attempt, RETRY_MAX_S)
        assert nominal * (1 - RETRY_JITTER) <= delay <= nominal
    assert delays[-1] > RETRY_MAX_S * (1 - RETRY_JITTER) - 1e-9
    # Another timer starts from the first delay.
    assert queue._retry_delay_ns(8) / NS <= RETRY_FIRST_S


@pytest.mark.asyncio(loop_scope="function")
async def test_a_failing_timer_comes_back_later_each_time_and_a_success_forgets_it() -> None:
    outcomes = [StorageUnavailable("disk full"), StorageUnavailable("disk full"), None]

    async def execute(task: Task) -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    queue = TimerQueue(execute)
    task = Task(task_id=42)
    for attempt in range(2):
        await queue._slots.acquire()
        await queue._fire(task)
        assert queue._failed_attempts[42] == attempt + 1
        assert len(queue) == 1  # put back, for later (once: a timer is queued once)
    await queue._slots.acquire()
    await queue._fire(task)
    assert 42 not in queue._failed_attempts


def test_throttled_log_says_the_first_failure_then_how_many_followed(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test"), interval_s=3600)
    with caplog.at_level(logging.ERROR, logger="test"):
        for _ in range(500):
            throttled.failure("commits failed", StorageUnavailable("database or disk is full"))
        throttled.failure("other things failed", RuntimeError("a bug"))
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["commits failed: database or disk is full", "other things failed: a bug"]
    assert caplog.records[0].exc_info is None  # a known error: no traceback
    assert caplog.records[1].exc_info is not None  # a bug: its traceback, once


def test_throttled_log_reports_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    throttled = ThrottledLog(logging.getLogger("test"), interval_s=0)
    with caplog.at_level(logging.ERROR, logger="test"):
        throttled.failure("commits failed", StorageUnavailable("full"))
        throttled._kinds["commits failed"].left_out = 41  # as if 41 came within the interval
        throttled.failure("commits failed", StorageUnavailable("full"))
    assert caplog.records[-1].getMessage() == "commits failed: full (41 more like it since the last report)"
