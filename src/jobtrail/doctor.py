"""doctor: check a deployment for what loses or hides jobs; each finding with its evidence.

Invariant: read-only. Server checks read INFO and CONFIG (CONFIG may be
refused on managed Redis: that is reported, not fatal); consistency checks
stream the keyspace with SCAN and pipelines, so memory stays O(batch).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast
from urllib.parse import urlsplit

import kombu
import redis

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.connections import socket_kwargs
from jobtrail.errors import MalformedRecordError
from jobtrail.keys import CELERY_RESULT_PREFIX, KeyKind, KeySpace
from jobtrail.models import Job, JobStatus, WorkerStatus
from jobtrail.store.codec import decode_job
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.store.messages import find_job_message, message_ids, parse_message
from jobtrail.worker.app import create_celery_app

__all__ = ["Finding", "Severity", "run_checks"]

#: Keys examined per round trip by the consistency checks.
BATCH = 1000
_STATUSES = frozenset(s.value for s in JobStatus)


class Severity(StrEnum):
    """How bad a finding is; any ERROR makes `jobtrail doctor` exit non-zero."""

    OK = "ok"
    WARNING = "warning"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: severity, message, evidence, and the setting that fixes it."""

    check: str
    severity: Severity
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the finding as a JSON-ready dict."""
        return {**asdict(self), "severity": self.severity.value}


def _server(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}" if parts.scheme != "unix" else parts.path


def _db(url: str) -> str:
    return urlsplit(url).path.lstrip("/") or "0"


def _eviction(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
    urls = dict(zip(("main", "broker", "results"), settings.require_urls(), strict=True))
    by_server: dict[str, list[str]] = {}
    for role, url in urls.items():
        by_server.setdefault(_server(url), []).append(f"{role} (db {_db(url)})")
    for role in ("main", "broker"):
        memory = clients[role].info("memory")
        policy = str(memory.get("maxmemory_policy", ""))
        sharing = by_server[_server(urls[role])]
        evidence = {"server": _server(urls[role]), "maxmemory_policy": policy,
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


def _clients(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
    """Connected clients against maxclients, once per Redis server (not per DB)."""
    urls = dict(zip(("main", "broker", "results"), settings.require_urls(), strict=True))
    by_server: dict[str, list[str]] = {}
    for role, url in urls.items():
        by_server.setdefault(_server(url), []).append(role)
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


def _persistence(settings: Settings, client: redis.Redis) -> Finding:
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


def _timing(settings: Settings, retention_ages_s: dict[str, float]) -> Iterator[Finding]:
    hard, vt = settings.solver_hard_time_limit_s, settings.visibility_timeout_s
    evidence = {"solver_hard_time_limit_s": hard, "visibility_timeout_s": vt}
    if hard >= vt:
        yield Finding("visibility-timeout", Severity.ERROR,
                      "the visibility timeout is not above the solver's hard time limit: the "
                      "broker redelivers jobs that are still running", evidence,
                      "JOBTRAIL_VISIBILITY_TIMEOUT_S")
    else:
        yield Finding("visibility-timeout", Severity.OK, f"visibility timeout {vt} s is above "
                      f"the hard time limit {hard:g} s", evidence)
    expires = settings.result_expires_s
    for name, age_s in retention_ages_s.items():
        if expires and expires < age_s:
            yield Finding(
                f"result-expires:{name}", Severity.WARNING,
                f"Celery results expire after {expires} s, before retention policy {name} purges "
                f"records at {age_s:g} s: their archive rows will lack the Celery result",
                {"result_expires_s": expires, "older_than_s": age_s}, "JOBTRAIL_RESULT_EXPIRES_S")


#: The first kombu whose redis transport drops a BRPOP connection whose reply is overdue.
KOMBU_BRPOP_CHECK = (5, 7)
_TIMEOUT_FIX = ("JOBTRAIL_REDIS_SOCKET_TIMEOUT_S and JOBTRAIL_REDIS_HEALTH_CHECK_INTERVAL_S "
                "(and remove any override that unsets them)")


def _seconds(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _kombu_version() -> tuple[int, ...]:
    parts = []
    for piece in str(kombu.__version__).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _connection_checks(settings: Settings, conf: Mapping[str, Any]) -> Iterator[Finding]:
    """Does every client the workers open notice a dead or half-open peer in bounded time?"""
    transport = dict(conf.get("broker_transport_options") or {})
    broker = {"socket_timeout": transport.get("socket_timeout"),
              "socket_connect_timeout": transport.get("socket_connect_timeout"),
              "health_check_interval": transport.get("health_check_interval"),
              "socket_keepalive": transport.get("socket_keepalive"),
              "kombu": str(kombu.__version__)}
    missing = [name for name in ("socket_timeout", "health_check_interval")
               if _seconds(broker[name]) is None]
    if missing:
        yield Finding("connections:broker", Severity.ERROR,
                      f"the broker transport has no {' and no '.join(missing)}: a worker whose "
                      "broker connection goes half-open (a NAT or firewall forgot it) waits "
                      "for ever, consumes nothing and ignores SIGTERM", broker, _TIMEOUT_FIX)
    elif _kombu_version() < KOMBU_BRPOP_CHECK:
        yield Finding("connections:broker", Severity.WARNING,
                      f"kombu {kombu.__version__} does not check the consumer's BRPOP "
                      "connection: a half-open one is noticed only when another command on it "
                      "times out", broker, "pip install 'kombu>=5.7'")
    elif not broker["socket_keepalive"]:
        yield Finding("connections:broker", Severity.WARNING,
                      "the broker transport has no TCP keepalive: idle connections a NAT "
                      "forgot are noticed only when next used", broker,
                      "remove the override of broker_transport_options socket_keepalive")
    else:
        yield Finding("connections:broker", Severity.OK,
                      f"broker commands time out after {broker['socket_timeout']:g} s and the "
                      f"consumer's connection is checked every {broker['health_check_interval']}"
                      " s", broker)
    results = {"redis_socket_timeout": conf.get("redis_socket_timeout"),
               "redis_socket_connect_timeout": conf.get("redis_socket_connect_timeout"),
               "redis_backend_health_check_interval":
                   conf.get("redis_backend_health_check_interval"),
               "redis_socket_keepalive": conf.get("redis_socket_keepalive")}
    results_timeout_s = _seconds(results["redis_socket_timeout"])
    if results_timeout_s is None:
        yield Finding("connections:results", Severity.ERROR,
                      "the result backend has no socket timeout: a pool process storing a "
                      "result on a half-open connection waits for ever", results, _TIMEOUT_FIX)
    else:
        yield Finding("connections:results", Severity.OK,
                      f"result backend commands time out after {results_timeout_s:g} s",
                      results)
    main_url, _, _ = settings.require_urls()
    main = socket_kwargs(main_url, settings)
    yield Finding("connections:main", Severity.OK,
                  f"main DB commands time out after {main['socket_timeout']:g} s",
                  {k: v for k, v in main.items() if k != "socket_keepalive_options"})


#: A queue with messages and no live consumer is an error once a pending job waited this long.
UNSERVED_GRACE_S = 60.0


def _workers(keys: KeySpace, main: redis.Redis, broker: redis.Redis) -> Finding:
    """Is every live worker's consumer polling the broker, and has a queue with work one?"""
    beats = [b for b in HeartbeatStore(main, keys).list_workers() if b.alive]
    stuck = [b for b in beats if b.status is WorkerStatus.STUCK]
    queued = int(broker.llen(keys.queue()))
    evidence: dict[str, Any] = {"live": [b.name for b in beats],
                                "stuck": {b.name: b.poll_age_s for b in stuck},
                                "queue": keys.queue_name, "queued_messages": queued}
    if stuck:
        names = ", ".join(f"{b.name} (no broker poll for {b.poll_age_s or 0.0:.0f} s)"
                          for b in stuck)
        return Finding("workers", Severity.ERROR,
                       f"{len(stuck)} of {len(beats)} live workers are stuck: their heartbeat "
                       f"beats but their consumer does not poll the broker: {names}", evidence,
                       "check the worker's log and its connection to the broker; restart it")
    oldest = cast(list[tuple[str, float]], main.zrange(
        keys.jobs_by_status(JobStatus.PENDING), 0, 0, withscores=True))
    waiting_s = now_s() - oldest[0][1] if oldest else 0.0
    evidence["oldest_pending_s"] = round(waiting_s, 1)
    if not beats and queued and waiting_s > UNSERVED_GRACE_S:
        return Finding("workers", Severity.ERROR,
                       f"queue {keys.queue_name} has {queued} messages and no live consumer; "
                       f"the oldest pending job has waited {waiting_s:.0f} s: nothing runs them",
                       evidence, "start a worker: jobtrail worker")
    if not beats:
        return Finding("workers", Severity.OK, "no live worker right now (jobs wait until one "
                       "starts: jobtrail worker)", evidence)
    return Finding("workers", Severity.OK, "1 live worker, polling the broker" if len(beats) == 1
                   else f"{len(beats)} live workers, each polling the broker", evidence)


