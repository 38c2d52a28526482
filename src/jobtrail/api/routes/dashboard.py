"""The dashboard: an HTML page at / and the JSON it polls at /dashboard/data.

Invariant: every figure comes from durable state (Redis statistics, job
indexes, heartbeats, INFO), so a restart of the API loses no history.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from jobtrail.api.deps import Services, get_services
from jobtrail.clock import now_s
from jobtrail.doctor import run_checks
from jobtrail.errors import JobtrailError
from jobtrail.retention.policy import policies_from_settings
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.store.stats import quantile

__all__ = ["router"]

router = APIRouter(tags=["dashboard"])
Svc = Annotated[Services, Depends(get_services)]


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def page() -> HTMLResponse:
    """Return the dashboard page (it fetches /dashboard/data every few seconds)."""
    html = resources.files("jobtrail.api").joinpath("templates", "dashboard.html").read_text()
    return HTMLResponse(html)


def _redis(svc: Services) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for role, client in (("main", svc.clients.main), ("broker", svc.clients.broker),
                         ("results", svc.clients.results)):
        info = client.info()
        out[role] = {k: info.get(k) for k in ("used_memory", "maxmemory", "maxmemory_policy",
                                              "expired_keys", "evicted_keys", "aof_enabled")}
    return out


@router.get("/dashboard/data")
def data(svc: Svc, minutes: Annotated[int, Query(ge=5, le=10_080)] = 60) -> dict[str, Any]:
    """Return what the dashboard shows: counts, per-minute series, events, Redis, findings.

    `series` has one entry per minute of the last *minutes*: `t` (epoch s of
    the minute), counts of created/completed/failed jobs, and the p50 and p95
    processing latency in seconds (null for a minute without finished jobs).
    """
    now = now_s()
    last = int(now // 60)
    rows = svc.stats.minutes(last - minutes + 1, last)
    totals, hist = svc.stats.lifetime()
    series = {
        "t": [r.minute * 60 for r in rows],
        "created": [r.counts.get("created", 0) for r in rows],
        "completed": [r.counts.get("completed", 0) for r in rows],
        "failed": [r.counts.get("failed", 0) for r in rows],
        "p50_s": [quantile(r.latency, 0.5) for r in rows],
        "p95_s": [quantile(r.latency, 0.95) for r in rows],
    }
    clients = {"main": svc.clients.main, "broker": svc.clients.broker,
               "results": svc.clients.results}
    ages = {name: p.older_than_s for name, p in policies_from_settings(svc.settings).items()}
    findings = run_checks(svc.settings, clients, svc.keys, consistency=False,
                          retention_ages_s=ages)
    return {
        "at": now,
        "jobs_by_status": {s.value: n for s, n in svc.store.count_by_status().items()},
        "totals": totals,
        "latency": {"p50_s": quantile(hist, 0.5), "p95_s": quantile(hist, 0.95),
                    "count": hist.count},
        "series": series,
        "recent_events": svc.stats.recent_events(25),
        "redis": _redis(svc),
        "findings": [f.to_dict() for f in findings],
        "workers": [w.to_dict() for w in
                    HeartbeatStore(svc.clients.main, svc.keys).list_running()],
        "queue_length": int(svc.clients.broker.llen(svc.keys.queue())),
        "retention_runs": _runs(svc),
    }


def _runs(svc: Services) -> list[dict[str, Any]]:
    """The last ten purge and restore runs of the audit (empty when the archive is down)."""
    try:
        return [r.to_dict() for r in svc.archive().history(limit=10)]
    except JobtrailError:
        return []
