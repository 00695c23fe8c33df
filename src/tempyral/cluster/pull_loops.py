"""One pull loop per connected remote cluster, kept in step with the cluster metadata: what namespace replication
and Nexus endpoint replication share (each asks every connected cluster about twice a second for its changes)."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

import grpc

from tempyral.cluster.client import peer_error, refused_by_peer
from tempyral.cluster.metadata import ClusterMetadata
from tempyral.common.logs import ThrottledLog
from tempyral.common.tasks import cancel_and_wait

PULL_INTERVAL_S = 0.5
PULL_JITTER = 0.2


class PullLoops:
    def __init__(
        self, clusters: ClusterMetadata, what: str, pull: Callable[[str], Awaitable[object]], log: logging.Logger
    ) -> None:
        self.clusters = clusters
        self.what = what  # "namespace replication": for task names and log lines
        self.pull = pull
        self.log = log
        self._loops: dict[str, asyncio.Task[None]] = {}
        self._failures = ThrottledLog(log)
        self._said_refused: set[str] = set()  # told once per remote, until it answers

    def start(self) -> None:
        if self._follow not in self.clusters.listeners:  # started again (several nodes: cluster/cluster_wide.py)
            self.clusters.listeners.append(self._follow)
        self._follow()

    def _follow(self) -> None:
        """One loop per connected remote cluster; none for a removed or disabled one."""
        wanted = {r.cluster_name for r in self.clusters.remotes() if r.is_connection_enabled}
        for name in list(self._loops):
            if name not in wanted:
                self._loops.pop(name).cancel()
        for name in wanted - set(self._loops):
            task_name = f"{self.what.replace(' ', '-')}-{name}"
            self._loops[name] = asyncio.get_running_loop().create_task(self._run(name), name=task_name)

    async def stop(self) -> None:
        if self._follow in self.clusters.listeners:  # a stopped loop set stays stopped
            self.clusters.listeners.remove(self._follow)
        loops, self._loops = list(self._loops.values()), {}
        await cancel_and_wait(loops)

    def answered(self, remote: str) -> None:
        """`remote` answered a pull: a later refusal is worth saying again."""
        if remote in self._said_refused:
            self._said_refused.discard(remote)
            self.log.info("cluster %s takes this cluster's %s calls now", remote, self.what)

    async def _run(self, remote: str) -> None:
        while True:
            try:
                await self.pull(remote)
            except asyncio.CancelledError:
                raise
            except grpc.aio.AioRpcError as err:
                if refused_by_peer(err):
                    # the other half of a connection not made yet: said once, not an error
                    if remote not in self._said_refused:
                        self._said_refused.add(remote)
                        self.log.warning(
                            "cluster %s does not take this cluster's %s calls (yet): %s",
                            remote,
                            self.what,
                            err.details(),
                        )
                else:
                    self._failures.failure(f"{self.what} from cluster {remote} failed", peer_error(err))
            except Exception as err:
                self._failures.failure(f"{self.what} from cluster {remote} failed", err)
            await asyncio.sleep(PULL_INTERVAL_S * random.uniform(1 - PULL_JITTER, 1 + PULL_JITTER))
