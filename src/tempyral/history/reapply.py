"""Events re-application: what a losing history branch held that must not be lost (docs/DESIGN.md §11).

When two clusters wrote the same run during a partition, one branch wins (conflict resolution,
history/replication.py). The losing branch's signals, updates, cancel requests and terminations
were accepted by a cluster and acknowledged to a client, so the namespace's active cluster writes
them again into the workflow's current run, under its own version: a running run gets them (and
a workflow task), a closed run is first reset (reason `events-reapplication`) and the new run gets
them. Each re-applied event is remembered on the run ("run:event:version"), and signals and
updates also dedupe by request and update id, so that an event seen twice is re-applied once.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import ResetReapplyType
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common import ids
from tempyral.common.errors import InvalidArgument, NamespaceNotFound, Unavailable, WorkflowNotFound
from tempyral.history import events as ev
from tempyral.history import version_history
from tempyral.history.executions import Executions, terminate
from tempyral.history.mutable_state import MutableState
from tempyral.history.reset import RESETTER, reset
from tempyral.namespace.registry import NamespaceRegistry
from tempyral.proto.internal_pb2 import ExecutionState

log = logging.getLogger(__name__)

REASON = "events-reapplication"
REAPPLIED_TYPES = frozenset(
    {
        ev.WORKFLOW_EXECUTION_SIGNALED,
        ev.UPDATE_ADMITTED,
        ev.UPDATE_ACCEPTED,
        ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED,
        ev.WORKFLOW_EXECUTION_TERMINATED,
    }
)
# Terminations the server wrote itself (a reset replacing the run, a forced close) are not the user's.
_SERVER_IDENTITIES = frozenset({RESETTER, "history-service"})
MAX_MARKS = 1000  # marks kept per run: a partition's worth of losing events


def reapplicable(events: Sequence[history.HistoryEvent]) -> list[history.HistoryEvent]:
    """The events of a losing branch that are re-applied, in order."""
    out = []
    for event in events:
        if event.event_type not in REAPPLIED_TYPES:
            continue
        if event.event_type == ev.WORKFLOW_EXECUTION_TERMINATED:
            if event.workflow_execution_terminated_event_attributes.identity in _SERVER_IDENTITIES:
                continue
        out.append(event)
    return out


def mark(run_id: str, event: history.HistoryEvent) -> str:
    """What identifies a losing event wherever it is seen again. A buffered event has no id yet: its request id."""
    if event.event_id > 0:
        return f"{run_id}:{event.event_id}:{event.version}"
    request_id = event.workflow_execution_signaled_event_attributes.request_id
    return f"{run_id}:buffered:{request_id or event.SerializeToString().hex()[:64]}"


def remember(state: ExecutionState, marks: Sequence[str]) -> None:
    """Add marks to the run's re-applied set, keeping the newest MAX_MARKS."""
    have = set(state.reapplied_events)
    state.reapplied_events.extend(m for m in marks if m not in have)
    if len(state.reapplied_events) > MAX_MARKS:
        del state.reapplied_events[: len(state.reapplied_events) - MAX_MARKS]


def _update_id(event: history.HistoryEvent) -> str:
    return ev.update_request(event).meta.update_id


def pending(
    state: ExecutionState, origin_run_id: str, events: Sequence[history.HistoryEvent]
) -> list[history.HistoryEvent]:
    """The events not in the run already: not re-applied before, no signal request or update id it has, no second
    cancel request."""
    marks = set(state.reapplied_events)
    request_ids = set(state.signal_request_ids)
    update_ids = set(state.updates)
    cancel = state.cancel_requested
    out = []
    for event in events:
        seen = mark(origin_run_id, event) in marks
        t = event.event_type
        if seen:
            # re-applied before: a repeat of its request or update (under another event id) is not new either
            if t == ev.WORKFLOW_EXECUTION_SIGNALED:
                request_ids.add(event.workflow_execution_signaled_event_attributes.request_id)
            elif t in (ev.UPDATE_ADMITTED, ev.UPDATE_ACCEPTED):
                update_ids.add(_update_id(event))
            continue
        if t == ev.WORKFLOW_EXECUTION_SIGNALED:
            request_id = event.workflow_execution_signaled_event_attributes.request_id
            if request_id and request_id in request_ids:
                continue
            request_ids.add(request_id)
        elif t in (ev.UPDATE_ADMITTED, ev.UPDATE_ACCEPTED):
            if _update_id(event) in update_ids:
                continue
            update_ids.add(_update_id(event))
        elif t == ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED:
            if cancel:
                continue
            cancel = True
        out.append(event)
    return out


