"""Namespaces: persisted records cached in memory, looked up by name or id on every request."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import namespace_pb2 as ns_enums
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.replication.v1 import message_pb2 as replication_pb

from tempyral.common import ids
from tempyral.common.clock import duration_ns
from tempyral.common.durations import InvalidDuration, validate_and_cap
from tempyral.common.errors import AlreadyExists, InvalidArgument, NamespaceAlreadyExists, NamespaceNotFound
from tempyral.persistence.store import Store
from tempyral.proto.internal_pb2 import NamespaceRecord

log = logging.getLogger(__name__)

DEFAULT_RETENTION = Duration(seconds=24 * 3600)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 255


@dataclass(slots=True)
class Namespace:
    record: NamespaceRecord

    @property
    def id(self) -> str:
        return self.record.info.id

    @property
    def name(self) -> str:
        return self.record.info.name

    @property
    def retention_ns(self) -> int:
        r = self.record.config.workflow_execution_retention_ttl
        return r.seconds * 1_000_000_000 + r.nanos

    @property
    def failover_version(self) -> int:
        """The version new events of this namespace carry: 0 for a local namespace, as on the reference."""
        return self.record.failover_version if self.record.is_global_namespace else 0


class NamespaceRegistry:
    def __init__(self, store: Store, cluster_name: str) -> None:
        self._store = store
        self._cluster_name = cluster_name
        self._by_name: dict[str, Namespace] = {}
        self._by_id: dict[str, Namespace] = {}
        self._lock = asyncio.Lock()

    async def load(self) -> None:
        for blob in await self._store.load_namespaces():
            self._cache(Namespace(NamespaceRecord.FromString(blob)))

    def _cache(self, ns: Namespace) -> None:
        self._by_name[ns.name] = ns
        self._by_id[ns.id] = ns

    def get(self, name: str) -> Namespace:
        ns = self._by_name.get(name)
        if ns is None:
            if not name:
                raise InvalidArgument("Namespace not set on request.")
            raise NamespaceNotFound(name)
        return ns

    def find(self, name: str) -> Namespace | None:
        return self._by_name.get(name)

    def get_by_id(self, namespace_id: str) -> Namespace:
        ns = self._by_id.get(namespace_id)
        if ns is None:
            raise NamespaceNotFound(namespace_id)
        return ns

    def find_by_id(self, namespace_id: str) -> Namespace | None:
        return self._by_id.get(namespace_id)

    def all(self) -> list[Namespace]:
        return sorted(self._by_name.values(), key=lambda n: n.name)

    def new_record(
        self,
        name: str,
        retention: Duration | None = None,
        description: str = "",
        owner_email: str = "",
        data: dict[str, str] | None = None,
    ) -> NamespaceRecord:
        record = NamespaceRecord()
        info = record.info
        info.name = name
        info.id = ids.new_run_id()
        info.state = ns_enums.NAMESPACE_STATE_REGISTERED
        info.description = description
        info.owner_email = owner_email
        info.data.update(data or {})
        info.supports_schedules = False
        info.capabilities.sync_update = True
        info.capabilities.async_update = True
        config = record.config
        config.workflow_execution_retention_ttl.CopyFrom(retention or DEFAULT_RETENTION)
        config.history_archival_state = ns_enums.ARCHIVAL_STATE_DISABLED
        config.visibility_archival_state = ns_enums.ARCHIVAL_STATE_DISABLED
        config.bad_binaries.SetInParent()
        rc = record.replication_config
        rc.active_cluster_name = self._cluster_name
        rc.clusters.append(replication_pb.ClusterReplicationConfig(cluster_name=self._cluster_name))
        return record

    async def create(self, record: NamespaceRecord) -> Namespace:
        name = record.info.name
        validate_name(name)
        async with self._lock:
            if name in self._by_name:
                raise NamespaceAlreadyExists(name)
            try:
                await self._store.insert_namespace(record.info.id, name, record.SerializeToString())
            except AlreadyExists as err:
                raise NamespaceAlreadyExists(name) from err
            ns = Namespace(record)
            self._cache(ns)
            log.info("registered namespace %s (%s)", name, record.info.id)
            return ns

    async def ensure(self, name: str, retention: Duration | None = None) -> Namespace:
        if name in self._by_name:
            return self._by_name[name]
        return await self.create(self.new_record(name, retention))

    async def save(self, record: NamespaceRecord) -> Namespace:
        """Persist a changed record (update, search attributes) and swap it into the cache."""
        async with self._lock:
            record.notification_version += 1
            await self._store.update_namespace(record.info.id, record.SerializeToString())
            ns = Namespace(record)
            self._cache(ns)
            return ns


def validate_name(name: str) -> None:
    if not name:
        raise InvalidArgument("Namespace not set on request.")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"Namespace length exceeds limit ({len(name)}/{MAX_NAME_LENGTH}).")


def check_retention(retention: Duration) -> None:
    """Cap a retention period at 100 years in place; refuse a missing, negative or malformed one."""
    try:
        validate_and_cap(retention)
    except InvalidDuration as err:
        raise InvalidArgument("A valid retention period is not set on request.") from err
    if duration_ns(retention) <= 0:
        raise InvalidArgument("A valid retention period is not set on request.")


def describe(ns: Namespace) -> tuple[namespace_pb.NamespaceInfo, namespace_pb.NamespaceConfig]:
    return ns.record.info, ns.record.config
