"""The history engine: builds the history service from its parts, routes committed tasks, and
serves the client-facing operations on executions (start, signal, cancel, terminate, delete).

Workflow tasks, activities, updates, timers and transfer tasks live in their own modules, which
get the narrow collaborators they use; every change goes through `Executions.update`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ContinueAsNewInitiator, TaskQueueKind
from temporalio.api.enums.v1 import workflow_pb2 as wf_enums
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import cron, ids
from tempyral.common.clock import INT64_MAX, INT64_MIN, duration, duration_ns, timestamp, ts_ns
from tempyral.common.errors import (
    ConditionFailed,
    Internal,
    NamespaceNotActive,
    NotFound,
    ShardNotHere,
    WorkflowAlreadyStarted,
    WorkflowCompleted,
    WorkflowNotFound,
)
from tempyral.common.limits import workflow_timeouts
from tempyral.common.tasks import cancel_and_wait
from tempyral.history.activities import ActivityHandler
from tempyral.history.executions import Change, Executions, shard_id_for, terminate
from tempyral.history.mutable_state import MutableState
from tempyral.history.outbox import Outbox
from tempyral.history.queries import QueryRegistry
from tempyral.history.shard import ExecutionEntry, Mutation, Shard
from tempyral.history.standalone_activities import StandaloneActivities
from tempyral.history.starts import ParentInfo, StartResult
from tempyral.history.tasks import TaskExecutor
from tempyral.history.timer_queue import TimerQueue
from tempyral.history.updates import UpdateHandler
from tempyral.history.workflow_tasks import WorkflowTaskHandler
from tempyral.matching.service import ACTIVITY, WORKFLOW, Matching, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.persistence.store import CurrentWrite, Store
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskCategory, TaskType

log = logging.getLogger(__name__)

Status = wf_enums.WorkflowExecutionStatus
RUNNING = Status.WORKFLOW_EXECUTION_STATUS_RUNNING
FAILED_STATUSES = frozenset(
    {
        Status.WORKFLOW_EXECUTION_STATUS_FAILED,
        Status.WORKFLOW_EXECUTION_STATUS_CANCELED,
        Status.WORKFLOW_EXECUTION_STATUS_TERMINATED,
        Status.WORKFLOW_EXECUTION_STATUS_TIMED_OUT,
    }
)
ReusePolicy = wf_enums.WorkflowIdReusePolicy
ConflictPolicy = wf_enums.WorkflowIdConflictPolicy


# How far ahead timers are kept in memory (per shard); later ones are read from the table as their time comes.
TIMER_WINDOW_S = 300.0


@dataclass(frozen=True)
class EngineConfig:
    num_shards: int = 4
    cache_size: int = 20_000
    # Memory for cached workflow state and histories, over all shards.
    cache_bytes: int = 128 * 1024 * 1024
    owner: str = "tempyral"
    long_poll_timeout_s: float = 60.0
    # Nexus operations a run may have pending at once (the reference's default).
    max_pending_nexus_operations: int = 30


def _eager_allowed(
    req: ws.StartWorkflowExecutionRequest,
    attrs: history.WorkflowExecutionStartedEventAttributes,
    signal: ws.SignalWithStartWorkflowExecutionRequest | None,
    parent: ParentInfo | None,
) -> bool:
    """Eager workflow start: the caller's worker takes the first workflow task from the start response. As on
    the reference, not for a delayed or cron start (the first task is not due now) nor signal-with-start."""
    return (
        req.request_eager_execution
        and signal is None
        and parent is None
        and not req.cron_schedule
        and duration_ns(attrs.first_workflow_task_backoff) == 0
    )


def _eager_task_of(ms: MutableState, req: ws.StartWorkflowExecutionRequest) -> bool:
    """Whether the run's pending workflow task is the one an eager start with this request id started."""
    wt = ms.state.workflow_task
    return bool(
        req.request_eager_execution
        and ms.running
        and wt.started_event_id
        and req.request_id
        and wt.request_id == req.request_id
    )


def start_eagerly(ms: MutableState, request_id: str, identity: str) -> None:
    """Record the first workflow task as started by the caller, in the start's own transaction, so that no poller
    can take it: its dispatch to matching is dropped. Its started event carries the start's request id, as on the
    reference, which is how a retried start finds it (`_eager_task_of`)."""
    ms.start_workflow_task(request_id, identity)
    ms.new_tasks[:] = [t for t in ms.new_tasks if t.type != TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK]


