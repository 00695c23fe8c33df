"""Chaos over three clusters (issue 13): workflows that collect signals while a seeded driver disables and enables
connections, SIGKILLs and restarts clusters, and fails the namespace over, planned and forced; then heal. Every
workflow completes, every acknowledged signal is in its history exactly once, and every cluster holds the same
histories. The plan, the actions and a summary are printed (run with -s); tests/support/chaos.py is the harness.

TEMPYRAL_CHAOS_SEED, TEMPYRAL_CHAOS_SECONDS, TEMPYRAL_CHAOS_WORKFLOWS, TEMPYRAL_CHAOS_RATE (signals per second)
and TEMPYRAL_CHAOS_FORCED=0 (no forced failovers) change a run; TEMPYRAL_CHAOS_SHORT=1 runs the short version;
TEMPYRAL_CHAOS_LOG_LEVEL=info makes the servers log more (their logs: /tmp/tempyral-<port>.log, printed).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator

import pytest

from tests.conftest import new_id
from tests.support.chaos import Chaos, Settings, summary
from tests.support.clusters import Cluster, running_clusters
from tests.xdc.chaos_workflows import ChaosCollector
from tests.xdc.conftest import create_global_namespace


@pytest.fixture
def three_clusters() -> Iterator[list[Cluster]]:
    """a, b, c with initial failover versions 1, 2, 3 (increment 10), every pair connected; each keeps its
    database in a file of its own, so a SIGKILLed cluster restarts on its data. TEMPYRAL_CHAOS_LOG_LEVEL=info puts
    what conflict resolution does in the servers' logs."""
    level = os.environ.get("TEMPYRAL_CHAOS_LOG_LEVEL")
    with running_clusters(["a", "b", "c"], extra=["--log-level", level] if level else None) as started:
        yield started


async def run_chaos(clusters: list[Cluster], settings: Settings) -> None:
    ns = create_global_namespace(clusters, active="a")
    chaos = Chaos(clusters, ns, settings, new_id("chaos-tq"))
    await chaos.connect()
    chaos.start_workers([ChaosCollector])
    figures: dict[str, object] = {}
    try:
        await chaos.start_workflows()
        stop = asyncio.Event()
        signaller = asyncio.create_task(chaos.signaller(stop))
        try:
            await chaos.drive()
        finally:
            stop.set()
            await signaller
        healing = chaos.log.elapsed()
        await chaos.heal()
        active = await chaos.wait_agree()
        figures["heal to agreement"] = f"{chaos.log.elapsed() - healing:.1f} s"
        await chaos.finish_all(active)
        not_completed = await chaos.wait_completed(active)
        figures["heal to every workflow completed"] = f"{chaos.log.elapsed() - healing:.1f} s"
        differ = await chaos.wait_converged()
        figures["heal to equal histories"] = f"{chaos.log.elapsed() - healing:.1f} s"
        histories = await chaos.histories_on(active)
        wrong = chaos.check_signals(histories)
        figures.update(await chaos.conflicts(histories))
        await chaos.diagnose(not_completed + wrong, active)
        failures = [m for _, _, m in not_completed] + differ + [m for _, _, m in wrong] + chaos.stats.problems
        assert not failures, (
            f"seed {settings.seed}: {len(not_completed)} workflows not completed, {len(differ)} differ between "
            f"clusters, {len(wrong)} signals wrong, {len(chaos.stats.problems)} other problems:\n"
            + "\n".join(f[:2000] for f in failures[:30])
        )
    finally:
        summary(chaos, figures)
        await chaos.stop_workers()


@pytest.mark.timeout(660)
async def test_chaos(three_clusters: list[Cluster]) -> None:
    # TEMPYRAL_CHAOS_SHORT=1: 30 s of chaos over 60 workflows, while developing
    short = bool(os.environ.get("TEMPYRAL_CHAOS_SHORT"))
    defaults = {"seconds": 30, "workflows": 60} if short else {"seconds": 180, "workflows": 300}
    await run_chaos(three_clusters, Settings.from_env(**defaults))
