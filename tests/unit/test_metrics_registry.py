"""The metrics registry: exposition as the reference writes it (counters without _total, cumulative histogram
buckets in seconds, sorted labels), bounded label values, the store wrapper, and the JSON log format."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tempyral.common import log_format
from tempyral.common.errors import Unavailable
from tempyral.frontend import request_log
from tempyral.metrics import ServerMetrics
from tempyral.metrics import server_metrics as sm
from tempyral.metrics.persistence import instrument_store


def test_counters_and_histograms_are_written_as_the_reference_writes_them() -> None:
    m = ServerMetrics()
    labels = ("default", "StartWorkflowExecution", "frontend")
    m.service_requests.inc(labels)
    m.service_requests.inc(labels)
    for seconds in (0.0005, 0.003, 0.003, 2000.0):
        m.service_latency.observe(labels, seconds)
    text = m.render()
    assert "# TYPE service_requests counter\n" in text
    written = 'service_requests{namespace="default",operation="StartWorkflowExecution",service_name="frontend"} 2\n'
    assert written in text
    prefix = 'service_latency_bucket{namespace="default",operation="StartWorkflowExecution",service_name="frontend",le='
    assert f'{prefix}"0.001"}} 1\n' in text
    assert f'{prefix}"0.005"}} 3\n' in text
    assert f'{prefix}"1000"}} 3\n' in text
    assert f'{prefix}"+Inf"}} 4\n' in text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["service_requests"].type == "counter"
    assert families["service_latency"].type == "histogram"
    assert families["process_cpu_seconds"].type == "counter"  # prometheus_client's own keeps its _total


def test_label_values_are_bounded_and_sanitized(monkeypatch: pytest.MonkeyPatch) -> None:
    m = ServerMetrics()
    m.known_namespace = lambda name: name == "my-ns"
    assert m.namespace_label("my-ns") == "my_ns"
    assert m.namespace_label("someone-elses") == sm.UNKNOWN
    assert m.task_queue_label(sm.UNKNOWN, "q") == sm.OVERFLOW
    monkeypatch.setattr(sm, "MAX_TASK_QUEUES", 2)
    assert [m.task_queue_label("my_ns", f"q-{i}") for i in range(4)] == ["q_0", "q_1", sm.OVERFLOW, sm.OVERFLOW]
    assert m.task_queue_label("my_ns", "q-1") == "q_1"  # one seen before keeps its name


class FakeStore:
    def __init__(self) -> None:
        self.calls = 0

    async def get_execution(self, namespace_id: str, workflow_id: str, run_id: str) -> Any:
        self.calls += 1
        return None

    async def commit(self, txn: Any) -> None:
        raise Unavailable("disk full")


async def test_the_store_wrapper_counts_and_times_calls_and_errors() -> None:
    m = ServerMetrics()
    store = FakeStore()
    instrument_store(store, m)
    await store.get_execution("ns", "wf", "run")
    with pytest.raises(Unavailable):
        await store.commit(None)
    assert store.calls == 1
    get = (sm.UNKNOWN, "GetWorkflowExecution", "history")
    update = (sm.UNKNOWN, "UpdateWorkflowExecution", "history")
    assert m.persistence_requests.get(get) == 1 and m.persistence_latency.count(get) == 1
    assert m.persistence_errors.get(update) == 1
    assert m.persistence_error_with_type.get(("serviceerror_Unavailable", *update)) == 1


def test_json_log_lines_carry_the_fields() -> None:
    out = io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level  # pytest's own, put back after
    log_format.configure("debug", "json", out)
    try:
        request_log.done("StartWorkflowExecution", "default", "OK", 0.0123)
        request_log.refused("StartWorkflowExecution", "other", "PERMISSION_DENIED", "no permission")
        logging.getLogger("x").warning("plain")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0]["level"] == "debug" and lines[0]["logger"] == "tempyral.requests"
    assert lines[0]["method"] == "StartWorkflowExecution" and lines[0]["latency_ms"] == 12.3
    assert lines[1]["level"] == "warn" and lines[1]["reason"] == "no permission"
    assert lines[1]["code"] == "PERMISSION_DENIED" and lines[1]["namespace"] == "other"
    assert lines[2]["msg"] == "plain" and lines[2]["time"].endswith("Z")
