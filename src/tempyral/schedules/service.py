"""The schedule RPCs of the WorkflowService: create, describe, update, patch, delete, list, count, matching times.

A schedule is its hidden scheduler run (schedules/runner.py); these methods change that run's schedule state under
its lock (`Executions.update`) and wake it. Lists and counts are visibility queries over the scheduler runs
(`TemporalNamespaceDivision = 'TemporalScheduler'`), as on the reference.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ScheduleOverlapPolicy, TaskQueueKind
from temporalio.api.schedule.v1 import message_pb2 as sched_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.clock import duration, duration_ns, timestamp, ts_ns
from tempyral.common.errors import (
    InvalidArgument,
    NotFound,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
)
from tempyral.common.limits import check_id
from tempyral.history.engine import HistoryEngine
from tempyral.history.mutable_state import MutableState
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import ExecutionState, ScheduleState
from tempyral.schedules import runner as r
from tempyral.schedules.spec import canonical_spec, matching_times
from tempyral.visibility.records import SCHEDULE_INFO_MEMO
from tempyral.visibility.service import Visibility

RUNNING = r.RUNNING
SCHEDULE_NOT_FOUND = "schedule not found"  # the reference's answer for a deleted schedule
FIRST_CONFLICT_TOKEN = 1  # as the reference's first
SYSTEM_PREFIX = "Temporal"  # search attributes the scheduler run carries for itself, not shown as the schedule's
LIST_QUERY = f"TemporalNamespaceDivision = '{r.DIVISION}' AND ExecutionStatus = 'Running'"


def _payload(value: bytes, type_name: str) -> common.Payload:
    return common.Payload(metadata={"encoding": b"json/plain", "type": type_name.encode()}, data=value)


def _conflict_token(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


class ScheduleService:
    def __init__(self, engine: HistoryEngine, namespaces: NamespaceRegistry, visibility: Visibility) -> None:
        """Changes set the scheduler run's wake timer to now: the engine's timer queue runs the wake at once
        (ScheduleRunner.on_timer)."""
        self.engine = engine
        self.executions = engine.executions
        self.namespaces = namespaces
        self.visibility = visibility

    # ------------------------------------------------------------------ checks
    @staticmethod
    def _check_schedule(schedule: sched_pb.Schedule) -> None:
        """The reference's checks: a start action needs a workflow type and a task queue (a schedule without an
        action, or an action without a workflow id, is accepted); the spec must compile."""
        if schedule.action.HasField("start_workflow"):
            start = schedule.action.start_workflow
            if not start.workflow_type.name:
                raise InvalidArgument("WorkflowType is not set on request.")
            if not start.task_queue.name:
                raise InvalidArgument("taskQueue is not set")
        r.compile_spec(schedule.spec)

    @staticmethod
    def _normalised(schedule: sched_pb.Schedule) -> sched_pb.Schedule:
        """The schedule as the reference keeps it: canonical spec, the policies' defaults filled in."""
        out = sched_pb.Schedule()
        out.CopyFrom(schedule)
        out.spec.CopyFrom(canonical_spec(schedule.spec))
        policies = out.policies
        if not policies.overlap_policy:
            policies.overlap_policy = ScheduleOverlapPolicy.SCHEDULE_OVERLAP_POLICY_SKIP
        if not duration_ns(policies.catchup_window):
            policies.catchup_window.CopyFrom(duration(r.DEFAULT_CATCHUP_NS))
        if out.action.HasField("start_workflow") and not out.action.start_workflow.task_queue.kind:
            out.action.start_workflow.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
        out.state.SetInParent()
        return out

    async def _state(self, ns: Namespace, schedule_id: str) -> MutableState:
        wid = r.scheduler_id(schedule_id)
        ms = await self.executions.read_state(ns.id, wid)
        if not ms.running or not ms.state.HasField("schedule"):
            raise NotFound(SCHEDULE_NOT_FOUND)  # a deleted one: its closed scheduler run is kept for a while
        return ms

    # ------------------------------------------------------------------ create
    async def create_schedule(self, req: ws.CreateScheduleRequest, ctx: Any) -> ws.CreateScheduleResponse:
        ns = self.namespaces.get(req.namespace)
        if not req.schedule_id:
            raise InvalidArgument("Can't load workflow execution.  WorkflowId not set.")
        check_id(req.schedule_id, "ScheduleId")
        self._check_schedule(req.schedule)
        wid = r.scheduler_id(req.schedule_id)
        request_id = req.request_id or ids.new_run_id()
        now = time.time_ns()
        sched = ScheduleState(
            schedule_id=req.schedule_id, jitter_seed=f"{ns.id}-{req.schedule_id}", conflict_token=FIRST_CONFLICT_TOKEN
        )
        sched.schedule.CopyFrom(self._normalised(req.schedule))
        sched.info.create_time.CopyFrom(timestamp(now))
        sched.last_processed_time.CopyFrom(timestamp(now))
        start = ws.StartWorkflowExecutionRequest(
            namespace=ns.name,
            workflow_id=wid,
            workflow_type=common.WorkflowType(name=r.SCHEDULER_TYPE),
            identity=req.identity,
            request_id=request_id,
        )
        start.task_queue.name = r.SCHEDULER_QUEUE
        if req.HasField("memo"):
            start.memo.CopyFrom(req.memo)
        start.search_attributes.CopyFrom(req.search_attributes)
        start.search_attributes.indexed_fields["TemporalNamespaceDivision"].CopyFrom(
            _payload(f'"{r.DIVISION}"'.encode(), "Keyword")
        )
        shard = self.executions.shard_for(ns.id, wid)
        async with self.engine._id_lock(ns.id, wid):  # the same lock a start takes
            current_id = await self.executions.current_run_id(ns.id, wid)
            if current_id is not None:
                current = await self.executions.read_state(ns.id, wid, current_id)
                if request_id in current.state.start_request_ids:
                    return ws.CreateScheduleResponse(
                        conflict_token=_conflict_token(current.state.schedule.conflict_token)
                    )
                if current.running:
                    raise WorkflowAlreadyStarted(
                        f'schedule "{req.schedule_id}" is already registered',
                        current.state.start_request_id,
                        current_id,
                    )
            run_id = ids.new_run_id()
            attrs = self.engine.started_attributes(ns, start, run_id, now)
            ms = MutableState(
                ExecutionState(
                    namespace_id=ns.id, workflow_id=wid, run_id=run_id, next_event_id=1, start_request_id=request_id
                ),
                now,
            )
            ms.state.start_request_ids.append(request_id)
            self.executions.prepare(ms, now)
            ms.add_workflow_execution_started(attrs, schedule_first_task=False)
            ms.state.schedule.CopyFrom(sched)
            if req.HasField("initial_patch"):
                self._apply_patch(ms.state.schedule, req.initial_patch, now)
            r.refresh_views(ms.state.schedule, now)
            r.set_wake(ms, now)
            async with self.executions.creating(shard, ms) as change:
                change.current.append(CurrentWrite(ns.id, wid, run_id, RUNNING, request_id, current_id))
                await change.commit()
        return ws.CreateScheduleResponse(conflict_token=_conflict_token(FIRST_CONFLICT_TOKEN))

    # ------------------------------------------------------------------ describe
    async def describe_schedule(self, req: ws.DescribeScheduleRequest, ctx: Any) -> ws.DescribeScheduleResponse:
        ns = self.namespaces.get(req.namespace)
        ms = await self._state(ns, req.schedule_id)
        sched = ScheduleState()
        sched.CopyFrom(ms.state.schedule)
        r.refresh_views(sched, time.time_ns())
        resp = ws.DescribeScheduleResponse(
            schedule=sched.schedule, info=sched.info, conflict_token=_conflict_token(sched.conflict_token)
        )
        if ms.state.memo.fields:
            resp.memo.CopyFrom(ms.state.memo)
        for key, value in ms.state.search_attributes.indexed_fields.items():
            if not key.startswith(SYSTEM_PREFIX):
                resp.search_attributes.indexed_fields[key].CopyFrom(value)
        return resp

    # ------------------------------------------------------------------ update, patch
    async def _change(
        self,
        ns: Namespace,
        schedule_id: str,
        apply: Callable[[MutableState, ScheduleState, int], None],
        conflict_token: bytes = b"",
    ) -> None:
        """Change a schedule under its scheduler run's lock and wake the run. The times up to now are taken first,
        as the schedule was (the old spec, paused or not); then `apply(ms, schedule, now)` changes it. A conflict
        token that is no longer the schedule's drops the change: another one came first, as on the reference."""
        wid = r.scheduler_id(schedule_id)
        await self._state(ns, schedule_id)
        now = time.time_ns()
        async with self.executions.update(ns.id, wid) as change:
            ms = change.ms
            if not ms.running or not ms.state.HasField("schedule"):
                raise NotFound(SCHEDULE_NOT_FOUND)
            sched = ms.state.schedule
            if conflict_token and conflict_token != _conflict_token(sched.conflict_token):
                return
            r.advance(sched, now)
            apply(ms, sched, now)
            r.refresh_views(sched, now)
            r.set_wake(ms, now)
            ms.visibility_dirty = True
            await change.commit()

    async def update_schedule(self, req: ws.UpdateScheduleRequest, ctx: Any) -> ws.UpdateScheduleResponse:
        ns = self.namespaces.get(req.namespace)
        self._check_schedule(req.schedule)

        def apply(ms: MutableState, sched: ScheduleState, now: int) -> None:
            sched.schedule.CopyFrom(self._normalised(req.schedule))
            sched.info.update_time.CopyFrom(timestamp(now))
            sched.conflict_token += 1
            if req.HasField("search_attributes"):
                attributes = common.SearchAttributes()
                for key, value in req.search_attributes.indexed_fields.items():
                    attributes.indexed_fields[key].CopyFrom(value)
                for key in ms.state.search_attributes.indexed_fields:
                    if not key.startswith(SYSTEM_PREFIX) and key not in attributes.indexed_fields:
                        attributes.indexed_fields[key].CopyFrom(common.Payload())  # removed
                if attributes.indexed_fields:
                    ms.add_upsert_search_attributes(0, attributes)
            if req.HasField("memo"):
                memo = common.Memo()
                memo.CopyFrom(req.memo)
                for key in ms.state.memo.fields:
                    if key not in memo.fields:
                        memo.fields[key].CopyFrom(common.Payload())
                ms.add_properties_modified(0, memo)

        await self._change(ns, req.schedule_id, apply, req.conflict_token)
        return ws.UpdateScheduleResponse()

    def _apply_patch(self, sched: ScheduleState, patch: sched_pb.SchedulePatch, now: int) -> None:
        state = sched.schedule.state
        if patch.pause or patch.unpause:
            sched.conflict_token += 1  # a pause or unpause changes the schedule (a trigger or backfill does not)
        if patch.pause:
            state.paused, state.notes = True, patch.pause
        if patch.unpause:
            state.paused, state.notes = False, patch.unpause
        if patch.HasField("trigger_immediately"):
            trigger = patch.trigger_immediately
            at = ts_ns(trigger.scheduled_time) if trigger.HasField("scheduled_time") else now
            r.buffer_start(sched, at, now, trigger.overlap_policy, manual=True)
        for backfill in patch.backfill_request:
            self._backfill(sched, backfill)
        sched.info.buffer_size = len(sched.buffered)

    @staticmethod
    def _backfill(sched: ScheduleState, backfill: sched_pb.BackfillRequest) -> None:
        compiled = r.compile_spec(sched.schedule.spec, sched.jitter_seed)
        start, end = r.to_dt(ts_ns(backfill.start_time)), r.to_dt(ts_ns(backfill.end_time))
        for nominal, actual in compiled.times_between(start, end, r.MAX_BUFFER):
            r.buffer_start(sched, r.to_ns(nominal), r.to_ns(actual), backfill.overlap_policy, manual=True)

    async def patch_schedule(self, req: ws.PatchScheduleRequest, ctx: Any) -> ws.PatchScheduleResponse:
        ns = self.namespaces.get(req.namespace)
        await self._change(ns, req.schedule_id, lambda ms, sched, now: self._apply_patch(sched, req.patch, now))
        return ws.PatchScheduleResponse()

    # ------------------------------------------------------------------ delete
    async def delete_schedule(self, req: ws.DeleteScheduleRequest, ctx: Any) -> ws.DeleteScheduleResponse:
        ns = self.namespaces.get(req.namespace)
        ms = await self._state(ns, req.schedule_id)
        # The scheduler run is terminated, as on the reference, and goes with its namespace's retention.
        terminate = ws.TerminateWorkflowExecutionRequest(
            namespace=ns.name,
            workflow_execution=common.WorkflowExecution(workflow_id=ms.workflow_id, run_id=ms.run_id),
            reason="terminated by DeleteSchedule",
            identity=req.identity,
        )
        try:
            await self.engine.terminate(ns, terminate)
        except WorkflowCompleted:
            raise NotFound(SCHEDULE_NOT_FOUND) from None
        return ws.DeleteScheduleResponse()

    # ------------------------------------------------------------------ lists
    def _query(self, query: str) -> str:
        return f"{LIST_QUERY} AND ({query})" if query.strip() else LIST_QUERY

    async def list_schedules(self, req: ws.ListSchedulesRequest, ctx: Any) -> ws.ListSchedulesResponse:
        ns = self.namespaces.get(req.namespace)
        rows, token = await self.visibility.list(ns, self._query(req.query), req.maximum_page_size, req.next_page_token)
        resp = ws.ListSchedulesResponse(next_page_token=token)
        for info in rows:
            entry = resp.schedules.add(schedule_id=info.execution.workflow_id.removeprefix(r.SCHEDULER_PREFIX))
            for key, value in info.memo.fields.items():
                if key == SCHEDULE_INFO_MEMO:
                    entry.info.ParseFromString(value.data)
                else:
                    entry.memo.fields[key].CopyFrom(value)
            for key, value in info.search_attributes.indexed_fields.items():
                if not key.startswith(SYSTEM_PREFIX):
                    entry.search_attributes.indexed_fields[key].CopyFrom(value)
        return resp

    async def count_schedules(self, req: ws.CountSchedulesRequest, ctx: Any) -> ws.CountSchedulesResponse:
        ns = self.namespaces.get(req.namespace)
        counted = await self.visibility.count(ns, self._query(req.query))
        resp = ws.CountSchedulesResponse(count=counted.count)
        for group in counted.groups:
            resp.groups.add(group_values=group.group_values, count=group.count)
        return resp

    async def list_schedule_matching_times(
        self, req: ws.ListScheduleMatchingTimesRequest, ctx: Any
    ) -> ws.ListScheduleMatchingTimesResponse:
        ns = self.namespaces.get(req.namespace)
        ms = await self._state(ns, req.schedule_id)
        sched = ms.state.schedule
        times = matching_times(sched.schedule.spec, req.start_time, req.end_time, sched.jitter_seed)
        return ws.ListScheduleMatchingTimesResponse(start_time=times)
