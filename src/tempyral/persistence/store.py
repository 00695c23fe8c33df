"""The storage interface: what the history, matching, namespace and visibility layers need.

One mutation of an execution is one `Transaction`, committed atomically with conditions on
the execution's db_version, the current-run pointer and the shard's range_id (docs/DESIGN.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from tempyral.common.clock import int64_ns
from tempyral.persistence.visibility_sql import Cursor, Field, Filter
from tempyral.proto.internal_pb2 import HistoryBranch


@dataclass(slots=True)
class ExecutionWrite:
    namespace_id: str
    workflow_id: str
    run_id: str
    state: bytes
    db_version: int
    expected_db_version: int  # 0: the row is new


@dataclass(slots=True)
class CurrentWrite:
    """Points workflow_id at run_id. expected_run_id None: no row may exist yet."""

    namespace_id: str
    workflow_id: str
    run_id: str
    status: int
    start_request_id: str
    expected_run_id: str | None


@dataclass(slots=True)
class HistoryWrite:
    namespace_id: str
    run_id: str
    first_event_id: int
    last_event_id: int
    data: bytes  # a serialized temporal.api.history.v1.History
    branch_id: str = ""  # the history branch the events go to; "": the run's first branch (its id is run_id)


@dataclass(slots=True)
class DlqRow:
    """A replication task the receiver gave up on (cluster/receiver.py), keyed by source cluster, shard and task id."""

    source_cluster: str
    source_shard: int
    task_id: int
    namespace_id: str
    workflow_id: str
    run_id: str
    data: bytes  # a serialized tempyral ReplicationTask
    error: str
    enqueue_ns: int
    attempts: int


@dataclass(slots=True)
class TaskRow:
    category: int
    task_id: int
    visibility_ns: int  # 64-bit: a later instant is stored as the last one (the task in `data` keeps it)
    data: bytes  # a serialized tempyral Task

    def __post_init__(self) -> None:
        self.visibility_ns = int64_ns(self.visibility_ns)


@dataclass(slots=True)
class VisibilityRow:
    namespace_id: str
    run_id: str
    workflow_id: str
    workflow_type: str
    status: int
    start_time: int
    execution_time: int
    close_time: int | None
    task_queue: str
    history_length: int
    history_size_bytes: int
    memo: bytes
    search_attributes: bytes  # serialized SearchAttributes, as given
    search_attributes_json: str  # decoded values, for filtering
    parent_workflow_id: str = ""
    parent_run_id: str = ""
    root_workflow_id: str = ""
    root_run_id: str = ""
    state_transition_count: int = 0
    sort_values: tuple[Any, ...] = ()  # the row's ORDER BY values, when the listing has one

    def __post_init__(self) -> None:
        # The time columns are 64-bit nanoseconds: an instant past 2262 is stored as the last one.
        self.start_time = int64_ns(self.start_time)
        self.execution_time = int64_ns(self.execution_time)
        if self.close_time is not None:
            self.close_time = int64_ns(self.close_time)


@dataclass(slots=True)
class Transaction:
    shard_id: int
    range_id: int
    executions: list[ExecutionWrite] = field(default_factory=list)
    current: list[CurrentWrite] = field(default_factory=list)
    history: list[HistoryWrite] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    deleted_tasks: list[tuple[int, int]] = field(default_factory=list)  # (category, task_id)
    visibility: list[VisibilityRow] = field(default_factory=list)


@dataclass(slots=True)
class CurrentRow:
    run_id: str
    status: int
    start_request_id: str


@dataclass(slots=True)
class ExecutionRow:
    state: bytes
    db_version: int


class VisibilityQueryFailed(Exception):
    """The database refused a compiled visibility filter (the reference reports these as
    "<Operation> operation failed.: SQL logic error: <message> (1)")."""


@dataclass(slots=True)
class VisibilityQuery:
    """A compiled visibility filter (see visibility_sql), how to group a count, and which page to read."""

    filter: Filter | None = None
    group_by: str = ""  # a search attribute name: ExecutionStatus (or TemporalNamespaceDivision)
    order_by: tuple[tuple[Field, bool], ...] = ()  # (attribute, descending); empty: the default order
    page_size: int = 1000
    cursor: Cursor | None = None


@dataclass(frozen=True, slots=True)
class EndpointRow:
    """A Nexus endpoint as stored: live or a tombstone, with what orders its changes across clusters
    (nexus/endpoints.py)."""

    id: str
    name: str
    version: int
    data: bytes  # the API's Endpoint message (a tombstone's: its last state)
    deleted: bool
    seq: int  # this cluster's change counter when the row was last written (what peers pull by)
    stamp: int  # hybrid logical clock of the last change
    origin: str  # the cluster that made the last change
    created: int  # the stamp of the creation


@dataclass(frozen=True, slots=True)
class MemberRow:
    """A node of this cluster, as its membership row says (cluster/membership.py)."""

    node: str  # the node's name, unique among live nodes
    session: str  # a fresh id per process: tells a restarted node from the one that held the name before
    address: str  # host:port of its gRPC API, where other nodes call it
    http_address: str  # host:port of its HTTP API
    heartbeat_ns: int  # the node's clock at its last heartbeat
    started_ns: int


@dataclass(frozen=True, slots=True)
class ShardRow:
    shard_id: int
    range_id: int
    owner: str  # a node name; "" when the last owner released it


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch operation job as stored (batch/): its key, the shard whose owner runs it, and its record."""

    namespace_id: str
    job_id: str
    shard_id: int
    running: bool
    start_time: int  # ns
    close_time: int  # ns; the last int64 instant while running (running jobs list first, as on the reference)
    data: bytes  # a serialized tempyral BatchOperationRecord


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def get_or_set_metadata(self, key: str, default: str) -> str: ...

    # shards
    async def acquire_shard(self, shard_id: int, owner: str) -> int: ...

    async def extend_shard_range(self, shard_id: int, range_id: int) -> int: ...

    async def list_shards(self) -> list[ShardRow]:
        """Every shard that was ever acquired, by id."""
        ...

    async def release_shard(self, shard_id: int, range_id: int) -> bool:
        """Clear the owner of a shard still held under `range_id` (a node handing it over); False if it moved."""
        ...

    # membership (several nodes against one database)
    async def join_member(self, row: MemberRow, stale_before_ns: int) -> MemberRow | None:
        """Insert the node's row, or replace a row of its name whose heartbeat is older than `stale_before_ns` (a
        node that died) or whose session is the row's own. Returns None when it joined, or the live row of another
        session that holds the name (the caller must not run)."""
        ...

    async def heartbeat_member(self, node: str, session: str, heartbeat_ns: int) -> bool:
        """Set the heartbeat of the row of (node, session); False when no such row exists (another session took
        the name, or the row was removed)."""
        ...

    async def list_members(self) -> list[MemberRow]:
        """Every membership row, live or not, by node name."""
        ...

    async def leave_member(self, node: str, session: str) -> None:
        """Remove the row of (node, session), if it is still there."""
        ...

    # executions
    async def commit(self, txn: Transaction) -> None: ...

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> ExecutionRow | None: ...

    async def get_current(self, namespace_id: str, workflow_id: str) -> CurrentRow | None: ...

    async def read_history(
        self,
        namespace_id: str,
        run_id: str,
        first_event_id: int,
        next_event_id: int,
        branch: HistoryBranch | None = None,
    ) -> list[bytes]:
        """Serialized History batches that hold, in event order, every event of `branch` (None: the run's first
        branch) in [first_event_id, next_event_id). Callers filter by event id: a batch may also hold events of
        the same branch outside the range. Events of other branches are never returned, even where a stored batch
        of an ancestor runs past the point the branch forked at (persistence/branches.py)."""
        ...

    async def delete_history_branch(self, run_id: str, branch_id: str) -> int:
        """Delete the rows of one branch of the run (not those of its ancestors), for a branch no longer used; the
        number of rows deleted. A branch that another one still reads its prefix from must be kept."""
        ...

    async def delete_execution(
        self, shard_id: int, range_id: int, namespace_id: str, workflow_id: str, run_id: str
    ) -> None:
        """Delete the run: its state, current pointer, visibility row and the history of all its branches."""
        ...

    async def load_tasks(self, shard_id: int, category: int) -> list[tuple[int, bytes]]: ...

    async def load_tasks_due(
        self, shard_id: int, category: int, from_ns: int, before_ns: int
    ) -> list[tuple[int, bytes]]:
        """The category's rows whose visibility time is in [from_ns, before_ns), in id order (the timers of a
        window)."""
        ...

    async def delete_tasks(self, shard_id: int, range_id: int, keys: list[tuple[int, int]]) -> None:
        """Delete these (category, task id) rows of the shard; ShardOwnershipLost when the shard's range is no longer
        `range_id` (another node owns it: it deletes nothing)."""
        ...

    async def read_tasks(self, shard_id: int, category: int, after_task_id: int, limit: int) -> list[tuple[int, bytes]]:
        """Up to `limit` task rows of the category with ids above `after_task_id`, in id order (replication)."""
        ...

    async def delete_tasks_through(self, shard_id: int, range_id: int, category: int, task_id: int) -> int:
        """Delete the category's rows with ids up to `task_id` (acknowledged replication tasks); how many.
        ShardOwnershipLost, deleting nothing, when the shard's range is no longer `range_id`."""
        ...

    async def count_tasks(
        self, shard_id: int, category: int, after_task_id: int, before_task_id: int, limit: int
    ) -> int:
        """How many of the category's rows have ids in (after_task_id, before_task_id), counting at most `limit`
        (a replication backlog, without reading the rows)."""
        ...

    # metadata
    async def set_metadata(self, key: str, value: str) -> None: ...

    async def get_metadata(self, key: str) -> str | None: ...

    # the replication DLQ
    async def put_replication_dlq(self, row: DlqRow) -> None:
        """Insert the row, or replace the one with its key (a task that failed again keeps its latest error)."""
        ...

    async def list_replication_dlq(
        self, source_cluster: str, after: tuple[int, int], limit: int, namespace_id: str = ""
    ) -> list[DlqRow]:
        """Up to `limit` rows of the source cluster with (shard, task id) above `after`, in that order; of one
        namespace when `namespace_id` is given."""
        ...

    async def delete_replication_dlq(self, source_cluster: str, keys: list[tuple[int, int]] | None) -> int:
        """Delete the source's rows with these (shard, task id) keys, or all of them for None; how many."""
        ...

    async def count_replication_dlq(self) -> list[tuple[str, str, int]]:
        """(source cluster, namespace id, rows) for every pair with rows."""
        ...

    # clusters: serialized ClusterMetadataRecords by cluster name
    async def load_clusters(self) -> list[bytes]: ...

    async def save_cluster(self, name: str, data: bytes) -> None: ...

    async def delete_cluster(self, name: str) -> bool: ...

    # namespaces
    async def load_namespaces(self) -> list[bytes]: ...

    async def insert_namespace(self, namespace_id: str, name: str, data: bytes) -> None: ...

    async def update_namespace(self, namespace_id: str, data: bytes) -> None: ...

    # Nexus endpoints
    async def load_nexus_endpoints(self) -> list[EndpointRow]:
        """Every endpoint, tombstones included."""
        ...

    async def save_nexus_endpoints(self, rows: list[EndpointRow]) -> None:
        """Each row replaces the one with its id, in order, all or none; raises AlreadyExists when a live row's
        name is another live row's."""

    # batch operations
    async def save_batch(self, shard_id: int, range_id: int, row: BatchRow, create: bool) -> None:
        """Insert the job (`create`: AlreadyExists when its key is taken) or replace it, while the shard is held under
        `range_id` (else ShardOwnershipLost, writing nothing)."""
        ...

    async def get_batch(self, namespace_id: str, job_id: str) -> BatchRow | None: ...

    async def list_batches(self, namespace_id: str, after: tuple[int, int, str] | None, limit: int) -> list[BatchRow]:
        """Up to `limit` jobs of the namespace by (close_time, start_time, job_id) descending, those below `after`."""
        ...

    async def running_batches(self, shard_id: int | None, namespace_id: str = "") -> list[BatchRow]:
        """The running jobs of a shard (None: of every shard), of one namespace when `namespace_id` is given."""
        ...

    # visibility
    async def list_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[VisibilityRow]: ...

    async def count_visibility(self, namespace_id: str, query: VisibilityQuery) -> list[tuple[Any, ...]]:
        """[(count,)], or [(group value, count), ...] when the query groups."""
        ...
