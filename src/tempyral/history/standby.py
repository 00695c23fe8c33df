"""Tasks of namespaces that are standby on this cluster: held (parked) here, not executed, until the
namespace fails over to this cluster (docs/DESIGN.md §11).

A standby cluster fires no timers and dispatches no tasks: the active cluster does that work and
replicates its outcome. Each parked task keeps its outbox row, so a restart parks it again. When
replicated events make a parked task pointless (the timer fired on the active, the activity
completed), the applier drops it with its row (`obsolete`); at failover the rest are released to
the normal queues, where the usual staleness checks apply.
"""

from __future__ import annotations

from temporalio.api.enums.v1 import TimeoutType

from tempyral.proto.internal_pb2 import Task, TaskCategory, TaskType

RunKey = tuple[str, str]  # workflow id, run id
SCHEDULE_TO_START = TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START


def task_key(task: Task) -> bytes:
    """What identifies a task's work regardless of its row: its fields without the task id and shard, and
    without the creation time of a transfer task (a task regenerated later for the same work is the same)."""
    copy = Task()
    copy.CopyFrom(task)
    copy.ClearField("task_id")
    copy.ClearField("shard_id")
    if copy.category == TaskCategory.TASK_CATEGORY_TRANSFER or (
        copy.type == TaskType.TASK_TYPE_ACTIVITY_TIMEOUT and copy.timeout_type == SCHEDULE_TO_START
    ):
        # a transfer task's time is when it was made; an activity's schedule-to-start timeout counts from when
        # its dispatch was made (regenerated later, it would be later): the same work either way
        copy.ClearField("visibility_time")
    return copy.SerializeToString(deterministic=True)


class StandbyTasks:
    def __init__(self) -> None:
        self._parked: dict[str, dict[RunKey, list[Task]]] = {}  # namespace id -> run -> tasks
        self._count = 0

    def park(self, task: Task) -> None:
        runs = self._parked.setdefault(task.namespace_id, {})
        runs.setdefault((task.workflow_id, task.run_id), []).append(task)
        self._count += 1

    def release(self, namespace_id: str) -> list[Task]:
        """Every task parked for the namespace (it is active here now), oldest first."""
        runs = self._parked.pop(namespace_id, {})
        tasks = [task for run_tasks in runs.values() for task in run_tasks]
        self._count -= len(tasks)
        return sorted(tasks, key=lambda t: t.task_id)

    def parked(self, namespace_id: str, workflow_id: str, run_id: str) -> list[Task]:
        return list(self._parked.get(namespace_id, {}).get((workflow_id, run_id), []))

    def not_wanted(self, namespace_id: str, workflow_id: str, run_id: str, wanted: set[bytes]) -> list[Task]:
        """The run's parked tasks whose work is not in `wanted` (the keys of the tasks the run's state needs now):
        their rows go in the transaction that made them pointless, and `drop` forgets them once it committed."""
        return [t for t in self.parked(namespace_id, workflow_id, run_id) if task_key(t) not in wanted]

    def drop(self, tasks: list[Task]) -> None:
        """Forget parked tasks whose rows are gone."""
        ids = {t.task_id for t in tasks}
        for task in tasks:
            runs = self._parked.get(task.namespace_id)
            run_tasks = runs.get((task.workflow_id, task.run_id)) if runs else None
            if not runs or not run_tasks:
                continue
            keep = [t for t in run_tasks if t.task_id not in ids]
            self._count -= len(run_tasks) - len(keep)
            if keep:
                runs[(task.workflow_id, task.run_id)] = keep
            else:
                del runs[(task.workflow_id, task.run_id)]

    def forget_run(self, namespace_id: str, workflow_id: str, run_id: str) -> list[Task]:
        """The run was deleted here (retention): its parked tasks, whose rows the caller deletes."""
        runs = self._parked.get(namespace_id)
        if not runs:
            return []
        tasks = runs.pop((workflow_id, run_id), [])
        self._count -= len(tasks)
        return tasks

    def forget_shard(self, shard_id: int) -> None:
        """The shard moved to another node, which parks its tasks there."""
        for runs in self._parked.values():
            for key in list(runs):
                keep = [t for t in runs[key] if t.shard_id != shard_id]
                self._count -= len(runs[key]) - len(keep)
                if keep:
                    runs[key] = keep
                else:
                    del runs[key]

    def __len__(self) -> int:
        return self._count
