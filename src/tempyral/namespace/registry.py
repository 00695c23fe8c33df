"""Namespaces: persisted records cached in memory, looked up by name or id on every request."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import namespace_pb2 as ns_enums
from temporalio.api.namespace.v1 import message_pb2 as namespace_pb
from temporalio.api.replication.v1 import message_pb2 as replication_pb

from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.shared_config import UNREAD, Settling, SharedConfig
from tempyral.common import ids
from tempyral.common.clock import duration_ns
from tempyral.common.durations import InvalidDuration, validate_and_cap
from tempyral.common.errors import (
    AlreadyExists,
    InvalidArgument,
    NamespaceAlreadyExists,
    NamespaceNotActive,
    NamespaceNotFound,
    Unavailable,
)
from tempyral.persistence.store import Store
from tempyral.proto.internal_pb2 import NamespaceRecord

log = logging.getLogger(__name__)

DEFAULT_RETENTION = Duration(seconds=24 * 3600)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
MAX_NAME_LENGTH = 255
# What the reference answers a call or a write of a namespace in HANDOVER (common.ErrNamespaceHandover, observed).
NAMESPACE_HANDOVER = "Namespace replication in Handover state."
NOTIFICATION_COUNTER = "namespace_notification_version"  # the claims of notification versions (shared database)


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

    @property
    def is_global(self) -> bool:
        return self.record.is_global_namespace

    @property
    def active_cluster(self) -> str:
        return self.record.replication_config.active_cluster_name

    @property
    def clusters(self) -> list[str]:
        return [c.cluster_name for c in self.record.replication_config.clusters]

    @property
    def replicated(self) -> bool:
        """Whether its changes go to other clusters: a global namespace on more than one (the reference's rule)."""
        return self.record.is_global_namespace and len(self.record.replication_config.clusters) > 1


# Called after a namespace record changed here (created, updated, or replicated from another cluster):
# (the record before, or None for a new namespace; the record after).
NamespaceListener = Callable[[Namespace | None, Namespace], None]


class NamespaceRegistry:
    def __init__(self, store: Store, clusters: ClusterMetadata | str) -> None:
        self._store = store
        if isinstance(clusters, str):
            name, clusters = clusters, ClusterMetadata(store)
            clusters.current.cluster_name = name
        self.clusters = clusters
        self._by_name: dict[str, Namespace] = {}
        self._by_id: dict[str, Namespace] = {}
        self._lock = asyncio.Lock()
        # Held by whoever reads a record, changes it and saves it (updates, search attributes, records replicated
        # from other clusters), so that no change is computed from a record another is replacing.
        self.changing = ChangeLock(self)
        # The highest notification version of any record: every change here takes the next one, so other
        # clusters can ask for what changed since the last version they saw.
        self._notification_version = 0
        self.listeners: list[NamespaceListener] = []
        self._changed = asyncio.Event()
        # Set when other nodes share the database (cluster/config_watch.py): changes are then numbered by claims
        # and announced by the config stamp, and the records are reloaded when the stamp moves.
        self.shared: SharedConfig | None = None
        self._settling = Settling()
        self._stamp_seen: str | None = UNREAD  # the config stamp of the last reload

    @property
    def cluster_name(self) -> str:
        return self.clusters.name

    def share(self, shared: SharedConfig) -> None:
        """Other nodes share the database from now on (cluster/config_watch.py); called before loading."""
        self.shared = shared
        self._settling = Settling(clock=shared.clock)

    async def load(self) -> None:
        for blob in await self._store.load_namespaces():
            self._cache(Namespace(NamespaceRecord.FromString(blob)))

    def _cache(self, ns: Namespace) -> None:
        previous = self._by_id.get(ns.id)
        if previous is not None and previous.name != ns.name:
            self._by_name.pop(previous.name, None)
        self._by_name[ns.name] = ns
        self._by_id[ns.id] = ns
        self._notification_version = max(self._notification_version, ns.record.notification_version)
        if self.shared is not None:
            self._settling.saw(ns.record.notification_version)

    def _notify(self, previous: Namespace | None, ns: Namespace) -> None:
        for listener in self.listeners:
            listener(previous, ns)
        self._changed.set()
        self._changed = asyncio.Event()

    # ------------------------------------------------------------------ active and standby
    def is_active(self, ns: Namespace) -> bool:
        """Whether this cluster takes writes for `ns`: always for a local namespace."""
        return not ns.is_global or ns.active_cluster == self.clusters.name

    def check_active(self, ns: Namespace) -> None:
        """Refuse a write on a standby cluster, as the reference does."""
        if not self.is_active(ns):
            raise NamespaceNotActive(ns.name, self.clusters.name, ns.active_cluster)

    def in_handover(self, ns: Namespace) -> bool:
        """Whether `ns` is in the HANDOVER replication state here (graceful failover: writes are held)."""
        return ns.is_global and ns.record.replication_config.state == ns_enums.REPLICATION_STATE_HANDOVER

    def check_handover(self, ns: Namespace) -> None:
        """Refuse a write of a namespace in HANDOVER, as the reference's history shards do (retryable)."""
        if self.in_handover(ns):
            raise Unavailable(NAMESPACE_HANDOVER)

    async def wait_handover_ends(self, namespace_id: str, timeout: float) -> bool:
        """Wait until the namespace leaves HANDOVER (or is gone), at most `timeout` seconds; whether it did."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            ns = self._by_id.get(namespace_id)
            if ns is None or not self.in_handover(ns):
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await self.wait_changed(remaining)

    async def wait_changed(self, timeout: float) -> bool:
        """Wait until some namespace changes here, at most `timeout` seconds; whether one did."""
        try:
            await asyncio.wait_for(asyncio.shield(self._changed.wait()), timeout)
        except TimeoutError:
            return False
        return True

    def changed_since(self, notification_version: int) -> list[NamespaceRecord]:
        """Records changed after `notification_version`, oldest change first."""
        records = [ns.record for ns in self._by_id.values() if ns.record.notification_version > notification_version]
        return sorted(records, key=lambda r: r.notification_version)

    @property
    def notification_version(self) -> int:
        """What other clusters ask after next time: the highest version here; with a shared database, the highest
        this node has had for a few seconds, since a lower one claimed by another node may still be committing
        (cluster/shared_config.py)."""
        if self.shared is None:
            return self._notification_version
        return self._settling.cursor()

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
        info.supports_schedules = True  # schedules/
        info.capabilities.sync_update = True
        info.capabilities.async_update = True
        config = record.config
        config.workflow_execution_retention_ttl.CopyFrom(retention or DEFAULT_RETENTION)
        config.history_archival_state = ns_enums.ARCHIVAL_STATE_DISABLED
        config.visibility_archival_state = ns_enums.ARCHIVAL_STATE_DISABLED
        config.bad_binaries.SetInParent()
        rc = record.replication_config
        rc.active_cluster_name = self.cluster_name
        rc.clusters.append(replication_pb.ClusterReplicationConfig(cluster_name=self.cluster_name))
        return record

    async def create(self, record: NamespaceRecord) -> Namespace:
        name = record.info.name
        validate_name(name)
        await self.sync()  # a name another node registered is taken here too
        async with self._lock:
            if name in self._by_name:
                raise NamespaceAlreadyExists(name)
            try:
                await self._write(record, False, lambda data: self._store.insert_namespace(record.info.id, name, data))
            except AlreadyExists as err:
                raise NamespaceAlreadyExists(name) from err
            ns = Namespace(record)
            self._cache(ns)
            log.info("registered namespace %s (%s)", name, record.info.id)
        await self._stamp()
        self._notify(None, ns)
        return ns

    async def ensure(self, name: str, retention: Duration | None = None) -> Namespace:
        if name in self._by_name:
            return self._by_name[name]
        try:
            return await self.create(self.new_record(name, retention))
        except NamespaceAlreadyExists:
            # Another node sharing the database registered it a moment ago (nodes starting together).
            await self.reload_at(UNREAD, force=True)
            if name not in self._by_name:
                raise
            return self._by_name[name]

    async def save(self, record: NamespaceRecord, failover: bool = False) -> Namespace:
        """Persist a changed record (update, search attributes) and swap it into the cache. `failover`: the
        change moved the active cluster, so its failover notification version is this change's."""
        async with self._lock:
            previous = self._by_id.get(record.info.id)
            await self._write(record, failover, lambda data: self._store.update_namespace(record.info.id, data))
            ns = Namespace(record)
            self._cache(ns)
        await self._stamp()
        if previous is not None:
            self._notify(previous, ns)
        return ns

    async def _write(self, record: NamespaceRecord, failover: bool, first: Callable[[bytes], Awaitable[None]]) -> None:
        """Store `record` (`first` does) under the next notification version. With a shared database the version
        is claimed, and a write repeated under a new one (shared_config.SharedConfig.numbered) is an update."""

        def with_version(version: int) -> bytes:
            record.notification_version = version
            if failover:
                record.failover_notification_version = version
            return record.SerializeToString()

        if self.shared is None:
            self._notification_version += 1
            await first(with_version(self._notification_version))
            return
        writes = 0

        async def write(versions: list[int]) -> None:
            nonlocal writes
            data = with_version(versions[0])
            if writes == 0:
                await first(data)
            else:
                await self._store.update_namespace(record.info.id, data)
            writes += 1

        standing = await self.shared.numbered(NOTIFICATION_COUNTER, self._notification_version, 1, write)
        with_version(standing[0])  # a repeated write that failed leaves the first one's version

    async def _stamp(self) -> None:
        if self.shared is not None:
            await self.shared.stamp()

    # ------------------------------------------------------------------ several nodes, one database
    async def sync(self) -> None:
        """Catch up with changes other nodes made, if the config stamp moved since the last reload (one small
        read); nothing without a shared database."""
        if self.shared is not None:
            await self.reload_at(await self.shared.current())

    async def reload_at(self, stamp: str | None, force: bool = False) -> bool:
        """Reload the records unless already done at config stamp `stamp` (read before calling: a change
        committed before that stamp was written is then seen); whether it reloaded. Listeners hear of each
        record that changed, as they do of a change made here."""
        async with self._lock:  # no change of this node's is half-way (written, not yet cached) meanwhile
            if stamp == self._stamp_seen and not force:
                return False
            changes = await self._reload()
            self._stamp_seen = stamp
        for previous, ns in changes:
            self._notify(previous, ns)
        return True

    async def _reload(self) -> list[tuple[Namespace | None, Namespace]]:
        changes: list[tuple[Namespace | None, Namespace]] = []
        for blob in await self._store.load_namespaces():
            record = NamespaceRecord.FromString(blob)
            cached = self._by_id.get(record.info.id)
            if cached is not None and cached.record == record:
                continue
            if cached is not None and record.notification_version < cached.record.notification_version:
                # Two nodes changed it at once and the older change was stored last: every node loads what is
                # stored, so taking it is what makes them agree.
                log.warning(
                    "namespace %s was changed on two nodes at once: the change stored last (notification version "
                    "%d) replaces this node's (%d)",
                    record.info.name,
                    record.notification_version,
                    cached.record.notification_version,
                )
            ns = Namespace(record)
            self._cache(ns)
            changes.append((cached, ns))
            log.info(
                "namespace %s %s on another node (notification version %d)",
                ns.name,
                "registered" if cached is None else "changed",
                record.notification_version,
            )
        return changes

    async def apply_replicated(self, incoming: NamespaceRecord) -> bool:
        """Take a record another cluster sent: a new namespace is created with its id; a known one takes the
        configuration if its config version is higher, and the active cluster if its failover version is higher
        (two last-writer-wins dimensions, as the reference). Whether anything changed."""
        async with self.changing:
            return await self._apply_replicated(incoming)

    async def _apply_replicated(self, incoming: NamespaceRecord) -> bool:
        existing = self._by_id.get(incoming.info.id)
        if existing is None:
            clash = self._by_name.get(incoming.info.name)
            if clash is not None:
                log.error(
                    "namespace replication: %s arrived with id %s, but this cluster has that name with id %s",
                    incoming.info.name,
                    incoming.info.id,
                    clash.id,
                )
                return False
            record = NamespaceRecord()
            record.CopyFrom(incoming)
            record.is_global_namespace = True
            await self.create(record)
            return True
        record = NamespaceRecord()
        record.CopyFrom(existing.record)
        changed = failover = False
        if incoming.config_version > record.config_version:
            record.info.CopyFrom(incoming.info)
            record.config.CopyFrom(incoming.config)
            del record.replication_config.clusters[:]
            record.replication_config.clusters.extend(incoming.replication_config.clusters)
            record.search_attributes.clear()
            record.search_attributes.update(incoming.search_attributes)
            record.config_version = incoming.config_version
            changed = True
        if incoming.failover_version > record.failover_version:
            record.replication_config.active_cluster_name = incoming.replication_config.active_cluster_name
            record.replication_config.state = incoming.replication_config.state
            record.failover_version = incoming.failover_version
            del record.failover_history[:]
            record.failover_history.extend(incoming.failover_history)
            changed = failover = True
        if changed:
            record.is_global_namespace = True
            await self.save(record, failover=failover)
        return changed


class ChangeLock:
    """`NamespaceRegistry.changing`: a lock that, once taken, catches up with what other nodes sharing the
    database changed, so that a change is computed from the latest record stored."""

    def __init__(self, registry: NamespaceRegistry) -> None:
        self._lock = asyncio.Lock()
        self._registry = registry

    async def __aenter__(self) -> None:
        await self._lock.acquire()
        try:
            await self._registry.sync()
        except Unavailable as err:
            # The change is computed from this node's records, as it would be without the catch-up.
            log.warning("could not check the database for namespace changes of other nodes: %s", err)
        except BaseException:
            self._lock.release()
            raise

    async def __aexit__(self, *exc_info: object) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


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