def _stale_processing(settings: Settings, keys: KeySpace, main: redis.Redis) -> Finding:
    """Processing jobs whose worker is gone (heartbeat expired): nobody is running them.

    A worker's heartbeat hash lives three intervals (the gone threshold), so a
    killed worker's jobs read as stale within that time. An error: a live
    worker's dead-worker sweep hands them back, else the visibility timeout
    does, and with no live worker at all nothing does. Evidence: `processing`
    (examined), `stale` and `count` (stale jobs), `sample` (first ten, job id ->
    worker), `workers_gone` (name -> last heartbeat, epoch seconds, or None),
    `live_workers`.
    """
    beats = HeartbeatStore(main, keys).list_workers()
    live = {b.name for b in beats if b.alive}
    last_seen = {b.name: b.last_seen for b in beats}
    ids = [str(m) for m in main.zrange(keys.jobs_by_status(JobStatus.PROCESSING), 0, -1)]
    candidates: dict[str, str] = {}
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        with main.pipeline(transaction=False) as pipe:
            for job_id in batch:
                pipe.hget(keys.job(job_id), "worker")
            for job_id, worker in zip(batch, pipe.execute(), strict=True):
                if worker and str(worker) not in live:
                    candidates[job_id] = str(worker)

    def read(pipe: Any, job_id: str) -> None:
        pipe.hmget(keys.job(job_id), ["status", "worker"])
        pipe.exists(keys.worker(candidates[job_id]))

    # read again in one step: a worker started since the heartbeats were read, or a job
    # finished or moved to another worker since, is not stale
    stale = {j: candidates[j] for j, [(status, worker), beating] in _atomic_reread(
        main, list(candidates), read)
        if status == JobStatus.PROCESSING.value and worker == candidates[j] and not beating}
    evidence: dict[str, Any] = {"processing": len(ids), "stale": len(stale),
                                "count": len(stale), "sample": dict(list(stale.items())[:10]),
                                "workers_gone": {w: last_seen.get(w) for w in
                                                 sorted(set(stale.values()))},
                                "live_workers": len(live)}
    if not stale:
        return Finding("stale-processing", Severity.OK,
                       f"every processing job's worker is alive ({len(ids)} processing)",
                       evidence)
    by_worker: dict[str, int] = {}
    for worker in stale.values():
        by_worker[worker] = by_worker.get(worker, 0) + 1
    gone = ", ".join(f"{w} ({n})" for w, n in sorted(by_worker.items()))
    waits = ("a live worker's sweep hands them back to the queue within a heartbeat "
             "interval" if live else "no live worker sweeps: nothing hands them back "
             f"before the visibility timeout ({settings.visibility_timeout_s:g} s since "
             "delivery) and a worker to run them")
    first = next(iter(stale))
    return Finding("stale-processing", Severity.ERROR,
                   f"{len(stale)} processing jobs belong to workers that are gone ({gone}): "
                   f"nobody runs them; {waits}; `jobtrail trace {first}` says when",
                   evidence, "start a worker, or hand them back now: jobtrail recover "
                   "(or jobtrail requeue <id>)")


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
                    "error": str(exc), "db": _db(url.split(";")[0])}
        return {"kind": "sentinel", "master_name": service, "master": f"{host}:{port}",
                "db": _db(url.split(";")[0])}
    server = _server(url)
    kind = "embedded" if embedded_port is not None and server == f"127.0.0.1:{embedded_port}" \
        else "external"
    return {"kind": kind, "server": server, "db": _db(url)}


