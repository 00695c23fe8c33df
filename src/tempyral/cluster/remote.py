"""Adding a remote cluster: the checks of what the remote says about itself, with the reference's reasons
(service/frontend/operator_handler.go, validateRemoteClusterMetadata and ValidateClusterInformation), and the
text of a failed dial.

tempyral maps workflows to shards by itself on each cluster, so two clusters may have any shard counts: the
reference's "Remote cluster shard number and local cluster shard number are not multiples." is not checked.
"""

from __future__ import annotations

import re

import grpc

from tempyral.cluster.metadata import ClusterConfigError, ClusterMetadata, validate
from tempyral.proto.replication_pb2 import ClusterMetadataRecord

_REFUSED = re.compile(r"connection refused", re.IGNORECASE)


def remote_cluster_problem(
    clusters: ClusterMetadata, remote: ClusterMetadataRecord, address: str, enabled: bool
) -> str | None:
    """Why `remote` (as it described itself, to be reached at `address`) cannot be added here; None: it can."""
    if remote.cluster_name == clusters.name:
        return "Cannot update current cluster metadata from rpc calls"
    if remote.failover_version_increment != clusters.increment:
        return "Cannot add remote cluster due to failover version increment mismatch"
    if remote.history_shard_count <= 0:
        return "Remote cluster HistoryShardCount must be positive"
    if not remote.is_global_namespace_enabled:
        return "Cannot add remote cluster as global namespace is not supported"
    for known in clusters.all():
        if known.cluster_name != remote.cluster_name and known.initial_failover_version == (
            remote.initial_failover_version
        ):
            return "Cannot add remote cluster due to initial failover version conflict"
    try:
        validate(remote.cluster_name, remote.initial_failover_version, clusters.increment)
    except ClusterConfigError as err:
        return str(err)
    if enabled and not address:
        return f'cluster "{remote.cluster_name}": RPCAddress must not be empty when Enabled=true'
    return None


def dial_error(address: str, err: grpc.aio.AioRpcError) -> str:
    """What went wrong calling `address`, as the reference words the common case (grpc-go's text for a refused
    connection); anything else as gRPC reported it."""
    details = err.details() or err.code().name
    if err.code() == grpc.StatusCode.UNAVAILABLE and _REFUSED.search(details):
        dialing = f"transport: Error while dialing: dial tcp {address}: connect: connection refused"
        return f'connection error: desc = "{dialing}"'
    return details
