"""Metrics on --metrics-port after known traffic (parsed with prometheus_client's parser), and the logs:
`--log-format json --log-level debug` writes one JSON object per line with a line per request; `--log-level never`
writes nothing."""

from __future__ import annotations

import asyncio
import json
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError

from tests.conftest import within
from tests.support.metrics_traffic import Traffic, drive
from tests.support.servers import ServerProcess, free_port, tempyral

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def _port(server: ServerProcess) -> int:
    assert server.metrics_port is not None
    return server.metrics_port


@pytest.fixture(scope="module")
def metrics_server() -> Iterator[ServerProcess]:
    metrics_port = free_port()
    proc = tempyral(
        extra=["--headless", "--metrics-port", str(metrics_port), "--log-format", "json", "--log-level", "debug"]
    )
    proc.metrics_port = metrics_port
    proc.start()
    yield proc
    proc.stop()


@pytest_asyncio.fixture(scope="module")
async def traffic(metrics_server: ServerProcess) -> AsyncIterator[tuple[Samples, Traffic, Samples]]:
    port = _port(metrics_server)
    client = await Client.connect(metrics_server.address)
    before = await asyncio.to_thread(scrape, port)
    done = await within(drive(client), 120)
    after = await asyncio.to_thread(scrape, port)
    yield before, done, after


async def test_service_requests_and_latency_count_the_starts(traffic: tuple[Samples, Traffic, Samples]) -> None:
    before, done, after = traffic
    start = {"operation": "StartWorkflowExecution", "namespace": "default", "service_name": "frontend"}
    grew = total(after, "service_requests_total", **start) - total(before, "service_requests_total", **start)
    assert grew == done.starts
    # the histogram: every bucket of the reference's, in seconds, and a count equal to the requests'
    buckets = {dict(ls)["le"] for (n, ls), _ in after.items() if n == "service_latency_bucket" and start.items() <= ls}
    assert {"0.001", "0.01", "0.1", "1", "10", "1000", "+Inf"} <= buckets  # written as the reference writes them
    assert total(after, "service_latency_count", **start) == total(after, "service_requests_total", **start)
    inf = total(after, "service_latency_bucket", le="+Inf", **start)
    assert inf == total(after, "service_latency_count", **start)


async def test_an_error_is_counted_with_its_type(traffic: tuple[Samples, Traffic, Samples]) -> None:
    before, done, after = traffic
    labels = {"operation": "DescribeWorkflowExecution", "namespace": "default", "error_type": "serviceerror_NotFound"}
    name = "service_error_with_type_total"
    assert total(after, name, **labels) - total(before, name, **labels) == done.not_found
    # NOT_FOUND is the caller's doing: not a service error (as the reference)
    describe = {"operation": "DescribeWorkflowExecution"}
    assert total(after, "service_errors_total", **describe) == total(before, "service_errors_total", **describe)


async def test_workflow_outcomes_are_counted(traffic: tuple[Samples, Traffic, Samples]) -> None:
    _, done, after = traffic
    queue = done.task_queue.replace("-", "_")  # label values as the reference writes them
    for name, expected in (
        ("workflow_success_total", done.completed),
        ("workflow_failed_total", done.failed),
        ("workflow_terminate_total", done.terminated),
        ("workflow_cancel_total", done.cancelled),
        ("workflow_timeout_total", done.timed_out),
    ):
        assert total(after, name, taskqueue=queue, namespace="default") == expected, name
    assert total(after, "workflow_success_total", taskqueue=queue, workflowType="MetricsOk") == done.completed