def _servers(settings: Settings, clients: dict[str, redis.Redis],
             embedded_port: int | None) -> Finding:
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


def _replication(settings: Settings, clients: dict[str, redis.Redis]) -> Iterator[Finding]:
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


def _scan(client: redis.Redis, match: str) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in client.scan_iter(match=match, count=BATCH):
        batch.append(str(key))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _atomic_reread(main: redis.Redis, ids: list[str],
                   read: Callable[[Any, str], None]) -> Iterator[tuple[str, list[Any]]]:
    """Re-read each candidate of a check in one atomic step (MULTI) per BATCH of them.

    The checks' first pass reads a record and its index entries (or its worker's
    heartbeat) in separate round trips, so a record moving between them (a
    status transition, a purge) looks inconsistent; every write of jobtrail's
    keys is one atomic step, so what is still inconsistent when read in one
    MULTI is. *read* queues a candidate's commands on the pipeline; yields each
    id with its replies, in order.

    Raises:
        redis.RedisError: The main DB could not be reached.
    """
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        with main.pipeline(transaction=True) as pipe:
            sizes = []
            for job_id in batch:
                before = len(pipe.command_stack)
                read(pipe, job_id)
                sizes.append(len(pipe.command_stack) - before)
            replies = pipe.execute()
        at = 0
        for job_id, size in zip(batch, sizes, strict=True):
            yield job_id, replies[at:at + size]
            at += size


