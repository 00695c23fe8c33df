"""Automatic failover (issue 13 part 3): a namespace opted in with `tempyral namespace auto-failover` fails over to
its standby when the active cluster is SIGKILLed, keeps going there, and comes back to its preferred cluster
(gracefully) once that cluster is up and caught up; the two clusters never end with two actives."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import timedelta
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from tests.conftest import new_id, within
from tests.support.clusters import Cluster, temporal_cli
from tests.xdc.conftest import connect, create_global_namespace
from tests.xdc.failover_workflows import Collector
from tests.xdc.test_graceful_failover import signal_request, signalled_values

WINDOW = "3s"


def namespace_view(cluster: Cluster, ns: str) -> dict[str, object] | None:
    result = temporal_cli(cluster.address, "operator", "namespace", "describe", "-n", ns, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    view: dict[str, object] = json.loads(result.stdout)
    return view


def active_on(cluster: Cluster, ns: str) -> str | None:
    view = namespace_view(cluster, ns)
    if view is None:
        return None
    rc = view["replicationConfig"]
    assert isinstance(rc, dict)
    return str(rc["activeClusterName"])


async def wait_for(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(check):  # type: ignore[arg-type]
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout}s: {what}")


async def signal_until_accepted(client: Client, ns: str, workflow_id: str, value: str, timeout: float = 60) -> None:
    """Send the signal (one request id) until a cluster takes it: NamespaceNotActive and UNAVAILABLE are retried."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await client.workflow_service.signal_workflow_execution(
                signal_request(ns, workflow_id, value), retry=False, timeout=timedelta(seconds=5)
            )
            return
        except RPCError as err:
            retryable = (RPCStatusCode.FAILED_PRECONDITION, RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
            if err.status not in retryable or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def first_task_started_after(client: Client, workflow_id: str, event_id: int) -> bool:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    return any(
        e.event_id > event_id and e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED for e in history.events
    )


@pytest.mark.timeout(240)
async def test_the_active_killed_its_standby_takes_over_and_the_preferred_cluster_gets_it_back(
    clusters: list[Cluster],
) -> None:
    a, b = clusters
    ns = create_global_namespace(clusters)
    command = [sys.executable, "-m", "tempyral", "namespace", "auto-failover", "--namespace", ns]
    await asyncio.to_thread(
        subprocess.run,
        [*command, "--window", WINDOW, "--preferred", "a", "--address", a.address],
        check=True,
        timeout=60,
    )
    # the setting is namespace data: replicated, and shown by describe on both clusters

    def has_setting() -> bool:
        view: Any = namespace_view(b, ns)
        data: dict[str, str] = view["namespaceInfo"].get("data", {}) if view else {}
        return data.get("tempyral.auto-failover.window") == WINDOW and (
            data.get("tempyral.auto-failover.preferred-cluster") == "a"
        )

    await wait_for(has_setting, 20, "the auto-failover setting on b")
    client_a, client_b = await connect(a, ns), await connect(b, ns)
    tq = new_id("tq")
    async with Worker(client_b, task_queue=tq, workflows=[Collector]):
        worker_a = Worker(client_a, task_queue=tq, workflows=[Collector])
        worker_a_run = asyncio.create_task(worker_a.run())
        try:
            wid = new_id("wf")
            await client_a.start_workflow(Collector.run, id=wid, task_queue=tq)
            await client_a.get_workflow_handle(wid).signal(Collector.add, "one")
            deadline = time.monotonic() + 30
            while await _values(client_b, wid) != ["one"]:
                assert time.monotonic() < deadline, "the first signal never reached b"
                await asyncio.sleep(0.2)
            last_event = len((await client_b.get_workflow_handle(wid).fetch_history()).events)

            a.server.kill()
            killed = time.monotonic()
            await signal_until_accepted(client_b, ns, wid, "two")
            failed_over = time.monotonic()
            deadline = time.monotonic() + 60
            while not await first_task_started_after(client_b, wid, last_event):
                assert time.monotonic() < deadline, "no workflow task on b after the failover"
                await asyncio.sleep(0.1)
            dispatched = time.monotonic()
            print(
                f"automatic failover (window {WINDOW}): kill -> b active and the signal accepted "
                f"{failed_over - killed:.2f}s, kill -> first workflow task started on b {dispatched - killed:.2f}s"
            )
            assert active_on(b, ns) == "b"

            a.server.start()
            # b gives the namespace back to its preferred cluster once a answers and has caught up
            await wait_for(lambda: active_on(a, ns) == "a" and active_on(b, ns) == "a", 120, "failback to a")
            print(f"failback to a done {time.monotonic() - killed:.2f}s after the kill")
            await signal_until_accepted(client_a, ns, wid, "three")
            await client_a.get_workflow_handle(wid).signal(Collector.done)
            assert await within(client_a.get_workflow_handle(wid).result(), 60) == ["one", "two", "three"]
            # one active cluster, the same on both, and it stays so
            for _ in range(5):
                assert (active_on(a, ns), active_on(b, ns)) == ("a", "a")
                await asyncio.sleep(0.5)
        finally:
            await worker_a.shutdown()
            await asyncio.gather(worker_a_run, return_exceptions=True)


async def _values(client: Client, workflow_id: str) -> list[str]:
    try:
        return await signalled_values(client, workflow_id)
    except RPCError:
        return []
