"""Automatic failover, opt-in per global namespace (the reference has none: temporalio/temporal#716).

The setting is in the namespace's data, so it replicates with the namespace and shows in `namespace describe`:
`tempyral.auto-failover.window` (a duration such as `10s`; `off` or absent: no automatic failover) and
`tempyral.auto-failover.preferred-cluster` (optional). `tempyral namespace auto-failover` sets them.

Every cluster runs an AutoFailover. About once a second it probes, with a short deadline, the frontends that
matter to the opted-in namespaces (the internal DescribeCluster RPC at each cluster's stored address):
- where a namespace is standby here: its active cluster, and its other standbys. When every probe of the active
  has failed for the whole window, this cluster fails the namespace over to itself: a forced failover, the same
  code path as UpdateNamespace with a new active cluster, issued locally. With several standbys, the reachable
  standby with the lowest initial failover version goes first; each reachable standby ahead of this one adds a
  window to the wait, so two rarely both take over, and if they do, the higher failover version wins everywhere
  (namespace replication is last-writer-wins on it).
- where a namespace is active here and another cluster is preferred: the preferred cluster. Once it has answered
  probes for FAILBACK_STABLE_S and its lag behind this cluster is under FAILBACK_MAX_LAG_S (its
  GetReplicationStatus), this cluster fails the namespace over to it gracefully (cluster/graceful.py); a failed
  attempt is tried again a window later.
Every decision is logged.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from temporalio.api.replication.v1 import message_pb2 as replication_pb
from temporalio.api.workflowservice.v1 import request_response_pb2 as ws

from tempyral.cluster.graceful import graceful_failover, inbound_from
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.cluster.peers import Peers
from tempyral.common.tasks import cancel_and_wait
from tempyral.namespace.registry import Namespace, NamespaceRegistry

log = logging.getLogger(__name__)
WINDOW_KEY = "tempyral.auto-failover.window"
PREFERRED_KEY = "tempyral.auto-failover.preferred-cluster"
PROBE_INTERVAL_S = 1.0
PROBE_TIMEOUT_S = 0.8
FAILBACK_STABLE_S = 2.0  # the preferred cluster answers this long before a failback starts
FAILBACK_MAX_LAG_S = 5.0
FAILBACK_TIMEOUT_S = 30.0
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# A forced failover of the named namespace to the named cluster, issued on this cluster (UpdateNamespace's path).
ForcedFailover = Callable[[str, str], Awaitable[None]]


def local_failover(update: Callable[[ws.UpdateNamespaceRequest], Awaitable[Any]]) -> ForcedFailover:
    """A forced failover through `update` (the frontend's UpdateNamespace handler, called in-process)."""

    async def fail_over(namespace: str, to: str) -> None:
        config = replication_pb.NamespaceReplicationConfig(active_cluster_name=to)
        await update(ws.UpdateNamespaceRequest(namespace=namespace, replication_config=config))

    return fail_over


def parse_duration(value: str) -> float | None:
    """Seconds of `5s`, `500ms`, `1m`, `1.5h`; None for anything else (`off`, empty)."""
    match = _DURATION.match(value.strip())
    if match is None:
        return None
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


@dataclass(frozen=True, slots=True)
class Settings:
    window: float  # seconds the active must stay unreachable
    preferred: str  # "" : none


def settings_of(ns: Namespace) -> Settings | None:
    """The namespace's automatic failover settings; None when it did not opt in (or is not replicated)."""
    if not ns.replicated:
        return None
    window = parse_duration(ns.record.info.data.get(WINDOW_KEY, ""))
    if window is None or window <= 0:
        return None
    return Settings(window, ns.record.info.data.get(PREFERRED_KEY, ""))


class Probes:
    """What the probes of each cluster found: since when it has been unreachable, or reachable."""

    def __init__(self) -> None:
        self.down_since: dict[str, float] = {}
        self.up_since: dict[str, float] = {}

    def record(self, cluster: str, ok: bool, now: float) -> None:
        if ok:
            self.down_since.pop(cluster, None)
            self.up_since.setdefault(cluster, now)
        else:
            self.up_since.pop(cluster, None)
            self.down_since.setdefault(cluster, now)

    def down_for(self, cluster: str, now: float) -> float:
        since = self.down_since.get(cluster)
        return 0.0 if since is None else now - since

    def up_for(self, cluster: str, now: float) -> float:
        since = self.up_since.get(cluster)
        return 0.0 if since is None else now - since

    def is_up(self, cluster: str) -> bool:
        return cluster in self.up_since


def takeover_wait(settings: Settings, me: str, ns: Namespace, clusters: ClusterMetadata, probes: Probes) -> float:
    """How long the active must stay unreachable before this standby takes over: a window, and one more for each
    reachable standby with a lower initial failover version (it goes first)."""
    mine = _initial_version(clusters, me)
    ahead = [
        c
        for c in ns.clusters
        if c not in (me, ns.active_cluster) and probes.is_up(c) and _initial_version(clusters, c) < mine
    ]
    return settings.window * (1 + len(ahead))


def _initial_version(clusters: ClusterMetadata, name: str) -> int:
    record = clusters.get(name)
    return record.initial_failover_version if record is not None else 1 << 62


class AutoFailover:
    def __init__(
        self,
        clusters: ClusterMetadata,
        namespaces: NamespaceRegistry,
        peers: Peers,
        fail_over: ForcedFailover,
        own_address: Callable[[], str],
        interval: float = PROBE_INTERVAL_S,
    ) -> None:
        self.clusters = clusters
        self.namespaces = namespaces
        self.peers = peers  # the channels replication uses: one per remote cluster, following its address
        self.fail_over = fail_over
        self.own_address = own_address
        self.interval = interval
        self.probes = Probes()
        self._runner: asyncio.Task[None] | None = None
        self._failbacks: dict[str, asyncio.Task[None]] = {}
        self._retry_after: dict[str, float] = {}  # namespace -> no new attempt before (monotonic)
        self._announced: set[tuple[str, str]] = set()  # (namespace, what) said once per episode

    def start(self) -> None:
        self._runner = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        await cancel_and_wait([self._runner, *self._failbacks.values()])

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("automatic failover: a round failed")
            await asyncio.sleep(self.interval)

    # ------------------------------------------------------------------ one round
    async def tick(self) -> None:
        me = self.clusters.name
        opted = [(ns, s) for ns in self.namespaces.all() if (s := settings_of(ns)) is not None and me in ns.clusters]
        targets: set[str] = set()
        for ns, s in opted:
            if ns.active_cluster == me:
                if s.preferred and s.preferred != me and s.preferred in ns.clusters:
                    targets.add(s.preferred)
            else:
                targets.update(c for c in ns.clusters if c != me)
        names = sorted(targets)
        results = await asyncio.gather(*(self._probe(c) for c in names))
        now = time.monotonic()
        for name, ok in zip(names, results, strict=True):
            if not ok and self.probes.is_up(name):
                log.warning("automatic failover: cluster %s stopped answering probes", name)
            elif ok and name in self.probes.down_since:
                log.info("automatic failover: cluster %s answers probes again", name)
            self.probes.record(name, ok, now)
        for ns, s in opted:
            if ns.active_cluster == me:
                self._maybe_fail_back(ns, s, now)
            else:
                await self._maybe_take_over(ns, s, now)

    async def _probe(self, cluster: str) -> bool:
        client = self.peers.client(cluster)
        if client is None:
            return False
        try:
            await client.describe_cluster(timeout=PROBE_TIMEOUT_S)
        except Exception:
            return False
        return True

    async def _maybe_take_over(self, ns: Namespace, s: Settings, now: float) -> None:
        me, active = self.clusters.name, ns.active_cluster
        down_for = self.probes.down_for(active, now)
        if down_for <= 0:
            self._announced.discard((ns.name, "down"))
            return
        wait = takeover_wait(s, me, ns, self.clusters, self.probes)
        if (ns.name, "down") not in self._announced:
            self._announced.add((ns.name, "down"))
            log.warning(
                "automatic failover: %s, active in %s, is unreachable; %s takes it over after %.1fs unreachable",
                ns.name,
                active,
                me,
                wait,
            )
        if down_for < wait or now < self._retry_after.get(ns.name, 0.0):
            return
        log.warning(
            "automatic failover: %s unreachable for %.1fs (window %.1fs): failing %s over to %s (forced)",
            active,
            down_for,
            wait,
            ns.name,
            me,
        )
        try:
            await self.fail_over(ns.name, me)
        except Exception as err:
            self._retry_after[ns.name] = now + s.window
            log.error("automatic failover of %s to %s failed: %s; retrying in %.1fs", ns.name, me, err, s.window)
            return
        self._announced.discard((ns.name, "down"))
        current = self.namespaces.find(ns.name)
        log.warning(
            "automatic failover: %s is active in %s now (failover version %d)",
            ns.name,
            me,
            current.failover_version if current is not None else 0,
        )

    def _maybe_fail_back(self, ns: Namespace, s: Settings, now: float) -> None:
        preferred = s.preferred
        if not preferred or preferred == self.clusters.name or preferred not in ns.clusters:
            return
        running = self._failbacks.get(ns.name)
        if running is not None and not running.done():
            return
        if self.probes.up_for(preferred, now) < FAILBACK_STABLE_S or now < self._retry_after.get(ns.name, 0.0):
            return
        task = asyncio.get_running_loop().create_task(self._fail_back(ns.name, preferred, s))
        self._failbacks[ns.name] = task

    async def _fail_back(self, namespace: str, preferred: str, s: Settings) -> None:
        me = self.clusters.name
        client = self.peers.client(preferred)
        try:
            if client is None:
                return
            status = await client.replication_status(namespace, timeout=PROBE_TIMEOUT_S * 3)
            inbound = inbound_from(status, me)
            if inbound is None or not inbound.connected or inbound.lag_seconds >= FAILBACK_MAX_LAG_S:
                lag = "unknown" if inbound is None else f"{inbound.lag_seconds:.1f}s"
                if (namespace, "lagging") not in self._announced:
                    self._announced.add((namespace, "lagging"))
                    log.info(
                        "automatic failback of %s to %s: waiting for it to catch up (lag %s)", namespace, preferred, lag
                    )
                self._retry_after[namespace] = time.monotonic() + self.interval
                return
            self._announced.discard((namespace, "lagging"))
            log.warning(
                "automatic failback: preferred cluster %s of %s is reachable and %.3fs behind: graceful failover",
                preferred,
                namespace,
                inbound.lag_seconds,
            )
            result = await graceful_failover(
                self.own_address(), namespace, preferred, max_lag=FAILBACK_MAX_LAG_S, timeout=FAILBACK_TIMEOUT_S
            )
            log.warning("automatic failback of %s to %s done in %.3fs", namespace, preferred, result.seconds)
        except asyncio.CancelledError:
            raise
        except Exception as err:  # FailoverError, or the peer's answer
            self._retry_after[namespace] = time.monotonic() + s.window
            log.error(
                "automatic failback of %s to %s failed: %s; trying again in %.1fs", namespace, preferred, err, s.window
            )
