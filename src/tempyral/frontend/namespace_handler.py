"""RegisterNamespace, DescribeNamespace, ListNamespaces and UpdateNamespace, local and global, as the reference's
service/frontend/namespace_handler.go answers them (validation messages, failover versions, failover history).

Global namespaces: a record saved here is pulled by the other clusters of the namespace and applied there
last-writer-wins (cluster/namespace_replication.py): its configuration when its `config_version` is higher,
its active cluster when its `failover_version` is higher. So every configuration change bumps `config_version`
and every failover raises `failover_version` (ClusterMetadata.next_failover_version).

Where tempyral departs from the reference:
- any cluster may register a global namespace (the reference allows it only on its "master" cluster, a
  static-config notion tempyral has no flag for);
- a local namespace may keep its runs for any positive retention (the reference asks for at least an hour);
  a global one needs a day, as on the reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import NamespaceState, ReplicationState
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common.clock import NANOS_PER_SECOND, duration_ns, now_ns, timestamp
from tempyral.common.errors import InvalidArgument, NamespaceAlreadyExists
from tempyral.common.limits import BLOB_SIZE_LIMIT_ERROR, CALL_LIMITS, WORKFLOW_TASK_COMPLETION_SIZE_LIMIT
from tempyral.common.tokens import decode_offset_token
from tempyral.namespace.registry import Namespace, NamespaceRegistry, check_retention, validate_name
from tempyral.proto.internal_pb2 import NamespaceRecord

MAX_FAILOVER_HISTORY = 10  # the reference's maxReplicationHistorySize
INVALID_RETENTION = "A valid retention period is not set on request."
FAILOVER_AND_UPDATE = "Cannot set active cluster to current cluster when other parameters are set."
INVALID_STATE_UPDATE = "Invalid namespace state update."
ACTIVE_NOT_IN_CLUSTERS = "Active cluster is not contained in all clusters."


# ---------------------------------------------------------------------- checks and versions (pure)
def check_namespace_retention(retention: Duration, is_global: bool) -> None:
    """A retention the reference accepts (capped at 100 years in place); a global namespace keeps runs a day, unless
    dynamic config's system.namespaceMinRetentionGlobal says otherwise (and a local one as long as
    system.namespaceMinRetentionLocal, when set)."""
    check_retention(retention)
    limits = CALL_LIMITS.get()
    minimum_s = limits.min_retention_global_s if is_global else limits.min_retention_local_s
    if duration_ns(retention) < minimum_s * NANOS_PER_SECOND:
        raise InvalidArgument(INVALID_RETENTION)


def check_replication_config(
    clusters: ClusterMetadata, active: str, names: Sequence[str], is_global: bool, failover_only: bool = False
) -> None:
    """The reference's attr_validator: every cluster named must be known here and connected; a global namespace's
    active cluster is one of its clusters, and a local namespace lives on this cluster alone. A failover alone
    (`failover_only`) checks the new active cluster only: the others may be cut off (a forced failover during a
    partition; conflict resolution reconciles the histories later), where the reference refuses it."""
    for name in (active,) if failover_only else (active, *names):
        record = clusters.get(name)
        if record is None or (name != clusters.name and not record.is_connection_enabled):
            raise InvalidArgument(f"Invalid cluster name: {name}")
    if is_global:
        if active not in names:
            raise InvalidArgument(ACTIVE_NOT_IN_CLUSTERS)
        return
    if active != clusters.name:
        raise InvalidArgument("Invalid local namespace active cluster")
    if list(names) != [active]:
        raise InvalidArgument("Invalid local namespace clusters")


def go_enum(name: str, prefix: str) -> str:
    """How Go's %s prints an API enum value: NAMESPACE_STATE_REGISTERED -> Registered."""
    return "".join(part.capitalize() for part in name.removeprefix(prefix).split("_"))


def check_state_update(existing: NamespaceRecord, new_state: int) -> None:
    """The namespace states a namespace may move to (the reference's validateStateUpdate)."""
    if existing.replication_config.state == ReplicationState.REPLICATION_STATE_HANDOVER:
        raise InvalidArgument("cannot update namespace state while its replication state in REPLICATION_STATE_HANDOVER")
    allowed = {
        NamespaceState.NAMESPACE_STATE_REGISTERED: (
            NamespaceState.NAMESPACE_STATE_DELETED,
            NamespaceState.NAMESPACE_STATE_DEPRECATED,
        ),
        NamespaceState.NAMESPACE_STATE_DEPRECATED: (NamespaceState.NAMESPACE_STATE_DELETED,),
    }
    if new_state not in allowed.get(existing.info.state, ()):
        raise InvalidArgument(INVALID_STATE_UPDATE)


