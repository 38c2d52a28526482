"""The memory-pressure scenario: each server's limit, eviction policy and memory use,
and, on the run's private server only, a fill that shows what that policy evicts.

Invariant: a server the run did not start is only read (INFO, and doctor's
read-only checks). On the private server the fill goes to a spare DB
(FILL_DB), and maxmemory is put back and the filler deleted however the fill ends.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

import redis

from jobtrail.connections import mask_url
from jobtrail.doctor import run_checks
from jobtrail.keys import repro_filler_key
from jobtrail.monitor.snapshot import take_snapshot
from jobtrail.repro.context import DB_LABELS, RunContext, db_state

__all__ = ["FILL_DB", "FILLER_BYTES", "FILL_HEADROOM_BYTES", "memory_pressure"]

logger = logging.getLogger(__name__)

#: The private server's spare DB that receives the filler keys (the run uses 10, 11, 12).
FILL_DB = 13
#: Size of one filler value, bytes.
FILLER_BYTES = 10_000
#: maxmemory is set this many bytes above used_memory for the fill.
FILL_HEADROOM_BYTES = 1_000_000
#: The fill writes at most this many bytes: three times the headroom.
FILL_MAX_BYTES = 3 * FILL_HEADROOM_BYTES


def _server_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path if parts.scheme == "unix" else f"{parts.hostname}:{parts.port or 6379}"


def _servers(ctx: RunContext) -> list[dict[str, Any]]:
    """Read INFO memory/server of each distinct server behind the three URLs."""
    urls = dict(zip(DB_LABELS, ctx.settings.require_urls(), strict=True))
    servers: dict[str, dict[str, Any]] = {}
    for label in DB_LABELS:
        server = _server_of(urls[label])
        if server in servers:
            servers[server]["dbs"].append(label)
            continue
        client = ctx.clients[label]
        memory, info = client.info("memory"), client.info("server")
        servers[server] = {
            "server": server, "url": mask_url(urls[label]), "dbs": [label],
            "redis_version": str(info.get("redis_version", "")),
            "maxmemory": int(memory.get("maxmemory", 0)),
            "maxmemory_policy": str(memory.get("maxmemory_policy", "")),
            "used_memory": int(memory.get("used_memory", 0)),
            "used_memory_peak": int(memory.get("used_memory_peak", 0)),
            "private": ctx.private is not None,
        }
    return list(servers.values())


def _keys_of(ctx: RunContext) -> dict[str, set[str]]:
    return {label: set(take_snapshot(ctx.clients[label], db=label).entries)
            for label in DB_LABELS}


def _fill(ctx: RunContext) -> dict[str, Any]:
    """Lower maxmemory to used + headroom and write filler keys until Redis refuses or evicts.

    Returns what happened: limit, keys written, the OOM reply, the evicted_keys
    delta, and every key of the three DBs that was gone after the fill.
    """
    assert ctx.private is not None
    admin, filler = ctx.private.client(0), ctx.private.client(FILL_DB)
    before = _keys_of(ctx)
    original = str(admin.config_get("maxmemory")["maxmemory"])
    used = int(admin.info("memory")["used_memory"])
    limit = used + FILL_HEADROOM_BYTES
    evicted_before = int(admin.info("stats")["evicted_keys"])
    written, oom, value = 0, None, "x" * FILLER_BYTES
    ctx.say("memory-pressure", f"maxmemory {limit} bytes; filling DB {FILL_DB}")
    try:
        admin.config_set("maxmemory", str(limit))
        for n in range(FILL_MAX_BYTES // FILLER_BYTES):
            try:
                filler.set(repro_filler_key(n), value)
            except redis.exceptions.OutOfMemoryError as exc:  # Redis's "-OOM ..." reply
                oom = f"OOM {exc}"
                break
            written += 1
        used_full = int(admin.info("memory")["used_memory"])
        evicted = int(admin.info("stats")["evicted_keys"]) - evicted_before
    finally:
        filler.flushdb()
        admin.config_set("maxmemory", original)
        filler.close()
        admin.close()
    after = _keys_of(ctx)
    gone = [{"db": label, "key": key, "kind": ctx.keys.classify_key(key).value}
            for label in DB_LABELS for key in sorted(before[label] - after[label])]
    return {"fill_db": FILL_DB, "maxmemory_before": int(original), "maxmemory_set": limit,
            "used_memory_before": used, "used_memory_full": used_full,
            "filler_bytes": FILLER_BYTES, "filler_written": written,
            "filler_bytes_written": written * FILLER_BYTES, "oom_reply": oom,
            "evicted_keys_delta": evicted, "gone_from_watched_dbs": gone,
            "maxmemory_restored": original}


def memory_pressure(ctx: RunContext) -> dict[str, Any]:
    """Read each server's memory figures and policy; on the private server, fill memory."""
    ctx.stop_workers()  # no heartbeat or result writes race the fill
    servers = _servers(ctx)
    findings = run_checks(ctx.settings, ctx.clients, ctx.keys, consistency=False)
    doctor = [f.to_dict() for f in findings if f.check.startswith("eviction:")]
    data: dict[str, Any] = {"servers": servers, "doctor": doctor,
                            "keys": db_state(ctx.clients, ctx.keys), "fill": None}
    if ctx.private is not None:
        data["fill"] = _fill(ctx)
        ctx.settle()
    return data
