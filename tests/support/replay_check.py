"""The replay check: a stopped server's database, read back, must explain itself.

For every execution row: its committed history (events 1..next_event_id-1 of the current branch), replayed
into an empty state by `rebuild.replay`, gives the stored state (both through `rebuild.comparable`, compared
as whole messages). And for the tasks:

- every outstanding task row of the run that the processors would still act on (not stale: see `stale`) is
  one that `task_generator.regenerate` gives for the stored state, compared by `task_key`;
- every task `regenerate` gives for the stored state is one the processors would act on, and has its row
  (except the kinds whose completion no state records, `DONE_UNRECORDED`): a missing row is lost work;
- `regenerate` of the replayed state gives the same tasks as `regenerate` of the stored one.

`check_database(path)` lists the problems (empty when all is well); `summary(problems)` groups them by kind.
tests/support/servers.py runs it whenever a tempyral server the tests started on a fresh database stops.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from google.protobuf import text_format
from google.protobuf.message import DecodeError, Message
from temporalio.api.enums.v1 import (
    CallbackState,
    EventType,
    NexusOperationCancellationState,
    PendingNexusOperationState,
    TimeoutType,
    WorkflowExecutionStatus,
)
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.history import rebuild, task_generator
from tempyral.persistence.branches import current_branch
from tempyral.persistence.sqlite import SqliteStore
from tempyral.proto.internal_pb2 import ExecutionState, NamespaceRecord, Task, TaskCategory, TaskType

T = TaskType
RUNNING: Final = WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
NEXUS_STARTED: Final = PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_STARTED
NEXUS_SCHEDULED: Final = PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_SCHEDULED
NEXUS_WAITING: Final = (
    PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BACKING_OFF,
    PendingNexusOperationState.PENDING_NEXUS_OPERATION_STATE_BLOCKED,
)
CANCEL_SCHEDULED: Final = NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_SCHEDULED
CANCEL_BACKING_OFF: Final = NexusOperationCancellationState.NEXUS_OPERATION_CANCELLATION_STATE_BACKING_OFF
# Work whose doing no state records: its row goes once it is done, while `regenerate` (which cannot know)
# may give it again. Telling the parent and applying the parent-close policies are idempotent.
DONE_UNRECORDED: Final = frozenset({T.TASK_TYPE_CLOSE_EXECUTION})
# Work whose progress is bookkeeping no event carries: a state rebuilt from events alone does it again. A
# completion callback's delivery state is such work; the receiver refuses a repeated completion.
REDONE_AFTER_REBUILD: Final = frozenset({"callback"})
# Work no event records at all: a schedule's scheduler run keeps its schedule outside history (schedules/runner.py).
NOT_FROM_EVENTS_WORK: Final = frozenset({T.Name(T.TASK_TYPE_SCHEDULE_WAKE)})
# The pending work each task serves, by task type (tasks of one piece of work share its key).
WORK_OF_TASK: Final = {
    T.TASK_TYPE_DISPATCH_WORKFLOW_TASK: "workflow task",
    T.TASK_TYPE_WORKFLOW_TASK_TIMEOUT: "workflow task",
    T.TASK_TYPE_DISPATCH_ACTIVITY_TASK: "activity",
    T.TASK_TYPE_ACTIVITY_TIMEOUT: "activity",
    T.TASK_TYPE_ACTIVITY_RETRY_TIMER: "activity",
    T.TASK_TYPE_USER_TIMER: "timer",
    T.TASK_TYPE_START_CHILD: "child",
    T.TASK_TYPE_SIGNAL_EXTERNAL: "external signal",
    T.TASK_TYPE_CANCEL_EXTERNAL: "external cancel",
    T.TASK_TYPE_NEXUS_START: "nexus operation",
    T.TASK_TYPE_NEXUS_BACKOFF: "nexus operation",
    T.TASK_TYPE_NEXUS_TIMEOUT: "nexus operation",
    T.TASK_TYPE_NEXUS_CANCEL: "nexus operation",
    T.TASK_TYPE_NEXUS_CANCEL_BACKOFF: "nexus operation",
    T.TASK_TYPE_CALLBACK: "callback",
    T.TASK_TYPE_CALLBACK_BACKOFF: "callback",
}
WORKFLOW_TASK_WORK: Final = ("workflow task", 0, "", 0)
MAX_DIFFS = 6  # differing fields shown with their values, per execution (all are listed)
MAX_SHOWN = 60  # problems shown in `report`, after the summary of kinds
VALUE_CHARS = 70

TaskKey = tuple[int, int, str, int, int]


@dataclass(frozen=True, slots=True)
class Problem:
    execution: str  # namespace_id/workflow_id/run_id, or the database
    kind: str  # what went wrong, without ids and values: problems of one kind share it
    detail: str = ""

    def __str__(self) -> str:
        return f"{self.execution}: {self.kind}" + (f": {self.detail}" if self.detail else "")


def check_database(path: str) -> list[str]:
    """The problems found in the database at `path` (a stopped server's), one line each."""
    return [str(p) for p in check_database_problems(path)]


def check_database_problems(path: str) -> list[Problem]:
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return []  # the server never created its database (it did not start)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_check(path))
    # called from a coroutine (an async test stopping its server): run the check's own loop in a thread
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, _check(path)).result()


