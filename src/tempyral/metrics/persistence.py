"""persistence_* metrics of every Store call, recorded by wrapping the store's methods in place.

The store keeps its type (the Store protocol, a SQLite or PostgreSQL class) and its callers do not change: each
public coroutine method of the instance is replaced by one that counts and times it. Operation names are the
reference's where one of its persistence calls does the same work, else the method's name in CamelCase.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

from tempyral.common.errors import ServiceError
from tempyral.frontend.observe import ERROR_TYPES
from tempyral.metrics.server_metrics import UNKNOWN, ServerMetrics

# tempyral's store methods -> the reference's persistence operation of the same work
OPERATIONS = {
    "commit": "UpdateWorkflowExecution",
    "get_execution": "GetWorkflowExecution",
    "get_current": "GetCurrentExecution",
    "read_history": "ReadHistoryBranch",
    "delete_history_branch": "DeleteHistoryBranch",
    "delete_execution": "DeleteWorkflowExecution",
    "acquire_shard": "GetOrCreateShard",
    "extend_shard_range": "UpdateShard",
    "load_tasks": "GetHistoryTasks",
    "load_tasks_due": "GetTimerTasks",
    "read_tasks": "GetReplicationTasks",
    "delete_tasks": "CompleteHistoryTask",
    "delete_tasks_through": "RangeCompleteHistoryTasks",
    "load_namespaces": "ListNamespaces",
    "insert_namespace": "CreateNamespace",
    "update_namespace": "UpdateNamespace",
    "load_clusters": "ListClusterMetadata",
    "save_cluster": "SaveClusterMetadata",
    "delete_cluster": "DeleteClusterMetadata",
    "list_visibility": "ListWorkflowExecutions",
    "count_visibility": "CountWorkflowExecutions",
    "load_nexus_endpoints": "ListNexusEndpoints",
    "save_nexus_endpoints": "CreateOrUpdateNexusEndpoint",
    "join_member": "UpsertClusterMembership",
    "heartbeat_member": "UpsertClusterMembership",
    "list_members": "GetClusterMembers",
    "leave_member": "PruneClusterMembership",
    "put_replication_dlq": "PutReplicationTaskToDLQ",
    "list_replication_dlq": "GetReplicationTasksFromDLQ",
    "delete_replication_dlq": "RangeDeleteReplicationTaskFromDLQ",
}
# Which of the reference's services makes the call (the rest are history's).
SERVICES = {
    "list_visibility": "frontend",
    "count_visibility": "frontend",
    "load_namespaces": "frontend",
    "insert_namespace": "frontend",
    "update_namespace": "frontend",
    "load_nexus_endpoints": "frontend",
    "save_nexus_endpoints": "frontend",
}
SKIPPED = frozenset({"open", "close"})


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def instrument_store(store: Any, metrics: ServerMetrics) -> None:
    # The class's methods, not the instance's attributes: reading those could run properties.
    for name, _ in inspect.getmembers(type(store), inspect.iscoroutinefunction):
        if name.startswith("_") or name in SKIPPED:
            continue
        labels = (UNKNOWN, OPERATIONS.get(name) or _camel(name), SERVICES.get(name, "history"))
        setattr(store, name, _measured(getattr(store, name), labels, metrics))


def _measured(
    method: Callable[..., Awaitable[Any]], labels: tuple[str, str, str], metrics: ServerMetrics
) -> Callable[..., Awaitable[Any]]:
    requests, latency = metrics.persistence_requests, metrics.persistence_latency

    @functools.wraps(method)
    async def measured(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        requests.inc(labels)
        try:
            return await method(*args, **kwargs)
        except Exception as err:
            error_type = ERROR_TYPES[err.code] if isinstance(err, ServiceError) else "serviceerror_Unavailable"
            metrics.persistence_error_with_type.inc((error_type, *labels))
            metrics.persistence_errors.inc(labels)
            raise
        finally:
            latency.observe(labels, time.perf_counter() - started)

    return measured