def _still_unindexed(keys: KeySpace, main: redis.Redis, ids: list[str]) -> list[str]:
    """The records of *ids* that, read atomically, lack a valid status or an index entry."""
    indexes = [keys.jobs(), *(keys.jobs_by_status(s) for s in JobStatus)]

    def read(pipe: Any, job_id: str) -> None:
        pipe.exists(keys.job(job_id))
        pipe.hget(keys.job(job_id), "status")
        for name in indexes:
            pipe.zscore(name, job_id)

    out = []
    for job_id, (exists, status, in_all, *by_status) in _atomic_reread(main, ids, read):
        in_status = dict(zip((s.value for s in JobStatus), by_status, strict=True))
        if exists and (status not in _STATUSES or in_all is None or in_status[status] is None):
            out.append(job_id)
    return out


def _still_orphaned(keys: KeySpace, main: redis.Redis, ids: list[str]) -> list[str]:
    """The ids that, read atomically, are in the `jobs` index with no record."""

    def read(pipe: Any, job_id: str) -> None:
        pipe.zscore(keys.jobs(), job_id)
        pipe.exists(keys.job(job_id))

    return [j for j, (score, exists) in _atomic_reread(main, ids, read)
            if score is not None and not exists]


def _consistency(keys: KeySpace, main: redis.Redis, results: redis.Redis,
                 progress: Callable[[int], None]) -> Iterator[Finding]:
    orphans: list[str] = []          # index entries without a hash
    unindexed: list[str] = []        # hashes missing from the indexes
    results_alone: list[str] = []    # results with no record and no tombstone
    counts = {"index_entries": 0, "records": 0, "results": 0}
    start = 0
    while batch := cast(list[str], main.zrange(keys.jobs(), start, start + BATCH - 1)):
        start += len(batch)
        with main.pipeline(transaction=False) as pipe:
            for job_id in batch:
                pipe.exists(keys.job(job_id))
            orphans += [j for j, e in zip(batch, pipe.execute(), strict=True) if not e]
        counts["index_entries"] += len(batch)
        progress(len(batch))
    for batch in _scan(main, keys.job("*")):
        ids = [k[len(keys.job("")):] for k in batch if keys.classify_key(k) is KeyKind.JOB]
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(keys.job(job_id), "status")
            statuses = [s if s in _STATUSES else None for s in pipe.execute()]
        with main.pipeline(transaction=False) as pipe:
            for job_id, status in zip(ids, statuses, strict=True):
                pipe.zscore(keys.jobs(), job_id)
                pipe.zscore(keys.jobs_by_status(status or JobStatus.PENDING), job_id)
            replies = pipe.execute()
        for job_id, status, in_all, in_status in zip(ids, statuses, replies[::2], replies[1::2],
                                                     strict=True):
            if status is None or in_all is None or in_status is None:
                unindexed.append(job_id)  # a candidate: re-read atomically below
        counts["records"] += len(ids)
        progress(len(ids))
    for batch in _scan(results, f"{CELERY_RESULT_PREFIX}*"):
        ids = [k[len(CELERY_RESULT_PREFIX):] for k in batch]
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(keys.job(job_id), keys.tombstone(job_id))
            results_alone += [j for j, n in zip(ids, pipe.execute(), strict=True) if not n]
        counts["results"] += len(ids)
        progress(len(ids))
    orphans = _still_orphaned(keys, main, orphans)
    unindexed = _still_unindexed(keys, main, unindexed)
    yield _listing("orphan-index-entries", orphans, "index entries point to no job record",
                   counts, "jobtrail trace <id> tells what became of each")
    yield _listing("unindexed-records", unindexed,
                   "job records are missing from their indexes (purge cannot select them)",
                   counts, "jobtrail trace <id>; restore the index entries")
    yield _listing("results-without-record", results_alone,
                   "Celery results have no job record and no tombstone: records deleted "
                   "outside jobtrail", counts, "jobtrail trace <id>")


