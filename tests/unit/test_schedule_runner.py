"""The scheduler's rules without a server: which spec times become actions (catch-up window, pause, limited
actions) and which buffered starts go by their overlap policies."""

from __future__ import annotations

from temporalio.api.enums.v1 import ScheduleOverlapPolicy

from tempyral.common.clock import timestamp, ts_ns
from tempyral.proto.internal_pb2 import ScheduleState
from tempyral.schedules import runner as r

P = ScheduleOverlapPolicy
S = r.SECOND
T0 = 1_700_000_000 * S  # a whole minute


def _state(every_s: int = 10, catchup_s: int = 0, policy: int = P.SCHEDULE_OVERLAP_POLICY_SKIP) -> ScheduleState:
    sched = ScheduleState(schedule_id="s")
    sched.schedule.spec.interval.add().interval.FromSeconds(every_s)
    if catchup_s:
        sched.schedule.policies.catchup_window.FromSeconds(catchup_s)
    sched.schedule.policies.overlap_policy = policy  # type: ignore[assignment]
    sched.last_processed_time.CopyFrom(timestamp(T0))
    return sched


def _nominals(sched: ScheduleState) -> list[int]:
    return [(ts_ns(b.nominal_time) - T0) // S for b in sched.buffered]


def test_times_up_to_now_are_buffered_once() -> None:
    sched = _state()
    r.advance(sched, T0 + 35 * S)
    assert _nominals(sched) == [10, 20, 30]
    r.advance(sched, T0 + 35 * S)  # nothing new
    r.advance(sched, T0 + 41 * S)
    assert _nominals(sched) == [10, 20, 30, 40]


def test_catchup_window_counts_older_times_missed() -> None:
    sched = _state(catchup_s=15)
    r.advance(sched, T0 + 40 * S)  # 10 and 20 are more than 15 s old
    assert _nominals(sched) == [30, 40]
    assert sched.info.missed_catchup_window == 2


def test_catchup_window_has_a_minimum_and_a_default() -> None:
    assert r.catchup_ns(_state(catchup_s=1).schedule.policies) == r.MIN_CATCHUP_NS
    assert r.catchup_ns(_state().schedule.policies) == r.DEFAULT_CATCHUP_NS


def test_paused_schedules_pass_over_their_times() -> None:
    sched = _state()
    sched.schedule.state.paused = True
    r.advance(sched, T0 + 35 * S)
    assert _nominals(sched) == [] and ts_ns(sched.last_processed_time) == T0 + 30 * S


def test_limited_actions_run_out() -> None:
    sched = _state(policy=P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL)
    sched.schedule.state.limited_actions = True
    sched.schedule.state.remaining_actions = 2
    r.advance(sched, T0 + 35 * S)
    r.plan(sched)
    assert len(sched.starting) == 2 and sched.schedule.state.remaining_actions == 0
    assert sched.info.action_count == 2


def _planned(policy: int, running: bool, count: int = 3) -> ScheduleState:
    sched = _state(policy=policy)
    if running:
        sched.info.running_workflows.add(workflow_id="w", run_id="r")
    r.advance(sched, T0 + (10 * count + 5) * S)
    r.plan(sched)
    return sched


def test_overlap_policies_with_a_workflow_running() -> None:
    skip = _planned(P.SCHEDULE_OVERLAP_POLICY_SKIP, running=True)
    assert not skip.starting and not skip.buffered and skip.info.overlap_skipped == 3
    one = _planned(P.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE, running=True)
    assert not one.starting and _nominals(one) == [10] and one.info.buffer_dropped == 2
    all_ = _planned(P.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL, running=True)
    assert not all_.starting and _nominals(all_) == [10, 20, 30] and all_.info.buffer_size == 3
    cancel = _planned(P.SCHEDULE_OVERLAP_POLICY_CANCEL_OTHER, running=True)
    assert _nominals(cancel) == [30] and cancel.buffered[0].stop_others == r.STOP_CANCEL
    terminate = _planned(P.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER, running=True)
    assert _nominals(terminate) == [30] and terminate.buffered[0].stop_others == r.STOP_TERMINATE
    allow = _planned(P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL, running=True)
    assert len(allow.starting) == 3 and not allow.buffered


def test_the_first_start_goes_when_nothing_runs() -> None:
    skip = _planned(P.SCHEDULE_OVERLAP_POLICY_SKIP, running=False)
    assert [ts_ns(s.nominal_time) - T0 for s in skip.starting] == [10 * S]
    assert skip.info.overlap_skipped == 2
    buffered = _planned(P.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL, running=False)
    assert len(buffered.starting) == 1 and _nominals(buffered) == [20, 30]


def test_manual_starts_ignore_pause_and_limits() -> None:
    sched = _state()
    sched.schedule.state.paused = True
    sched.schedule.state.limited_actions = True
    r.buffer_start(sched, T0, T0, P.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, manual=True)
    r.plan(sched)
    assert len(sched.starting) == 1 and sched.schedule.state.remaining_actions == 0


def test_workflow_ids_and_request_ids() -> None:
    sched = _state()
    sched.schedule.action.start_workflow.workflow_id = "wf"
    r.buffer_start(sched, T0, T0 + 123, P.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, manual=False)
    req = r.workflow_request("default", sched, sched.buffered[0])
    assert req.workflow_id == "wf-2023-11-14T22:13:20Z"
    assert req.request_id == r.workflow_request("default", sched, sched.buffered[0]).request_id
    assert req.search_attributes.indexed_fields["TemporalScheduledById"].data == b'"s"'
    assert req.search_attributes.indexed_fields["TemporalScheduledStartTime"].data == b'"2023-11-14T22:13:20Z"'
