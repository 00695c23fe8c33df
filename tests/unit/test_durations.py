"""Durations bounded as the reference bounds them: the shared helper, retry policies, retention and the
commands that carry durations."""

from __future__ import annotations

import pytest
from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import Command
from temporalio.api.common.v1 import RetryPolicy
from temporalio.api.enums.v1 import CommandType
from temporalio.api.failure.v1 import Failure

from tempyral.common.clock import INT64_MAX, INT64_MIN, timestamp
from tempyral.common.durations import MAX_DURATION_SECONDS, InvalidDuration, saturated_ns, validate_and_cap
from tempyral.common.errors import InvalidArgument
from tempyral.common.retry import RetryState, next_retry, normalize_retry_policy
from tempyral.history.commands import WorkflowTaskFailure
from tempyral.namespace.registry import check_retention
from tests.unit.test_commands import process, running

YEARS_100 = 3153600000
BIG = 10**15  # seconds
C = CommandType


def d(seconds: int, nanos: int = 0) -> Duration:
    return Duration(seconds=seconds, nanos=nanos)


# ---------------------------------------------------------------- the helper
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (d(0), d(0)),
        (d(1, 5), d(1, 5)),
        (d(YEARS_100), d(YEARS_100)),
        (d(YEARS_100, 1), d(YEARS_100)),  # a nanosecond over: exactly 100 years
        (d(BIG, 999_999_999), d(YEARS_100)),
        (d(2**63 - 1), d(YEARS_100)),
        (d(0, 2_000_000_000), d(0, 2_000_000_000)),  # out-of-range nanos are read as they add up
    ],
)
def test_durations_over_100_years_are_capped_in_place(given: Duration, kept: Duration) -> None:
    assert MAX_DURATION_SECONDS == YEARS_100
    validate_and_cap(given)
    assert given == kept


def test_an_unset_duration_stays_unset() -> None:
    policy = RetryPolicy()
    validate_and_cap(policy.initial_interval)
    assert not policy.HasField("initial_interval")


@pytest.mark.parametrize(
    ("given", "reason"),
    [
        (d(-1), "negative duration"),
        (d(0, -1), "negative duration"),
        (d(-(2**63)), "negative duration"),
        (d(1, -1), "duration has seconds and nanos with different signs"),
        (d(-1, 1), "duration has seconds and nanos with different signs"),
    ],
)
def test_negative_and_mismatched_durations_are_refused(given: Duration, reason: str) -> None:
    with pytest.raises(InvalidDuration) as info:
        validate_and_cap(given)
    assert str(info.value) == reason


def test_unchecked_durations_saturate_to_64_bits() -> None:
    assert saturated_ns(d(BIG)) == INT64_MAX
    assert saturated_ns(d(-BIG)) == INT64_MIN
    assert saturated_ns(d(3, 4)) == 3_000_000_004


# ---------------------------------------------------------------- retry policies
def test_retry_intervals_are_capped_after_the_defaults() -> None:
    policy = RetryPolicy(initial_interval=d(2 * 365 * 86400))  # the default maximum, 200 years, is capped
    normalize_retry_policy(policy)
    assert policy.maximum_interval == d(YEARS_100)
    policy = RetryPolicy(initial_interval=d(BIG), maximum_interval=d(BIG))
    normalize_retry_policy(policy)
    assert (policy.initial_interval, policy.maximum_interval) == (d(YEARS_100), d(YEARS_100))


