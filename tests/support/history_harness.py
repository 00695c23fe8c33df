"""The history service assembled from its parts over a MemoryStore, for unit tests that drive the handlers
directly: no gRPC, no server process, no background timers.

`HistoryEngine` is the composition root (it wires Executions, the shards, the outbox, the workflow-task,
activity, update and timer handlers); `NexusOperations` is added as the server adds it. The tests call the
handlers (`engine.workflow_tasks`, `engine.activities`, `engine.updates`, `engine.tasks.execute_timer`,
`harness.nexus`) and inspect `engine.executions` and the store.

What the shards hand on after a commit is recorded in `Harness.handed` (every task, in order):

- dispatch tasks also go to matching, as in the server (`RecordingMatching` records what was added);
- timer tasks stay here (the timer queue is not running): a test fires one with `fire_timer`;
- other transfer tasks (close, child, Nexus start, ...) stay here too, so their rows stay outstanding until a
  test runs them with `run_transfer`, which runs one the way `TaskExecutor.submit_transfer` would (version
  check, handler, acknowledgement) but once, in the test's task, and flushes the acknowledgements so the store
  shows which rows are left.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType, EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.common.tokens import decode_task_token, encode_task_token
from tempyral.config import NexusLimits
from tempyral.history.engine import EngineConfig, HistoryEngine
from tempyral.history.executions import shard_id_for
from tempyral.history.shard import ExecutionEntry, Shard
from tempyral.matching.service import Matching, QueueKey
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.operations import NexusOperations
from tempyral.persistence.store import CurrentRow, Transaction
from tempyral.proto.internal_pb2 import ExecutionState, Task, TaskCategory, TaskToken, TaskType
from tests.support.memory_store import MemoryStore

TIMER = TaskCategory.TASK_CATEGORY_TIMER
TRANSFER = TaskCategory.TASK_CATEGORY_TRANSFER
DISPATCH = frozenset({TaskType.TASK_TYPE_DISPATCH_WORKFLOW_TASK, TaskType.TASK_TYPE_DISPATCH_ACTIVITY_TASK})
NAMESPACE = "default"
TASK_QUEUE = "tq"
ACTIVITY_QUEUE = "atq"
ENDPOINT = "my-endpoint"
ENDPOINT_ID = "endpoint-id"
IDENTITY = "test-worker"
STARTED_WT = ["WORKFLOW_EXECUTION_STARTED", "WORKFLOW_TASK_SCHEDULED", "WORKFLOW_TASK_STARTED"]
COMPLETED_WT = [*STARTED_WT, "WORKFLOW_TASK_COMPLETED"]
POLL_TIMEOUT_S = 0.01  # a poll that finds nothing returns an empty response after this long


class RecordingMatching(Matching):
    """Matching as it is, remembering every (queue, item) added."""

    def __init__(self) -> None:
        super().__init__()
        self.added: list[tuple[QueueKey, Any]] = []

    def add(self, key: QueueKey, item: Any, sticky_normal_name: str = "", route: bool = True) -> None:
        self.added.append((key, item))
        super().add(key, item, sticky_normal_name, route)


class RecordingEngine(HistoryEngine):
    """The engine, with what its shards hand on after commits recorded instead of run in the background."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.handed: list[Task] = []

    def _on_tasks(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.handed.append(task)
            if task.category == TRANSFER and task.type in DISPATCH:
                super()._on_tasks([task])


@dataclass
class Harness:
    store: MemoryStore
    namespaces: NamespaceRegistry
    matching: RecordingMatching
    engine: RecordingEngine
    nexus: NexusOperations
    ns: Namespace

    # ------------------------------------------------------------------ set-up
    async def register_namespace(self, name: str) -> Namespace:
        return await self.namespaces.ensure(name)

    def shard(self, workflow_id: str) -> Shard:
        """The workflow's shard, owned here or not."""
        executions = self.engine.executions
        return executions.shards[shard_id_for(self.ns.id, workflow_id, len(executions.shards))]

    # ------------------------------------------------------------------ workflows
    async def start(self, workflow_id: str, task_queue: str = TASK_QUEUE, **fields: Any) -> str:
        """Start a workflow; its run id."""
        req = ws.StartWorkflowExecutionRequest(
            namespace=self.ns.name,
            workflow_id=workflow_id,
            workflow_type=common.WorkflowType(name="TestWorkflow"),
            task_queue=taskqueue.TaskQueue(name=task_queue),
            identity="test-client",
            request_id=str(uuid.uuid4()),
            **fields,
        )
        result = await self.engine.start_workflow(self.ns, req)
        assert result.started
        return result.run_id

    async def signal(self, workflow_id: str, name: str = "sig", request_id: str = "", run_id: str = "") -> None:
        req = ws.SignalWorkflowExecutionRequest(
            namespace=self.ns.name,
            workflow_execution=common.WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            signal_name=name,
            identity="test-client",
            request_id=request_id,
        )
        await self.engine.signal(self.ns, req)

    async def request_cancel(self, workflow_id: str, request_id: str = "") -> None:
        req = ws.RequestCancelWorkflowExecutionRequest(
            namespace=self.ns.name,
            workflow_execution=common.WorkflowExecution(workflow_id=workflow_id),
            identity="test-client",
            request_id=request_id or str(uuid.uuid4()),
        )
        await self.engine.request_cancel(self.ns, req)

    async def terminate(self, workflow_id: str, reason: str = "test") -> None:
        req = ws.TerminateWorkflowExecutionRequest(
            namespace=self.ns.name,
            workflow_execution=common.WorkflowExecution(workflow_id=workflow_id),
            reason=reason,
            identity="test-client",
        )
        await self.engine.terminate(self.ns, req)

    # ------------------------------------------------------------------ workflow tasks
    async def poll_workflow_task(
        self, task_queue: str = TASK_QUEUE, timeout: float = POLL_TIMEOUT_S
    ) -> ws.PollWorkflowTaskQueueResponse:
        req = ws.PollWorkflowTaskQueueRequest(
            namespace=self.ns.name, task_queue=taskqueue.TaskQueue(name=task_queue), identity=IDENTITY
        )
        return await self.engine.workflow_tasks.poll(self.ns, req, timeout)

    async def next_workflow_task(self, task_queue: str = TASK_QUEUE) -> ws.PollWorkflowTaskQueueResponse:
        """Poll a workflow task that must be there."""
        resp = await self.poll_workflow_task(task_queue)
        assert resp.task_token, "no workflow task was ready"
        return resp

    async def complete_workflow_task(
        self, task_token: bytes, *commands: command_pb.Command, **fields: Any
    ) -> ws.RespondWorkflowTaskCompletedResponse:
        req = ws.RespondWorkflowTaskCompletedRequest(
            namespace=self.ns.name, task_token=task_token, commands=list(commands), identity=IDENTITY, **fields
        )
        return await self.engine.workflow_tasks.respond_completed(self.ns, req)

    async def fail_workflow_task(
        self,
        task_token: bytes,
        cause: int = WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_WORKFLOW_WORKER_UNHANDLED_FAILURE,
    ) -> None:
        req = ws.RespondWorkflowTaskFailedRequest(
            namespace=self.ns.name,
            task_token=task_token,
            cause=cause,  # type: ignore[arg-type]
            identity=IDENTITY,
        )
        await self.engine.workflow_tasks.respond_failed(self.ns, req)

    async def run_workflow_task(self, *commands: command_pb.Command, task_queue: str = TASK_QUEUE) -> None:
        """Poll the pending workflow task and complete it with `commands`."""
        resp = await self.next_workflow_task(task_queue)
        await self.complete_workflow_task(resp.task_token, *commands)

    # ------------------------------------------------------------------ activities
    async def poll_activity_task(
        self, task_queue: str = ACTIVITY_QUEUE, timeout: float = POLL_TIMEOUT_S
    ) -> ws.PollActivityTaskQueueResponse:
        req = ws.PollActivityTaskQueueRequest(
            namespace=self.ns.name, task_queue=taskqueue.TaskQueue(name=task_queue), identity=IDENTITY
        )
        return await self.engine.activities.poll(self.ns, req, timeout)

    # ------------------------------------------------------------------ timers and outstanding tasks
    async def fire_timer(self, task: Task) -> None:
        """Run a timer task now, whatever its time."""
        await self.engine.tasks.execute_timer(task)

    def handed_timers(self, task_type: int | None = None, workflow_id: str = "") -> list[Task]:
        """The timer tasks the shards handed on, in order (of one type, of one workflow)."""
        return [
            t
            for t in self.engine.handed
            if t.category == TIMER
            and (task_type is None or t.type == task_type)
            and (not workflow_id or t.workflow_id == workflow_id)
        ]

    def handed_transfers(self, task_type: int) -> list[Task]:
        return [t for t in self.engine.handed if t.category == TRANSFER and t.type == task_type]

    async def outstanding(self, category: int | None = None) -> list[Task]:
        """The task rows in the store (every shard), acknowledgements flushed first."""
        await self.engine.outbox.flush()
        out: list[Task] = []
        for shard in self.engine.shards:
            for cat in (TRANSFER, TIMER) if category is None else (category,):
                out.extend(Task.FromString(data) for _, data in await self.store.load_tasks(shard.shard_id, cat))
        return out

    async def outstanding_types(self, workflow_id: str = "", category: int | None = None) -> list[str]:
        """Sorted short names of the outstanding task rows (of one workflow): e.g. "USER_TIMER"."""
        tasks = await self.outstanding(category)
        return sorted(
            TaskType.Name(t.type).removeprefix("TASK_TYPE_")
            for t in tasks
            if not workflow_id or t.workflow_id == workflow_id
        )

    # ------------------------------------------------------------------ reading what was written
    async def events(self, workflow_id: str, run_id: str = "") -> list[history.HistoryEvent]:
        """The run's committed history, through the update path's reader (cache or store)."""
        executions = self.engine.executions
        async with executions.locked(self.ns.id, workflow_id, run_id) as (shard, entry, ms):
            return await executions.events(shard, entry, ms, 1, ms.state.next_event_id)

    async def event_types(self, workflow_id: str, run_id: str = "") -> list[str]:
        return [event_name(e) for e in await self.events(workflow_id, run_id)]

    async def stored_events(self, workflow_id: str, run_id: str = "") -> list[history.HistoryEvent]:
        """The run's history as the store has it (no cache), on the run's first branch."""
        run_id = run_id or await self.current_run_id(workflow_id)
        out: list[history.HistoryEvent] = []
        for blob in await self.store.read_history(self.ns.id, run_id, 1, 1 << 62):
            out.extend(history.History.FromString(blob).events)
        return out

    async def state(self, workflow_id: str, run_id: str = "") -> ExecutionState:
        """The run's state through the update path (cache, or the store on a miss)."""
        ms = await self.engine.executions.read_state(self.ns.id, workflow_id, run_id)
        out = ExecutionState()
        out.CopyFrom(ms.state)
        return out

    async def stored_state(self, workflow_id: str, run_id: str = "") -> ExecutionState:
        run_id = run_id or await self.current_run_id(workflow_id)
        row = await self.store.get_execution(self.ns.id, workflow_id, run_id)
        assert row is not None
        return ExecutionState.FromString(row.state)

    async def current(self, workflow_id: str) -> CurrentRow | None:
        """The current-run pointer as stored."""
        return await self.store.get_current(self.ns.id, workflow_id)

    async def current_run_id(self, workflow_id: str) -> str:
        row = await self.current(workflow_id)
        assert row is not None
        return row.run_id

    def cache_entry(self, workflow_id: str, run_id: str) -> ExecutionEntry | None:
        return self.shard(workflow_id).peek((self.ns.id, workflow_id, run_id))

    async def close(self) -> None:
        await self.engine.stop()
        await self.store.close()


def event_name(event: history.HistoryEvent) -> str:
    """EVENT_TYPE_WORKFLOW_TASK_SCHEDULED -> WORKFLOW_TASK_SCHEDULED"""
    return EventType.Name(event.event_type).removeprefix("EVENT_TYPE_")


def with_token(task_token: bytes, change: Callable[[TaskToken], None]) -> bytes:
    """The task token with a field changed (a stale stamp, another attempt, ...)."""
    token = decode_task_token(task_token)
    change(token)
    return encode_task_token(token)


def command(command_type: int, **attributes: Any) -> command_pb.Command:
    """command(CommandType.COMMAND_TYPE_START_TIMER, start_timer_command_attributes=...)"""
    return command_pb.Command(command_type=command_type, **attributes)  # type: ignore[arg-type]


def complete_workflow() -> command_pb.Command:
    return command(
        CommandType.COMMAND_TYPE_COMPLETE_WORKFLOW_EXECUTION,
        complete_workflow_execution_command_attributes=command_pb.CompleteWorkflowExecutionCommandAttributes(),
    )


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


async def cancelled_while_committing(h: Harness, call: Coroutine[Any, Any, object]) -> None:
    """Run `call` and cancel it once the database has committed its transaction but before the answer came back (a
    client whose deadline passed, a node that passed the call on and died); the call must end cancelled."""
    committed, answer = asyncio.Event(), asyncio.Event()
    real_commit = h.store.commit

    async def commit(txn: Transaction) -> None:
        await real_commit(txn)  # durable now...
        committed.set()
        await answer.wait()  # ...but the database's answer has not come back yet

    h.store.commit = commit  # type: ignore[method-assign]
    try:
        running = asyncio.ensure_future(call)
        await committed.wait()
        running.cancel()  # the caller went away
        await asyncio.sleep(0)
        answer.set()
        try:
            await running
        except asyncio.CancelledError:
            pass
        else:
            raise AssertionError("the call was not cancelled")
    finally:
        h.store.commit = real_commit  # type: ignore[method-assign]


async def idle_run(h: Harness, workflow_id: str = "wf") -> str:
    """A running workflow whose first task completed without commands, nothing pending: its run id."""
    run_id = await h.start(workflow_id)
    await h.run_workflow_task()
    assert await h.event_types(workflow_id) == COMPLETED_WT
    assert not (await h.stored_state(workflow_id)).workflow_task.scheduled
    return run_id


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


def start_timer(timer_id: str = "t1", seconds: int = 60) -> command_pb.Command:
    """A StartTimer command."""
    return command(
        CommandType.COMMAND_TYPE_START_TIMER,
        start_timer_command_attributes=command_pb.StartTimerCommandAttributes(
            timer_id=timer_id, start_to_fire_timeout=Duration(seconds=seconds)
        ),
    )


@asynccontextmanager
async def open_harness(num_shards: int = 1) -> AsyncIterator[Harness]:
    """A harness with the namespace NAMESPACE registered and every shard acquired."""
    store = MemoryStore()
    await store.open()
    namespaces = NamespaceRegistry(store, "active")
    await namespaces.load()
    ns = await namespaces.ensure(NAMESPACE)
    matching = RecordingMatching()
    engine = RecordingEngine(store, namespaces, matching, EngineConfig(num_shards=num_shards, owner="test"))
    for shard in engine.shards:
        await shard.acquire()
    nexus = NexusOperations(engine.executions, NexusLimits())
    engine.tasks.timer_handlers.update(nexus.timer_handlers())
    engine.find_endpoint_id = lambda name: ENDPOINT_ID if name == ENDPOINT else None
    harness = Harness(store, namespaces, matching, engine, nexus, ns)
    try:
        yield harness
    finally:
        await harness.close()
