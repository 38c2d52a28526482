"""doctor: check a deployment for what loses or hides jobs; each finding with its evidence.

Invariant: read-only. Server checks read INFO and CONFIG (CONFIG may be
refused on managed Redis: that is reported, not fatal); consistency checks
stream the keyspace with SCAN and pipelines, so memory stays O(batch).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, cast
from urllib.parse import urlsplit

import redis

from jobtrail.config import Settings
from jobtrail.keys import CELERY_RESULT_PREFIX, KeyKind, KeySpace
from jobtrail.models import JobStatus
from jobtrail.store.messages import find_message

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


def _scan(client: redis.Redis, match: str) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in client.scan_iter(match=match, count=BATCH):
        batch.append(str(key))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


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
                unindexed.append(job_id)
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
    yield _listing("orphan-index-entries", orphans, "index entries point to no job record",
                   counts, "jobtrail trace <id> tells what became of each")
    yield _listing("unindexed-records", unindexed,
                   "job records are missing from their indexes (purge cannot select them)",
                   counts, "jobtrail trace <id>; restore the index entries")
    yield _listing("results-without-record", results_alone,
                   "Celery results have no job record and no tombstone: records deleted "
                   "outside jobtrail", counts, "jobtrail trace <id>")


def _task_id(raw: str) -> str | None:
    try:
        message = json.loads(raw)
    except ValueError:
        return None
    if isinstance(message, list):  # unacked entries are [message, exchange, routing key]
        message = message[0] if message else {}
    headers = message.get("headers") if isinstance(message, dict) else None
    return str(headers.get("id")) if isinstance(headers, dict) and headers.get("id") else None


def _lost_pending(keys: KeySpace, main: redis.Redis, broker: redis.Redis,
                  progress: Callable[[int], None]) -> Finding:
    """Pending jobs whose task is neither queued nor unacked: trace's `stale` rule.

    One pass over the queue and the unacked hash finds the candidates; each is
    then looked up again with trace's own atomic lookup (store.messages), so a
    message delivered between the two reads is not reported lost, and doctor
    and trace never disagree about a job.
    """
    queued: set[str] = set()
    length = int(broker.llen(keys.queue()))
    for start in range(0, length, BATCH):
        for raw in cast(list[str], broker.lrange(keys.queue(), start, start + BATCH - 1)):
            if (task := _task_id(raw)) is not None:
                queued.add(task)
    for _, raw in broker.hscan_iter(keys.unacked(), count=BATCH):
        if (task := _task_id(str(raw))) is not None:
            queued.add(task)
    progress(length)
    candidates = [str(m) for m in main.zrange(keys.jobs_by_status(JobStatus.PENDING), 0, -1)
                  if str(m) not in queued]
    lost = [j for j in candidates if main.hget(keys.job(j), "status") == JobStatus.PENDING.value
            and find_message(broker, keys, j).lost]
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
               consistency: bool = True) -> list[Finding]:
    """Run every check against a deployment.

    Args:
        settings: Resolved settings (URLs set).
        clients: Redis clients under "main", "broker" and "results".
        keys: Key builder of the main DB.
        retention_ages_s: Configured retention policies by name -> minimum age, seconds.
        progress: Called with the number of keys examined after each batch.
        consistency: Also scan the keyspaces for index/record/result mismatches
            (O(keys); the dashboard leaves it out).

    Returns:
        Findings in check order; severity ERROR means jobs can be lost or hidden.

    Raises:
        redis.RedisError: A DB could not be reached or refused a command (the
            interfaces wrap it with connections.wrap_redis_error).
    """
    findings = list(_eviction(settings, clients))
    findings.append(_persistence(settings, clients["main"]))
    findings += _timing(settings, retention_ages_s or {})
    if consistency:
        findings += _consistency(keys, clients["main"], clients["results"], progress)
        findings.append(_lost_pending(keys, clients["main"], clients["broker"], progress))
    return findings
