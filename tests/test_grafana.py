"""The Grafana dashboard in deploy/ queries only metrics that jobtrail exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jobtrail.metrics import JobtrailCollector, MetricsSnapshot, NodeCollector
from jobtrail.store.node_stats import NodeStats

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "jobtrail-dashboard.json"


def _exported() -> tuple[set[str], set[str]]:
    """Sample names of the API's collector and of a worker's, each with every family filled."""
    snap = MetricsSnapshot({"pending": 1}, {"created": 1}, ((1.0, 1), (float("inf"), 0)), 0.5,
                           0, 0.0, 0, 1, 0, {"127.0.0.1:6379": 0}, {"127.0.0.1:6379": 0},
                           {"127.0.0.1:6379": 1})
    hist = (((1.0, 1), (float("inf"), 0)), 0.5)
    node = NodeStats(1, {"timeout": 1}, hist, {"equation": hist})
    api = {s.name for f in JobtrailCollector(lambda: snap).collect() for s in f.samples}
    worker = {s.name for f in NodeCollector("w1@h", lambda: node, lambda: 1).collect()
              for s in f.samples}
    return api, worker


def test_every_panel_queries_an_exported_metric() -> None:
    api, worker = _exported()
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 16
    for expr in exprs:
        for name in re.findall(r"\bjobtrail_[a-z_]+", expr):
            assert name in api | worker, f"{name} in {expr!r} is not exported"
        # one exporter per series: sum() over targets is the true figure, max() would hide it
        assert not expr.startswith("max("), expr


def test_api_and_worker_export_disjoint_series() -> None:
    api, worker = _exported()
    assert api and worker and not api & worker
    assert all(name.startswith("jobtrail_worker_") for name in worker)
