"""Build ids on task events, the BuildIds search attribute and auto reset points, as the reference
keeps them for unversioned workers."""

from __future__ import annotations

import json

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from tempyral.common.clock import timestamp, ts_ns
from tempyral.history import appliers, reset_points
from tempyral.history.mutable_state import MutableState
from tempyral.proto.internal_pb2 import ChildInfo
from tests.unit.test_mutable_state import T0, new_state

DAY_NS = 86_400 * 1_000_000_000


def _complete(ms: MutableState, build_id: str | None) -> int:
    ms.start_workflow_task("req", "worker", _stamp(build_id))
    event = ms.add_workflow_task_completed("worker", None, None, _stamp(build_id))
    ms.schedule_workflow_task()
    return event.event_id


def _stamp(build_id: str | None) -> common.WorkerVersionStamp | None:
    return None if build_id is None else common.WorkerVersionStamp(build_id=build_id)


def _build_ids(ms: MutableState) -> list[str]:
    payload = ms.state.search_attributes.indexed_fields["BuildIds"]
    assert payload.metadata["type"] == b"KeywordList"
    return list(json.loads(payload.data))


def test_started_and_completed_events_carry_the_build_and_buildids_lists_it_once() -> None:
    ms = new_state()
    _complete(ms, "b1")
    started = [e for e in ms.new_events if e.HasField("workflow_task_started_event_attributes")]
    assert started[0].workflow_task_started_event_attributes.worker_version.build_id == "b1"
    assert _build_ids(ms) == ["unversioned", "unversioned:b1"]
    assert ms.visibility_dirty
    _complete(ms, "b1")
    _complete(ms, "b2")
    assert _build_ids(ms) == ["unversioned", "unversioned:b1", "unversioned:b2"]


def test_a_worker_without_a_build_id_is_listed_as_unversioned() -> None:
    ms = new_state()
    _complete(ms, None)
    assert _build_ids(ms) == ["unversioned"]


def test_one_reset_point_per_build_with_the_first_completion() -> None:
    ms = new_state()
    first = _complete(ms, "b1")
    _complete(ms, "b1")
    third = _complete(ms, "b2")
    points = ms.state.auto_reset_points.points
    assert [(p.build_id, p.first_workflow_task_completed_id, p.run_id) for p in points] == [
        ("b1", first, "run"),
        ("b2", third, "run"),
    ]
    assert all(p.resettable and ts_ns(p.create_time) == T0 for p in points)


def test_a_point_taken_while_a_child_is_pending_is_not_resettable() -> None:
    ms = new_state()
    ms.state.children[5].CopyFrom(ChildInfo(initiated_event_id=5))
    _complete(ms, "b1")
    assert not ms.state.auto_reset_points.points[0].resettable


def test_points_are_rebuilt_from_events() -> None:
    ms = new_state()
    _complete(ms, "b1")
    _complete(ms, "b2")
    rebuilt = new_state().state
    rebuilt.ClearField("auto_reset_points")
    rebuilt.ClearField("search_attributes")
    for event in ms.new_events[1:]:
        appliers.apply(rebuilt, event)
    assert rebuilt.auto_reset_points == ms.state.auto_reset_points
    assert rebuilt.search_attributes == ms.state.search_attributes


def test_roll_over_expires_the_previous_runs_points_and_drops_expired_ones() -> None:
    points = workflow_pb.ResetPoints()
    old = points.points.add(run_id="older", build_id="b0")
    old.expire_time.CopyFrom(timestamp(T0 - 1))
    kept = points.points.add(run_id="first", build_id="b1")
    kept.expire_time.CopyFrom(timestamp(T0 + DAY_NS))
    points.points.add(run_id="prev", build_id="b2")

    rolled = reset_points.roll_over(points, "prev", T0, DAY_NS)

    assert [p.run_id for p in rolled.points] == ["first", "prev"]
    assert ts_ns(rolled.points[0].expire_time) == T0 + DAY_NS  # unchanged
    assert ts_ns(rolled.points[1].expire_time) == T0 + DAY_NS
    assert not points.points[2].HasField("expire_time")  # the previous run's own copy is untouched


def test_only_the_newest_points_are_kept() -> None:
    ms = new_state()
    for i in range(reset_points.MAX_RESET_POINTS + 3):
        _complete(ms, f"b{i}")
    builds = [p.build_id for p in ms.state.auto_reset_points.points]
    assert builds == [f"b{i}" for i in range(3, reset_points.MAX_RESET_POINTS + 3)]
