"""Visibility rows made from an execution's state, and turned back into API messages."""

from __future__ import annotations

import json
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.workflow.v1 import message_pb2 as workflow_pb

from tempyral.common.clock import timestamp, ts_ns
from tempyral.common.standalone import NAMESPACE_DIVISION
from tempyral.persistence.store import VisibilityRow
from tempyral.persistence.visibility_sql import go_datetime_text
from tempyral.proto.internal_pb2 import ExecutionState
from tempyral.visibility.query import NAMESPACE_DIVISION as NAMESPACE_DIVISION_ATTRIBUTE
from tempyral.visibility.query import parse_rfc3339_ns


def decode_payload(payload: common.Payload) -> Any:
    """The JSON value of a search attribute payload (the SDKs encode them as json/plain)."""
    try:
        return json.loads(payload.data)
    except (ValueError, UnicodeDecodeError):
        return None


def indexed_value(payload: common.Payload) -> Any:
    """A search attribute's value as the visibility table indexes it. Datetime values are kept as the
    reference's SQL keeps them: in UTC, truncated to milliseconds (SQLite reads no finer, and rounding
    would carry 9999-12-31T23:59:59.9999Z past the last day it can hold)."""
    value = decode_payload(payload)
    if payload.metadata.get("type") != b"Datetime":
        return value
    if isinstance(value, list):
        return [_datetime_text(v) for v in value]
    return _datetime_text(value)


def keyword_payload(text: str) -> common.Payload:
    """A Keyword search attribute value as the SDKs encode it."""
    return common.Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=json.dumps(text).encode())


def _attributes_json(attributes: common.SearchAttributes) -> str:
    """The row's JSON column: each search attribute's value as the visibility table indexes it."""
    decoded = {k: indexed_value(v) for k, v in attributes.indexed_fields.items()}
    return json.dumps(decoded, separators=(",", ":"))


def _datetime_text(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        ns = parse_rfc3339_ns(value)
    except ValueError:
        return value
    return go_datetime_text(ns - ns % 1_000_000)


SCHEDULE_INFO_MEMO = "ScheduleInfo"  # the memo key of a scheduler run's ScheduleListInfo, as on the reference


def _schedule_view(s: ExecutionState) -> tuple[common.Memo, common.SearchAttributes]:
    """What a schedule's scheduler run shows in visibility: its memo with the schedule's list info, and its search
    attributes with TemporalSchedulePaused (both kept in the run's schedule state, schedules/runner.py)."""
    memo = common.Memo()
    memo.CopyFrom(s.memo)
    info = memo.fields[SCHEDULE_INFO_MEMO]
    info.metadata["encoding"] = b"binary/plain"
    info.data = s.schedule.list_info.SerializeToString()
    attributes = common.SearchAttributes()
    attributes.CopyFrom(s.search_attributes)
    paused = attributes.indexed_fields["TemporalSchedulePaused"]
    paused.metadata["encoding"] = b"json/plain"
    paused.metadata["type"] = b"Bool"
    paused.data = b"true" if s.schedule.schedule.state.paused else b"false"
    return memo, attributes


def row_from_state(s: ExecutionState, history_length: int) -> VisibilityRow:
    if s.HasField("standalone_activity"):
        return activity_row(s)
    memo, attributes = _schedule_view(s) if s.HasField("schedule") else (s.memo, s.search_attributes)
    close = ts_ns(s.close_time) or None
    return VisibilityRow(
        namespace_id=s.namespace_id,
        run_id=s.run_id,
        workflow_id=s.workflow_id,
        workflow_type=s.start.workflow_type.name,
        status=s.status,
        start_time=ts_ns(s.start_time),
        execution_time=ts_ns(s.execution_time),
        close_time=close,
        task_queue=s.start.task_queue.name,
        history_length=history_length,
        history_size_bytes=s.history_size_bytes,
        memo=memo.SerializeToString(),
        search_attributes=attributes.SerializeToString(),
        search_attributes_json=_attributes_json(attributes),
        parent_workflow_id=s.start.parent_workflow_execution.workflow_id,
        parent_run_id=s.start.parent_workflow_execution.run_id,
        root_workflow_id=s.start.root_workflow_execution.workflow_id or s.workflow_id,
        root_run_id=s.start.root_workflow_execution.run_id or s.run_id,
        # a standalone Nexus operation's (a workflow's stays 0, as before)
        state_transition_count=s.standalone_nexus.state_transition_count,
    )


def activity_row(s: ExecutionState) -> VisibilityRow:
    """A standalone activity's row: in its namespace, with the reference's namespace division, which keeps it out
    of workflow lists (their filters require no division); activity id and type in the workflow id and type
    columns, its status as the workflow status of the same name (common/standalone.py)."""
    attributes = common.SearchAttributes()
    attributes.CopyFrom(s.search_attributes)
    attributes.indexed_fields[NAMESPACE_DIVISION_ATTRIBUTE].CopyFrom(keyword_payload(NAMESPACE_DIVISION))
    ai = s.activities[1]
    close = ts_ns(s.close_time) or None
    return VisibilityRow(
        namespace_id=s.namespace_id,
        run_id=s.run_id,
        workflow_id=s.standalone_activity.activity_id,
        workflow_type=ai.scheduled.activity_type.name,
        status=s.status,
        start_time=ts_ns(ai.scheduled_time),
        execution_time=ts_ns(s.execution_time),
        close_time=close,
        task_queue=ai.scheduled.task_queue.name,
        history_length=0,
        history_size_bytes=0,
        memo=b"",
        search_attributes=attributes.SerializeToString(),
        search_attributes_json=_attributes_json(attributes),
        # the reference lists the count of a closed activity only
        state_transition_count=s.standalone_activity.state_transition_count if close else 0,
    )


def execution_info(row: VisibilityRow) -> workflow_pb.WorkflowExecutionInfo:
    info = workflow_pb.WorkflowExecutionInfo(
        execution=common.WorkflowExecution(workflow_id=row.workflow_id, run_id=row.run_id),
        type=common.WorkflowType(name=row.workflow_type),
        status=row.status,  # type: ignore[arg-type]
        history_length=row.history_length,
        history_size_bytes=row.history_size_bytes,
        task_queue=row.task_queue,
        memo=common.Memo.FromString(row.memo),
        search_attributes=common.SearchAttributes.FromString(row.search_attributes),
    )
    info.start_time.CopyFrom(timestamp(row.start_time))
    info.execution_time.CopyFrom(timestamp(row.execution_time))
    if row.close_time:
        info.close_time.CopyFrom(timestamp(row.close_time))
        info.execution_duration.FromNanoseconds(max(row.close_time - row.execution_time, 0))
    if row.parent_workflow_id:
        info.parent_execution.workflow_id = row.parent_workflow_id
        info.parent_execution.run_id = row.parent_run_id
    info.root_execution.workflow_id = row.root_workflow_id
    info.root_execution.run_id = row.root_run_id
    return info
