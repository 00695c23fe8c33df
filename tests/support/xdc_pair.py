"""Two in-process clusters for the unit tests of history replication (docs/DESIGN.md §11): "a" (initial failover
version 1) and "b" (2), increment 10, each a history harness over its own MemoryStore that knows the other as a
remote cluster. The global namespace NAMESPACE ("g", clusters a and b) has the same id on both; by default it is
active in a (failover version 1), so a is the source and b the standby target.

`XdcEngine` is the harness's recording engine, but what the real engine's `_on_tasks` decides about standby and
replication is left to it: replication tasks go to `on_replication_tasks` (recorded in `Cluster.replication`),
and every task of a namespace standby here goes through `HistoryEngine._on_tasks`, which parks it. Tasks of a
namespace active here stay recorded (timers, transfers) or go to matching (dispatches), as in the harness.

Losing events a cluster meets while standby go to the other cluster's re-application directly (`forwarder`, the
ReapplyEvents call without the network). `replicate(source, target)` is the sender and receiver without the
network: each REPLICATE_HISTORY task the source committed since the last call is turned into its branch's events
and version history (`Executions.committed_events`, gaps fetched from the same branch) and each
REPLICATE_ACTIVITY into the activity's state, and applied on the target with `ReplicationApplier`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from temporalio.api.command.v1 import message_pb2 as command_pb
from temporalio.api.common.v1 import message_pb2 as common
from temporalio.api.enums.v1 import CommandType
from temporalio.api.history.v1 import message_pb2 as history
from temporalio.api.taskqueue.v1 import message_pb2 as taskqueue

from tempyral.cluster.metadata import ClusterIdentity, ClusterMetadata
from tempyral.common.errors import NotFound
from tempyral.config import NexusLimits
from tempyral.history import task_generator
from tempyral.history.engine import EngineConfig, HistoryEngine
from tempyral.history.reapply import reapply
from tempyral.history.replication import ForwardReapply, ReplicationApplier
from tempyral.namespace.registry import Namespace, NamespaceRegistry
from tempyral.nexus.operations import NexusOperations
from tempyral.proto.internal_pb2 import ExecutionState, NamespaceRecord, Task, TaskCategory, TaskType
from tempyral.proto.replication_pb2 import ClusterMetadataRecord
from tests.support.history_harness import (
    DISPATCH,
    ENDPOINT,
    ENDPOINT_ID,
    TASK_QUEUE,
    Harness,
    RecordingEngine,
    RecordingMatching,
    TaskKey,
    command,
    task_keys,
)
from tests.support.memory_store import MemoryStore

NAMESPACE = "g"
REPLICATION = TaskCategory.TASK_CATEGORY_REPLICATION
INCREMENT = 10
INITIAL_VERSIONS = {"a": 1, "b": 2, "c": 3}


class XdcEngine(RecordingEngine):
    """The recording engine, with the real engine's routing of replication tasks and of standby namespaces."""

    def _on_tasks(self, tasks: list[Task]) -> None:
        for task in tasks:
            self.handed.append(task)
            ns = self.namespaces.find_by_id(task.namespace_id)
            standby = ns is not None and not self.namespaces.is_active(ns)
            if (
                task.category == REPLICATION
                or standby
                or (task.category == TaskCategory.TASK_CATEGORY_TRANSFER and task.type in DISPATCH)
            ):
                HistoryEngine._on_tasks(self, [task])


@dataclass
class Cluster:
    name: str
    h: Harness
    clusters: ClusterMetadata
    applier: ReplicationApplier
    # Every replication task its shards committed, in order; `replicate` consumes them from `sent` on.
    replication: list[Task] = field(default_factory=list)
    sent: int = 0

    @property
    def engine(self) -> XdcEngine:
        engine = self.h.engine
        assert isinstance(engine, XdcEngine)
        return engine

    @property
    def namespaces(self) -> NamespaceRegistry:
        return self.h.namespaces

    @property
    def ns(self) -> Namespace:
        return self.namespaces.get(NAMESPACE)

    def parked(self, workflow_id: str, run_id: str) -> list[Task]:
        return self.engine.executions.standby.parked(self.ns.id, workflow_id, run_id)

    async def fail_over(self, to: str) -> Namespace:
        """The namespace's record as a failover to `to` leaves it (the next version of `to`), saved here."""
        record = NamespaceRecord()
        record.CopyFrom(self.ns.record)
        record.failover_version = self.clusters.next_failover_version(to, record.failover_version + 1)
        record.replication_config.active_cluster_name = to
        return await self.namespaces.save(record, failover=True)


def global_record(
    namespaces: NamespaceRegistry, active: str, clusters: tuple[str, ...] = ("a", "b")
) -> NamespaceRecord:
    record = namespaces.new_record(NAMESPACE)
    record.is_global_namespace = True
    record.failover_version = INITIAL_VERSIONS[active]
    rc = record.replication_config
    rc.active_cluster_name = active
    del rc.clusters[:]
    for name in clusters:
        rc.clusters.add(cluster_name=name)
    return record