def summary(problems: Iterable[Problem]) -> list[str]:
    """One line per kind of problem, most frequent first."""
    counts = Counter(p.kind for p in problems)
    return [f"{n:5d} x {kind}" for kind, n in counts.most_common()]


def report(path: str, problems: list[Problem]) -> str:
    lines = [f"replay check of {path}: {len(problems)} problems, by kind:", *summary(problems), "first ones:"]
    lines += [f"  {p}" for p in problems[:MAX_SHOWN]]
    if len(problems) > MAX_SHOWN:
        lines.append(f"  ... and {len(problems) - MAX_SHOWN} more")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- reading
async def _check(path: str) -> list[Problem]:
    # The store is opened for its history reads (which know the current branch); query_only keeps every
    # connection it makes from writing, and its lock refuses a database a live server still holds.
    store = SqliteStore(path, pragmas={"query_only": "1"})
    try:
        await store.open()
    except Exception as err:  # any failure to open is the finding
        return [Problem(path, "database cannot be opened", str(err))]
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            executions = conn.execute("SELECT namespace_id, workflow_id, run_id, state FROM executions").fetchall()
            task_rows = conn.execute("SELECT category, task_id, data FROM tasks").fetchall()
            namespace_rows = conn.execute("SELECT id, data FROM namespaces").fetchall()
        finally:
            conn.close()
        problems: list[Problem] = []
        outstanding: dict[tuple[str, str, str], list[Task]] = defaultdict(list)
        for category, task_id, data in task_rows:
            try:
                task = Task.FromString(data)
            except DecodeError as err:
                problems.append(Problem(path, "task row does not parse", f"category {category} id {task_id}: {err}"))
                continue
            if category == TaskCategory.TASK_CATEGORY_REPLICATION:
                continue  # what other clusters pull (history replication), not work of this run
            outstanding[(task.namespace_id, task.workflow_id, task.run_id)].append(task)
        retention: dict[str, int] = {}
        for namespace_id, data in namespace_rows:
            ttl = NamespaceRecord.FromString(data).config.workflow_execution_retention_ttl
            retention[namespace_id] = ttl.seconds * 1_000_000_000 + ttl.nanos
        now = time.time_ns()
        for namespace_id, workflow_id, run_id, blob in executions:
            name = f"{namespace_id}/{workflow_id}/{run_id}"
            try:
                live = ExecutionState.FromString(blob)
            except DecodeError as err:
                problems.append(Problem(name, "state does not parse", str(err)))
                continue
            if live.HasField("standalone_activity"):
                continue  # no history to replay: a standalone activity's state is all there is
            if live.HasField("standalone_nexus"):
                continue  # a standalone Nexus operation (nexus/standalone.py): no events to replay
            events, read_problems = await _read_events(store, live)
            problems += [Problem(name, kind, detail) for kind, detail in read_problems]
            if read_problems:
                continue
            tasks = outstanding.get((namespace_id, workflow_id, run_id), [])
            found = check_execution(live, events, tasks, now, retention.get(namespace_id, 0))
            problems += [Problem(name, kind, detail) for kind, detail in found]
        return problems
    finally:
        await store.close()


async def _read_events(
    store: SqliteStore, state: ExecutionState
) -> tuple[list[history.HistoryEvent], list[tuple[str, str]]]:
    """The committed events 1..next_event_id-1 of the run's current branch, or what is wrong with them."""
    end = state.next_event_id
    try:
        batches = await store.read_history(state.namespace_id, state.run_id, 1, end, branch=current_branch(state))
    except Exception as err:  # reported, not raised: the other executions are still checked
        return [], [("history cannot be read", repr(err))]
    events: list[history.HistoryEvent] = []
    for blob in batches:
        try:
            batch = history.History.FromString(blob)
        except DecodeError as err:
            return [], [("history batch does not parse", str(err))]
        events += [e for e in batch.events if 1 <= e.event_id < end]
    ids = [e.event_id for e in events]
    if ids != list(range(1, end)):
        return [], [("history is not events 1..next_event_id-1", f"next_event_id {end}, ids {_ranges(ids)}")]
    return events, []


