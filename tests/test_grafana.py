"""The Grafana dashboard in deploy/ queries only metrics that jobtrail exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

from jobtrail.metrics import JobtrailCollector, MetricsSnapshot

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "jobtrail-dashboard.json"


def test_every_panel_queries_an_exported_metric() -> None:
    snap = MetricsSnapshot({"pending": 1}, {"created": 1}, ((1.0, 1), (float("inf"), 0)), 0.5,
                           0, 0.0, 0, 1, 0, {"main": 0}, {"main": 0}, {"main": 1})
    exported = set()
    for family in JobtrailCollector(lambda: snap).collect():
        exported.update(sample.name for sample in family.samples)
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 12
    for expr in exprs:
        for name in re.findall(r"\bjobtrail_[a-z_]+", expr):
            assert name in exported, f"{name} in {expr!r} is not exported"