def test_a_single_attempt_policy_is_taken_as_given_without_overflow() -> None:
    policy = RetryPolicy(initial_interval=d(BIG), maximum_attempts=1)
    normalize_retry_policy(policy)
    assert policy.initial_interval == d(BIG)
    assert policy.maximum_interval.seconds * 10**9 + policy.maximum_interval.nanos == INT64_MAX


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        (RetryPolicy(initial_interval=d(-1)), "invalid InitialInterval set on retry policy: negative duration"),
        (
            RetryPolicy(initial_interval=d(1, -1)),
            "invalid InitialInterval set on retry policy: duration has seconds and nanos with different signs",
        ),
        (RetryPolicy(maximum_interval=d(-1)), "invalid MaximumInterval set on retry policy: negative duration"),
        (RetryPolicy(backoff_coefficient=0.5), "BackoffCoefficient cannot be less than 1 on retry policy."),
        (
            RetryPolicy(initial_interval=d(10), maximum_interval=d(5)),
            "MaximumInterval cannot be less than InitialInterval on retry policy.",
        ),
        (RetryPolicy(maximum_attempts=-1), "MaximumAttempts cannot be negative on retry policy."),
    ],
)
def test_bad_retry_policies_get_the_reference_messages(policy: RetryPolicy, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        normalize_retry_policy(policy)
    assert info.value.message == message


def test_backoff_after_many_attempts_or_a_huge_coefficient_is_the_maximum_interval() -> None:
    policy = RetryPolicy(initial_interval=d(1), maximum_interval=d(100), backoff_coefficient=2.0)
    assert next_retry(policy, 5000, None, 0, 0).backoff_ns == 100 * 10**9
    policy.backoff_coefficient = 1e300
    assert next_retry(policy, 3, None, 0, 0).backoff_ns == 100 * 10**9


def test_a_retry_delay_the_worker_asks_for_is_read_as_64_bit_nanoseconds() -> None:
    failure = Failure(message="later")
    failure.application_failure_info.next_retry_delay.CopyFrom(d(BIG))
    decision = next_retry(RetryPolicy(maximum_interval=d(100)), 1, failure, 0, 0)
    assert (decision.state, decision.backoff_ns) == (RetryState.RETRY_STATE_IN_PROGRESS, INT64_MAX)


def test_a_retry_delay_a_workflow_asks_for_stays_within_the_maximum_interval() -> None:
    policy = RetryPolicy(maximum_interval=d(100))
    for asked, waited in ((d(BIG), 100), (d(0), 100), (d(30), 30)):
        failure = Failure(message="later")
        failure.application_failure_info.next_retry_delay.CopyFrom(asked)
        decision = next_retry(policy, 1, failure, 0, 0, delay_within_maximum=True)
        assert decision.backoff_ns == waited * 10**9


# ---------------------------------------------------------------- namespaces
def test_retention_is_capped_and_must_be_positive_and_well_formed() -> None:
    retention = d(BIG)
    check_retention(retention)
    assert retention == d(YEARS_100)
    for bad in (d(0), d(-1), d(86400, -1)):
        with pytest.raises(InvalidArgument) as info:
            check_retention(bad)
        assert info.value.message == "A valid retention period is not set on request."


# ---------------------------------------------------------------- commands
def timer(timeout: Duration | None) -> Command:
    cmd = Command(command_type=C.COMMAND_TYPE_START_TIMER)
    cmd.start_timer_command_attributes.timer_id = "t"
    if timeout is not None:
        cmd.start_timer_command_attributes.start_to_fire_timeout.CopyFrom(timeout)
    return cmd


def test_a_zero_timer_is_started_and_due_at_once() -> None:
    ms = running()
    process(ms, timer(d(0)))
    started = ms.new_events[-1].timer_started_event_attributes
    assert started.HasField("start_to_fire_timeout") and started.start_to_fire_timeout == d(0)
    assert ms.new_tasks[-1].visibility_time == timestamp(ms.now)


def test_a_timer_without_a_timeout_records_none() -> None:
    ms = running()
    process(ms, timer(None))
    assert not ms.new_events[-1].timer_started_event_attributes.HasField("start_to_fire_timeout")


def test_a_timer_of_centuries_is_capped_at_100_years() -> None:
    ms = running()
    process(ms, timer(d(400 * 365 * 86400)))
    assert ms.new_events[-1].timer_started_event_attributes.start_to_fire_timeout == d(YEARS_100)
    assert ms.new_tasks[-1].visibility_time.seconds == ms.now // 10**9 + YEARS_100


@pytest.mark.parametrize(
    ("timeout", "message"),
    [
        (d(-1), "An invalid StartToFireTimeout is set on StartTimerCommand: negative duration. TimerId=t"),
        (
            d(1, -1),
            "An invalid StartToFireTimeout is set on StartTimerCommand: "
            "duration has seconds and nanos with different signs. TimerId=t",
        ),
    ],
)
def test_bad_timer_timeouts_fail_the_task(timeout: Duration, message: str) -> None:
    with pytest.raises(WorkflowTaskFailure) as info:
        process(running(), timer(timeout))
    assert info.value.message == message


def test_activity_timeouts_are_capped() -> None:
    cmd = Command(command_type=C.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK)
    a = cmd.schedule_activity_task_command_attributes
    a.activity_id, a.activity_type.name = "a", "A"
    a.schedule_to_close_timeout.CopyFrom(d(BIG))
    a.heartbeat_timeout.CopyFrom(d(BIG))
    ms = running()
    process(ms, cmd)
    scheduled = ms.new_events[-1].activity_task_scheduled_event_attributes
    assert scheduled.schedule_to_close_timeout == scheduled.start_to_close_timeout == d(YEARS_100)
    assert scheduled.heartbeat_timeout == d(YEARS_100)


def test_continue_as_new_timeouts_are_those_a_start_would_get() -> None:
    cmd = Command(command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION)
    a = cmd.continue_as_new_workflow_execution_command_attributes
    a.workflow_run_timeout.CopyFrom(d(BIG))
    a.workflow_task_timeout.CopyFrom(d(BIG))
    a.backoff_start_interval.CopyFrom(d(BIG))
    ms = running()
    process(ms, cmd)
    event = ms.new_events[-1].workflow_execution_continued_as_new_event_attributes
    assert (event.workflow_run_timeout, event.workflow_task_timeout) == (d(YEARS_100), d(120))
    assert event.backoff_start_interval == d(YEARS_100)


def test_continue_as_new_messages_name_the_type_and_queue_as_the_reference_prints_them() -> None:
    cmd = Command(command_type=C.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION)
    a = cmd.continue_as_new_workflow_execution_command_attributes
    a.workflow_type.name, a.task_queue.name = "W", "q"
    a.backoff_start_interval.CopyFrom(d(-1))
    with pytest.raises(WorkflowTaskFailure) as info:
        process(running(), cmd)
    assert info.value.message == (
        "Invalid BackoffStartInterval on ContinueAsNewWorkflowExecutionCommand: negative duration. "
        'WorkflowType=W TaskQueue=name:"q"  kind:TASK_QUEUE_KIND_NORMAL'
    )
