"""Runs schedules. Each schedule is a hidden scheduler run (workflow id `temporal-sys-scheduler:<schedule id>`, as on
the reference) on the shard of that id: its `ExecutionState.schedule` holds the schedule and its progress, its wake
timer (`TASK_TYPE_SCHEDULE_WAKE`) sits in the shard's timer queue, and every change is a fenced commit through
`Executions.update`, so a schedule runs on the node owning its shard and survives a crash (docs/DESIGN.md §12).

A wake (`ScheduleRunner.wake`, one at a time per schedule on this node):
1. looks at the schedule's running workflows (their rows in the store, so any shard's) and drops the closed ones,
   pausing the schedule if one failed and the policy says so;
2. under the run's lock, takes the spec's times up to now into the buffer (or counts them missed, past the catch-up
   window), decides by the overlap policies which buffered starts go now, and commits them as `starting` together
   with a short safety timer: the intent is durable before anything starts;
3. stops the workflows the policies say to (cancel or terminate) and starts the chosen ones, each with a request id
   made of the schedule and the nominal time, so a start repeated after a crash finds the run the first made;
4. records the started runs (recent actions, running workflows) and sets the wake timer to the next spec time (or
   sooner, while workflows run, to look at them again).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import suppress
from datetime import UTC, datetime, timedelta

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ScheduleOverlapPolicy, WorkflowExecutionStatus, WorkflowIdReusePolicy
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.schedule.v1 import message_pb2 as sched_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.clock import duration_ns, timestamp, ts_ns
from tempyral.common.errors import NotFound, ServiceError, ShardNotHere, WorkflowAlreadyStarted
from tempyral.common.tasks import cancel_and_wait
from tempyral.history import task_generator
from tempyral.history.engine import HistoryEngine
from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import ExecutionEntry
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.persistence.branches import current_branch
from tempyral.persistence.store import Store
from tempyral.proto.internal_pb2 import ExecutionState, ScheduleStart, ScheduleState, Task, TaskType
from tempyral.schedules.spec import CompiledSpec

log = logging.getLogger(__name__)
P = ScheduleOverlapPolicy
S = WorkflowExecutionStatus
SCHEDULER_PREFIX = "temporal-sys-scheduler:"
SCHEDULER_TYPE = "temporal-sys-scheduler-workflow"
SCHEDULER_QUEUE = "temporal-sys-per-ns-tq"
DIVISION = "TemporalScheduler"
SECOND = 1_000_000_000
DEFAULT_CATCHUP_NS = 365 * 24 * 3600 * SECOND  # the reference's default catch-up window (one year)
MIN_CATCHUP_NS = 10 * SECOND  # and its minimum
RECENT_ACTIONS = 10
FUTURE_ACTIONS = 10  # in DescribeSchedule
LIST_FUTURE_ACTIONS = 5  # in ListSchedules
MAX_BUFFER = 1000  # buffered starts beyond this are dropped, as the reference's limit
SAFETY_S = 5.0  # a wake whose work was cut short (a crash) is taken up again after this
WATCH_S = 5.0  # while workflows run, how often they are looked at (closes on this node wake the schedule at once)
MAX_ROUNDS = 4  # rounds of one wake: a terminate lets the next start go in the same wake
RUNNING = S.WORKFLOW_EXECUTION_STATUS_RUNNING
FAILED_CLOSES = (S.WORKFLOW_EXECUTION_STATUS_FAILED, S.WORKFLOW_EXECUTION_STATUS_TIMED_OUT)
STOP_CANCEL, STOP_TERMINATE = 1, 2


def scheduler_id(schedule_id: str) -> str:
    return SCHEDULER_PREFIX + schedule_id


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_dt(ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=ns // 1000)


def to_ns(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86400 + delta.seconds) * SECOND + delta.microseconds * 1000


def compile_spec(spec: sched_pb.ScheduleSpec, seed: str = "") -> CompiledSpec:
    return CompiledSpec.compile(spec, seed)


def next_times(sched: ScheduleState, after_ns: int, count: int) -> list[int]:
    """The actual times of the next `count` actions after `after_ns`."""
    compiled = compile_spec(sched.schedule.spec, sched.jitter_seed)
    return [
        to_ns(actual) for _, actual in compiled.times_between(to_dt(after_ns), datetime.max.replace(tzinfo=UTC), count)
    ]


def catchup_ns(policies: sched_pb.SchedulePolicies) -> int:
    window = duration_ns(policies.catchup_window)
    return DEFAULT_CATCHUP_NS if window == 0 else max(window, MIN_CATCHUP_NS)


def resolve_policy(policy: int, policies: sched_pb.SchedulePolicies) -> int:
    if policy != P.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED:
        return policy
    return policies.overlap_policy or P.SCHEDULE_OVERLAP_POLICY_SKIP


def rfc3339_seconds(ns: int) -> str:
    return to_dt(ns - ns % SECOND).strftime("%Y-%m-%dT%H:%M:%SZ")


def request_id(state: ScheduleState, start: ScheduleStart) -> str:
    """The start's request id: the same for the same schedule and nominal time (and kind), so the start repeated
    after a crash is deduplicated by the workflow's start request ids."""
    key = f"{state.schedule_id}/{ts_ns(start.nominal_time)}/{ts_ns(start.actual_time)}/{start.manual}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "tempyral-schedule:" + key))


