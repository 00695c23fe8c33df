"""Continue-as-new slows down tight loops as the reference does (its ContinueAsNewMinBackoff): a run
that continues sooner than the minimal interval after it became due starts the next run only when
the interval is up. The differential chain cannot show this deterministically (whether a run lives
under a second depends on worker speed), so the rule is checked here, with the clock given."""

from __future__ import annotations

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import Header, Memo, Payload, Payloads, SearchAttributes
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration, duration_ns, timestamp
from tempyral.history import appliers, next_run
from tempyral.proto.internal_pb2 import ExecutionState

MS = 1_000_000
DUE = 1_700_000_000 * 1_000_000_000  # when the closing run became due (start + its own backoff)


def _backoff_after(lifetime_ms: int, command_backoff_ms: int | None = None) -> int | None:
    """The next run's first_workflow_task_backoff in ms; None when it is not set."""
    prev = ExecutionState(workflow_id="wf", run_id="run-1")
    prev.execution_time.CopyFrom(timestamp(DUE))
    command = command_pb.ContinueAsNewWorkflowExecutionCommandAttributes()
    command.workflow_type.name = "W"
    if command_backoff_ms is not None:
        command.backoff_start_interval.CopyFrom(duration(command_backoff_ms * MS))
    attrs = next_run.continue_as_new(prev, "run-2", command, DUE + lifetime_ms * MS)
    if not attrs.HasField("first_workflow_task_backoff"):
        return None
    return duration_ns(attrs.first_workflow_task_backoff) // MS


def test_a_run_that_continues_at_once_waits_out_the_rest_of_the_interval() -> None:
    assert _backoff_after(lifetime_ms=120) == 880


def test_a_run_that_lived_the_interval_continues_without_delay() -> None:
    # the reference passes on the command's (absent) interval: the field stays unset, not 0s
    assert _backoff_after(lifetime_ms=1000) is None
    assert _backoff_after(lifetime_ms=1500) is None
    assert _backoff_after(lifetime_ms=1500, command_backoff_ms=0) == 0


def test_the_commands_backoff_counts_towards_the_interval() -> None:
    assert _backoff_after(lifetime_ms=300, command_backoff_ms=800) == 800
    # still short of the interval: the next run is due one interval after this one was
    assert _backoff_after(lifetime_ms=300, command_backoff_ms=200) == 700


def test_retries_and_cron_runs_are_slowed_down_alike() -> None:
    """The reference applies the same minimal interval to the next run of a retry or a cron."""
    prev = ExecutionState(workflow_id="wf", run_id="run-1")
    prev.execution_time.CopyFrom(timestamp(DUE))
    retried = next_run.retry(prev, "run-2", 300 * MS, None, DUE + 100 * MS)
    assert duration_ns(retried.first_workflow_task_backoff) // MS == 900
    assert (
        duration_ns(next_run.retry(prev, "run-2", 300 * MS, None, DUE + 800 * MS).first_workflow_task_backoff) // MS
        == 300
    )
    cron_run = next_run.cron(prev, "run-2", 500 * MS, None, None, DUE + 200 * MS)
    assert duration_ns(cron_run.first_workflow_task_backoff) // MS == 800


# ---------------------------------------------------------------------- payloads of retry and cron runs
def _started_with_payloads() -> history.WorkflowExecutionStartedEventAttributes:
    started = history.WorkflowExecutionStartedEventAttributes(
        input=Payloads(payloads=[Payload(data=b"the input")]),
        memo=Memo(fields={"m": Payload(data=b"memo")}),
        header=Header(fields={"h": Payload(data=b"header")}),
        search_attributes=SearchAttributes(indexed_fields={"CustomerId": Payload(data=b'"c"')}),
        last_completion_result=Payloads(payloads=[Payload(data=b"the run before's result")]),
    )
    started.workflow_type.name = "W"
    return started


def _run_started_with(started: history.WorkflowExecutionStartedEventAttributes) -> ExecutionState:
    """The state of run-1 after its start event."""
    prev = ExecutionState(workflow_id="wf", run_id="run-1")
    event = history.HistoryEvent(
        event_id=1,
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED,
        workflow_execution_started_event_attributes=started,
    )
    appliers.apply(prev, event)
    return prev


def test_the_state_keeps_no_copy_of_the_start_payloads_and_a_retry_takes_them_from_the_event() -> None:
    started = _started_with_payloads()
    prev = _run_started_with(started)
    assert prev.start.workflow_type.name == "W"
    assert not any(prev.start.HasField(f) for f in ("input", "memo", "header", "search_attributes"))
    assert prev.memo == started.memo  # the run's own memo and search attributes live on in the state

    attrs = next_run.retry(prev, "run-2", 0, None, DUE)
    next_run.inherit_payloads(started, attrs)
    for field in ("input", "memo", "header", "search_attributes"):
        assert getattr(attrs, field) == getattr(started, field)
    assert not attrs.HasField("last_completion_result")


def test_a_cron_run_keeps_the_last_result_when_its_predecessor_left_none() -> None:
    started = _started_with_payloads()
    prev = _run_started_with(started)
    kept = next_run.cron(prev, "run-2", 0, None, None, DUE)
    next_run.inherit_payloads(started, kept)
    assert kept.last_completion_result == started.last_completion_result
    fresh = next_run.cron(prev, "run-2", 0, Payloads(payloads=[Payload(data=b"new")]), None, DUE)
    next_run.inherit_payloads(started, fresh)
    assert fresh.last_completion_result.payloads[0].data == b"new"
    assert fresh.input == started.input


def test_a_continued_run_takes_nothing_from_the_event() -> None:
    started = _started_with_payloads()
    prev = ExecutionState(workflow_id="wf", run_id="run-1")
    command = command_pb.ContinueAsNewWorkflowExecutionCommandAttributes()
    attrs = next_run.continue_as_new(prev, "run-2", command, DUE)
    next_run.inherit_payloads(started, attrs)
    assert not attrs.HasField("input") and not attrs.HasField("memo")
