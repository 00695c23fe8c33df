"""Two tempyral clusters (a: initial failover version 1, b: 2) shared by a module's tests; each test makes its own
global namespace, so failovers of one test do not touch another's."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import PollWorkflowTaskQueueRequest
from temporalio.client import Client

from tests.conftest import new_id
from tests.support.clusters import Cluster, running_clusters, temporal_cli

EventKey = tuple[int, str, int]  # event id, type, version


@pytest.fixture(scope="module")
def clusters() -> Iterator[list[Cluster]]:
    with running_clusters(["a", "b"]) as started:
        yield started


def create_global_namespace(clusters: list[Cluster], active: str = "a", retention: str = "24h") -> str:
    """A global namespace on every cluster of `clusters`, active in `active`, known everywhere when this returns."""
    name = new_id("g")
    args = [
        "operator",
        "namespace",
        "create",
        "-n",
        name,
        "--global",
        "--active-cluster",
        active,
        "--retention",
        retention,
    ]
    for c in clusters:
        args += ["--cluster", c.name]
    temporal_cli(clusters[0].address, *args)
    for c in clusters:
        wait_for_namespace(c, name, active)
    return name


def wait_for_namespace(cluster: Cluster, name: str, active: str, timeout: float = 20.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while True:
        result = temporal_cli(
            cluster.address, "operator", "namespace", "describe", "-n", name, "-o", "json", check=False
        )
        if result.returncode == 0 and f'"activeClusterName": "{active}"' in result.stdout:
            return
        assert time.monotonic() < deadline, f"namespace {name} not active in {active} on {cluster.name}: {result}"
        time.sleep(0.1)


def failover(via: Cluster, namespace: str, to: str) -> None:
    temporal_cli(via.address, "operator", "namespace", "update", "-n", namespace, "--active-cluster", to)


async def connect(cluster: Cluster, namespace: str) -> Client:
    return await Client.connect(cluster.address, namespace=namespace)


async def hold_workflow_task(client: Client, namespace: str, task_queue: str) -> bytes:
    """Take the queue's next workflow task as a worker that never answers; its task token."""
    polled = await client.workflow_service.poll_workflow_task_queue(
        PollWorkflowTaskQueueRequest(namespace=namespace, task_queue=TaskQueue(name=task_queue), identity="old-worker")
    )
    assert polled.task_token
    return polled.task_token


async def events(client: Client, workflow_id: str, run_id: str | None = None) -> list[EventKey]:
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    return [(e.event_id, EventType.Name(e.event_type), e.version) for e in history.events]


async def wait_for_events(
    client: Client, workflow_id: str, expected: list[EventKey], run_id: str | None = None, timeout: float = 20.0
) -> None:
    """Until the run's history on `client`'s cluster is `expected` (replication caught up)."""
    deadline = asyncio.get_running_loop().time() + timeout
    got: list[EventKey] = []
    while asyncio.get_running_loop().time() < deadline:
        try:
            got = await events(client, workflow_id, run_id)
        except Exception:
            got = []
        if got == expected:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"history of {workflow_id} never became {expected}; last: {got}")


async def wait_until(predicate: object, timeout: float = 20.0, what: str = "") -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout}s: {what}")
