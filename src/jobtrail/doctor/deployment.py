"""doctor's checks of the Redis servers: eviction, clients, persistence, placement, replicas.

Invariant: read-only; reads INFO and CONFIG (CONFIG may be refused on managed
Redis: that is reported, not fatal).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from typing import Any, cast
from urllib.parse import parse_qsl, urlsplit

import redis

from jobtrail.config import Settings
from jobtrail.doctor.outcome import Finding, Severity
from jobtrail.embedded.restarts import RESTART_RETENTION_S, Restart, format_utc

__all__ = ["CLIENTS_WARN_RATIO", "check_clients", "check_embedded_restarts", "check_eviction",
           "check_persistence", "check_replication", "check_servers", "db_number",
           "server_name"]


def server_name(url: str) -> str:
    """The server a Redis URL points at: "host:port", or a unix socket's path."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}" if parts.scheme != "unix" else parts.path


def db_number(url: str) -> str:
    """The DB number of a Redis URL, as text ("0" when none is given): its path's, or a
    unix:// URL's `db` query parameter (its path is the socket's)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return dict(parse_qsl(parts.query)).get("db", "0")
    return parts.path.lstrip("/") or "0"


def check_eviction(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
    """Does the server of the main DB or of the broker evict keys (maxmemory-policy)?

    Raises:
        redis.RedisError: A DB could not be reached.
    """
    urls = dict(zip(("main", "broker", "results"), settings.require_urls(), strict=True))
    by_server: dict[str, list[str]] = {}
    for role, url in urls.items():
        by_server.setdefault(server_name(url), []).append(f"{role} (db {db_number(url)})")
    for role in ("main", "broker"):
        memory = clients[role].info("memory")
        policy = str(memory.get("maxmemory_policy", ""))
        sharing = by_server[server_name(urls[role])]
        evidence = {"server": server_name(urls[role]), "maxmemory_policy": policy,
                    "maxmemory_bytes": int(memory.get("maxmemory", 0)), "dbs_on_server": sharing}
        if policy != "noeviction":
            yield Finding(
                f"eviction:{role}", Severity.ERROR,
                f"the server of the {role} DB evicts keys (maxmemory-policy {policy}); eviction "
                f"is server-wide, so it can remove keys of: {', '.join(sharing)}",
                evidence, "CONFIG SET maxmemory-policy noeviction (and in redis.conf)")
        else:
            yield Finding(f"eviction:{role}", Severity.OK,
                          f"the {role} DB's server never evicts (noeviction)", evidence)


#: Share of maxclients in use above which doctor warns.
CLIENTS_WARN_RATIO = 0.8


def check_clients(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
    """Connected clients against maxclients, once per Redis server (not per DB)."""
    urls = dict(zip(("main", "broker", "results"), settings.require_urls(), strict=True))
    by_server: dict[str, list[str]] = {}
    for role, url in urls.items():
        by_server.setdefault(server_name(url), []).append(role)
    for server, roles in by_server.items():
        client = clients[roles[0]]
        connected = int(client.info("clients").get("connected_clients", 0))
        try:
            config = cast(dict[str, str], client.config_get("maxclients"))
            maxclients: int | None = int(config["maxclients"])
        except (redis.ResponseError, KeyError, ValueError):  # CONFIG disabled (managed Redis)
            maxclients = None
        evidence = {"server": server, "connected_clients": connected, "maxclients": maxclients,
                    "dbs_on_server": roles}
        check = f"clients:{roles[0]}"
        if maxclients is None:
            yield Finding(check, Severity.OK, f"{connected} clients connected to the server of "
                          f"{', '.join(roles)} (maxclients unknown: CONFIG refused)", evidence)
        elif connected > CLIENTS_WARN_RATIO * maxclients:
            yield Finding(
                check, Severity.WARNING,
                f"{connected} of maxclients {maxclients} clients are connected to the server of "
                f"{', '.join(roles)}: past {CLIENTS_WARN_RATIO:.0%}, new workers and commands "
                "will soon be refused (max number of clients reached)", evidence,
                "CONFIG SET maxclients <higher> (and in redis.conf), or find the client "
                "holding connections with CLIENT LIST")
        else:
            yield Finding(check, Severity.OK, f"{connected} of maxclients {maxclients} clients "
                          f"connected to the server of {', '.join(roles)}", evidence)


def check_persistence(settings: Settings, client: redis.Redis) -> Finding:
    """Does the main DB's server keep its data on disk (AOF or RDB save)?

    Raises:
        redis.RedisError: The main DB could not be reached.
    """
    info = client.info("persistence")
    aof = int(info.get("aof_enabled", 0)) == 1
    try:
        save = str(cast(dict[str, str], client.config_get("save")).get("save", ""))
    except redis.ResponseError as exc:  # CONFIG disabled (managed Redis)
        save = f"unknown ({exc})"
    evidence = {"aof_enabled": aof, "save": save,
                "rdb_last_save_time": info.get("rdb_last_save_time")}
    if aof or (save and not save.startswith("unknown")):
        return Finding("persistence:main", Severity.OK, "the main DB's server persists its data"
                       + (" (AOF)" if aof else f" (RDB save {save})"), evidence)
    return Finding("persistence:main", Severity.ERROR,
                   "the main DB's server keeps nothing on disk: a restart loses every job record",
                   evidence, "CONFIG SET appendonly yes (and in redis.conf)")


def _server_of(role: str, client: redis.Redis, url: str, embedded_port: int | None,
               ) -> dict[str, Any]:
    """Where DB *role* lives: embedded, an external server, or a Sentinel master."""
    pool = client.connection_pool
    if url.startswith("sentinel://"):
        service = str(getattr(pool, "service_name", ""))
        try:
            host, port = pool.get_master_address()  # type: ignore[attr-defined]
        except redis.RedisError as exc:
            return {"kind": "sentinel", "master_name": service, "master": None,
                    "error": str(exc), "db": db_number(url.split(";")[0])}
        return {"kind": "sentinel", "master_name": service, "master": f"{host}:{port}",
                "db": db_number(url.split(";")[0])}
    server = server_name(url)
    kind = "embedded" if embedded_port is not None and server == f"127.0.0.1:{embedded_port}" \
        else "external"
    return {"kind": kind, "server": server, "db": db_number(url)}


def check_servers(settings: Settings, clients: dict[str, redis.Redis],
                  embedded_port: int | None) -> Finding:
    """Where each DB lives; an error when the embedded server serves only some of them."""
    urls = dict(zip(("main", "broker", "results"), settings.require_urls(), strict=True))
    where = {role: _server_of(role, clients[role], url, embedded_port)
             for role, url in urls.items()}
    kinds = {w["kind"] for w in where.values()}
    text = "; ".join(
        f"{role}: {w['kind']} " + (f"master {w['master_name']} at {w.get('master')}"
                                   if w["kind"] == "sentinel" else str(w["server"]))
        + f" db {w['db']}" for role, w in where.items())
    if "embedded" in kinds and len(kinds) > 1:
        return Finding("servers", Severity.ERROR, f"the embedded server serves some DBs beside "
                       f"external ones (split brain): {text}", where,
                       "set JOBTRAIL_MAIN_URL, JOBTRAIL_BROKER_URL and JOBTRAIL_RESULTS_URL")
    return Finding("servers", Severity.OK, text, where)


def check_replication(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
    """Role, replicas, min-replicas-to-write and lag of each DB's server; can a failover
    lose an acknowledged write?"""
    for role in ("main", "broker", "results"):
        client = clients[role]
        info = client.info("replication")
        replicas = []
        for n in range(int(info.get("connected_slaves", 0))):
            entry = info.get(f"slave{n}")
            if isinstance(entry, dict):
                replicas.append({"addr": f"{entry.get('ip')}:{entry.get('port')}",
                                 "state": entry.get("state"), "lag_s": entry.get("lag")})
        try:
            config = cast(dict[str, str], client.config_get("min-replicas-to-write"))
            min_to_write: int | None = int(config.get("min-replicas-to-write", 0))
        except (redis.ResponseError, ValueError):
            min_to_write = None
        offset = int(info.get("master_repl_offset", 0))
        evidence: dict[str, Any] = {
            "role": info.get("role"), "connected_replicas": len(replicas),
            "replicas": replicas, "min_replicas_to_write": min_to_write,
            "master_repl_offset": offset,
            "max_lag_s": max((int(r["lag_s"] or 0) for r in replicas), default=None)}
        if role == "main":
            evidence["main_min_replicas"] = settings.main_min_replicas
        sentinel = bool(getattr(client.connection_pool, "service_name", None))
        check = f"replication:{role}"
        if info.get("role") != "master":
            yield Finding(check, Severity.ERROR, f"the {role} DB's server is a "
                          f"{info.get('role')}: writes are refused (READONLY)", evidence,
                          "point the URL at the master, or use sentinel:// URLs")
            continue
        waits = role == "main" and settings.main_min_replicas > 0
        if role == "main" and settings.main_min_replicas > len(replicas):
            yield Finding(check, Severity.ERROR,
                          f"JOBTRAIL_MAIN_MIN_REPLICAS={settings.main_min_replicas} but the main "
                          f"DB's master has {len(replicas)} connected replicas: every submit "
                          "fails", evidence, "bring the replicas back, or lower "
                          "JOBTRAIL_MAIN_MIN_REPLICAS")
        elif not replicas:
            severity = Severity.WARNING if sentinel else Severity.OK
            yield Finding(check, severity, f"the {role} DB's server has no replica: "
                          + ("Sentinel has nothing to promote if it dies" if sentinel else
                             "standalone; losing it stops the service until it is back"),
                          evidence, "add a replica (replicaof) and Sentinel" if sentinel else "")
        elif waits or (min_to_write or 0) > 0:
            how = (f"jobtrail waits for {settings.main_min_replicas} (WAIT)" if waits
                   else f"the server refuses writes with fewer than {min_to_write} replicas")
            yield Finding(check, Severity.OK, f"the {role} DB's master has {len(replicas)} "
                          f"replicas and {how}: an acknowledged write survives a failover",
                          evidence)
        else:
            fix = ("JOBTRAIL_MAIN_MIN_REPLICAS=1" if role == "main" else
                   "CONFIG SET min-replicas-to-write 1 (and min-replicas-max-lag)")
            yield Finding(check, Severity.WARNING,
                          f"the {role} DB's master has {len(replicas)} replicas but "
                          "replication is asynchronous and nothing waits for it: a write "
                          "acknowledged just before a failover can be lost", evidence, fix)


def check_embedded_restarts(restarts: list[Restart]) -> Finding:
    """Report the embedded server's unexpected stops (crashes jobtrail started it again after).

    Args:
        restarts: Restarts recorded in the last RESTART_RETENTION_S seconds, oldest first.

    Returns:
        OK without any; else a WARNING on the newest, its evidence holding every
        restart (`restarts`, as dicts of epoch seconds) and `count`.
    """
    hours = f"{RESTART_RETENTION_S / 3600:g} h"
    if not restarts:
        return Finding("embedded-server-restarted", Severity.OK,
                       f"no unexpected stop of the embedded server in the last {hours}")
    last = restarts[-1]
    earlier = f" ({len(restarts)} in the last {hours})" if len(restarts) > 1 else ""
    return Finding(
        "embedded-server-restarted", Severity.WARNING,
        f"the embedded server stopped unexpectedly at/before {format_utc(last.found_at)} (pid "
        f"{last.old_pid}, found by {last.found_by}) and was started again at "
        f"{format_utc(last.restarted_at)}{earlier}; last save "
        f"{format_utc(last.last_save_at)}: jobs and messages written after it may be lost; "
        "check pending jobs (pending-without-message)",
        {"count": len(restarts), "restarts": [asdict(r) for r in restarts]},
        "find why it stopped (redis.log in its data directory, the OOM killer); "
        "jobtrail requeue resends pending jobs without a message")
