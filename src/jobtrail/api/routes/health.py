"""/livez, /readyz and /health: probes for an orchestrator and for a person.

- /livez: the process serves (always 200 while it answers): the liveness
  probe, which must not restart an API whose dependencies are down.
- /readyz: its stores answer (each Redis DB, the archive): 200 or 503; live
  workers are reported, not required (an API without workers still accepts jobs).
- /health: kept as before for compatibility: 503 also when no worker is alive.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse

from jobtrail.api.deps import Services, get_services
from jobtrail.errors import JobtrailError
from jobtrail.store.heartbeats import HeartbeatStore

__all__ = ["router"]

router = APIRouter(tags=["operations"])


def _ping(client: redis.Redis) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        client.ping()
    except redis.RedisError as exc:
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "latency_ms": round((time.perf_counter() - start) * 1000, 3)}


@router.get("/livez")
async def livez() -> dict[str, str]:
    """Report that the process serves requests (liveness probe; touches no store).

    Async, so it answers on the event loop even when every worker thread is busy.
    """
    return {"status": "ok"}


@router.get("/readyz")
def readyz(svc: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    """Report each store (Redis DBs, archive) and the live workers; 503 unless the stores answer.

    Workers are reported under checks.workers but do not decide readiness.
    """
    checks = _checks(svc)
    ready = all(c["ok"] for name, c in checks.items() if name != "workers")
    return JSONResponse({"status": "ok" if ready else "unready", "checks": checks},
                        status_code=200 if ready else 503)


@router.get("/health")
def health(svc: Annotated[Services, Depends(get_services)]) -> JSONResponse:
    """Report each Redis DB (ping latency) and the live workers; 503 unless all are healthy."""
    checks = _checks(svc)
    healthy = all(c["ok"] for c in checks.values())
    return JSONResponse({"status": "ok" if healthy else "unhealthy", "checks": checks},
                        status_code=200 if healthy else 503)


def _checks(svc: Services) -> dict[str, Any]:
    """Ping each Redis DB, list the live workers and count the archive, with latencies."""
    checks: dict[str, Any] = {
        "main": _ping(svc.clients.main), "broker": _ping(svc.clients.broker),
        "results": _ping(svc.clients.results)}
    if checks["main"]["ok"]:
        start = time.perf_counter()
        live = [w.name for w in HeartbeatStore(svc.clients.main, svc.keys).list_workers()
                if w.alive]
        checks["workers"] = {"ok": bool(live), "live": live,
                             "latency_ms": round((time.perf_counter() - start) * 1000, 3)}
        if not live:
            checks["workers"]["error"] = "no live worker: start one with `jobtrail worker`"
    else:
        checks["workers"] = {"ok": False, "error": "main DB unreachable"}
    start = time.perf_counter()
    try:
        rows = svc.archive().count()
        checks["archive"] = {"ok": True, "rows": rows, "location": svc.archive().location,
                             "latency_ms": round((time.perf_counter() - start) * 1000, 3)}
    except JobtrailError as exc:
        checks["archive"] = {"ok": False, "error": str(exc)}
    return checks