def check_replication_state_update(
    existing: NamespaceRecord, update: replication_pb.NamespaceReplicationConfig
) -> None:
    """The replication states a namespace may move to (the reference's validateReplicationStateUpdate)."""
    if existing.info.state != NamespaceState.NAMESPACE_STATE_REGISTERED:
        raise InvalidArgument(
            "update ReplicationState is only supported when namespace is in Registered state, current state: "
            + go_enum(NamespaceState.Name(existing.info.state), "NAMESPACE_STATE_")
        )
    if update.state == ReplicationState.REPLICATION_STATE_HANDOVER:
        if not existing.is_global_namespace:
            raise InvalidArgument("Handover can only be set for global namespace")
        count = len(update.clusters) or len(existing.replication_config.clusters)
        if count < 2:
            raise InvalidArgument("Handover require more than one replication clusters")


def failover_history_after(
    history: Sequence[replication_pb.FailoverStatus], version: int, at_ns: int
) -> list[replication_pb.FailoverStatus]:
    """The history with `version` appended when it differs from the last entry's, the newest ten kept (the
    reference's maybeUpdateFailoverHistory)."""
    kept = list(history)
    last = kept[-1].failover_version if kept else -1
    if last != version:
        kept.append(replication_pb.FailoverStatus(failover_time=timestamp(at_ns), failover_version=version))
    return kept[-MAX_FAILOVER_HISTORY:]


@dataclass(slots=True)
class UpdatePlan:
    record: NamespaceRecord  # the namespace as the update leaves it
    changed: bool  # whether there is anything to save
    failover: bool  # the active cluster moved (or the namespace became global): a new failover version


def plan_update(
    existing: NamespaceRecord, req: ws.UpdateNamespaceRequest, clusters: ClusterMetadata, at_ns: int
) -> UpdatePlan:
    """What UpdateNamespace makes of `existing`, checked in the reference's order, without saving anything."""
    record = NamespaceRecord()
    record.CopyFrom(existing)
    was_global = existing.is_global_namespace
    is_global = was_global or req.promote_namespace
    promote = not was_global and req.promote_namespace
    configuration_changed = False  # anything but the active cluster
    active_changed = False
    if req.HasField("update_info"):
        info = req.update_info
        if info.description:
            configuration_changed = True
            record.info.description = info.description
        if info.owner_email:
            configuration_changed = True
            record.info.owner_email = info.owner_email
        if info.data:
            configuration_changed = True
            record.info.data.update(info.data)
        if info.state != NamespaceState.NAMESPACE_STATE_UNSPECIFIED and info.state != record.info.state:
            configuration_changed = True
            check_state_update(existing, info.state)
            record.info.state = info.state
    if req.HasField("config"):
        configuration_changed |= _update_config(record.config, req.config, is_global)
    if req.delete_bad_binary:
        binaries = record.config.bad_binaries.binaries
        if req.delete_bad_binary not in binaries:
            raise InvalidArgument(f"Bad binary checksum {req.delete_bad_binary} doesn't exists.")
        configuration_changed = True
        del binaries[req.delete_bad_binary]
    rc = record.replication_config
    if req.HasField("replication_config"):
        update = req.replication_config
        if update.clusters:
            configuration_changed = True
            del rc.clusters[:]
            rc.clusters.extend(
                replication_pb.ClusterReplicationConfig(cluster_name=c.cluster_name) for c in update.clusters
            )
        if update.state != ReplicationState.REPLICATION_STATE_UNSPECIFIED and update.state != rc.state:
            check_replication_state_update(existing, update)
            configuration_changed = True
            rc.state = update.state
        if update.active_cluster_name:
            active_changed = True
            rc.active_cluster_name = update.active_cluster_name
            rc.state = ReplicationState.REPLICATION_STATE_NORMAL
    names = [c.cluster_name for c in rc.clusters]
    failover_only = active_changed and not configuration_changed and is_global
    check_replication_config(clusters, rc.active_cluster_name, names, is_global, failover_only)
    if configuration_changed and active_changed and is_global:
        raise InvalidArgument(FAILOVER_AND_UPDATE)
    failover = (promote or active_changed) and is_global
    changed = configuration_changed or active_changed or promote
    if not changed:
        return UpdatePlan(record, False, False)
    if failover:
        record.failover_version = clusters.next_failover_version(rc.active_cluster_name, record.failover_version)
    if configuration_changed:
        record.config_version += 1
    if (configuration_changed or active_changed) and is_global and req.HasField("replication_config"):
        history = failover_history_after(existing.failover_history, record.failover_version, at_ns)
        del record.failover_history[:]
        record.failover_history.extend(history)
    record.is_global_namespace = is_global
    return UpdatePlan(record, True, failover)


def _update_config(target: namespace_pb.NamespaceConfig, update: namespace_pb.NamespaceConfig, is_global: bool) -> bool:
    """Apply the parts of `update` that are set; whether any was."""
    changed = False
    if update.HasField("workflow_execution_retention_ttl"):
        retention = Duration()
        retention.CopyFrom(update.workflow_execution_retention_ttl)
        check_namespace_retention(retention, is_global)
        target.workflow_execution_retention_ttl.CopyFrom(retention)
        changed = True
    if update.history_archival_state and update.history_archival_state != target.history_archival_state:
        target.history_archival_state = update.history_archival_state
        changed = True
    if update.visibility_archival_state and update.visibility_archival_state != target.visibility_archival_state:
        target.visibility_archival_state = update.visibility_archival_state
        changed = True
    if update.custom_search_attribute_aliases:
        target.custom_search_attribute_aliases.update(update.custom_search_attribute_aliases)
        changed = True
    return changed