async def open_cluster(
    name: str, remotes: tuple[str, ...], record: NamespaceRecord | None, num_shards: int = 1
) -> Cluster:
    """A cluster `name` knowing `remotes`, with a copy of `record` (None: none) as its namespace NAMESPACE."""
    store = MemoryStore()
    await store.open()
    clusters = ClusterMetadata(store)
    await clusters.load(ClusterIdentity(name, INITIAL_VERSIONS[name], INCREMENT), num_shards, f"{name}.db")
    for remote in remotes:
        await clusters.upsert(
            ClusterMetadataRecord(
                cluster_name=remote,
                initial_failover_version=INITIAL_VERSIONS[remote],
                failover_version_increment=INCREMENT,
                history_shard_count=num_shards,
                is_global_namespace_enabled=True,
                is_connection_enabled=True,
                cluster_address=f"{remote}.invalid:7233",
            )
        )
    namespaces = NamespaceRegistry(store, clusters)
    await namespaces.load()
    default = await namespaces.ensure("default")
    if record is not None:
        copy = NamespaceRecord()
        copy.CopyFrom(record)
        await namespaces.create(copy)
    matching = RecordingMatching()
    engine = XdcEngine(store, namespaces, matching, EngineConfig(num_shards=num_shards, owner=name))
    for shard in engine.shards:
        await shard.acquire()
    nexus = NexusOperations(engine.executions, NexusLimits())
    engine.tasks.timer_handlers.update(nexus.timer_handlers())
    engine.find_endpoint_id = lambda n: ENDPOINT_ID if n == ENDPOINT else None
    ns = namespaces.find(NAMESPACE) or default
    cluster = Cluster(
        name,
        Harness(store, namespaces, matching, engine, nexus, ns),
        clusters,
        ReplicationApplier(engine.executions, namespaces),
    )
    engine.on_replication_tasks = cluster.replication.extend
    return cluster


@asynccontextmanager
async def open_pair(active: str = "a", num_shards: int = 1) -> AsyncIterator[tuple[Cluster, Cluster]]:
    """Clusters a and b sharing the global namespace NAMESPACE, active in `active`."""
    scratch = NamespaceRegistry(MemoryStore(), "a")
    record = global_record(scratch, active)
    a = await open_cluster("a", ("b",), record, num_shards)
    b = await open_cluster("b", ("a",), record, num_shards)
    forward = forwarder({"a": a, "b": b})
    a.applier.forward = b.applier.forward = forward
    try:
        yield a, b
    finally:
        await a.h.close()
        await b.h.close()


def forwarder(clusters: dict[str, Cluster]) -> ForwardReapply:
    """The ReapplyEvents call without the network: the named cluster re-applies the losing events itself."""

    async def forward(
        target: str, namespace_id: str, workflow_id: str, run_id: str, events: list[history.HistoryEvent]
    ) -> None:
        other = clusters[target]
        await reapply(other.engine.executions, other.namespaces, namespace_id, workflow_id, run_id, events)

    return forward


async def no_gap(first: int, next_event_id: int) -> list[history.HistoryEvent]:
    raise AssertionError(f"events {first}..{next_event_id - 1} were asked for: no gap was expected")


async def replicate(source: Cluster, target: Cluster) -> int:
    """Apply on `target` the replication tasks `source` committed since the last call; how many applied."""
    tasks, source.sent = source.replication[source.sent :], len(source.replication)
    executions = source.engine.executions
    for task in tasks:
        if task.type == TaskType.TASK_TYPE_REPLICATE_HISTORY:
            try:
                events, items = await executions.committed_events(
                    task.namespace_id, task.workflow_id, task.run_id, task.event_id, task.next_event_id, task.branch_id
                )
            except NotFound:
                continue  # deleted since, as the sender skips it
            if not events:
                continue
            source_ms = await executions.read_state(task.namespace_id, task.workflow_id, task.run_id)

            async def fetch_missing(first: int, next_event_id: int, task: Task = task) -> list[history.HistoryEvent]:
                return (
                    await executions.committed_events(
                        task.namespace_id, task.workflow_id, task.run_id, first, next_event_id, task.branch_id
                    )
                )[0]

            await target.applier.apply_events(
                task.namespace_id,
                task.workflow_id,
                task.run_id,
                events,
                fetch_missing,
                source_history=items,
                reapplied=list(source_ms.state.reapplied_events),
            )
        elif task.type == TaskType.TASK_TYPE_REPLICATE_ACTIVITY:
            ms = await executions.read_state(task.namespace_id, task.workflow_id, task.run_id)
            ai = ms.state.activities.get(task.event_id)
            if ai is not None:  # closed since: its events say so
                await target.applier.apply_activity(task.namespace_id, task.workflow_id, task.run_id, ai)
        else:
            raise AssertionError(f"not a replication task: {task}")
    return len(tasks)


def continue_as_new() -> command_pb.Command:
    """A ContinueAsNewWorkflowExecution command: the same workflow type, on TASK_QUEUE."""
    return command(
        CommandType.COMMAND_TYPE_CONTINUE_AS_NEW_WORKFLOW_EXECUTION,
        continue_as_new_workflow_execution_command_attributes=command_pb.ContinueAsNewWorkflowExecutionCommandAttributes(
            workflow_type=common.WorkflowType(name="TestWorkflow"), task_queue=taskqueue.TaskQueue(name=TASK_QUEUE)
        ),
    )


def without_task_ids(events: list[history.HistoryEvent]) -> list[history.HistoryEvent]:
    """Events as both clusters have them: each cluster's commit numbers them with its own task ids."""
    out = []
    for event in events:
        copy = history.HistoryEvent()
        copy.CopyFrom(event)
        copy.task_id = 0
        out.append(copy)
    return out


def needed(state: ExecutionState, retention_ns: int) -> list[TaskKey]:
    """The work the state needs, by `task_keys`: what a standby's parked tasks must be."""
    return task_keys(task_generator.regenerate(state, time.time_ns(), retention_ns))