def _ranges(ids: list[int]) -> str:
    out: list[str] = []
    for i in ids:
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ",".join(out)[:200]


# ---------------------------------------------------------------------------------------------- checking
def check_execution(
    live: ExecutionState,
    events: list[history.HistoryEvent],
    outstanding: list[Task],
    now: int,
    retention_ns: int = 0,
) -> list[tuple[str, str]]:
    """(kind, detail) for each problem of one execution: its stored state `live`, its committed `events`
    and its outstanding task rows (`retention_ns`: its namespace's, for the tasks of a closed run)."""
    problems: list[tuple[str, str]] = []
    try:
        replayed = rebuild.replay(live.namespace_id, live.workflow_id, live.run_id, events, live.buffered_events)
    except Exception as err:  # a history the appliers cannot take is the finding
        return [("replay raised", f"{err!r} [{_event_types(events)}]")]
    want, got = rebuild.comparable(live), rebuild.comparable(replayed)
    if want != got:
        # one problem per differing field (map keys and list indices generic), the run's events on the first
        by_path: dict[str, list[str]] = defaultdict(list)
        for path, a, b in _concrete(want, got):
            by_path[_generic(path)].append(f"{path}: live {a} replayed {b}")
        for i, (path, examples) in enumerate(by_path.items()):
            context = f" [events: {_event_types(events)}]" if i == 0 else ""
            detail = "; ".join(examples[:2]) if i < MAX_DIFFS else "(see above)"
            problems.append((f"state differs at {path}", detail + context))

    live_tasks, live_after = _regenerate(live, now, retention_ns)
    if live_tasks is None:
        problems.append(("regenerate raised", f"{live_after!r}"))
        return problems
    replayed_tasks, replayed_after = _regenerate(replayed, now, retention_ns)
    if replayed_tasks is None:
        problems.append(("regenerate raised on the replayed state", f"{replayed_after!r}"))
    regenerated = Counter(task_key(t) for t in live_tasks)

    for task in outstanding:
        if stale(task, live) or task_key(task) in regenerated:
            continue
        problems.append((f"outstanding task not regenerated: {describe(task)}", _task_detail(task)))
    rows = {task_key(t) for t in outstanding}
    assert isinstance(live_after, ExecutionState)
    for task in live_tasks:
        if stale(task, live_after):
            problems.append((f"regenerated task is stale: {describe(task)}", _task_detail(task)))
        elif task_key(task) not in rows and task.type not in DONE_UNRECORDED:
            problems.append((f"pending work has no task row: {describe(task)}", _task_detail(task)))
    if replayed_tasks is not None:
        # Which pending work gets tasks must agree; which task a piece of work needs may depend on bookkeeping
        # no event carries (an activity's start, a sticky queue), so work is compared, not task types.
        live_work = Counter(work_key(t) for t in live_tasks)
        replayed_work = Counter(work_key(t) for t in replayed_tasks)
        if live.workflow_task.transient or live.speculative_workflow_task:
            # a transient or speculative workflow task is not in history: a rebuild has none to give tasks to
            live_work.pop(WORKFLOW_TASK_WORK, None)
        for key in sorted(set(live_work) - set(replayed_work)):
            if key[0] in NOT_FROM_EVENTS_WORK:
                continue
            problems.append((f"regenerate(replayed) lacks work for {key[0]}", f"work {key}"))
        for key in sorted(set(replayed_work) - set(live_work)):
            if key[0] in REDONE_AFTER_REBUILD:
                continue
            problems.append((f"regenerate(replayed) adds work for {key[0]}", f"work {key}"))
    return problems


def _regenerate(
    state: ExecutionState, now: int, retention_ns: int
) -> tuple[list[Task] | None, ExecutionState | Exception]:
    """`regenerate` of a copy of `state` (it may change what it is given), and that copy afterwards."""
    copy = ExecutionState()
    copy.CopyFrom(state)
    try:
        return task_generator.regenerate(copy, now, retention_ns), copy
    except Exception as err:  # reported
        return None, err


