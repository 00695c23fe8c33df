"""The README's metrics table lists exactly the metrics the server defines, and every metric the Grafana dashboard
in docs/ queries is one of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tempyral.metrics import ServerMetrics

REPO = Path(__file__).resolve().parents[2]
# PromQL words that are not metric names
PROMQL = {
    "sum", "max", "min", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "by", "without", "on",
    "ignoring", "vector", "or", "and", "unless", "OR", "AND", "le",
}  # fmt: skip
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def readme_metrics() -> list[str]:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("\n## Metrics and logs\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(r"^\| `([a-z_]+)` \|", section, re.M)


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    names = set()
    for expr in exprs:
        expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
        expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
        expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
        expr = re.sub(r"label_values\(([a-z_]+),[^)]*\)", r"\1", expr)
        names |= {w for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", expr) if w not in PROMQL}
    return names


def test_the_readme_lists_every_metric_and_no_other() -> None:
    listed = readme_metrics()
    assert len(listed) == len(set(listed))
    assert sorted(listed) == ServerMetrics().names()


def test_the_dashboard_queries_only_metrics_the_server_exposes() -> None:
    exposed = set(ServerMetrics().names())
    histograms = {f.name for f in ServerMetrics().families if f.kind == "histogram"}
    queried = dashboard_metrics()
    assert len(queried) > 20
    unknown = set()
    for name in queried:
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        if name in exposed and name not in histograms:
            continue
        if base is not None and base in histograms:
            continue
        unknown.add(name)
    assert not unknown


def test_the_dashboard_is_a_grafana_dashboard_on_a_prometheus_data_source() -> None:
    dashboard = json.loads((REPO / "docs" / "grafana-dashboard.json").read_text())
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for panel in dashboard["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"]