# ---------------------------------------------------------------------- responses
def namespace_info(ns: Namespace) -> namespace_pb.NamespaceInfo:
    info = namespace_pb.NamespaceInfo()
    info.CopyFrom(ns.record.info)
    # What this server does, whenever the record was written (records keep only what was true then).
    info.capabilities.eager_workflow_start = True
    # The SDKs read the limits and fail oversized payloads themselves, as with the reference; dynamic config's
    # limit.blobSize.error for the namespace asked about, when the call set one (common/limits.py CALL_LIMITS).
    limits = CALL_LIMITS.get()
    info.limits.blob_size_limit_error = limits.error if limits.namespace == ns.name else BLOB_SIZE_LIMIT_ERROR
    info.limits.memo_size_limit_error = BLOB_SIZE_LIMIT_ERROR
    info.limits.workflow_task_completion_size_limit_error = WORKFLOW_TASK_COMPLETION_SIZE_LIMIT
    # Claimed when answering, so that namespaces created before tempyral served them claim them too.
    info.capabilities.standalone_activities = True
    info.capabilities.standalone_activity_start_delay = True
    # served in every namespace (nexus/standalone.py); the Web UI shows its operation pages by this
    info.capabilities.standalone_nexus_operation = True
    return info


def describe_namespace_response(ns: Namespace) -> ws.DescribeNamespaceResponse:
    r = ns.record
    return ws.DescribeNamespaceResponse(
        namespace_info=namespace_info(ns),
        config=r.config,
        replication_config=r.replication_config,
        failover_version=r.failover_version,
        is_global_namespace=r.is_global_namespace,
        failover_history=r.failover_history,
    )


# ---------------------------------------------------------------------- the handler
class NamespaceHandler:
    def __init__(self, namespaces: NamespaceRegistry, clusters: ClusterMetadata) -> None:
        self.namespaces = namespaces
        self.clusters = clusters

    async def register(self, req: ws.RegisterNamespaceRequest) -> ws.RegisterNamespaceResponse:
        validate_name(req.namespace)
        is_global = req.is_global_namespace
        check_namespace_retention(req.workflow_execution_retention_period, is_global)
        if self.namespaces.find(req.namespace) is not None:
            raise NamespaceAlreadyExists(req.namespace)
        active = req.active_cluster_name or self.clusters.name
        names = [c.cluster_name for c in req.clusters] or [active]
        check_replication_config(self.clusters, active, names, is_global)
        record = self.namespaces.new_record(
            req.namespace,
            req.workflow_execution_retention_period,
            req.description,
            req.owner_email,
            dict(req.data),
        )
        rc = record.replication_config
        rc.active_cluster_name = active
        del rc.clusters[:]
        rc.clusters.extend(replication_pb.ClusterReplicationConfig(cluster_name=name) for name in names)
        # Registered namespaces show a replication state; the built-in ones do not (as on the reference).
        rc.state = ReplicationState.REPLICATION_STATE_NORMAL
        if is_global:
            record.is_global_namespace = True
            record.failover_version = self.clusters.next_failover_version(active, 0)
        await self.namespaces.create(record)
        return ws.RegisterNamespaceResponse()

    def describe(self, req: ws.DescribeNamespaceRequest) -> ws.DescribeNamespaceResponse:
        if req.id:
            return describe_namespace_response(self.namespaces.get_by_id(req.id))
        return describe_namespace_response(self.namespaces.get(req.namespace))

    def list(self, req: ws.ListNamespacesRequest) -> ws.ListNamespacesResponse:
        if req.page_size < 0:
            raise InvalidArgument("PageSize must not be negative.")
        size = req.page_size or 100
        all_ns = self.namespaces.all()
        start = decode_offset_token(req.next_page_token)
        page = all_ns[start : start + size]
        resp = ws.ListNamespacesResponse(namespaces=[describe_namespace_response(ns) for ns in page])
        if start + size < len(all_ns):
            resp.next_page_token = str(start + size).encode()
        return resp

    async def update(self, req: ws.UpdateNamespaceRequest) -> ws.UpdateNamespaceResponse:
        async with self.namespaces.changing:
            ns = self.namespaces.get(req.namespace)
            plan = plan_update(ns.record, req, self.clusters, now_ns())
            if plan.changed:
                ns = await self.namespaces.save(plan.record, failover=plan.failover)
            else:
                ns = Namespace(plan.record)
        r = ns.record
        return ws.UpdateNamespaceResponse(
            namespace_info=namespace_info(ns),
            config=r.config,
            replication_config=r.replication_config,
            failover_version=r.failover_version,
            is_global_namespace=r.is_global_namespace,
        )