#: Seconds after which a pending job found without a message is looked for once more.
SETTLE_S = 0.5


def _still_lost(keys: KeySpace, main: redis.Redis, broker: redis.Redis,
                seen: dict[str, Job]) -> list[str]:
    """The jobs of *seen* (pending, no message found) still pending without a message.

    A pending job is without a message for a moment while it moves: a submit
    writes the record before it sends the message, and kombu pops a message
    from the queue before it writes its unacked entry (QoS.append, not one
    step with the BRPOP). So each is looked for again SETTLE_S later, then its
    record is read again in one step: one started, finished and acknowledged
    meanwhile moved on (its version changed); one still pending with the same
    version was pending, with no message at either look, all along.

    Raises:
        redis.RedisError: A DB could not be reached.
    """
    if not seen:
        return []
    time.sleep(SETTLE_S)
    gone = [j for j, job in seen.items() if find_job_message(broker, keys, job).lost]
    return [j for j, [(status, version)] in _atomic_reread(
        main, gone, lambda pipe, j: pipe.hmget(keys.job(j), ["status", "version"]))
        if status == JobStatus.PENDING.value and version == str(seen[j].version)]


def _lost_pending(keys: KeySpace, main: redis.Redis, broker: redis.Redis,
                  progress: Callable[[int], None]) -> Finding:
    """Pending jobs whose task is neither queued nor unacked: trace's `stale` rule.

    One pass over the queue and the unacked hash finds the candidates; each is
    then looked up again with trace's own atomic lookup (store.messages), so a
    message delivered between the two reads is not reported lost, and doctor
    and trace never disagree about a job; a job reported is still without a
    message, its record unchanged, SETTLE_S later (_still_lost).
    """
    queued: set[str] = set()
    length = int(broker.llen(keys.queue()))
    for start in range(0, length, BATCH):
        for raw in cast(list[str], broker.lrange(keys.queue(), start, start + BATCH - 1)):
            if (message := parse_message(raw)) is not None:
                queued.add(message.task_id)
    for _, raw in broker.hscan_iter(keys.unacked(), count=BATCH):
        if (message := parse_message(raw)) is not None:
            queued.add(message.task_id)
    progress(length)
    ids = [str(m) for m in main.zrange(keys.jobs_by_status(JobStatus.PENDING), 0, -1)
           if str(m) not in queued]
    seen: dict[str, Job] = {}  # the pending records whose message is gone
    for start in range(0, len(ids), BATCH):
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids[start:start + BATCH]:
                pipe.hgetall(keys.job(job_id))
            records = cast(list[dict[str, str]], pipe.execute())
        for record in records:
            try:
                job = decode_job(record)
            except MalformedRecordError:
                continue  # no record (or not jobtrail's): the consistency checks report it
            # a batched job's message is its batch's (store.messages' rule)
            if job.status is JobStatus.PENDING and not set(message_ids(job)) & queued \
                    and find_job_message(broker, keys, job).lost:
                seen[job.id] = job
    lost = _still_lost(keys, main, broker, seen)
    counts = {"queued_messages": len(queued)}
    return _listing("pending-without-message", lost,
                    "pending jobs have no message in the broker: no worker will ever run "
                    "them", counts, "jobtrail requeue <id>...")


