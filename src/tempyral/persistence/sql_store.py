"""The Store operations both databases answer with the same SQL (sql_ops): each method here runs one shared
operation through the store's driver, so SqliteStore and PostgresStore are only their drivers, their lifecycles and
their visibility queries."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TypeVar

from tempyral.persistence import sql_ops
from tempyral.persistence.sql_ops import Op
from tempyral.persistence.store import (
    BatchRow,
    CurrentRow,
    DlqRow,
    EndpointRow,
    ExecutionRow,
    MemberRow,
    ShardRow,
    Transaction,
)
from tempyral.proto.internal_pb2 import HistoryBranch

T = TypeVar("T")


class SqlStore(ABC):
    @abstractmethod
    async def _write_op(self, op: Op[T]) -> T:
        """Run a shared operation in a write transaction of its own."""

    @abstractmethod
    async def _read_op(self, op: Op[T]) -> T:
        """Run a shared operation that only reads."""

    # ------------------------------------------------------------------ shards
    async def acquire_shard(self, shard_id: int, owner: str) -> int:
        return await self._write_op(sql_ops.acquire_shard(shard_id, owner))

    async def extend_shard_range(self, shard_id: int, range_id: int) -> int:
        return await self._write_op(sql_ops.extend_shard_range(shard_id, range_id))

    async def list_shards(self) -> list[ShardRow]:
        return await self._read_op(sql_ops.list_shards())

    async def release_shard(self, shard_id: int, range_id: int) -> bool:
        return await self._write_op(sql_ops.release_shard(shard_id, range_id))

    # ------------------------------------------------------------------ membership
    async def join_member(self, row: MemberRow, stale_before_ns: int) -> MemberRow | None:
        return await self._write_op(sql_ops.join_member(row, stale_before_ns))

    async def heartbeat_member(self, node: str, session: str, heartbeat_ns: int) -> bool:
        return await self._write_op(sql_ops.heartbeat_member(node, session, heartbeat_ns))

    async def list_members(self) -> list[MemberRow]:
        return await self._read_op(sql_ops.list_members())

    async def leave_member(self, node: str, session: str) -> None:
        await self._write_op(sql_ops.leave_member(node, session))

    # ------------------------------------------------------------------ executions
    async def commit(self, txn: Transaction) -> None:
        await self._write_op(sql_ops.commit(txn))

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRow | None:
        return await self._read_op(sql_ops.get_execution(namespace_id, workflow_id, run_id))

    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentRow | None:
        return await self._read_op(sql_ops.get_current(namespace_id, workflow_id))

    async def read_history(
        self,
        namespace_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        branch: HistoryBranch | None = None,
    ) -> list[bytes]:
        return await self._read_op(sql_ops.read_history(namespace_id, run_id, first_event_id, next_event_id, branch))

    async def delete_history_branch(self, run_id: str, branch_id: str) -> int:
        return await self._write_op(sql_ops.delete_history_branch(run_id, branch_id))

    async def delete_execution(
        self, shard_id: int, range_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        await self._write_op(sql_ops.delete_execution(shard_id, range_id, namespace_id, workflow_id, run_id))

    async def load_tasks(self, shard_id: int, category: int) -> list[tuple[int, bytes]]:
        return await self._read_op(sql_ops.load_tasks(shard_id, category))

    async def load_tasks_due(
        self, shard_id: int, category: int, from_ns: int, before_ns: int
    ) -> list[tuple[int, bytes]]:
        return await self._read_op(sql_ops.load_tasks_due(shard_id, category, from_ns, before_ns))

    async def delete_tasks(self, shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> None:
        await self._write_op(sql_ops.delete_tasks(shard_id, range_id, keys))

    async def read_tasks(self, shard_id: int, category: int, after_task_id: int, limit: int) -> list[tuple[int, bytes]]:
        return await self._read_op(sql_ops.read_tasks(shard_id, category, after_task_id, limit))

    async def count_tasks(
        self, shard_id: int, category: int, after_task_id: int, before_task_id: int, limit: int
    ) -> int:
        return await self._read_op(sql_ops.count_tasks(shard_id, category, after_task_id, before_task_id, limit))

    async def delete_tasks_through(self, shard_id: int, range_id: int, category: int, task_id: int) -> int:
        return await self._write_op(sql_ops.delete_tasks_through(shard_id, range_id, category, task_id))

    # ------------------------------------------------------------------ metadata
    async def get_or_set_metadata(self, key: str, default: str) -> str:
        """The stored value of `key`, storing `default` first if there is none."""
        return await self._write_op(sql_ops.get_or_set_metadata(key, default))

    async def set_metadata(self, key: str, value: str) -> None:
        await self._write_op(sql_ops.set_metadata(key, value))

    async def get_metadata(self, key: str) -> str | None:
        return await self._read_op(sql_ops.get_metadata(key))

    # ------------------------------------------------------------------ replication DLQ
    async def put_replication_dlq(self, row: DlqRow) -> None:
        await self._write_op(sql_ops.put_replication_dlq(row))

    async def list_replication_dlq(
        self, source_cluster: str, after: tuple[int, int], limit: int, namespace_id: str = ""
    ) -> list[DlqRow]:
        return await self._read_op(sql_ops.list_replication_dlq(source_cluster, after, limit, namespace_id))

    async def delete_replication_dlq(self, source_cluster: str, keys: list[tuple[int, int]] | None) -> int:
        return await self._write_op(sql_ops.delete_replication_dlq(source_cluster, keys))

    async def count_replication_dlq(self) -> list[tuple[str, str, int]]:
        return await self._read_op(sql_ops.count_replication_dlq())

    # ------------------------------------------------------------------ clusters
    async def load_clusters(self) -> list[bytes]:
        return await self._read_op(sql_ops.load_clusters())

    async def save_cluster(self, name: str, data: bytes) -> None:
        await self._write_op(sql_ops.save_cluster(name, data))

    async def delete_cluster(self, name: str) -> bool:
        return await self._write_op(sql_ops.delete_cluster(name))

    # ------------------------------------------------------------------ namespaces
    async def load_namespaces(self) -> list[bytes]:
        return await self._read_op(sql_ops.load_namespaces())

    async def insert_namespace(self, namespace_id: str, name: str, data: bytes) -> None:
        await self._write_op(sql_ops.insert_namespace(namespace_id, name, data))

    async def update_namespace(self, namespace_id: str, data: bytes) -> None:
        await self._write_op(sql_ops.update_namespace(namespace_id, data))

    # ------------------------------------------------------------------ Nexus endpoints
    async def load_nexus_endpoints(self) -> list[EndpointRow]:
        return await self._read_op(sql_ops.load_nexus_endpoints())

    async def save_nexus_endpoints(self, rows: list[EndpointRow]) -> None:
        await self._write_op(sql_ops.save_nexus_endpoints(rows))

    # ------------------------------------------------------------------ visibility

    # ------------------------------------------------------------------ batch operations
    async def save_batch(self, shard_id: int, range_id: int, row: BatchRow, create: bool) -> None:
        await self._write_op(sql_ops.save_batch(shard_id, range_id, row, create))

    async def get_batch(self, namespace_id: str, job_id: str) -> BatchRow | None:
        return await self._read_op(sql_ops.get_batch(namespace_id, job_id))

    async def list_batches(self, namespace_id: str, after: tuple[int, int, str] | None, limit: int) -> list[BatchRow]:
        return await self._read_op(sql_ops.list_batches(namespace_id, after, limit))

    async def running_batches(self, shard_id: int | None, namespace_id: str = "") -> list[BatchRow]:
        return await self._read_op(sql_ops.running_batches(shard_id, namespace_id))
