"""Auto reset points: where a run may be reset to, one for each build that completed one of its
workflow tasks, carried on to the runs that follow it (continue-as-new, retry, cron) as the
reference keeps them and describe shows them."""

from __future__ import annotations

from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from tempyral.common.clock import timestamp, ts_ns
from tempyral.proto.internal_pb2 import ExecutionState

MAX_RESET_POINTS = 20  # history.maxAutoResetPoints


def record_completion(s: ExecutionState, event: history.HistoryEvent) -> None:
    """A workflow task completed: a new point when its (binary checksum, build id) pair is new."""
    a = event.workflow_task_completed_event_attributes
    build_id = a.worker_version.build_id
    checksum = a.binary_checksum
    points = s.auto_reset_points.points
    if any(p.binary_checksum == checksum and p.build_id == build_id for p in points):
        return
    point = workflow_pb.ResetPointInfo(
        binary_checksum=checksum,
        build_id=build_id,
        run_id=s.run_id,
        first_workflow_task_completed_id=event.event_id,
        # Pending children or requests to other workflows cannot be reset over.
        resettable=not (s.children or s.external_signals or s.external_cancels),
    )
    point.create_time.CopyFrom(event.event_time)
    points.append(point)
    if len(points) > MAX_RESET_POINTS:
        del points[: len(points) - MAX_RESET_POINTS]


def roll_over(
    points: workflow_pb.ResetPoints, prev_run_id: str, now_ns: int, retention_ns: int
) -> workflow_pb.ResetPoints:
    """The points a following run inherits: expired ones dropped, the previous run's points
    expiring one retention period after the new run starts."""
    kept = workflow_pb.ResetPoints()
    for point in points.points:
        if point.HasField("expire_time") and ts_ns(point.expire_time) < now_ns:
            continue
        copy = kept.points.add()
        copy.CopyFrom(point)
        if point.run_id == prev_run_id:
            copy.expire_time.CopyFrom(timestamp(now_ns + retention_ns))
    return kept