class HistoryEngine:
    """The composition root of the history service and its client-facing operations (start, signal,
    cancel, terminate, delete). Handlers get the narrow collaborators they use, never the engine."""

    def __init__(self, store: Store, namespaces: NamespaceRegistry, matching: Matching, config: EngineConfig) -> None:
        self.store = store
        self.namespaces = namespaces
        self.matching = matching
        self.config = config
        self.shards = [
            Shard(
                i,
                store,
                config.owner,
                self._on_tasks,
                config.cache_size // config.num_shards + 1,
                config.cache_bytes // config.num_shards + 1,
            )
            for i in range(config.num_shards)
        ]
        for shard in self.shards:
            shard.on_lost = self._shard_lost
        # Told when this node takes or gives up a shard (nodes/: the matching ledger, replication streams).
        self.on_shard_acquired: list[Callable[[int], None]] = []
        self.on_shard_released: list[Callable[[int], None]] = []
        self.executions = Executions(store, namespaces, self.shards)
        self._id_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.outbox = Outbox(store, self._range_of)
        self.queries = QueryRegistry(matching)
        self.updates = UpdateHandler(self.executions)
        self.executions.closed_listeners.append(UpdateHandler.abort_closed)
        self.tasks = TaskExecutor(self.executions, namespaces, self.outbox, self.queries, self)
        self.timer_queue = TimerQueue(self._execute_timer)
        # Committed replication tasks are announced to the sending side of history replication (cluster/sender.py).
        self.on_replication_tasks: Callable[[list[Task]], None] = lambda tasks: None
        namespaces.listeners.append(self._namespace_changed)
        self._touches: set[asyncio.Task[None]] = set()
        # Per owned shard: timers due before this instant are queued; later ones wait in the table (TIMER_WINDOW_S).
        self._timers_until: dict[int, int] = {}
        self._windows: asyncio.Task[None] | None = None
        self._handoffs: set[asyncio.Task[None]] = set()
        self.activities = ActivityHandler(self.executions, matching, self.outbox)
        self.tasks.timer_handlers.update(self.activities.timer_handlers())
        self.standalone_activities = StandaloneActivities(self.executions)
        # The endpoint lookup is attached by the server: endpoints live in the nexus package.
        self.find_endpoint_id: Callable[[str], str | None] = lambda name: None
        self.workflow_tasks = WorkflowTaskHandler(
            self.executions,
            matching,
            self.queries,
            self.outbox,
            namespaces,
            lambda name: self.find_endpoint_id(name),
            config.max_pending_nexus_operations,
        )

    def _range_of(self, shard_id: int) -> int | None:
        shard = self.shards[shard_id]
        return shard.range_id if shard.owned else None

    @property
    def outbound(self) -> dict[int, Callable[[Task], Awaitable[None]]]:
        """Transfer tasks run outside history (Nexus requests, completion callbacks), by task type."""
        return self.tasks.outbound

    # ------------------------------------------------------------------ lifecycle
    async def start(self, acquire_all: bool = True) -> None:
        """Start the task processors; with `acquire_all` (one node serves the cluster) take every shard first.
        With several nodes, nodes/shards.py acquires and releases shards as nodes come and go."""
        if acquire_all:
            loaded = 0
            for shard in self.shards:
                loaded += await self.acquire_shard(shard.shard_id)
            if loaded:
                log.info("recovered %d outstanding tasks from the outbox", loaded)
        self.timer_queue.start()
        self._windows = asyncio.get_running_loop().create_task(self._next_windows(), name="timer-windows")

    async def _next_windows(self) -> None:
        """Every third of a window, read each owned shard's timers that came into the window."""
        while True:
            await asyncio.sleep(TIMER_WINDOW_S / 3)
            await self.read_next_timers(time.time_ns())

    async def read_next_timers(self, now_ns: int) -> int:
        """Queue each owned shard's timers due before `now_ns` + the window that are not queued yet; how many."""
        read = 0
        for shard in self.shards:
            sid = shard.shard_id
            start = self._timers_until.get(sid)
            if not shard.owned or start is None:
                continue
            until = now_ns + int(TIMER_WINDOW_S * 1e9)
            self._timers_until[sid] = until  # first: a timer committed from now on is queued at its commit
            try:
                rows = await self.store.load_tasks_due(sid, TaskCategory.TASK_CATEGORY_TIMER, start, until)
            except Exception as err:
                self._timers_until[sid] = start  # read again next time
                self.outbox.failures.failure("could not read the next timers", err)
                continue
            if shard.owned and self._timers_until.get(sid) == until:
                self._on_tasks([Task.FromString(data) for _, data in rows])
                read += len(rows)
        return read

    async def acquire_shard(self, shard_id: int) -> int:
        """Take the shard's lease (fencing off its last owner) and take up its outstanding tasks; how many."""
        shard = self.shards[shard_id]
        self._end_waiters(shard.release())  # anything cached from an earlier ownership may be stale
        await shard.acquire()
        loaded = 0
        # Timers a window at a time (the rest wait in the table, however many closed runs wait for retention);
        # the window is set before the read, so a timer committed meanwhile is queued by one or the other.
        until = time.time_ns() + int(TIMER_WINDOW_S * 1e9)
        self._timers_until[shard_id] = until
        for category in (TaskCategory.TASK_CATEGORY_TRANSFER, TaskCategory.TASK_CATEGORY_TIMER):
            if category == TaskCategory.TASK_CATEGORY_TIMER:
                rows = await self.store.load_tasks_due(shard_id, category, INT64_MIN, until)
            else:
                rows = await self.store.load_tasks(shard_id, category)
            tasks = [Task.FromString(data) for _, data in rows]
            for task in tasks:
                if task.type == TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT:
                    # a started workflow task: its run may hold buffered events (a hand-off looks)
                    self.executions.buffering.add((task.namespace_id, task.workflow_id, task.run_id))
            self._on_tasks(tasks)
            loaded += len(rows)
        for listener in self.on_shard_acquired:
            listener(shard_id)
        return loaded

    def release_shard(self, shard_id: int) -> None:
        """Another node owns the shard now (or is about to): drop its cache, timers and parked tasks here. Its
        rows stay for the new owner; work under way here fails at its next write (fenced by the range)."""
        shard = self.shards[shard_id]
        self._end_waiters(shard.release())
        self.timer_queue.drop(lambda task: task.shard_id == shard_id)
        self._timers_until.pop(shard_id, None)
        self.executions.standby.forget_shard(shard_id)
        for listener in self.on_shard_released:
            listener(shard_id)

    def _shard_lost(self, shard: Shard) -> None:
        self.release_shard(shard.shard_id)

    def _end_waiters(self, entries: list[ExecutionEntry]) -> None:
        """In-memory waiters of executions that moved away: history long polls look again (and are told to retry
        on the new owner), queries and updates fail with UNAVAILABLE, which their callers retry."""
        for entry in entries:
            moved = ShardNotHere(shard_id_for(entry.key[0], entry.key[1], len(self.shards)))
            waiters, entry.waiters = entry.waiters, []
            for fut in waiters:
                if not fut.done():
                    fut.set_result(None)
            for query_id in [*entry.buffered_queries, *entry.inflight_queries]:
                self.queries.fail(query_id, moved)
            entry.buffered_queries.clear()
            entry.inflight_queries.clear()
            for record in entry.updates.values():
                record.fail(moved)
            entry.updates.clear()

    async def stop(self) -> None:
        for touch in [*self._touches, *self._handoffs]:
            touch.cancel()
        for shard in self.shards:
            shard.cancel_read_backs()
        await cancel_and_wait([self._windows])
        await self.timer_queue.stop()
        await self.tasks.stop()
        await self.outbox.stop()

    def _on_tasks(self, tasks: list[Task]) -> None:
        """Committed tasks: dispatch tasks go to matching, timers to the timer queue, replication tasks to the
        streams of other clusters; tasks of a namespace that is standby here are parked (history/standby.py)."""
        replication: list[Task] = []
        for task in tasks:
            if task.category == TaskCategory.TASK_CATEGORY_REPLICATION:
                replication.append(task)
            elif self._standby_here(task):
                self.executions.standby.park(task)
            elif task.category == TaskCategory.TASK_CATEGORY_TIMER:
                if ts_ns(task.visibility_time) < self._timers_until.get(task.shard_id, INT64_MAX):
                    self.timer_queue.add(task)  # later ones are read with their window
            elif task.type == TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK:
                tq = task.task_queue
                self.matching.add(
                    QueueKey(task.namespace_id, tq.name, WORKFLOW), task, sticky_normal_name=tq.normal_name
                )
            elif task.type == TaskType.TASK_TYPE_DISPATCH_ACTIVITY_TASK:
                self.matching.add(QueueKey(task.namespace_id, task.task_queue.name, ACTIVITY), task)
            else:
                self.tasks.submit_transfer(task)
        if replication:
            self.on_replication_tasks(replication)

    def _standby_here(self, task: Task) -> bool:
        """Whether the task waits for its namespace to be active here. Retention runs on every cluster."""
        if task.type == TaskType.TASK_TYPE_DELETE_HISTORY:
            return False
        ns = self.namespaces.find_by_id(task.namespace_id)
        return ns is not None and not self.namespaces.is_active(ns)

    async def _execute_timer(self, task: Task) -> None:
        try:
            await self.tasks.execute_timer(task)
        except NamespaceNotActive:
            self.executions.standby.park(task)  # failed over away while the timer waited
        except ShardNotHere:
            if self.shards[task.shard_id].owned:
                raise  # retried by the timer queue
            # the shard moved: its new owner loaded this timer

    # ------------------------------------------------------------------ failover
    def _namespace_changed(self, before: Namespace | None, after: Namespace) -> None:
        """A namespace that became active here gets its parked tasks back at once: due timers fire, workflow and
        activity tasks reach this cluster's workers; a workflow task started on the old active is failed now.
        One that became standby here first writes what only this cluster has (Executions.hand_off)."""
        if before is None:
            return
        was_active = self.namespaces.is_active(before)
        if was_active and not self.namespaces.is_active(after):
            handoff = asyncio.get_running_loop().create_task(self._hand_off(after))
            self._handoffs.add(handoff)
            handoff.add_done_callback(self._handoffs.discard)
            return
        if was_active or not self.namespaces.is_active(after):
            return
        released = self.executions.standby.release(after.id)
        log.info(
            "namespace %s is active on this cluster now (failover version %d): %d pending tasks rescheduled",
            after.name,
            after.failover_version,
            len(released),
        )
        self._on_tasks(released)
        for task in released:
            if task.type == TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT:
                touch = asyncio.get_running_loop().create_task(self._touch(task))
                self._touches.add(touch)
                touch.add_done_callback(self._touches.discard)

    async def _hand_off(self, ns: Namespace) -> None:
        try:
            written = await self.executions.hand_off(ns.id)
        except Exception as err:
            self.outbox.failures.failure("could not hand off runs with buffered events", err)
            return
        if written:
            log.info("namespace %s failed over away: %d runs wrote their buffered events", ns.name, written)

    async def handoffs_done(self) -> None:
        """Wait for the hand-offs of namespaces that failed over away from here (their writes are then committed)."""
        while self._handoffs:
            await asyncio.gather(*list(self._handoffs), return_exceptions=True)

    async def _touch(self, task: Task) -> None:
        """Open the run for a change: that fails a workflow task the old active cluster had started, in a
        transaction of its own (Executions.update)."""
        try:
            async with self.executions.update(task.namespace_id, task.workflow_id, task.run_id):
                pass
        except (NotFound, NamespaceNotActive):
            pass
        except Exception as err:
            self.outbox.failures.failure("could not fail workflow tasks of the old active cluster", err)

    async def read_state(self, namespace_id: str, workflow_id: str, run_id: str = "") -> MutableState:
        return await self.executions.read_state(namespace_id, workflow_id, run_id)

    # ------------------------------------------------------------------ start
    def _id_lock(self, namespace_id: str, workflow_id: str) -> asyncio.Lock:
        key = (namespace_id, workflow_id)
        lock = self._id_locks.get(key)
        if lock is None:
            if len(self._id_locks) > 10_000:
                for k in [k for k, v in self._id_locks.items() if not v.locked()]:
                    del self._id_locks[k]
            lock = self._id_locks[key] = asyncio.Lock()
        return lock

    def started_attributes(
        self,
        ns: Namespace,
        req: ws.StartWorkflowExecutionRequest,
        run_id: str,
        now: int,
        parent: ParentInfo | None = None,
    ) -> history.WorkflowExecutionStartedEventAttributes:
        attrs = history.WorkflowExecutionStartedEventAttributes(
            workflow_type=req.workflow_type,
            task_queue=req.task_queue,
            identity=req.identity,
            original_execution_run_id=run_id,
            first_execution_run_id=run_id,
            attempt=1,
            workflow_id=req.workflow_id,
            cron_schedule=req.cron_schedule,
        )
        attrs.task_queue.kind = TaskQueueKind.TASK_QUEUE_KIND_NORMAL
        if req.HasField("input"):
            attrs.input.CopyFrom(req.input)
        execution_timeout = duration_ns(req.workflow_execution_timeout)
        run_timeout = duration_ns(req.workflow_run_timeout)
        run_timeout, task_timeout = workflow_timeouts(
            execution_timeout, run_timeout, duration_ns(req.workflow_task_timeout)
        )
        # A timeout given as zero is recorded as zero (the reference keeps what the request had).
        if execution_timeout or req.HasField("workflow_execution_timeout"):
            attrs.workflow_execution_timeout.CopyFrom(duration(execution_timeout))
        if execution_timeout:
            attrs.workflow_execution_expiration_time.CopyFrom(timestamp(now + execution_timeout))
        if run_timeout or req.HasField("workflow_run_timeout"):
            attrs.workflow_run_timeout.CopyFrom(duration(run_timeout))
        attrs.workflow_task_timeout.CopyFrom(duration(task_timeout))
        backoff = duration_ns(req.workflow_start_delay)
        if req.cron_schedule:
            backoff = cron.backoff_ns(req.cron_schedule, now, now)
            attrs.initiator = ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_CRON_SCHEDULE
        attrs.first_workflow_task_backoff.CopyFrom(duration(backoff))
        if parent is not None:
            attrs.parent_workflow_namespace = parent.namespace
            attrs.parent_workflow_namespace_id = parent.namespace_id
            attrs.parent_workflow_execution.workflow_id = parent.workflow_id
            attrs.parent_workflow_execution.run_id = parent.run_id
            attrs.parent_initiated_event_id = parent.initiated_event_id
            attrs.root_workflow_execution.CopyFrom(parent.root)
        for name in ("retry_policy", "memo", "search_attributes", "header", "priority"):
            if req.HasField(name):
                getattr(attrs, name).CopyFrom(getattr(req, name))
        attrs.completion_callbacks.extend(req.completion_callbacks)
        return attrs

    async def start_workflow(
        self,
        ns: Namespace,
        req: ws.StartWorkflowExecutionRequest,
        signal: ws.SignalWithStartWorkflowExecutionRequest | None = None,
        parent: ParentInfo | None = None,
    ) -> StartResult:
        """Start a run, or resolve the request against the current run by the id policies.

        With `signal`, this is signal-with-start: a running current run gets the signal, and a
        new run starts with it as its second event.
        """
        shard = self.executions.shard_for(ns.id, req.workflow_id)
        async with self._id_lock(ns.id, req.workflow_id):
            current_id = await self.executions.current_run_id(ns.id, req.workflow_id)
            if current_id is not None:
                async with self.executions.update(ns.id, req.workflow_id, current_id) as change:
                    current = change.ms
                    outcome = self._resolve_existing(current, req, signal is not None)
                    if outcome is not None:
                        outcome.first_execution_run_id = current.state.start.first_execution_run_id
                        if outcome.started and _eager_task_of(current, req):
                            # a retried eager start: its task again, while the worker has not answered it
                            outcome.eager_task = await self.workflow_tasks.task_response(change, False, req.identity)
                        if signal is not None and current.running:
                            current.add_signaled(
                                signal.signal_name,
                                signal.signal_input if signal.HasField("signal_input") else None,
                                signal.identity,
                                signal.header,
                                signal.request_id,
                            )
                            await change.commit(schedule_workflow_task=True)
                        return outcome
                    if current.running:  # conflict policy: terminate the running one
                        current.add_terminated("TerminateExisting", None, req.identity or "history-service")
                        return await self._create_run(shard, ns, req, current_id, signal, change, parent)
            return await self._create_run(shard, ns, req, current_id, signal, None, parent)

    def _resolve_existing(
        self, current: MutableState, req: ws.StartWorkflowExecutionRequest, with_signal: bool
    ) -> StartResult | None:
        """None: go ahead and create a new run. A StartResult: answer with the current run."""
        s = current.state
        if req.request_id and req.request_id in s.start_request_ids:
            return StartResult(s.run_id, True, s.status)
        wid, rid = s.workflow_id, s.run_id
        if current.running:
            policy = req.workflow_id_conflict_policy
            if req.workflow_id_reuse_policy == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING:
                policy = ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING
            if policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_UNSPECIFIED:
                policy = (
                    ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING
                    if with_signal
                    else ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL
                )
            if policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_FAIL:
                raise WorkflowAlreadyStarted(
                    f"Workflow execution is already running. WorkflowId: {wid}, RunId: {rid}.", s.start_request_id, rid
                )
            if policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_USE_EXISTING:
                return StartResult(rid, False, s.status)
            if policy == ConflictPolicy.WORKFLOW_ID_CONFLICT_POLICY_TERMINATE_EXISTING:
                return None
            raise Internal(f"Failed to process start workflow id conflict policy: {policy}.")
        reuse = req.workflow_id_reuse_policy
        if reuse in (
            ReusePolicy.WORKFLOW_ID_REUSE_POLICY_UNSPECIFIED,
            ReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE,
            ReusePolicy.WORKFLOW_ID_REUSE_POLICY_TERMINATE_IF_RUNNING,
        ):
            return None
        if reuse == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_ALLOW_DUPLICATE_FAILED_ONLY:
            if s.status in FAILED_STATUSES:
                return None
            raise WorkflowAlreadyStarted(
                f"Workflow execution already finished successfully. WorkflowId: {wid}, RunId: {rid}. "
                "Workflow Id reuse policy: allow duplicate workflow Id if last run failed.",
                s.start_request_id,
                rid,
            )
        if reuse == ReusePolicy.WORKFLOW_ID_REUSE_POLICY_REJECT_DUPLICATE:
            raise WorkflowAlreadyStarted(
                f"Workflow execution already finished. WorkflowId: {wid}, RunId: {rid}. "
                "Workflow Id reuse policy: reject duplicate workflow Id.",
                s.start_request_id,
                rid,
            )
        raise Internal(f"Failed to process start workflow id reuse policy: {reuse}.")

    async def _create_run(
        self,
        shard: Shard,
        ns: Namespace,
        req: ws.StartWorkflowExecutionRequest,
        previous_run_id: str | None,
        signal: ws.SignalWithStartWorkflowExecutionRequest | None,
        terminated: Change | None,
        parent: ParentInfo | None = None,
    ) -> StartResult:
        """Create a run; `terminated`: the change that terminated the running one, committed with it."""
        now = time.time_ns()
        run_id = ids.new_run_id()
        attrs = self.started_attributes(ns, req, run_id, now, parent)
        ms = MutableState(
            ExecutionState(
                namespace_id=ns.id,
                workflow_id=req.workflow_id,
                run_id=run_id,
                next_event_id=1,
                start_request_id=req.request_id,
            ),
            now,
        )
        ms.state.start_request_ids.append(req.request_id)
        self.executions.prepare(ms, now)
        eager = _eager_allowed(req, attrs, signal, parent)
        attrs.eager_execution_accepted = eager
        ms.add_workflow_execution_started(
            attrs,
            # a child's first task waits until its parent has recorded it as started
            schedule_first_task=signal is None and parent is None,
            # with completion callbacks the links travel in the callbacks only, as on the reference
            links=[] if req.completion_callbacks else list(req.links),
            user_metadata=req.user_metadata if req.HasField("user_metadata") else None,
        )
        if signal is not None:
            ms.add_signaled(
                signal.signal_name,
                signal.signal_input if signal.HasField("signal_input") else None,
                signal.identity,
                signal.header,
                signal.request_id,
            )
            if duration_ns(attrs.first_workflow_task_backoff) == 0:
                ms.schedule_workflow_task()
        if eager:
            start_eagerly(ms, req.request_id, req.identity)
        current = CurrentWrite(ns.id, req.workflow_id, run_id, RUNNING, req.request_id, previous_run_id)
        async with self.executions.creating(shard, ms) as change:
            change.current.append(current)
            if terminated is not None:
                # the terminated run is written in the same transaction
                change.others.append(Mutation(terminated.entry, terminated.ms))
                change.closed_others.append(terminated.entry)
                terminated.committed = True
            try:
                await change.commit()
            except ConditionFailed as err:
                # Another node (or a stale cache) raced us on this workflow id.
                raise Internal(f"workflow id {req.workflow_id} changed concurrently: {err}") from err
            eager_task = await self.workflow_tasks.task_response(change, False, req.identity) if eager else None
        return StartResult(run_id, True, first_execution_run_id=run_id, eager_task=eager_task)

    # ------------------------------------------------------------------ signals, cancel, terminate
    async def signal(
        self,
        ns: Namespace,
        req: ws.SignalWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        child_of: common.WorkflowExecution | None = None,
    ) -> None:
        """Signal a run. `external`: the workflow that sent it; `child_of`: only a child of that one."""
        ex = req.workflow_execution
        async with self.executions.update(ns.id, ex.workflow_id, ex.run_id) as change:
            ms = change.ms
            if not ms.running:
                raise WorkflowCompleted()
            if child_of is not None and ms.state.start.parent_workflow_execution.workflow_id != child_of.workflow_id:
                raise WorkflowNotFound.for_id(ex.workflow_id)
            if req.request_id and req.request_id in ms.state.signal_request_ids:
                return  # a retried request: the signal is already in history
            signal_input = req.input if req.HasField("input") else None  # absent stays absent, as on the reference
            ms.add_signaled(req.signal_name, signal_input, req.identity, req.header, req.request_id, external)
            await change.commit(schedule_workflow_task=True)

    async def request_cancel(
        self,
        ns: Namespace,
        req: ws.RequestCancelWorkflowExecutionRequest,
        external: common.WorkflowExecution | None = None,
        external_initiated_event_id: int = 0,
        child_of: common.WorkflowExecution | None = None,
    ) -> None:
        ex = req.workflow_execution
        async with self.executions.update(ns.id, ex.workflow_id, ex.run_id) as change:
            ms = change.ms
            if req.first_execution_run_id and ms.state.start.first_execution_run_id != req.first_execution_run_id:
                raise WorkflowNotFound.for_id(ex.workflow_id)
            if child_of is not None and ms.state.start.parent_workflow_execution.workflow_id != child_of.workflow_id:
                raise WorkflowNotFound.for_id(ex.workflow_id)
            if not ms.running:
                return  # like the reference: cancelling a closed workflow is not an error
            if ms.state.cancel_requested:
                return
            ms.add_cancel_requested(req.reason, req.identity, req.request_id, external, external_initiated_event_id)
            await change.commit(schedule_workflow_task=True)

    async def terminate(self, ns: Namespace, req: ws.TerminateWorkflowExecutionRequest) -> None:
        ex = req.workflow_execution
        async with self.executions.update(ns.id, ex.workflow_id, ex.run_id) as change:
            ms = change.ms
            if req.first_execution_run_id and ms.state.start.first_execution_run_id != req.first_execution_run_id:
                raise WorkflowNotFound.for_id(ex.workflow_id)
            if not ms.running:
                raise WorkflowCompleted()
            terminate(ms, req.reason, req.details if req.HasField("details") else None, req.identity)
            await change.commit()

    async def schedule_first_task(self, namespace_id: str, workflow_id: str, run_id: str) -> None:
        await self.tasks.schedule_first_task(namespace_id, workflow_id, run_id)

    async def record_child_closed(
        self,
        parent_namespace_id: str,
        parent: common.WorkflowExecution,
        initiated_event_id: int,
        first_execution_run_id: str,
        run_id: str,
        close: history.HistoryEvent,
    ) -> None:
        await self.tasks.record_child_closed(
            parent_namespace_id, parent, initiated_event_id, first_execution_run_id, run_id, close
        )

    async def reset_sticky(self, ns: Namespace, workflow_id: str, run_id: str) -> None:
        async with self.executions.update(ns.id, workflow_id, run_id) as change:
            ms = change.ms
            if not ms.running or not ms.state.sticky_task_queue.name:
                return
            ms.set_sticky(None, None)
            await change.commit()

    async def delete(self, ns: Namespace, execution: common.WorkflowExecution) -> None:
        """Delete a run (terminating it first if it runs), with its history and visibility."""
        async with self.executions.update(ns.id, execution.workflow_id, execution.run_id) as change:
            ms = change.ms
            if ms.running:
                ms.retention_ns = 0
                terminate(ms, "Delete workflow execution", None, "history-service")
                await change.commit()
            await change.shard.delete(change.entry)
            log.info("deleted workflow %s run %s", ms.workflow_id, ms.run_id)
