"""Helpers over tests/support/history_harness.py for the orchestration unit tests of reset, reads and transfer
tasks (kept apart from history_harness.py, which other tests share).

Transfer tasks other than dispatches stay with the harness (`Harness.handed`): `run_transfer` runs one the
way `TaskExecutor.submit_transfer` would (version check, handler, acknowledgement) but once, in the test's
task, and flushes the acknowledgements so the store shows which rows are left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue

from tempyral.proto.internal_pb2 import Task, TaskType
from tests.support.history_harness import ACTIVITY_QUEUE, Harness, command

TaskKey = tuple[str, int]  # short task type name, event id


async def run_transfer(h: Harness, task: Task) -> None:
    """Run a transfer task once, as the executor's runner does, and flush the acknowledgements."""
    await h.engine.tasks._transfer(task)
    await h.engine.outbox.flush()


def task_keys(tasks: Iterable[Task]) -> list[TaskKey]:
    """Tasks by (short type name, event id), sorted: what a regenerated task must match."""
    return sorted((TaskType.Name(t.type).removeprefix("TASK_TYPE_"), t.event_id) for t in tasks)


async def outstanding_keys(h: Harness, workflow_id: str, run_id: str) -> list[TaskKey]:
    """The outstanding task rows of one run, by `task_keys`."""
    return task_keys(t for t in await h.outstanding() if t.workflow_id == workflow_id and t.run_id == run_id)


async def eventually(condition: Callable[[], bool], steps: int = 200) -> None:
    """Let other tasks run until `condition` holds (a bounded number of loop turns, no wall-clock wait)."""
    for _ in range(steps):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("the condition did not hold")


def schedule_activity(activity_id: str = "a1", maximum_attempts: int = 3) -> command_pb.Command:
    """A ScheduleActivityTask command: activity type "Greet" on ACTIVITY_QUEUE, 30 s start-to-close."""
    attrs = command_pb.ScheduleActivityTaskCommandAttributes(
        activity_id=activity_id,
        activity_type=common.ActivityType(name="Greet"),
        task_queue=taskqueue.TaskQueue(name=ACTIVITY_QUEUE),
        start_to_close_timeout=Duration(seconds=30),
    )
    attrs.retry_policy.initial_interval.CopyFrom(Duration(seconds=1))
    attrs.retry_policy.maximum_attempts = maximum_attempts
    return command(CommandType.COMMAND_TYPE_SCHEDULE_ACTIVITY_TASK, schedule_activity_task_command_attributes=attrs)
