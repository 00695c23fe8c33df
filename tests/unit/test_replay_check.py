"""The replay check (tests/support/replay_check.py), on small databases written with the real store and states
made by MutableState: a consistent one passes, and each planted inconsistency is reported as its kind."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.history.v1 import message_pb2 as history

from tempyral.common.clock import duration, seconds
from tempyral.history.mutable_state import MutableState
from tempyral.persistence.sqlite import SqliteStore
from tempyral.persistence.store import ExecutionWrite, HistoryWrite, TaskRow, Transaction
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskCategory, TaskType
from tests.support.replay_check import Problem, check_database, check_database_problems, stale
from tests.support.started import start_attributes

T0 = 1_700_000_000 * 1_000_000_000


@dataclass
class Run:
    """A run as the engine would have committed it: its state, its history batches, its task rows."""

    ms: MutableState
    batches: list[list[history.HistoryEvent]] = field(default_factory=list)
    tasks: list[Task] = field(default_factory=list)

    def commit(self) -> None:
        if self.ms.new_events:
            self.batches.append([history.HistoryEvent.FromString(e.SerializeToString()) for e in self.ms.new_events])
        self.tasks += self.ms.new_tasks
        self.ms.begin(self.ms.now + seconds(1))

    @property
    def state(self) -> ExecutionState:
        return self.ms.state


def a_run(run_id: str = "run") -> Run:
    """Started; its first workflow task completed with an activity and a timer; the activity then started."""
    ms = MutableState(ExecutionState(namespace_id="ns", workflow_id=f"wf-{run_id}", run_id=run_id), T0)
    ms.begin(T0)
    run = Run(ms)
    ms.add_workflow_execution_started(start_attributes())
    run.commit()
    ms.start_workflow_task("r1", "worker")
    run.commit()
    done = ms.add_workflow_task_completed("worker", None, None, None)
    activity = history.ActivityTaskScheduledEventAttributes(activity_id="a1")
    activity.activity_type.name = "A"
    activity.task_queue.name = "q"
    activity.start_to_close_timeout.CopyFrom(duration(seconds(5)))
    activity.schedule_to_close_timeout.CopyFrom(duration(seconds(60)))
    ms.add_activity_task_scheduled(activity)
    ms.add_timer_started("t1", duration(seconds(30)), done.event_id)
    run.commit()
    return run


def write(path: Path, *runs: Run, extra_tasks: tuple[Task, ...] = (), state_blob: bytes | None = None) -> str:
    async def go() -> None:
        store = SqliteStore(str(path))
        await store.open()
        try:
            txn = Transaction(shard_id=0, range_id=await store.acquire_shard(0, "test"))
            for run in runs:
                s = run.state
                blob = state_blob if state_blob is not None else s.SerializeToString()
                txn.executions.append(ExecutionWrite(s.namespace_id, s.workflow_id, s.run_id, blob, 1, 0))
                for batch in run.batches:
                    data = history.History(events=batch).SerializeToString()
                    txn.history.append(
                        HistoryWrite(s.namespace_id, s.run_id, batch[0].event_id, batch[-1].event_id, data)
                    )
            for task_id, task in enumerate([t for run in runs for t in run.tasks] + list(extra_tasks), start=1):
                task.task_id = task_id
                txn.tasks.append(TaskRow(task.category, task_id, 0, task.SerializeToString()))
            await store.commit(txn)
        finally:
            await store.close()

    asyncio.run(go())
    return str(path)


def kinds(problems: list[Problem]) -> set[str]:
    return {p.kind for p in problems}


def planted(tmp_path: Path, *runs: Run, **options: object) -> set[str]:
    """The kinds of problem the planted database has and the same runs, unchanged, do not."""
    baseline = kinds(check_database_problems(write(tmp_path / "baseline.db", a_run(), a_run("other"))))
    return kinds(check_database_problems(write(tmp_path / "planted.db", *runs, **options))) - baseline  # type: ignore[arg-type]


def test_a_consistent_database_passes(tmp_path: Path) -> None:
    assert check_database(write(tmp_path / "ok.db", a_run(), a_run("other"))) == []


def test_stale_rows_are_ignored(tmp_path: Path) -> None:
    run = a_run()
    # left behind by work that moved on: the first workflow task's dispatch (started and completed since)
    dispatch = run.tasks[
        next(i for i, t in enumerate(run.tasks) if t.type == TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK)
    ]
    assert stale(dispatch, run.state)
    scheduled = next(iter(run.state.activities))
    not_started = Task(
        type=TaskType.TASK_TYPE_ACTIVITY_TIMEOUT,
        category=TaskCategory.TASK_CATEGORY_TIMER,
        namespace_id="ns",
        workflow_id="wf-run",
        run_id="run",
        event_id=scheduled,
        attempt=1,
        timeout_type=TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE,
    )
    assert stale(not_started, run.state)
    assert planted(tmp_path, run, extra_tasks=(not_started,)) == set()


def test_a_state_field_no_event_explains_is_reported_with_its_path(tmp_path: Path) -> None:
    run = a_run()
    next(iter(run.state.activities.values())).scheduled.activity_type.name = "B"
    run.state.signal_count = 3
    found = planted(tmp_path, run)
    assert found == {"state differs at activities[*].scheduled.activity_type.name", "state differs at signal_count"}
    (line,) = [p for p in check_database(str(tmp_path / "planted.db")) if "signal_count" in p]
    assert line.startswith("ns/wf-run/run: state differs at signal_count: signal_count: live 3 replayed 0")


def test_a_missing_task_row_is_reported(tmp_path: Path) -> None:
    run = a_run()
    run.tasks = [t for t in run.tasks if t.type != TaskType.TASK_TYPE_USER_TIMER]
    assert planted(tmp_path, run) == {"pending work has no task row: TASK_TYPE_USER_TIMER"}


def test_a_task_row_the_state_does_not_need_is_reported(tmp_path: Path) -> None:
    run = a_run()  # no execution timeout: nothing asks for its timer
    timeout = Task(
        type=TaskType.TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT,
        category=TaskCategory.TASK_CATEGORY_TIMER,
        namespace_id="ns",
        workflow_id="wf-run",
        run_id="run",
    )
    assert planted(tmp_path, run, extra_tasks=(timeout,)) == {
        "outstanding task not regenerated: TASK_TYPE_WORKFLOW_EXECUTION_TIMEOUT"
    }


def test_a_gap_in_the_history_is_reported(tmp_path: Path) -> None:
    run = a_run()
    del run.batches[1]  # the workflow task's start
    assert planted(tmp_path, run) == {"history is not events 1..next_event_id-1"}


def test_a_state_that_does_not_parse_is_reported(tmp_path: Path) -> None:
    assert planted(tmp_path, a_run(), state_blob=b"\xff\xff\xff") == {"state does not parse"}


def test_no_database_no_problems(tmp_path: Path) -> None:
    assert check_database(str(tmp_path / "never-created.db")) == []
    assert not (tmp_path / "never-created.db").exists()