def set_wake(ms: MutableState, at_ns: int) -> None:
    """A new wake timer; the one before it goes stale."""
    sched = ms.state.schedule
    sched.timer_stamp += 1
    sched.wake_time.CopyFrom(timestamp(at_ns))
    ms.new_tasks.extend(task_generator.schedule_wake(ms.state))


def advance(sched: ScheduleState, now: int) -> None:
    """Take the spec's times up to `now`: buffered, or counted missed past the catch-up window, or passed over while
    paused or out of actions."""
    s = sched.schedule
    compiled = compile_spec(s.spec, sched.jitter_seed)
    window = catchup_ns(s.policies)
    after = ts_ns(sched.last_processed_time)
    while True:
        found = compiled.next_time(to_dt(after))
        if found is None:
            break
        nominal, actual = to_ns(found[0]), to_ns(found[1])
        if actual > now:
            break
        after = actual  # the next search starts from the actual time, as the reference's
        if s.state.paused or (s.state.limited_actions and s.state.remaining_actions <= 0):
            continue
        if now - actual > window:
            sched.info.missed_catchup_window += 1
            continue
        buffer_start(sched, nominal, actual, P.SCHEDULE_OVERLAP_POLICY_UNSPECIFIED, manual=False)
    sched.last_processed_time.CopyFrom(timestamp(after))


def buffer_start(sched: ScheduleState, nominal: int, actual: int, policy: int, manual: bool) -> None:
    if len(sched.buffered) >= MAX_BUFFER:
        sched.info.buffer_dropped += 1
        return
    start = sched.buffered.add(overlap_policy=resolve_policy(policy, sched.schedule.policies), manual=manual)
    start.nominal_time.CopyFrom(timestamp(nominal))
    start.actual_time.CopyFrom(timestamp(actual))


def plan(sched: ScheduleState) -> None:
    """Move the buffered starts that may go now to `starting`, by their overlap policies (the reference's rules):
    the first goes when nothing runs, ALLOW_ALL always goes; otherwise SKIP drops it, BUFFER_ONE keeps one,
    BUFFER_ALL keeps all, CANCEL_OTHER / TERMINATE_OTHER keep the latest and stop what runs."""
    s = sched.schedule
    running = bool(sched.info.running_workflows) or bool(sched.starting)
    keep: list[ScheduleStart] = []
    go: list[ScheduleStart] = []
    stop = 0
    for start in sched.buffered:
        if not start.manual and (s.state.paused or (s.state.limited_actions and s.state.remaining_actions <= 0)):
            continue  # paused, or out of actions: a scheduled start is dropped (manual ones still go)
        policy = start.overlap_policy
        if not running or policy == P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL:
            if not start.manual and s.state.limited_actions:
                s.state.remaining_actions -= 1
            go.append(start)
            running = running or policy != P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL
            continue
        if policy == P.SCHEDULE_OVERLAP_POLICY_SKIP:
            sched.info.overlap_skipped += 1
        elif policy == P.SCHEDULE_OVERLAP_POLICY_BUFFER_ONE:
            if keep:
                sched.info.buffer_dropped += 1
            else:
                keep.append(start)
        elif policy == P.SCHEDULE_OVERLAP_POLICY_BUFFER_ALL:
            keep.append(start)
        else:  # CANCEL_OTHER, TERMINATE_OTHER: the latest waits for the others to stop
            keep = [start]
            stop = STOP_TERMINATE if policy == P.SCHEDULE_OVERLAP_POLICY_TERMINATE_OTHER else max(stop, STOP_CANCEL)
    if stop and keep:
        keep[0].stop_others = stop
    sched.info.action_count += len(go)
    sched.starting.extend(_copies(go))
    del sched.buffered[:]
    sched.buffered.extend(_copies(keep))
    sched.info.buffer_size = len(sched.buffered)


