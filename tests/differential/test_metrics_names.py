"""The metrics tempyral exposes are named, typed and labelled as the reference's: the same small traffic against
both servers, and for each family below the set of label names of its samples is the same on both (so that
Temporal's dashboards and alerts, written against the reference, find tempyral's)."""

from __future__ import annotations

import asyncio
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from tests.conftest import within
from tests.support.metrics_traffic import drive
from tests.support.servers import ServerProcess

# The families compared: those the traffic makes both servers write (parsed names: counters without _total).
COMPARED = (
    "service_requests",
    "service_error_with_type",
    "service_latency",
    "persistence_requests",
    "persistence_latency",
    "task_requests",
    "task_latency",
    "task_latency_processing",
    "task_latency_queue",
    "poll_success",
    "poll_success_sync",
    "workflow_success",
    "workflow_failed",
    "workflow_timeout",
    "workflow_terminate",
    "workflow_cancel",
)

Shape = dict[str, tuple[str, frozenset[tuple[str, ...]]]]


def shapes(port: int) -> Shape:
    """Per family: its type and the label-name sets of its samples (`le` aside)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    out: Shape = {}
    for family in text_string_to_metric_families(text):
        if family.name in COMPARED:
            labels = frozenset(tuple(sorted(k for k in s.labels if k != "le")) for s in family.samples)
            out[family.name] = (family.type, labels)
    return out


async def _after_traffic(server: ServerProcess, port: int) -> Shape:
    client = await Client.connect(server.address)
    await within(drive(client, completed=1), 120)
    return await asyncio.to_thread(shapes, port)


async def test_families_are_named_typed_and_labelled_as_the_reference(
    server: ServerProcess, reference_server: ServerProcess
) -> None:
    assert reference_server.metrics_port is not None and server.http_port is not None
    reference, ours = await asyncio.gather(
        _after_traffic(reference_server, reference_server.metrics_port),
        _after_traffic(server, server.http_port),  # the HTTP API port serves the same metrics
    )
    assert sorted(reference) == sorted(COMPARED)  # the traffic made the reference write every family compared
    assert {name: ours.get(name) for name in COMPARED} == {name: reference[name] for name in COMPARED}