def _listing(check: str, ids: list[str], what: str, counts: dict[str, int],
             fix: str) -> Finding:
    if not ids:
        examined = ", ".join(f"{n} {what}" for what, n in counts.items()).replace("_", " ")
        return Finding(check, Severity.OK, f"none found (examined {examined})",
                       {"examined": counts})
    return Finding(check, Severity.ERROR, f"{len(ids)} {what}",
                   {"count": len(ids), "sample": ids[:10], "examined": counts}, fix)


def run_checks(settings: Settings, clients: dict[str, redis.Redis], keys: KeySpace, *,
               retention_ages_s: dict[str, float] | None = None,
               progress: Callable[[int], None] = lambda _n: None,
               consistency: bool = True,
               celery_conf: Mapping[str, Any] | None = None,
               embedded_port: int | None = None) -> list[Finding]:
    """Run every check against a deployment.

    Args:
        settings: Resolved settings (URLs set).
        clients: Redis clients under "main", "broker" and "results".
        keys: Key builder of the main DB.
        retention_ages_s: Configured retention policies by name -> minimum age, seconds.
        progress: Called with the number of keys examined after each batch.
        consistency: Also scan the keyspaces for index/record/result mismatches
            (O(keys); the dashboard leaves it out).
        celery_conf: The Celery configuration workers run with (default: the one
            create_celery_app builds from *settings*); its socket settings are checked.
        embedded_port: Port of the embedded server, if one serves this deployment
            (the `servers` check names the DBs it serves).

    Returns:
        Findings in check order; severity ERROR means jobs can be lost or hidden.

    Raises:
        redis.RedisError: A DB could not be reached or refused a command (the
            interfaces wrap it with connections.wrap_redis_error).
    """
    findings = list(_eviction(settings, clients))
    findings += _clients(settings, clients)
    findings.append(_persistence(settings, clients["main"]))
    findings += _timing(settings, retention_ages_s or {})
    conf = celery_conf if celery_conf is not None else create_celery_app(settings).conf
    findings += _connection_checks(settings, conf)
    findings.append(_servers(settings, clients, embedded_port))
    findings += _replication(settings, clients)
    findings.append(_workers(keys, clients["main"], clients["broker"]))
    findings.append(_stale_processing(settings, keys, clients["main"]))
    if consistency:
        findings += _consistency(keys, clients["main"], clients["results"], progress)
        findings.append(_lost_pending(keys, clients["main"], clients["broker"], progress))
    return findings
