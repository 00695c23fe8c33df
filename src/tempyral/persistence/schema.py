"""The relational schema, shared by the SQLite and PostgreSQL stores. Versioned: add, never edit."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CopyRows:
    """A migration step that copies every row of `source` (a rowid table) into `target`: `INSERT INTO target
    (columns) SELECT expressions FROM source`, run in chunks of rowids so that a store can log its progress."""

    source: str
    target: str
    columns: str
    expressions: str


@dataclass(frozen=True, slots=True)
class FillSearchAttributeTokens:
    """A migration step that computes `visibility.search_attributes_tokens` of the rows written before it existed
    (sql_ops.fill_search_attribute_tokens: the tokens are computed in Python, the same for every database)."""


MIGRATIONS: list[list[str | CopyRows | FillSearchAttributeTokens]] = [
    [
        """CREATE TABLE metadata (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL)""",
        """CREATE TABLE namespaces (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            data BLOB NOT NULL)""",
        """CREATE TABLE shards (
            shard_id INTEGER PRIMARY KEY,
            range_id INTEGER NOT NULL,
            owner TEXT NOT NULL)""",
        """CREATE TABLE executions (
            namespace_id TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            db_version INTEGER NOT NULL,
            state BLOB NOT NULL,
            PRIMARY KEY (namespace_id, workflow_id, run_id))""",
        """CREATE TABLE current_executions (
            namespace_id TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            status INTEGER NOT NULL,
            start_request_id TEXT NOT NULL,
            PRIMARY KEY (namespace_id, workflow_id))""",
        """CREATE TABLE history (
            namespace_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            first_event_id INTEGER NOT NULL,
            last_event_id INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, first_event_id))""",
        """CREATE TABLE tasks (
            shard_id INTEGER NOT NULL,
            category INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            visibility_ns INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (shard_id, category, task_id))""",
        """CREATE TABLE visibility (
            namespace_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            workflow_type TEXT NOT NULL,
            status INTEGER NOT NULL,
            start_time INTEGER NOT NULL,
            execution_time INTEGER NOT NULL,
            close_time INTEGER,
            task_queue TEXT NOT NULL,
            history_length INTEGER NOT NULL,
            history_size_bytes INTEGER NOT NULL,
            state_transition_count INTEGER NOT NULL,
            parent_workflow_id TEXT NOT NULL,
            parent_run_id TEXT NOT NULL,
            root_workflow_id TEXT NOT NULL,
            root_run_id TEXT NOT NULL,
            memo BLOB NOT NULL,
            search_attributes BLOB NOT NULL,
            search_attributes_json TEXT NOT NULL,
            PRIMARY KEY (namespace_id, run_id))""",
        "CREATE INDEX visibility_by_start ON visibility (namespace_id, start_time DESC)",
        "CREATE INDEX visibility_by_workflow_id ON visibility (namespace_id, workflow_id)",
    ],
    [
        # Nexus endpoints: global to the cluster; `data` is the API's Endpoint message.
        """CREATE TABLE nexus_endpoints (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL UNIQUE,
            version INTEGER NOT NULL,
            data BLOB NOT NULL)""",
    ],
    [
        # History branches: a run's history can fork (docs/DESIGN.md §4, persistence/branches.py). Every row belongs to
        # a branch; the rows written before branches existed are on the run's first branch, whose id is the run id.
        # SQLite cannot change a primary key, so the table is rebuilt.
        """CREATE TABLE history_v3 (
            namespace_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            branch_id TEXT NOT NULL,
            first_event_id INTEGER NOT NULL,
            last_event_id INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (run_id, branch_id, first_event_id))""",
        CopyRows(
            source="history",
            target="history_v3",
            columns="namespace_id, run_id, branch_id, first_event_id, last_event_id, data",
            expressions="namespace_id, run_id, run_id, first_event_id, last_event_id, data",
        ),
        "DROP TABLE history",
        "ALTER TABLE history_v3 RENAME TO history",
    ],
    [
        # Cluster metadata: the current cluster's row and one per connected remote cluster (a serialized
        # ClusterMetadataRecord, tempyral/proto/replication.proto).
        """CREATE TABLE clusters (
            name TEXT PRIMARY KEY,
            data BLOB NOT NULL)""",
    ],
    [
        # The replication DLQ: tasks from another cluster the receiver gave up on (a serialized ReplicationTask,
        # tempyral/proto/replication.proto), by source cluster and source shard, until re-applied or purged.
        """CREATE TABLE replication_dlq (
            source_cluster TEXT NOT NULL,
            source_shard INTEGER NOT NULL,
            task_id INTEGER NOT NULL,
            namespace_id TEXT NOT NULL,
            workflow_id TEXT NOT NULL,
            run_id TEXT NOT NULL,
            data BLOB NOT NULL,
            error TEXT NOT NULL,
            enqueue_ns INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            PRIMARY KEY (source_cluster, source_shard, task_id))""",
    ],
    [
        # 6: Nexus endpoints replicated between clusters (nexus/endpoints.py): a deleted endpoint stays as a
        # tombstone, so names are unique among live rows only; `seq` is what peers pull changes by, `stamp` and
        # `origin` order changes last-writer-wins, `created` settles two endpoints created with one name.
        # Endpoints from before take seq = rowid (the registry counts on from the largest) and stamps of 0.
        """CREATE TABLE nexus_endpoints_v6 (
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            data BLOB NOT NULL,
            deleted INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            stamp INTEGER NOT NULL,
            origin TEXT NOT NULL,
            created INTEGER NOT NULL)""",
        CopyRows(
            source="nexus_endpoints",
            target="nexus_endpoints_v6",
            columns="id, name, version, data, deleted, seq, stamp, origin, created",
            expressions="id, name, version, data, 0, rowid, 0, '', 0",
        ),
        "DROP TABLE nexus_endpoints",
        "ALTER TABLE nexus_endpoints_v6 RENAME TO nexus_endpoints",
        "CREATE UNIQUE INDEX nexus_endpoints_live_name ON nexus_endpoints (name) WHERE deleted = 0",
    ],
    [
        # 7: the nodes serving this cluster from one database (nodes/membership.py): one row per node name, held
        # by one process (`session`) at a time, with the node's addresses and its last heartbeat.
        """CREATE TABLE cluster_members (
            node TEXT PRIMARY KEY,
            session TEXT NOT NULL,
            address TEXT NOT NULL,
            http_address TEXT NOT NULL,
            heartbeat_ns INTEGER NOT NULL,
            started_ns INTEGER NOT NULL)""",
    ],
    [
        # 8: the words of each search attribute's value, as the list filter's Keyword-list and Text conditions match
        # them (visibility_sql.search_attribute_tokens), computed when the row is written: every database then
        # answers those conditions alike, with a substring search instead of a function of its own.
        "ALTER TABLE visibility ADD COLUMN search_attributes_tokens TEXT NOT NULL DEFAULT ''",
        FillSearchAttributeTokens(),
    ],
    [
        # 9: timers by when they are due: a shard's owner keeps only the next few minutes of timers in memory and
        # reads the rest as their time comes (history/engine.py), however many closed runs wait for retention.
        "CREATE INDEX tasks_by_time ON tasks (shard_id, category, visibility_ns)",
    ],
    [
        # batch operations (batch/): one row per job, written by the node owning the job's shard (fenced by its
        # range); `running` finds the jobs a new owner resumes and the namespace's open jobs, and close_time
        # (the last int64 instant while running) with start_time and job_id orders ListBatchOperations.
        """CREATE TABLE batch_operations (
            namespace_id TEXT NOT NULL,
            job_id TEXT NOT NULL,
            shard_id INTEGER NOT NULL,
            running INTEGER NOT NULL,
            start_time INTEGER NOT NULL,
            close_time INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (namespace_id, job_id))""",
        "CREATE INDEX batch_operations_running ON batch_operations (shard_id, running)",
        "CREATE INDEX batch_operations_order ON batch_operations (namespace_id, close_time, start_time, job_id)",
    ],
]

VISIBILITY_COLUMNS = (
    "namespace_id, run_id, workflow_id, workflow_type, status, start_time, execution_time, close_time, "
    "task_queue, history_length, history_size_bytes, memo, search_attributes, search_attributes_json, "
    "parent_workflow_id, parent_run_id, root_workflow_id, root_run_id, state_transition_count"
)
