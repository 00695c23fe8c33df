"""Metric families kept as plain dicts and written out at scrape time.

A request costs a dict update or two here, not a lock and a child object as prometheus_client's own metric
classes would; the families are still a prometheus_client Collector, so the server's CollectorRegistry lists
them next to the process collector. Counters are exposed as the reference exposes them (its Prometheus reporter
from tally): the sample has the family's name, without the `_total` suffix prometheus_client would add, so the
queries of Temporal's dashboards and alerts find them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

Labels = tuple[str, ...]

# The reference's default histogram buckets for latencies, in seconds (tally's Prometheus reporter).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000,
)  # fmt: skip


class Family(ABC):
    """One metric family; Counter, Gauge and Histogram say how their samples are written."""

    kind = ""

    def __init__(self, name: str, labelnames: tuple[str, ...], doc: str = "") -> None:
        # Label values are passed in the order of `labelnames`: sorted, as the reference writes them.
        assert list(labelnames) == sorted(labelnames), f"{name}: label names must be sorted"
        self.name = name
        self.labelnames = labelnames
        self.doc = doc or f"{name} {self.kind}"

    @abstractmethod
    def metric(self) -> Metric: ...

    def _labels(self, values: Labels) -> dict[str, str]:
        return dict(zip(self.labelnames, values, strict=True))


class Counter(Family):
    kind = "counter"

    def __init__(self, name: str, labelnames: tuple[str, ...], doc: str = "") -> None:
        super().__init__(name, labelnames, doc)
        self.values: dict[Labels, float] = {}

    def inc(self, labels: Labels, amount: float = 1.0) -> None:
        values = self.values
        values[labels] = values.get(labels, 0.0) + amount

    def get(self, labels: Labels) -> float:
        return self.values.get(labels, 0.0)

    def metric(self) -> Metric:
        m = Metric(self.name, self.doc, "counter")
        m.samples = [Sample(self.name, self._labels(k), v) for k, v in self.values.items()]
        return m


class Gauge(Family):
    """Set by the code that knows the value, or read at scrape time from `read` (what is current then)."""

    kind = "gauge"

    def __init__(
        self,
        name: str,
        labelnames: tuple[str, ...],
        doc: str = "",
        read: Callable[[], Iterable[tuple[Labels, float]]] | None = None,
    ) -> None:
        super().__init__(name, labelnames, doc)
        self.values: dict[Labels, float] = {}
        self.read = read

    def set(self, labels: Labels, value: float) -> None:
        self.values[labels] = value

    def metric(self) -> Metric:
        m = Metric(self.name, self.doc, "gauge")
        items = list(self.values.items())
        if self.read is not None:
            items += list(self.read())
        m.samples = [Sample(self.name, self._labels(k), v) for k, v in items]
        return m


class Histogram(Family):
    kind = "histogram"

    def __init__(
        self, name: str, labelnames: tuple[str, ...], doc: str = "", buckets: tuple[float, ...] = LATENCY_BUCKETS_S
    ) -> None:
        super().__init__(name, labelnames, doc)
        self.buckets = buckets
        # Per label set: a count per bucket (not cumulative; the last is +Inf), then the sum, then the count.
        self.values: dict[Labels, list[float]] = {}

    def observe(self, labels: Labels, value: float) -> None:
        row = self.values.get(labels)
        if row is None:
            row = self.values[labels] = [0.0] * (len(self.buckets) + 3)
        row[bisect_left(self.buckets, value)] += 1
        row[-2] += value
        row[-1] += 1

    def count(self, labels: Labels) -> float:
        row = self.values.get(labels)
        return row[-1] if row else 0.0

    def metric(self) -> Metric:
        m = Metric(self.name, self.doc, "histogram")
        samples = []
        for key, row in self.values.items():
            labels = self._labels(key)
            total = 0.0
            for bound, n in zip((*self.buckets, math.inf), row, strict=False):
                total += n
                samples.append(Sample(f"{self.name}_bucket", {**labels, "le": _bound(bound)}, total))
            samples.append(Sample(f"{self.name}_sum", labels, row[-2]))
            samples.append(Sample(f"{self.name}_count", labels, row[-1]))
        m.samples = samples
        return m


def _bound(bound: float) -> str:
    if math.isinf(bound):
        return "+Inf"
    return str(int(bound)) if bound == int(bound) else repr(bound)


class FamilyCollector(Collector):
    def __init__(self, families: list[Family]) -> None:
        self.families = families

    def collect(self) -> Iterator[Metric]:
        for family in self.families:
            yield family.metric()


def render(metrics: Iterable[Metric]) -> str:
    """The Prometheus text format, written as the reference writes it: `# HELP`, `# TYPE`, label names sorted (`le`
    last). A counter of prometheus_client's own (the process collector's) keeps its `_total` sample name, and its
    TYPE line names the samples."""
    out: list[str] = []
    for metric in metrics:
        name = metric.name
        if metric.type == "counter" and metric.samples and metric.samples[0].name == name + "_total":
            name += "_total"
        kind = metric.type if metric.type in ("counter", "gauge", "histogram", "summary") else "untyped"
        out.append(f"# HELP {name} {_escape_help(metric.documentation)}\n# TYPE {name} {kind}\n")
        for sample in metric.samples:
            out.append(_sample_line(sample))
    return "".join(out)


def _sample_line(sample: Sample) -> str:
    labels = sample.labels
    if labels:
        keys = sorted(k for k in labels if k != "le")
        if "le" in labels:
            keys.append("le")
        text = ",".join(f'{k}="{_escape_label(labels[k])}"' for k in keys)
        return f"{sample.name}{{{text}}} {_number(sample.value)}\n"
    return f"{sample.name} {_number(sample.value)}\n"


def _number(value: float) -> str:
    if math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n")