def _copies(starts: list[ScheduleStart]) -> Iterator[ScheduleStart]:
    for start in starts:
        copy = ScheduleStart()
        copy.CopyFrom(start)
        yield copy


def refresh_views(sched: ScheduleState, now: int) -> None:
    """Future action times and the list info, which describe and visibility show."""
    s = sched.schedule
    info = sched.info
    del info.future_action_times[:]
    if not (s.state.limited_actions and s.state.remaining_actions <= 0):
        future = next_times(sched, max(now, ts_ns(sched.last_processed_time)), FUTURE_ACTIONS)
        if s.state.limited_actions:
            future = future[: s.state.remaining_actions]
        info.future_action_times.extend(timestamp(t) for t in future)
    li = sched.list_info
    li.Clear()
    li.spec.CopyFrom(s.spec)
    li.workflow_type.CopyFrom(s.action.start_workflow.workflow_type)
    li.notes = s.state.notes
    li.paused = s.state.paused
    li.recent_actions.extend(info.recent_actions[-LIST_FUTURE_ACTIONS:])
    li.future_action_times.extend(info.future_action_times[:LIST_FUTURE_ACTIONS])


def next_wake(sched: ScheduleState, now: int) -> int:
    """When the run must look again: the next spec time, a buffered start's turn, or its running workflows."""
    times = next_times(sched, ts_ns(sched.last_processed_time), 1)
    wake = times[0] if times else now + 365 * 24 * 3600 * SECOND
    if sched.starting:
        wake = min(wake, now + int(SAFETY_S * SECOND))
    if sched.info.running_workflows:
        wake = min(wake, now + int(WATCH_S * SECOND))
    return max(wake, now)


def workflow_request(ns_name: str, sched: ScheduleState, start: ScheduleStart) -> ws.StartWorkflowExecutionRequest:
    """The action's start request, as the reference's scheduler makes it: the id suffixed with the nominal time,
    the scheduled start time and the schedule's id as search attributes."""
    action = sched.schedule.action.start_workflow
    nominal = ts_ns(start.nominal_time)
    workflow_id = action.workflow_id
    if not sched.schedule.policies.keep_original_workflow_id:
        workflow_id = f"{action.workflow_id}-{rfc3339_seconds(nominal)}"
    req = ws.StartWorkflowExecutionRequest(
        namespace=ns_name,
        workflow_id=workflow_id,
        workflow_type=action.workflow_type,
        task_queue=action.task_queue,
        identity=f"temporal-scheduler-{ns_name}-{sched.schedule_id}",
        request_id=request_id(sched, start),
        workflow_id_reuse_policy=WorkflowIdReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
    )
    for name in (
        "input",
        "workflow_execution_timeout",
        "workflow_run_timeout",
        "workflow_task_timeout",
        "retry_policy",
        "memo",
        "header",
        "user_metadata",
        "priority",
    ):
        if action.HasField(name):
            getattr(req, name).CopyFrom(getattr(action, name))
    req.search_attributes.CopyFrom(action.search_attributes)
    fields = req.search_attributes.indexed_fields
    fields["TemporalScheduledStartTime"].CopyFrom(
        common.Payload(
            metadata={"encoding": b"json/plain", "type": b"Datetime"},
            data=f'"{rfc3339_seconds(nominal) if nominal % SECOND == 0 else _rfc3339(nominal)}"'.encode(),
        )
    )
    fields["TemporalScheduledById"].CopyFrom(
        common.Payload(metadata={"encoding": b"json/plain", "type": b"Keyword"}, data=f'"{sched.schedule_id}"'.encode())
    )
    return req


def _rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, SECOND)
    fraction = f"{nanos:09d}".rstrip("0")
    return to_dt(seconds * SECOND).strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


