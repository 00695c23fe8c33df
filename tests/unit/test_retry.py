"""Retry policies: defaults, validation and the next-attempt decision."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import RetryPolicy
from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.failure.v1 import Failure

from tempyral.common.clock import duration, seconds
from tempyral.common.errors import InvalidArgument
from tempyral.common.retry import is_retryable, next_retry, normalize_retry_policy

NOW = 1_000 * 1_000_000_000


def policy(**kw: object) -> RetryPolicy:
    p = RetryPolicy(**kw)  # type: ignore[arg-type]
    normalize_retry_policy(p)
    return p


def app_failure(type_: str = "", non_retryable: bool = False) -> Failure:
    f = Failure(message="x")
    f.application_failure_info.type = type_
    f.application_failure_info.non_retryable = non_retryable
    return f


def test_defaults() -> None:
    p = policy()
    assert p.initial_interval.seconds == 1 and p.backoff_coefficient == 2.0 and p.maximum_interval.seconds == 100


@pytest.mark.parametrize(
    "bad",
    [
        {"backoff_coefficient": 0.5},
        {"maximum_attempts": -1},
        {"initial_interval": duration(seconds(5)), "maximum_interval": duration(seconds(1))},
    ],
)
def test_invalid_policies(bad: dict[str, object]) -> None:
    with pytest.raises(InvalidArgument):
        policy(**bad)


def test_backoff_grows_and_is_capped() -> None:
    p = policy(initial_interval=duration(seconds(1)), maximum_interval=duration(seconds(5)))
    got = [next_retry(p, attempt, app_failure(), NOW, 0).backoff_ns / 1e9 for attempt in range(1, 6)]
    assert got == [1, 2, 4, 5, 5]


def test_maximum_attempts_and_non_retryable() -> None:
    p = policy(maximum_attempts=3, non_retryable_error_types=["Fatal"])
    assert next_retry(p, 2, app_failure(), NOW, 0).retry
    assert next_retry(p, 3, app_failure(), NOW, 0).state == RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED
    assert next_retry(p, 1, app_failure("Fatal"), NOW, 0).state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    assert (
        next_retry(p, 1, app_failure(non_retryable=True), NOW, 0).state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE
    )
    # non-retryable wins over the attempt limit, as in the reference
    assert next_retry(p, 3, app_failure("Fatal"), NOW, 0).state == RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE


def test_expiration_stops_retries_with_timeout() -> None:
    p = policy()
    assert next_retry(p, 1, app_failure(), NOW, NOW + seconds(2)).retry
    assert next_retry(p, 2, app_failure(), NOW, NOW + seconds(1)).state == RetryState.RETRY_STATE_TIMEOUT


def test_explicit_next_retry_delay_overrides_the_policy() -> None:
    f = app_failure()
    f.application_failure_info.next_retry_delay.CopyFrom(duration(seconds(7)))
    assert next_retry(policy(), 1, f, NOW, 0).backoff_ns == seconds(7)


@pytest.mark.parametrize(
    ("timeout_type", "retryable"),
    [
        (TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE, True),
        (TimeoutType.TIMEOUT_TYPE_HEARTBEAT, True),
        (TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START, False),
        (TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE, False),
    ],
)
def test_which_timeouts_are_retried(timeout_type: int, retryable: bool) -> None:
    f = Failure()
    f.timeout_failure_info.timeout_type = timeout_type  # type: ignore[assignment]
    assert is_retryable(f, []) is retryable
    if retryable:
        assert not is_retryable(f, ["TemporalTimeout:StartToClose", "TemporalTimeout:Heartbeat"])


def test_no_policy_means_no_retry() -> None:
    assert next_retry(None, 1, app_failure(), NOW, 0).state == RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