def work_key(task: Task) -> tuple[str, int, str, int]:
    """The pending work `task` serves: (kind, event id, timer id, callback index); a task of the run itself
    (its timeouts, start backoff, close, deletion) is its own work."""
    kind = WORK_OF_TASK.get(task.type)
    if kind is None:
        return (T.Name(task.type), 0, "", 0)
    if kind == "workflow task":
        return WORKFLOW_TASK_WORK
    return (kind, task.event_id, task.timer_id, task.callback_index)


def task_key(task: Task) -> TaskKey:
    return (task.type, task.event_id, task.timer_id, task.timeout_type, task.callback_index)


def describe(task: Task) -> str:
    return _describe_key(task_key(task))


def _describe_key(key: TaskKey) -> str:
    kind, _, _, timeout_type, _ = key
    name = T.Name(kind) if kind in T.values() else str(kind)
    return name + (f"/{TimeoutType.Name(timeout_type)}" if timeout_type else "")  # type: ignore[arg-type]


def _task_detail(task: Task) -> str:
    fields = [f"event_id={task.event_id}", f"attempt={task.attempt}", f"stamp={task.stamp}"]
    if task.timer_id:
        fields.append(f"timer_id={task.timer_id}")
    if task.type in (T.TASK_TYPE_CALLBACK, T.TASK_TYPE_CALLBACK_BACKOFF):
        fields.append(f"callback_index={task.callback_index}")
    return " ".join(fields)


def _event_types(events: list[history.HistoryEvent]) -> str:
    """The run's event types in order, runs of one type collapsed: context for a state difference."""
    names: list[str] = []
    for e in events:
        name = EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") if e.event_type in EventType.values() else "?"
        if names and names[-1].split("*")[0] == name:
            count = int(names[-1].split("*")[1]) + 1 if "*" in names[-1] else 2
            names[-1] = f"{name}*{count}"
        else:
            names.append(name)
    text = " ".join(names)
    return text if len(text) <= 400 else text[:200] + " ... " + text[-190:]


# ---------------------------------------------------------------------------------------------- staleness
def stale(task: Task, s: ExecutionState) -> bool:
    """Whether the processors would drop `task` on `s` without doing anything (tasks.py, workflow_tasks.py,
    activities.py, nexus_ops.py, nexus/invoker.py, nexus/callbacks.py make the same comparisons)."""
    running = s.status == RUNNING
    t = task.type
    wt = s.workflow_task
    if t == T.TASK_TYPE_DISPATCH_WORKFLOW_TASK:
        return not running or not wt.scheduled or wt.stamp != task.stamp or wt.started_event_id != 0
    if t == T.TASK_TYPE_WORKFLOW_TASK_TIMEOUT:
        schedule_to_start = task.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START
        return (
            not running or not wt.scheduled or wt.stamp != task.stamp or schedule_to_start == bool(wt.started_event_id)
        )
    if t in (T.TASK_TYPE_DISPATCH_ACTIVITY_TASK, T.TASK_TYPE_ACTIVITY_TIMEOUT, T.TASK_TYPE_ACTIVITY_RETRY_TIMER):
        ai = s.activities.get(task.event_id)
        if not running or ai is None:
            return True
        if t == T.TASK_TYPE_DISPATCH_ACTIVITY_TASK:
            return ai.attempt != task.attempt or ai.started
        if t == T.TASK_TYPE_ACTIVITY_RETRY_TIMER:
            return ai.attempt != task.attempt or ai.started or not ai.HasField("next_attempt_schedule_time")
        tt = task.timeout_type
        if tt == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_CLOSE:
            return False  # spans every attempt
        if ai.attempt != task.attempt:
            return True
        if tt == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START:
            return ai.started
        return not ai.started  # start-to-close, heartbeat
    if t == T.TASK_TYPE_USER_TIMER:
        info = s.timers.get(task.timer_id)
        return not running or info is None or info.started_event_id != task.event_id
    if t == T.TASK_TYPE_WORKFLOW_BACKOFF_TIMER:
        return not running or wt.scheduled or s.last_completed_wft_started_event_id != 0
    if t in (T.TASK_TYPE_WORKFLOW_RUN_TIMEOUT, T.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT):
        return not running
    if t == T.TASK_TYPE_START_CHILD:
        child = s.children.get(task.event_id)
        return not running or child is None or bool(child.started_run_id)
    if t == T.TASK_TYPE_SIGNAL_EXTERNAL:
        return not running or task.event_id not in s.external_signals
    if t == T.TASK_TYPE_CANCEL_EXTERNAL:
        return not running or task.event_id not in s.external_cancels
    if t == T.TASK_TYPE_CLOSE_EXECUTION:
        return running
    if t == T.TASK_TYPE_DELETE_HISTORY:
        return running
    if t == T.TASK_TYPE_SCHEDULE_WAKE:
        return not running or not s.HasField("schedule") or s.schedule.timer_stamp != task.stamp
    if t == T.TASK_TYPE_CALLBACK:
        index = task.callback_index
        if index >= len(s.start.completion_callbacks) or index >= len(s.callbacks):
            return True
        cb = s.callbacks[index]
        return cb.state != CallbackState.CALLBACK_STATE_SCHEDULED or cb.attempt + 1 != task.attempt
    if t == T.TASK_TYPE_CALLBACK_BACKOFF:
        index = task.callback_index
        if index >= len(s.callbacks):
            return True
        cb = s.callbacks[index]
        return cb.state != CallbackState.CALLBACK_STATE_BACKING_OFF or cb.attempt != task.attempt
    if t in (
        T.TASK_TYPE_NEXUS_START,
        T.TASK_TYPE_NEXUS_CANCEL,
        T.TASK_TYPE_NEXUS_BACKOFF,
        T.TASK_TYPE_NEXUS_CANCEL_BACKOFF,
        T.TASK_TYPE_NEXUS_TIMEOUT,
    ):
        op = s.nexus_operations.get(task.event_id)
        if not running or op is None:
            return True
        c = op.cancellation
        if t == T.TASK_TYPE_NEXUS_START:
            return op.state != NEXUS_SCHEDULED or op.attempt != task.attempt
        if t == T.TASK_TYPE_NEXUS_CANCEL:
            return op.state != NEXUS_STARTED or c.state != CANCEL_SCHEDULED or c.attempt + 1 != task.attempt
        if t == T.TASK_TYPE_NEXUS_BACKOFF:
            return op.state not in NEXUS_WAITING or op.attempt != task.attempt
        if t == T.TASK_TYPE_NEXUS_CANCEL_BACKOFF:
            return c.state != CANCEL_BACKING_OFF or c.attempt != task.attempt
        return task.timeout_type == TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START and op.state == NEXUS_STARTED
    return False  # a kind this check does not know: never assumed stale


