"""Cluster metadata: who this cluster is (name, initial failover version, version increment) and the
remote clusters it is connected to, stored in the database and kept across restarts.

Failover versions follow the reference (common/cluster/metadata.go): a cluster owns the versions
v with v mod increment = its initial failover version, and a namespace failing over to a cluster
takes the smallest such v not below its current one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from tempyral.cluster.shared_config import UNREAD, SharedConfig
from tempyral.common.errors import StartupError
from tempyral.persistence.store import Store
from tempyral.proto.replication_pb2 import ClusterMetadataRecord

log = logging.getLogger(__name__)

MAX_INT32 = 2**31 - 1
DEFAULT_CLUSTER_NAME = "active"
DEFAULT_INITIAL_FAILOVER_VERSION = 1
DEFAULT_FAILOVER_VERSION_INCREMENT = 10
CURRENT_CLUSTER_KEY = "current_cluster"


@dataclass(frozen=True, slots=True)
class ClusterIdentity:
    """What the operator chose for this cluster (None: what the database has, or the default)."""

    name: str | None = None
    initial_failover_version: int | None = None
    failover_version_increment: int | None = None


class ClusterConfigError(ValueError):
    """Cluster metadata the reference would refuse; the message is the reference's."""


def validate(name: str, initial_failover_version: int, increment: int) -> None:
    """The reference's checks of cluster metadata (NewMetadata, ValidateClusterInformation)."""
    if increment <= 0 or increment > MAX_INT32:
        raise ClusterConfigError(f"Version increment <= 0 or > {MAX_INT32}")
    if not name:
        raise ClusterConfigError("cluster name must not be empty")
    if initial_failover_version <= 0:
        raise ClusterConfigError(
            f'cluster "{name}": InitialFailoverVersion must be > 0, got {initial_failover_version}'
        )
    if initial_failover_version >= increment:
        raise ClusterConfigError(
            f'cluster "{name}": InitialFailoverVersion ({initial_failover_version}) must be < '
            f"FailoverVersionIncrement ({increment})"
        )