class ScheduleRunner:
    def __init__(self, engine: HistoryEngine, namespaces: NamespaceRegistry, store: Store) -> None:
        self.engine = engine
        self.executions = engine.executions
        self.namespaces = namespaces
        self.store = store
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._running: set[asyncio.Task[None]] = set()
        engine.tasks.timer_handlers[TaskType.TASK_TYPE_SCHEDULE_WAKE] = self.on_timer
        self.executions.closed_listeners.append(self._on_closed)

    async def stop(self) -> None:
        await cancel_and_wait(list(self._running))

    # ------------------------------------------------------------------ triggers
    def on_timer(self, ms: MutableState, task: Task) -> bool:
        """The wake timer fired (inside its run's update): a safety timer replaces it, committed with the timer's
        deletion, and the wake runs once the run's lock is free."""
        if not ms.state.HasField("schedule") or ms.state.schedule.timer_stamp != task.stamp:
            return False
        set_wake(ms, time.time_ns() + int(SAFETY_S * SECOND))
        self.poke(ms.state.namespace_id, ms.state.workflow_id)
        return True

    def _on_closed(self, entry: ExecutionEntry, _: bool) -> None:
        """A workflow a schedule started closed here: its schedule looks now (when its shard is on this node)."""
        ms = entry.ms
        if ms is None:
            return
        by = ms.state.search_attributes.indexed_fields.get("TemporalScheduledById")
        if by is None:
            return
        try:
            schedule_id = by.data.decode().strip('"')
        except UnicodeDecodeError:
            return
        self.poke(ms.state.namespace_id, scheduler_id(schedule_id))

    def poke(self, namespace_id: str, workflow_id: str) -> None:
        runner = asyncio.get_running_loop().create_task(self._wake_quietly(namespace_id, workflow_id))
        self._running.add(runner)
        runner.add_done_callback(self._running.discard)

    async def _wake_quietly(self, namespace_id: str, workflow_id: str) -> None:
        try:
            await self.wake(namespace_id, workflow_id)
        except (ShardNotHere, NotFound):
            pass  # moved to another node (its owner wakes it), or deleted
        except asyncio.CancelledError:
            raise
        except Exception:  # the safety timer takes it up again
            log.exception("schedule %s: wake failed", workflow_id)

    # ------------------------------------------------------------------ a wake
    async def wake(self, namespace_id: str, workflow_id: str) -> None:
        key = (namespace_id, workflow_id)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            for _ in range(MAX_ROUNDS):
                if not await self._round(namespace_id, workflow_id):
                    break

    async def _round(self, namespace_id: str, workflow_id: str) -> bool:
        """One round of a wake; True when workflows were stopped and another round may start the next."""
        ms = await self.executions.read_state(namespace_id, workflow_id)
        if not ms.running or not ms.state.HasField("schedule"):
            return False
        closed = await self._closed_runs(namespace_id, ms.state.schedule)
        now = time.time_ns()
        async with self.executions.update(namespace_id, workflow_id, ms.run_id) as change:
            if not change.ms.running or not change.ms.state.HasField("schedule"):
                return False
            sched = change.ms.state.schedule
            self._record_closes(sched, closed)
            advance(sched, now)
            plan(sched)
            starting = list(_copies(list(sched.starting)))
            stop = sched.buffered[0].stop_others if sched.buffered else 0
            if stop:
                sched.buffered[0].stop_others = 0
            running = [(r.workflow_id, r.run_id) for r in sched.info.running_workflows] if stop else []
            refresh_views(sched, now)
            set_wake(change.ms, next_wake(sched, now))
            change.ms.visibility_dirty = True
            await change.commit()
        ns = self.namespaces.find_by_id(namespace_id)
        if ns is None:
            return False
        for wid, rid in running:
            await self._stop(ns.name, wid, rid, stop)
        started = [(start, await self._start(ns.name, sched, start)) for start in starting]
        if started:
            await self._record_starts(namespace_id, workflow_id, started)
        return bool(running)

    async def _closed_runs(self, ns_id: str, sched: ScheduleState) -> dict[str, tuple[int, str]]:
        """The schedule's running workflows that closed: run id -> (status, failure message)."""
        out: dict[str, tuple[int, str]] = {}
        for r in sched.info.running_workflows:
            row = await self.store.get_execution(ns_id, r.workflow_id, r.run_id)
            if row is None:
                out[r.run_id] = (S.WORKFLOW_EXECUTION_STATUS_TERMINATED, "")
                continue
            state = ExecutionState.FromString(row.state)
            if state.status != RUNNING:
                out[r.run_id] = (state.status, await self._failure_message(state))
        return out

    async def _failure_message(self, state: ExecutionState) -> str:
        if state.status not in FAILED_CLOSES or not state.completion_event_id:
            return ""
        blobs = await self.store.read_history(
            state.namespace_id,
            state.run_id,
            state.completion_event_id,
            state.completion_event_id + 1,
            current_branch(state),
        )
        for blob in blobs:
            for event in history.History.FromString(blob).events:
                if event.event_id != state.completion_event_id:
                    continue
                if event.HasField("workflow_execution_failed_event_attributes"):
                    return event.workflow_execution_failed_event_attributes.failure.message
        return ""

    @staticmethod
    def _record_closes(sched: ScheduleState, closed: dict[str, tuple[int, str]]) -> None:
        if not closed:
            return
        keep = [r for r in sched.info.running_workflows if r.run_id not in closed]
        gone = [r for r in sched.info.running_workflows if r.run_id in closed]
        del sched.info.running_workflows[:]
        sched.info.running_workflows.extend(keep)
        for action in sched.info.recent_actions:
            result = closed.get(action.start_workflow_result.run_id)
            if result is not None:
                action.start_workflow_status = result[0]  # type: ignore[assignment]
        policies, state = sched.schedule.policies, sched.schedule.state
        for r in gone:
            status, message = closed[r.run_id]
            if status in FAILED_CLOSES and policies.pause_on_failure and not state.paused:
                state.paused = True
                state.notes = f"paused due to workflow failure: {r.workflow_id}: {message}"

    async def _stop(self, ns_name: str, workflow_id: str, run_id: str, how: int) -> None:
        ns = self.namespaces.get(ns_name)
        execution = common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
        ops = self.engine.tasks.workflows
        with suppress(ServiceError):  # closed already
            if how == STOP_TERMINATE:
                await ops.terminate(
                    ns,
                    ws.TerminateWorkflowExecutionRequest(
                        namespace=ns_name,
                        workflow_execution=execution,
                        reason="terminated by schedule overlap policy",
                        identity="temporal-scheduler",
                    ),
                )
            else:
                await ops.request_cancel(
                    ns,
                    ws.RequestCancelWorkflowExecutionRequest(
                        namespace=ns_name,
                        workflow_execution=execution,
                        reason="cancelled by schedule overlap policy",
                        identity="temporal-scheduler",
                        request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"tempyral-schedule-cancel:{run_id}")),
                    ),
                )

    async def _start(self, ns_name: str, sched: ScheduleState, start: ScheduleStart) -> tuple[str, str] | None:
        """Start the action; (workflow id, run id), or None when its id is taken by a running workflow."""
        if not sched.schedule.action.HasField("start_workflow"):
            return None  # a schedule without an action (the reference accepts one) starts nothing
        ns = self.namespaces.get(ns_name)
        req = workflow_request(ns_name, sched, start)
        try:
            result = await self.engine.tasks.workflows.start_workflow(ns, req)
        except WorkflowAlreadyStarted:
            log.info("schedule %s: workflow %s is already running", sched.schedule_id, req.workflow_id)
            return None
        return req.workflow_id, result.run_id

    async def _record_starts(
        self, namespace_id: str, workflow_id: str, started: list[tuple[ScheduleStart, tuple[str, str] | None]]
    ) -> None:
        now = time.time_ns()
        async with self.executions.update(namespace_id, workflow_id) as change:
            if not change.ms.running or not change.ms.state.HasField("schedule"):
                return
            sched = change.ms.state.schedule
            done = {(ts_ns(s.nominal_time), ts_ns(s.actual_time), s.manual) for s, _ in started}
            remaining = [
                s for s in sched.starting if (ts_ns(s.nominal_time), ts_ns(s.actual_time), s.manual) not in done
            ]
            del sched.starting[:]
            sched.starting.extend(_copies(remaining))
            for start, result in started:
                if result is None:
                    continue
                action = sched.info.recent_actions.add(start_workflow_status=RUNNING)
                action.schedule_time.CopyFrom(start.nominal_time)
                action.actual_time.CopyFrom(timestamp(now))
                action.start_workflow_result.workflow_id, action.start_workflow_result.run_id = result
                if start.overlap_policy != P.SCHEDULE_OVERLAP_POLICY_ALLOW_ALL:
                    # as on the reference, ALLOW_ALL starts are not watched: nothing waits for them to close
                    sched.info.running_workflows.add(workflow_id=result[0], run_id=result[1])
            del sched.info.recent_actions[:-RECENT_ACTIONS]
            refresh_views(sched, now)
            set_wake(change.ms, next_wake(sched, now))
            change.ms.visibility_dirty = True
            await change.commit()