# ---------------------------------------------------------------------------------------------- diffs
def diff_messages(a: Message, b: Message) -> list[tuple[str, str, str]]:
    """(path, a's value, b's value) for each differing field; map keys and list indices as [*] in paths."""
    return [(_generic(path), va, vb) for path, va, vb in _concrete(a, b)]


def _generic(path: str) -> str:
    out, depth = [], 0
    for ch in path:
        if ch == "[":
            depth += 1
            if depth == 1:
                out.append("[*]")
        elif ch == "]":
            depth -= 1
        elif depth == 0:
            out.append(ch)
    return "".join(out)


def _concrete(a: Message, b: Message, path: str = "") -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for field in a.DESCRIPTOR.fields:
        name = field.name
        here = f"{path}.{name}" if path else name
        va, vb = getattr(a, name), getattr(b, name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_is_message = field.message_type.fields_by_name["value"].message_type is not None
            for key in sorted(set(va) | set(vb), key=str):
                at = f"{here}[{key}]"
                if key not in va or key not in vb:
                    out.append(
                        (at, _short(va[key]) if key in va else "<absent>", _short(vb[key]) if key in vb else "<absent>")
                    )
                elif value_is_message:
                    out += _concrete(va[key], vb[key], at)
                elif va[key] != vb[key]:
                    out.append((at, _short(va[key]), _short(vb[key])))
        elif field.is_repeated:
            if list(va) == list(vb):
                continue
            if field.message_type is not None and len(va) == len(vb):
                for i, (x, y) in enumerate(zip(va, vb, strict=True)):
                    out += _concrete(x, y, f"{here}[{i}]")
            else:
                out.append((here, f"{len(va)} items", f"{len(vb)} items"))
        elif field.message_type is not None:
            has_a, has_b = a.HasField(name), b.HasField(name)
            if has_a and has_b:
                out += _concrete(va, vb, here)
            elif has_a != has_b:
                out.append((here, _short(va) if has_a else "<unset>", _short(vb) if has_b else "<unset>"))
        elif va != vb:
            out.append((here, _short(va), _short(vb)))
    return out


def _short(value: object) -> str:
    text = text_format.MessageToString(value, as_one_line=True) if isinstance(value, Message) else repr(value)
    text = text or "{}"
    return text if len(text) <= VALUE_CHARS else text[: VALUE_CHARS - 3] + "..."