class ClusterMetadata:
    """The current cluster's row and the remote clusters' rows, cached; every change is stored first."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.current = ClusterMetadataRecord(
            cluster_name=DEFAULT_CLUSTER_NAME,
            initial_failover_version=DEFAULT_INITIAL_FAILOVER_VERSION,
            failover_version_increment=DEFAULT_FAILOVER_VERSION_INCREMENT,
            is_global_namespace_enabled=True,
            is_connection_enabled=True,
        )
        self._remotes: dict[str, ClusterMetadataRecord] = {}
        # Called after a remote cluster is added, changed or removed (the replication loops follow).
        self.listeners: list[Callable[[], None]] = []
        self._lock = asyncio.Lock()  # one change or reload of the remote rows at a time
        # Set when other nodes share the database (cluster/config_watch.py): changes are then announced by the
        # config stamp, and the remote rows reloaded when it moves. The current cluster's row is each node's own
        # (its addresses): it is never reloaded.
        self.shared: SharedConfig | None = None
        self._stamp_seen: str | None = UNREAD  # the config stamp of the last reload

    def share(self, shared: SharedConfig) -> None:
        """Other nodes share the database from now on (cluster/config_watch.py); called before loading."""
        self.shared = shared

    # ------------------------------------------------------------------ start-up
    async def load(self, wanted: ClusterIdentity, shard_count: int, db_name: str) -> None:
        """Read the stored rows; a new database takes `wanted` (defaults filled in), a known one must agree
        with whatever of `wanted` the operator gave."""
        rows = {
            r.cluster_name: r for r in (ClusterMetadataRecord.FromString(b) for b in await self._store.load_clusters())
        }
        stored_name = await self._store.get_metadata(CURRENT_CLUSTER_KEY)
        if stored_name is not None and stored_name in rows:
            current = rows.pop(stored_name)
            for flag, given, have in (
                ("--cluster-name", wanted.name, current.cluster_name),
                ("--initial-failover-version", wanted.initial_failover_version, current.initial_failover_version),
                ("--failover-version-increment", wanted.failover_version_increment, current.failover_version_increment),
            ):
                if given is not None and given != have:
                    raise StartupError(
                        f"database {db_name} belongs to cluster {current.cluster_name} (initial failover version "
                        f"{current.initial_failover_version}, increment {current.failover_version_increment}), "
                        f"which cannot change: start with {flag} {have}"
                    )
        else:
            current = ClusterMetadataRecord(
                cluster_name=wanted.name if wanted.name is not None else DEFAULT_CLUSTER_NAME,
                # A database from before cluster metadata keeps the id it had.
                cluster_id=await self._store.get_or_set_metadata("cluster_id", str(uuid.uuid4())),
                initial_failover_version=(
                    wanted.initial_failover_version
                    if wanted.initial_failover_version is not None
                    else DEFAULT_INITIAL_FAILOVER_VERSION
                ),
                failover_version_increment=(
                    wanted.failover_version_increment
                    if wanted.failover_version_increment is not None
                    else DEFAULT_FAILOVER_VERSION_INCREMENT
                ),
                is_global_namespace_enabled=True,
                is_connection_enabled=True,
            )
        try:
            validate(current.cluster_name, current.initial_failover_version, current.failover_version_increment)
        except ClusterConfigError as err:
            raise StartupError(f"invalid cluster metadata: {err}") from err
        current.history_shard_count = shard_count
        self.current = current
        self._remotes = rows
        await self._store.save_cluster(current.cluster_name, current.SerializeToString())
        await self._store.set_metadata(CURRENT_CLUSTER_KEY, current.cluster_name)

    async def set_addresses(self, address: str, http_address: str) -> None:
        """Where other clusters reach this one (known once the ports are bound)."""
        self.current.cluster_address = address
        self.current.http_address = http_address
        await self._store.save_cluster(self.current.cluster_name, self.current.SerializeToString())

    # ------------------------------------------------------------------ reads
    @property
    def name(self) -> str:
        return self.current.cluster_name

    @property
    def increment(self) -> int:
        return self.current.failover_version_increment

    def get(self, name: str) -> ClusterMetadataRecord | None:
        if name == self.current.cluster_name:
            return self.current
        return self._remotes.get(name)

    def remotes(self) -> list[ClusterMetadataRecord]:
        return [self._remotes[name] for name in sorted(self._remotes)]

    def all(self) -> list[ClusterMetadataRecord]:
        return sorted([self.current, *self._remotes.values()], key=lambda r: r.cluster_name)

    def connected(self, name: str) -> bool:
        """Whether replication with `name` runs (the reference's is_connection_enabled)."""
        record = self._remotes.get(name)
        return record is not None and record.is_connection_enabled

    def initial_failover_version(self, name: str) -> int | None:
        record = self.get(name)
        return record.initial_failover_version if record is not None else None

    def next_failover_version(self, cluster: str, current_version: int) -> int:
        """The smallest v >= current_version that belongs to `cluster` (v mod increment = its initial version)."""
        ifv = self.initial_failover_version(cluster)
        if ifv is None:
            raise KeyError(cluster)
        inc = self.increment
        version = current_version // inc * inc + ifv
        return version if version >= current_version else version + inc

    def cluster_for_version(self, version: int) -> str:
        """The cluster that writes under `version` ("unknown-cluster-N" if none does)."""
        if version == 0:
            return self.current.cluster_name
        ifv = version % self.increment or self.increment
        for record in self.all():
            if record.initial_failover_version == ifv:
                return record.cluster_name
        return f"unknown-cluster-{ifv}"

    # ------------------------------------------------------------------ changes
    async def upsert(self, record: ClusterMetadataRecord) -> None:
        await self.sync()
        async with self._lock:
            previous = self._remotes.get(record.cluster_name)
            record.version = (previous.version if previous is not None else 0) + 1
            await self._store.save_cluster(record.cluster_name, record.SerializeToString())
            self._remotes[record.cluster_name] = record
        await self._stamp()
        self._changed()

    async def remove(self, name: str) -> bool:
        await self.sync()
        async with self._lock:
            if name not in self._remotes:
                return False
            await self._store.delete_cluster(name)
            del self._remotes[name]
        await self._stamp()
        self._changed()
        return True

    async def _stamp(self) -> None:
        if self.shared is not None:
            await self.shared.stamp()

    # ------------------------------------------------------------------ several nodes, one database
    async def sync(self) -> None:
        """Catch up with changes other nodes made, if the config stamp moved since the last reload (one small
        read); nothing without a shared database."""
        if self.shared is not None:
            await self.reload_at(await self.shared.current())

    async def reload_at(self, stamp: str | None) -> bool:
        """Reload the remote clusters' rows unless already done at config stamp `stamp` (read before calling: a
        change committed before that stamp was written is then seen); whether it reloaded. The listeners hear of
        a change as they do of one made here."""
        async with self._lock:  # no change of this node's is half-way (stored, not yet cached) meanwhile
            if stamp == self._stamp_seen:
                return False
            rows = {
                r.cluster_name: r
                for r in (ClusterMetadataRecord.FromString(b) for b in await self._store.load_clusters())
                if r.cluster_name != self.current.cluster_name
            }
            changed = sorted(n for n in rows.keys() | self._remotes.keys() if rows.get(n) != self._remotes.get(n))
            if changed:
                log.info("remote clusters changed on another node: %s", ", ".join(changed))
                self._remotes = rows
            self._stamp_seen = stamp
        if changed:
            self._changed()
        return True

    def _changed(self) -> None:
        for listener in self.listeners:
            listener()
