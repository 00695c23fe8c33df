"""Checks that a history is well formed: what a crash must never break."""

from __future__ import annotations

from collections import Counter

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory

E = EventType
CLOSE = {
    E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
    E.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW,
}


WORKFLOW_TASK_EVENTS = frozenset(
    {
        E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
        E.EVENT_TYPE_WORKFLOW_TASK_STARTED,
        E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
        E.EVENT_TYPE_WORKFLOW_TASK_FAILED,
        E.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT,
    }
)


def problems(history: WorkflowHistory) -> list[str]:
    found: list[str] = []
    events = list(history.events)
    if [e.event_id for e in events] != list(range(1, len(events) + 1)):
        found.append("event ids are not contiguous from 1")
    if not events or events[0].event_type != E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        found.append("the first event is not WorkflowExecutionStarted")
    closes = [i for i, e in enumerate(events) if e.event_type in CLOSE]
    if len(closes) > 1 or (closes and closes[0] != len(events) - 1):
        found.append("a close event that is not unique and last")
    by_id = {e.event_id: e for e in events}
    completed_for: Counter[int] = Counter()
    for i, e in enumerate(events):
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
            # Other events (a signal, a Nexus completion) may come between a task's scheduled and
            # started events, as on the reference; other workflow-task events may not.
            scheduled = e.workflow_task_started_event_attributes.scheduled_event_id
            between = [x for x in events[:i] if x.event_id >= scheduled]
            if (
                not between
                or between[0].event_type != E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED
                or any(x.event_type in WORKFLOW_TASK_EVENTS for x in between[1:])
            ):
                found.append(f"WorkflowTaskStarted {e.event_id} does not follow its scheduled event")
        if e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed_for[e.workflow_task_completed_event_attributes.scheduled_event_id] += 1
        if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            attrs = e.activity_task_completed_event_attributes
            scheduled_event = by_id.get(attrs.scheduled_event_id)
            if scheduled_event is None or scheduled_event.event_type != E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                found.append(f"ActivityTaskCompleted {e.event_id} points at no scheduled activity")
    found += [f"workflow task {sid} completed {n} times" for sid, n in completed_for.items() if n > 1]
    activity_ids = Counter(
        e.activity_task_scheduled_event_attributes.activity_id
        for e in events
        if e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    found += [f"activity {a} scheduled {n} times" for a, n in activity_ids.items() if n > 1]
    timers = Counter(
        e.timer_fired_event_attributes.timer_id for e in events if e.event_type == E.EVENT_TYPE_TIMER_FIRED
    )
    found += [f"timer {t} fired {n} times" for t, n in timers.items() if n > 1]
    return found
