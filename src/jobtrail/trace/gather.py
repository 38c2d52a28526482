"""gather_evidence(): read every store about one job id, one round trip per store.

Invariant: read-only. The main DB answers in one pipeline (hash, indexes,
tombstone, events, INFO counters and replication), the broker in one Lua call
(queue position and kombu's unacked entry; the queue is scanned, at most
MAX_QUEUE_SCAN messages, for a live job, and for an id no key of which is on a
master promoted from a replica: a creation lost in a failover, its message
maybe queued), the results DB in one pipeline (meta and TTL), the
archive in one indexed lookup. A processing job costs one more read: its
worker's heartbeat; a pending job one more pipeline: the live workers of its
queue (is any of them polling the broker?). A pending job found without a
message is looked for again SETTLE_S later, by doctor's rule
(store.messages.confirm_lost): a submit writes the record before it sends the
message, and kombu pops a message before it writes its unacked entry.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import redis

from jobtrail.clock import now_s, to_s
from jobtrail.connections import REDIS_ERRORS, wrap_redis_error
from jobtrail.errors import JobtrailError, MalformedRecordError
from jobtrail.keys import KeySpace
from jobtrail.models import TERMINAL_STATUSES, Job, JobStatus, WorkerHeartbeat
from jobtrail.store.codec import decode_event, decode_job
from jobtrail.store.heartbeats import (
    DEFAULT_GONE_AFTER_S,
    HeartbeatStore,
    decode_heartbeat,
    newest_before_start,
    server_uptime_s,
)
from jobtrail.store.messages import BATCH_ID_PREFIX, confirm_lost, find_job_message
from jobtrail.trace.facts import (
    ArchiveFacts,
    BatchFacts,
    BrokerFacts,
    Evidence,
    MainFacts,
    ResultFacts,
)
from jobtrail.trace.fate import TraceResult, classify

if TYPE_CHECKING:  # only the CLI's/API's archive factory builds one (SQLAlchemy: start-up)
    from jobtrail.store.archive import ArchiveStore

__all__ = ["TraceSources", "archive_lookup", "gather_evidence", "trace_job"]

logger = logging.getLogger(__name__)

#: At most this many events are read back for a trace (the stream is capped anyway).
MAX_EVENTS = 1000


@dataclass(frozen=True, slots=True)
class TraceSources:
    """The stores trace reads.

    `find_archived` looks an id up in the archive (None: no archive
    configured); it may raise a JobtrailError, recorded as unreachable.
    """

    main: redis.Redis
    broker: redis.Redis | None
    results: redis.Redis | None
    keys: KeySpace
    visibility_timeout_s: float
    result_expires_s: int
    find_archived: Callable[[str], ArchiveFacts | None] | None = None
    #: Seconds without a heartbeat after which a worker is gone (Settings.gone_after_s).
    gone_after_s: float = DEFAULT_GONE_AFTER_S


def _ttl_s(pttl_ms: int) -> float | None:
    return None if pttl_ms < 0 else to_s(pttl_ms)


def _main_facts(src: TraceSources, job_id: str) -> MainFacts:
    k = src.keys
    index_names = [k.jobs(), *(k.jobs_by_status(s) for s in JobStatus)]
    try:
        with src.main.pipeline(transaction=False) as pipe:
            pipe.hgetall(k.job(job_id))
            for name in index_names:
                pipe.zscore(name, job_id)
            pipe.hgetall(k.tombstone(job_id))
            pipe.pttl(k.tombstone(job_id))
            pipe.xrevrange(k.events(job_id), count=MAX_EVENTS)
            pipe.info("stats")
            pipe.info("memory")
            pipe.info("replication")
            replies: list[Any] = pipe.execute()
    except REDIS_ERRORS as exc:
        raise wrap_redis_error("main DB", exc) from exc
    raw_job = cast(dict[str, str], replies[0])
    scores = replies[1:1 + len(index_names)]
    tombstone, tomb_pttl, events_rev, stats, memory, replication = \
        replies[1 + len(index_names):]
    promoted_from, promoted_at_offset = _promotion(replication)
    try:
        job = decode_job(raw_job) if raw_job else None
    except MalformedRecordError:
        job = None  # a hash jobtrail did not write: shown raw in the evidence
    prefix_len = len(k.prefix)
    return MainFacts(
        job=job,
        index_scores={name[prefix_len:]: float(score)
                      for name, score in zip(index_names, scores, strict=True)
                      if score is not None},
        tombstone=cast(dict[str, str], tombstone) or None,
        tombstone_ttl_s=_ttl_s(int(tomb_pttl)) if tombstone else None,
        events=tuple(decode_event(eid, fields) for eid, fields in reversed(events_rev)),
        evicted_keys=int(stats.get("evicted_keys", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "")),
        raw_job=raw_job,
        promoted_from=promoted_from,
        promoted_at_offset=promoted_at_offset,
    )


#: INFO replication's `master_replid2` of a server never promoted since it started.
_NO_REPLID = "0" * 40


def _promotion(replication: dict[str, Any]) -> tuple[str, int]:
    """(replication id it followed, offset it took over at) of a master that was a replica
    promoted since it started (Sentinel's failover, or REPLICAOF NO ONE); ("", -1) else.

    A promoted replica keeps the id of the master it followed as `master_replid2`
    and the offset of the switch as `second_repl_offset`; a master never promoted
    has 40 zeros (which redis-py's INFO parser reads as the number 0) and -1
    (Redis replication.c, shiftReplicationId).
    """
    replid2 = str(replication.get("master_replid2", "") or "")
    if replication.get("role") != "master" or replid2 in ("", _NO_REPLID):
        return "", -1
    return replid2, int(replication.get("second_repl_offset", -1))


def _broker_facts(src: TraceSources, main: MainFacts, job_id: str) -> BrokerFacts:
    """Where the job's message is (store.messages' rule: its batch's, or its own).

    The queue is scanned for a live job, and for a batch message's id with no
    record (trace of the id a verdict names); else only kombu's unacked
    entries are read.
    """
    assert src.broker is not None
    job = main.job or Job(id=job_id, problem="", status=JobStatus.COMPLETED, created_at=0.0)
    # a job with no key left on a master promoted since it started may be a creation the
    # old master took and never sent on, its message still queued: looked for as well
    scan = job.status in (JobStatus.PENDING, JobStatus.PROCESSING) or (
        main.job is None and not main.raw_job and job_id.startswith(BATCH_ID_PREFIX)) or (
        main.untouched and bool(main.promoted_from))
    found = find_job_message(src.broker, src.keys, job, scan_queue=scan)
    message = found.message
    return BrokerFacts(queue=src.keys.queue(), queue_length=found.queue_length,
                       ahead=found.ahead, examined=found.examined,
                       unacked_tag=found.unacked_tag, unacked_since=found.unacked_since,
                       message_id=message.task_id if message else None,
                       job_ids=message.job_ids if message else ())


def _batch_facts(src: TraceSources, job: Job, broker: BrokerFacts | None) -> BatchFacts:
    """The job's place in its batch message and its batch-mates' statuses (one pipeline).

    Raises:
        redis.RedisError: The main DB could not be reached.
    """
    found = broker is not None and broker.message_id == job.batch
    job_ids = broker.job_ids if broker is not None else ()
    if not found or job.id not in job_ids:
        return BatchFacts(batch_id=job.batch, found=found)
    with src.main.pipeline(transaction=False) as pipe:
        for mate in job_ids:
            pipe.hmget(src.keys.job(mate), ["status", "worker", "started_at"])
        rows = cast(list[list[str | None]], pipe.execute())
    statuses: dict[str, int] = {}
    running: list[tuple[str, str]] = []
    started: list[float] = []
    for mate, (status, worker, started_at) in zip(job_ids, rows, strict=True):
        statuses[status or "gone"] = statuses.get(status or "gone", 0) + 1
        if status == JobStatus.PROCESSING.value and mate != job.id:
            running.append((mate, worker or ""))
            started.append(float(started_at) if started_at else 0.0)
    # the worker a reserved job waits on is judged by trace's one rule (fate.run_gone)
    mate_worker = _worker_facts(src, running[0][1]) if running and running[0][1] else None
    return BatchFacts(batch_id=job.batch, found=True, position=job_ids.index(job.id) + 1,
                      size=len(job_ids), statuses=statuses, running=tuple(running),
                      mate_worker=mate_worker, mate_started_at=started[0] if started else None)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _result_facts(src: TraceSources, job_id: str) -> ResultFacts:
    assert src.results is not None
    with src.results.pipeline(transaction=False) as pipe:
        pipe.get(src.keys.celery_result(job_id))
        pipe.pttl(src.keys.celery_result(job_id))
        raw, pttl = pipe.execute()
    if raw is None:
        return ResultFacts(None, None)
    try:
        meta = json.loads(raw, parse_constant=_refuse_constant)
    except ValueError:
        meta = {"status": "UNREADABLE", "raw": str(raw)[:200]}
    return ResultFacts(meta if isinstance(meta, dict) else {"raw": meta}, _ttl_s(int(pttl)))


def _worker_facts(src: TraceSources, name: str) -> WorkerHeartbeat | None:
    k = src.keys
    with src.main.pipeline(transaction=False) as pipe:
        pipe.zscore(k.workers(), name)
        pipe.hgetall(k.worker(name))
        pipe.info("server")
        pipe.zrange(k.workers(), 0, -1, withscores=True)
        score, fields, info, index = pipe.execute()
    if score is None and not fields:
        return None
    at, uptime_s = now_s(), server_uptime_s(info)
    return decode_heartbeat(name, float(score or 0.0), cast(dict[str, str], fields), at=at,
                            server_uptime_s=uptime_s, gone_after_s=src.gone_after_s,
                            newest_seen=newest_before_start([s for _, s in index], uptime_s,
                                                            read_at=at))


def _queue_workers(src: TraceSources) -> tuple[WorkerHeartbeat, ...]:
    """The live workers (heartbeat not expired) that consume the job's queue.

    Raises:
        RedisUnavailableError: The main DB could not be reached.
    """
    return tuple(b for b in HeartbeatStore(src.main, src.keys,
                                           gone_after_s=src.gone_after_s).list_workers()
                 if b.alive and b.queue in (None, src.keys.queue_name))


def archive_lookup(archive: Callable[[], ArchiveStore]) -> Callable[[str], ArchiveFacts | None]:
    """Return a find_archived for TraceSources reading the archive that *archive* opens.

    The archive is opened only when a trace needs it (a job with no record).
    """

    def find(job_id: str) -> ArchiveFacts | None:
        store = archive()
        row = store.find(job_id)
        if row is None:
            return None
        return ArchiveFacts(location=store.location, purged_at=row.purged_at,
                            policy=row.policy, run_id=row.run_id, status=row.status,
                            had_celery_result=row.celery_meta is not None,
                            restored_at=row.restored_at)

    return find


def gather_evidence(src: TraceSources, job_id: str) -> Evidence:
    """Read every store about *job_id* and return the Evidence.

    A pending job whose message is in neither the queue nor the unacked hash
    is looked for again SETTLE_S (0.5 s) later, as doctor does
    (store.messages.confirm_lost): still without a message and its record
    unchanged (status and version), that first Evidence stands (its message is
    lost); else every store is read again and that Evidence is returned.

    Raises:
        RedisUnavailableError: The main DB could not be reached (the other
            stores are optional: their failures are recorded in
            Evidence.unreachable).
    """
    ev = _gather_once(src, job_id)
    job = ev.main.job
    if src.broker is None or job is None or job.status is not JobStatus.PENDING \
            or ev.broker is None or not ev.broker.lost:
        return ev
    try:
        if confirm_lost(src.main, src.broker, src.keys, {job.id: job}):
            return ev
    except redis.RedisError:
        pass  # read again: a store that failed is recorded as unreachable
    return _gather_once(src, job_id)


def _gather_once(src: TraceSources, job_id: str) -> Evidence:
    """One read of every store about *job_id* (gather_evidence's first or second look)."""
    at = now_s()
    main = _main_facts(src, job_id)
    unreachable: dict[str, str] = {}
    broker = results = None
    archive: ArchiveFacts | None = None
    worker: WorkerHeartbeat | None = None
    workers: tuple[WorkerHeartbeat, ...] = ()
    batch: BatchFacts | None = None
    if src.broker is not None:
        try:
            broker = _broker_facts(src, main, job_id)
        except redis.RedisError as exc:
            unreachable["broker"] = str(exc)
    if main.job is not None and main.job.batch and main.job.status not in TERMINAL_STATUSES:
        try:
            batch = _batch_facts(src, main.job, broker)
        except redis.RedisError as exc:
            unreachable["main"] = str(exc)
    if src.results is not None:
        try:
            results = _result_facts(src, job_id)
        except redis.RedisError as exc:
            unreachable["results"] = str(exc)
    if src.find_archived is not None and main.job is None:
        try:
            archive = src.find_archived(job_id)
        except JobtrailError as exc:
            unreachable["archive"] = str(exc)
    if main.job is not None and main.job.status is JobStatus.PROCESSING and main.job.worker:
        try:
            worker = _worker_facts(src, main.job.worker)
        except redis.RedisError as exc:
            unreachable["workers"] = str(exc)
    if main.job is not None and main.job.status is JobStatus.PENDING:
        try:
            workers = _queue_workers(src)
        except JobtrailError as exc:
            unreachable["workers"] = str(exc)
    return Evidence(job_id=job_id, at=at, visibility_timeout_s=src.visibility_timeout_s,
                    result_expires_s=src.result_expires_s, main=main, broker=broker,
                    results=results, archive=archive, worker=worker, unreachable=unreachable,
                    workers=workers, batch=batch)


def trace_job(src: TraceSources, job_id: str) -> TraceResult:
    """Gather the evidence about *job_id* and classify its fate.

    Raises:
        RedisUnavailableError: The main DB could not be reached.
    """
    return classify(gather_evidence(src, job_id))