def _apply(ms: MutableState, event: history.HistoryEvent) -> None:
    """Write one losing event into a running run, under the run's version."""
    t = event.event_type
    if t == ev.WORKFLOW_EXECUTION_SIGNALED:
        a = event.workflow_execution_signaled_event_attributes
        ms.add_signaled(
            a.signal_name,
            a.input if a.HasField("input") else None,
            a.identity,
            a.header if a.HasField("header") else None,
            a.request_id,
            a.external_workflow_execution if a.HasField("external_workflow_execution") else None,
        )
    elif t in (ev.UPDATE_ADMITTED, ev.UPDATE_ACCEPTED):
        ms.add_update_admitted(ev.update_request(event))
    elif t == ev.WORKFLOW_EXECUTION_CANCEL_REQUESTED:
        a2 = event.workflow_execution_cancel_requested_event_attributes
        ms.add_cancel_requested(a2.cause, a2.identity, "")
    elif t == ev.WORKFLOW_EXECUTION_TERMINATED:
        a3 = event.workflow_execution_terminated_event_attributes
        terminate(ms, a3.reason, a3.details if a3.HasField("details") else None, a3.identity)


def write(ms: MutableState, origin_run_id: str, todo: Sequence[history.HistoryEvent]) -> int:
    """Write `todo` (what `pending` left of run `origin_run_id`'s losing events) into the running run `ms`, under
    its version, and mark them; how many were written (a re-applied termination ends it)."""
    written = 0
    for event in todo:
        if not ms.running:
            break
        _apply(ms, event)
        written += 1
    remember(ms.state, [mark(origin_run_id, e) for e in todo])
    return written


def _reset_point(state: ExecutionState) -> int:
    """Where a closed run is reset to re-apply events: after its last completed workflow task, else its first."""
    if state.last_completed_wft_started_event_id:
        return state.last_completed_wft_started_event_id + 1
    return 3  # started, first workflow task scheduled: reset keeps these two


async def reapply(
    executions: Executions,
    namespaces: NamespaceRegistry,
    namespace_id: str,
    workflow_id: str,
    origin_run_id: str,
    events: Sequence[history.HistoryEvent],
) -> int:
    """Re-apply the losing events of run `origin_run_id` into the workflow's current run; how many were written.
    NamespaceNotActive if the namespace is not active here; Unavailable (try again) while this cluster is behind
    the run or does not have it yet."""
    candidates = reapplicable(events)
    if not candidates:
        return 0
    namespace = namespaces.find_by_id(namespace_id)
    if namespace is None:
        raise NamespaceNotFound(namespace_id)
    namespaces.check_active(namespace)
    for _ in range(3):  # a closed run is reset once, then its new run gets the events
        try:
            async with executions.update(namespace_id, workflow_id) as change:
                ms = change.ms
                if ms.state.version < version_history.last_version(ms.state):
                    # this cluster's version is behind the run's: it is about to learn it is not active any more;
                    # the caller tries again (by then it knows where the namespace is active)
                    raise Unavailable(f"workflow {workflow_id} was written under a newer version than this cluster's")
                todo = pending(ms.state, origin_run_id, candidates)
                if not todo:
                    return 0
                if ms.running:
                    written = write(ms, origin_run_id, todo)
                    await change.commit(schedule_workflow_task=True)
                    log.info(
                        "re-applied %d events of run %s (a losing history branch) to run %s of workflow %s",
                        written,
                        origin_run_id,
                        ms.run_id,
                        workflow_id,
                    )
                    return written
                if all(e.event_type == ev.WORKFLOW_EXECUTION_TERMINATED for e in todo):
                    return 0  # nothing to bring back to life for
                closed_run_id, finish = ms.run_id, _reset_point(ms.state)
            request = ws.ResetWorkflowExecutionRequest(
                namespace=namespace.name,
                workflow_execution=common.WorkflowExecution(workflow_id=workflow_id, run_id=closed_run_id),
                reason=REASON,
                workflow_task_finish_event_id=finish,
                request_id=ids.new_id(),
                reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_NONE,
            )
            new_run_id = await reset(executions, namespace, request)
            log.info(
                "reset closed run %s of workflow %s into run %s to re-apply events of a losing history branch",
                closed_run_id,
                workflow_id,
                new_run_id,
            )
        except WorkflowNotFound as err:
            # the run's history has not reached this cluster yet: the caller tries again
            raise Unavailable(f"workflow {workflow_id} is not here yet") from err
        except InvalidArgument as err:
            log.error("could not reset workflow %s to re-apply events: %s", workflow_id, err)
            return 0
    return 0