async def test_persistence_tasks_and_matching_counters_grow(traffic: tuple[Samples, Traffic, Samples]) -> None:
    before, done, after = traffic
    for name in ("persistence_requests_total", "task_requests_total", "poll_success_total"):
        assert total(after, name) > total(before, name), name
    assert total(after, "persistence_requests_total", operation="UpdateWorkflowExecution") > 0
    assert total(after, "persistence_latency_count") == total(after, "persistence_requests_total")
    # the execution timeout fired as a timer task; each run's first workflow task went to a waiting poller (the
    # SDK runs the activities eagerly: they are no polls)
    timeouts = ("TimerActiveTaskWorkflowRunTimeout", "TimerActiveTaskWorkflowExecutionTimeout")
    assert sum(total(after, "task_requests_total", task_type=t) for t in timeouts) >= done.timed_out
    queue = done.task_queue.replace("-", "_")
    assert total(after, "poll_success_total", taskqueue=queue, task_type="Workflow", partition="0") >= done.starts
    assert total(after, "poll_success_sync_total", taskqueue=queue) >= 1


async def test_process_metrics_and_the_http_port_serve_the_same_registry(
    metrics_server: ServerProcess, traffic: tuple[Samples, Traffic, Samples]
) -> None:
    _, _, after = traffic
    assert total(after, "process_resident_memory_bytes") > 0
    assert total(after, "process_cpu_seconds_total") > 0
    assert ("event_loop_lag_seconds", frozenset()) in after
    assert metrics_server.http_port is not None
    on_http_port = await asyncio.to_thread(scrape, metrics_server.http_port)
    assert {name for name, _ in on_http_port} >= {name for name, _ in after if not name.startswith("process_")}


async def test_unknown_namespaces_make_no_series_of_their_own(metrics_server: ServerProcess) -> None:
    client = await Client.connect(metrics_server.address)
    bogus = f"no-such-{uuid.uuid4().hex}"
    with pytest.raises(RPCError):
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=bogus))
    after = await asyncio.to_thread(scrape, _port(metrics_server))
    assert not [key for key in after if any(bogus in value for _, value in key[1])]
    assert total(after, "service_error_with_type_total", operation="DescribeNamespace", namespace="_unknown_") >= 1


async def test_http_api_calls_are_counted(metrics_server: ServerProcess) -> None:
    port = _port(metrics_server)
    labels = {"operation": "ListWorkflowExecutions", "namespace": "default"}
    before = total(await asyncio.to_thread(scrape, port), "service_requests_total", **labels)
    url = f"http://127.0.0.1:{metrics_server.http_port}/api/v1/namespaces/default/workflows"
    with await asyncio.to_thread(urllib.request.urlopen, url, timeout=10) as resp:
        assert resp.status == 200
    after = total(await asyncio.to_thread(scrape, port), "service_requests_total", **labels)
    assert after == before + 1


def _lines(path: str) -> list[str]:
    return Path(path).read_text(errors="replace").splitlines()


def _json_lines(path: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in _lines(path) if line.startswith("{")]


async def test_json_logs_have_a_debug_line_per_request(
    metrics_server: ServerProcess, traffic: tuple[Samples, Traffic, Samples]
) -> None:
    entries = _json_lines(metrics_server.log_path)
    assert entries
    for entry in entries:
        assert {"time", "level", "logger", "msg"} <= entry.keys()
    starts = [
        e
        for e in entries
        if e["logger"] == "tempyral.requests" and e.get("method") == "StartWorkflowExecution" and e["level"] == "debug"
    ]
    assert len(starts) >= traffic[1].starts
    assert starts[0]["namespace"] == "default" and starts[0]["code"] == "OK"
    assert isinstance(starts[0]["latency_ms"], float | int)
    missing = [e for e in entries if e.get("method") == "DescribeWorkflowExecution" and e.get("code") == "NOT_FOUND"]
    assert missing


async def test_log_level_never_prints_nothing(tmp_path: Path) -> None:
    proc = tempyral(extra=["--headless", "--log-level", "never", "--metrics-port", "-1"])
    proc.log_path = str(tmp_path / "never.log")
    proc.start()
    try:
        client = await Client.connect(proc.address)
        await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="default"))
    finally:
        proc.stop()
    lines = await asyncio.to_thread(_lines, proc.log_path)
    # what the command prints on stdout (the addresses), and no log line
    assert lines and all(line.startswith("tempyral server listening on ") for line in lines), lines
