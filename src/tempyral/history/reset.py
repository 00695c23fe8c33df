"""ResetWorkflowExecution: a new run made of the base run's history up to a workflow task, that
task failed with cause RESET_WORKFLOW, and the signals that came after it re-applied.

The new run's state is rebuilt with the same appliers as everything else (docs/DESIGN.md,
invariant 1); its pending work gets fresh tasks. A running current run is terminated in the
same transaction.
"""

from __future__ import annotations

import contextlib
import time

from temporalio.api.enums.v1 import ResetReapplyExcludeType, ResetReapplyType, WorkflowTaskFailedCause
from temporalio.api.failure.v1 import message_pb2 as failure_pb
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.errors import InvalidArgument
from tempyral.history import appliers, rebuild, task_generator
from tempyral.history import events as ev
from tempyral.history.executions import Executions, terminate
from tempyral.history.mutable_state import MutableState
from tempyral.history.shard import Mutation
from tempyral.namespace.registry import Namespace
from tempyral.persistence.store import CurrentWrite
from tempyral.proto.internal_pb2 import ExecutionState

RESETTER = "history-resetter"
RUNNING = 1


async def reset(executions: Executions, ns: Namespace, req: ws.ResetWorkflowExecutionRequest) -> str:
    ex = req.workflow_execution
    async with executions.update(ns.id, ex.workflow_id, ex.run_id) as base_change:
        shard, base = base_change.shard, base_change.ms
        last_event_id = base.state.next_event_id - 1
        finish = req.workflow_task_finish_event_id
        if finish <= 1 or finish > last_event_id:
            raise InvalidArgument("Workflow task finish ID must be > 1 && <= workflow last event ID.")
        events = await base_change.events(1, base.state.next_event_id)
        base_run_id = base.run_id
    current_run_id = await executions.current_run_id(ns.id, ex.workflow_id) or base_run_id
    now = time.time_ns()
    new_run_id = ids.new_run_id()
    kept, after = events[: finish - 1], events[finish - 1 :]

    state = ExecutionState(
        namespace_id=ns.id,
        workflow_id=ex.workflow_id,
        run_id=new_run_id,
        next_event_id=1,
        start_request_id=base.state.start_request_id,
    )
    state.start_request_ids.append(req.request_id or base.state.start_request_id)
    copies = [history.HistoryEvent.FromString(e.SerializeToString()) for e in kept]
    rebuild.apply_events(state, copies)  # next_event_id is `finish` after them
    # The new run starts now (as the reference's rebuilt state does), not when the base run did:
    # the applier of the WorkflowTaskFailed (cause RESET_WORKFLOW) written below sets that.
    wt = state.workflow_task
    if not wt.scheduled:
        raise InvalidArgument(
            "Can only reset workflow to event ID in range "
            f"[WorkflowTaskScheduled +1, WorkflowTaskStarted + 1]: {finish}"
        )
    reset_ms = MutableState(state, now)
    executions.prepare(reset_ms, now)
    reset_ms.new_events = copies  # the kept history is written again under the new run
    if not wt.started_event_id:
        reset_ms.start_workflow_task(ids.new_id(), "history-service")
        reset_ms.new_tasks.clear()
    reset_ms.add_workflow_task_failed(
        WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW,
        _reset_failure(req.reason),
        "history-service",
        base_run_id=base_run_id,
        new_run_id=new_run_id,
    )
    appliers.reset_workflow_task(state, 1)
    rebuild.reset_bookkeeping_for_rebuild(state, now)
    reset_ms.new_tasks.extend(task_generator.regenerate(state, now))
    _reapply(reset_ms, after, req)
    reset_ms.schedule_workflow_task()
    reset_ms.visibility_dirty = True

    key = (ns.id, ex.workflow_id, current_run_id)
    async with contextlib.AsyncExitStack() as stack:
        current_entry = await stack.enter_async_context(shard.locked(key))
        current = await shard.load(current_entry)
        mutations = []
        is_base = current is not None and current.run_id == base_run_id
        terminated = current is not None and current.running
        if current is not None and (current.running or is_base):
            executions.prepare(current, now)
            if current.running:
                terminate(current, req.reason, None, RESETTER)
            mutations.append(Mutation(current_entry, current))
        # The run that was reset points at the run that replaced it (describe's reset run id).
        if current is not None and is_base:
            current.state.reset_run_id = new_run_id
        else:
            reset_entry = await stack.enter_async_context(shard.locked((ns.id, ex.workflow_id, base_run_id)))
            reset_base = await shard.load(reset_entry)
            if reset_base is not None:
                executions.prepare(reset_base, now)
                reset_base.state.reset_run_id = new_run_id
                mutations.append(Mutation(reset_entry, reset_base))
        async with executions.creating(shard, reset_ms) as change:
            change.others.extend(mutations)
            change.current.append(
                CurrentWrite(ns.id, ex.workflow_id, new_run_id, RUNNING, state.start_request_id, current_run_id)
            )
            if terminated:
                change.closed_others.append(current_entry)
            await change.commit()
    return new_run_id


def _reset_failure(reason: str) -> failure_pb.Failure:
    failure = failure_pb.Failure(message=reason)
    failure.reset_workflow_failure_info.SetInParent()
    return failure


def _reapply(ms: MutableState, after: list[history.HistoryEvent], req: ws.ResetWorkflowExecutionRequest) -> None:
    """What happened to the base run after the reset point and must not be lost, in history order:
    signals, and updates (admitted again, for the worker to run), unless the request excludes them."""
    excluded = set(req.reset_reapply_exclude_types)
    none = req.reset_reapply_type == ResetReapplyType.RESET_REAPPLY_TYPE_NONE
    signals = not none and ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL not in excluded
    updates = (
        not none
        and req.reset_reapply_type != ResetReapplyType.RESET_REAPPLY_TYPE_SIGNAL
        and ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE not in excluded
    )
    reapplied_updates: set[str] = set()
    for event in after:
        if signals and event.event_type == ev.WORKFLOW_EXECUTION_SIGNALED:
            a = event.workflow_execution_signaled_event_attributes
            ms.add_signaled(a.signal_name, a.input if a.HasField("input") else None, a.identity, a.header, a.request_id)
        elif updates and event.event_type in (ev.UPDATE_ADMITTED, ev.UPDATE_ACCEPTED):
            request = ev.update_request(event)
            if request.meta.update_id not in reapplied_updates:
                reapplied_updates.add(request.meta.update_id)
                ms.add_update_admitted(request)
