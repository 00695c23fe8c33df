"""Executes outbox tasks. Each handler re-reads the execution and does nothing if the task is stale
(DESIGN.md invariant 4); a task's row is deleted in the transaction that acts on it, or, for a
stale task, in the next batch of acknowledgements."""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import TYPE_CHECKING

from temporalio.api.enums.v1 import RetryState, TimeoutType
from temporalio.api.failure.v1 import message_pb2 as failure_pb

from tempyral.common import ids
from tempyral.common.errors import NotFound
from tempyral.common.retry import next_retry
from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import Mutation
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import Task, TaskCategory, TaskType

if TYPE_CHECKING:
    from tempyral.history.engine import HistoryEngine

log = logging.getLogger(__name__)
TIMER = TaskCategory.TASK_CATEGORY_TIMER
ACK_FLUSH_DELAY_S = 0.05


class TaskExecutor:
    def __init__(self, engine: HistoryEngine) -> None:
        self.engine = engine
        self._acks: dict[int, list[tuple[int, int]]] = defaultdict(list)
        self._flusher: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ acknowledgements
    def ack(self, task: Task) -> None:
        """The task needs no more work: delete its row soon (batched)."""
        self._acks[task.shard_id].append((task.category, task.task_id))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(ACK_FLUSH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        acks, self._acks = self._acks, defaultdict(list)
        for shard_id, keys in acks.items():
            try:
                await self.engine.store.delete_tasks(shard_id, keys)
            except Exception:
                log.exception("could not delete %d finished tasks; they will be re-checked", len(keys))

    async def stop(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        await self.flush()

    def submit_transfer(self, task: Task) -> None:
        # No transfer task besides dispatch exists yet; anything else is finished.
        self.ack(task)

    # ------------------------------------------------------------------ timers
    async def execute_timer(self, task: Task) -> None:
        engine = self.engine
        try:
            async with engine.locked(task.namespace_id, task.workflow_id, task.run_id) as (shard, entry, ms):
                if not ms.running:
                    self.ack(task)
                    return
                extra: list[Mutation] = []
                current: list[CurrentWrite] = []
                changed = self._apply_timer(ms, task, extra, current)
                if not changed:
                    self.ack(task)
                    return
                if ms.running and not ms.wft_pending and ms.new_events:
                    ms.schedule_workflow_task()
                if not ms.running and not current:
                    current.append(engine.close_current(ms))
                if not ms.wft_pending:
                    engine.queries.redirect_buffered(entry, ms.current_task_queue().name)
                await shard.commit(
                    [Mutation(entry, ms), *extra], current=current, deleted_tasks=[(TIMER, task.task_id)]
                )
        except NotFound:
            self.ack(task)

    def _apply_timer(self, ms: MutableState, task: Task, extra: list[Mutation], current: list[CurrentWrite]) -> bool:
        t = task.type
        if t == TaskType.TASK_TYPE_USER_TIMER:
            info = ms.s.timers.get(task.timer_id)
            if info is None or info.started_event_id != task.event_id:
                return False
            ms.add_timer_fired(task.timer_id)
            return True
        if t == TaskType.TASK_TYPE_WORKFLOW_TASK_TIMEOUT:
            return self._workflow_task_timeout(ms, task)
        if t == TaskType.TASK_TYPE_ACTIVITY_TIMEOUT:
            return self.engine.activities.on_timeout(ms, task)
        if t == TaskType.TASK_TYPE_ACTIVITY_RETRY_TIMER:
            return self.engine.activities.on_retry_timer(ms, task)
        if t == TaskType.TASK_TYPE_WORKFLOW_BACKOFF_TIMER:
            if ms.wft_pending or ms.s.last_completed_wft_started_event_id:
                return False
            ms.schedule_workflow_task()
            return True
        if t == TaskType.TASK_TYPE_WORKFLOW_RUN_TIMEOUT:
            return self._workflow_timeout(ms, retryable=True, extra=extra, current=current)
        if t == TaskType.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT:
            return self._workflow_timeout(ms, retryable=False, extra=extra, current=current)
        log.warning("unknown timer task type %d", t)
        return False

    def _workflow_task_timeout(self, ms: MutableState, task: Task) -> bool:
        wt = ms.s.workflow_task
        if not wt.scheduled or wt.stamp != task.stamp:
            return False
        schedule_to_start = task.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
        if schedule_to_start == bool(wt.started_event_id):
            return False
        entry = self.engine.shard_for(ms.namespace_id, ms.workflow_id).peek(
            (ms.namespace_id, ms.workflow_id, ms.run_id)
        )
        ms.add_workflow_task_timed_out(task.timeout_type)
        ms.flush_buffered_events()
        ms.schedule_workflow_task()
        if entry is not None:
            self.engine.queries.requeue_inflight(entry)
        return True

    def _workflow_timeout(
        self, ms: MutableState, retryable: bool, extra: list[Mutation], current: list[CurrentWrite]
    ) -> bool:
        s = ms.s
        failure = failure_pb.Failure(message="workflow timeout")
        failure.timeout_failure_info.timeout_type = TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE
        state = RetryState.RETRY_STATE_TIMEOUT
        expiration = s.execution_expiration_time.seconds * 1_000_000_000 + s.execution_expiration_time.nanos
        # A run that times out at the end of the whole execution's time is not retried.
        retryable = retryable and (not expiration or expiration > ms.now)
        if retryable and not s.start.HasField("retry_policy"):
            state = RetryState.RETRY_STATE_RETRY_POLICY_NOT_SET
        elif retryable:
            decision = next_retry(s.start.retry_policy, s.start.attempt, failure, ms.now, expiration)
            if decision.retry:
                ms.add_timed_out(decision.state, ids.new_run_id())
                shard = self.engine.shard_for(ms.namespace_id, ms.workflow_id)
                entry, new_ms = self.engine.retry_run(shard, ms, decision.backoff_ns, failure)
                extra.append(Mutation(entry, new_ms, new=True))
                current.append(self.engine.next_run_current(ms, new_ms))
                return True
            state = decision.state  # type: ignore[assignment]
        ms.add_timed_out(state)
        return True
