"""Retry policies: defaults, validation and the next-attempt decision (activities and workflows)."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from tempyral.common.clock import INT64_MAX, NANOS_PER_SECOND, duration, duration_ns, int64_ns
from tempyral.common.durations import InvalidDuration, saturated_ns, validate_and_cap
from tempyral.common.errors import InvalidArgument

RetryState = wf_enums.RetryState
TIMEOUT_TYPE_NAMES = {1: "StartToClose", 2: "ScheduleToStart", 3: "ScheduleToClose", 4: "Heartbeat"}
DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT = 100


def normalize_retry_policy(policy: common.RetryPolicy) -> None:
    """Fill Temporal's defaults in place, then validate the policy and cap its intervals at 100 years,
    in the reference's order and with its messages."""
    if duration_ns(policy.initial_interval) == 0:
        policy.initial_interval.CopyFrom(duration(NANOS_PER_SECOND))
    if duration_ns(policy.maximum_interval) == 0:
        # Saturated where the reference's 64-bit arithmetic would wrap; the cap below applies anyway.
        default = DEFAULT_MAXIMUM_INTERVAL_COEFFICIENT * saturated_ns(policy.initial_interval)
        policy.maximum_interval.CopyFrom(duration(int64_ns(default)))
    if policy.backoff_coefficient == 0:
        policy.backoff_coefficient = 2.0
    if policy.maximum_attempts == 1:
        return  # a single attempt never retries: the reference checks nothing more
    _check_interval(policy.initial_interval, "InitialInterval")
    if policy.backoff_coefficient < 1:
        raise InvalidArgument("BackoffCoefficient cannot be less than 1 on retry policy.")
    _check_interval(policy.maximum_interval, "MaximumInterval")
    if 0 < duration_ns(policy.maximum_interval) < duration_ns(policy.initial_interval):
        raise InvalidArgument("MaximumInterval cannot be less than InitialInterval on retry policy.")
    if policy.maximum_attempts < 0:
        raise InvalidArgument("MaximumAttempts cannot be negative on retry policy.")


def _check_interval(interval: Duration, name: str) -> None:
    try:
        validate_and_cap(interval)
    except InvalidDuration as err:
        raise InvalidArgument(f"invalid {name} set on retry policy: {err}") from err


def is_retryable(failure: failure_pb.Failure, non_retryable_types: list[str] | None) -> bool:
    types = non_retryable_types or []
    which = failure.WhichOneof("failure_info")
    if which in ("terminated_failure_info", "canceled_failure_info"):
        return False
    if which == "timeout_failure_info":
        tt = failure.timeout_failure_info.timeout_type
        if tt not in (1, 4):  # only start-to-close and heartbeat timeouts are retried
            return False
        return f"TemporalTimeout:{TIMEOUT_TYPE_NAMES[tt]}" not in types
    if which == "server_failure_info":
        return not failure.server_failure_info.non_retryable
    if which == "application_failure_info":
        info = failure.application_failure_info
        return not info.non_retryable and info.type not in types
    return True


@dataclass(frozen=True)
class RetryDecision:
    state: int  # RetryState
    backoff_ns: int = 0

    @property
    def retry(self) -> bool:
        return self.state == RetryState.RETRY_STATE_IN_PROGRESS


def next_retry(
    policy: common.RetryPolicy | None,
    attempt: int,
    failure: failure_pb.Failure | None,
    now_ns: int,
    expiration_ns: int,
    delay_within_maximum: bool = False,
) -> RetryDecision:
    """Whether attempt `attempt` (which just failed) is followed by another, and after how long.

    A delay the failure asks for replaces the computed backoff. As on the reference, an activity's
    replaces the maximum interval too, while a workflow's (`delay_within_maximum`) is kept within it."""
    if policy is None:
        return RetryDecision(RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET)
    if failure is not None and not is_retryable(failure, list(policy.non_retryable_error_types)):
        return RetryDecision(RetryState.RETRY_STATE_NON_RETRYABLE_FAILURE)
    if policy.maximum_attempts > 0 and attempt >= policy.maximum_attempts:
        return RetryDecision(RetryState.RETRY_STATE_MAXIMUM_ATTEMPTS_REACHED)
    explicit = _explicit_delay(failure)
    maximum = duration_ns(policy.maximum_interval)
    if explicit is not None:
        backoff = explicit
        if delay_within_maximum and maximum > 0 and not 0 < backoff <= maximum:
            backoff = maximum
    else:
        initial = duration_ns(policy.initial_interval) or NANOS_PER_SECOND
        coefficient = policy.backoff_coefficient or 2.0
        try:
            exponential = initial * coefficient ** max(attempt - 1, 0)
        except OverflowError:  # many attempts, or a huge coefficient: past any maximum
            exponential = math.inf
        backoff = int(min(exponential, maximum if maximum > 0 else INT64_MAX))
    if expiration_ns and now_ns + backoff > expiration_ns:
        return RetryDecision(RetryState.RETRY_STATE_TIMEOUT)
    return RetryDecision(RetryState.RETRY_STATE_IN_PROGRESS, backoff)


def _explicit_delay(failure: failure_pb.Failure | None) -> int | None:
    if failure is None or failure.WhichOneof("failure_info") != "application_failure_info":
        return None
    info = failure.application_failure_info
    if info.HasField("next_retry_delay"):
        # Unchecked, as on the reference, which reads it as 64-bit nanoseconds (at most ~292 years).
        return saturated_ns(info.next_retry_delay)
    return None


def jittered_backoff_s(
    attempt: int, initial_s: float, maximum_s: float, coefficient: float = 2.0, jitter: float = 0.2
) -> float:
    """The server's own retry wait after `attempt` failed attempts: `initial_s` growing by `coefficient` up to
    `maximum_s`, less up to `jitter` of it, so that what failed together does not come back together."""
    try:
        base = min(initial_s * coefficient ** max(attempt - 1, 0), maximum_s)
    except OverflowError:  # thousands of attempts
        base = maximum_s
    return max(base * (1 - jitter * random.random()), 0.001)
