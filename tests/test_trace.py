"""trace: each fate reached for real on Redis and Celery, and classify() on its own."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from jobtrail.cli.demo import SAMPLE_PROBLEMS
from jobtrail.config import Settings
from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.retention.policy import RetentionPolicy
from jobtrail.retention.purge import purge
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.messages import SETTLE_S
from jobtrail.store.retention_store import RetentionStore
from jobtrail.trace import TraceResult, TraceSources, trace_job
from jobtrail.trace.gather import archive_lookup
from jobtrail.worker import tasks
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.submits import send_message_later
from tests.helpers.waiting import job_finished, wait_until

#: About 2 s of SymPy work in a fresh process: long enough to be killed mid-way.
MEDIUM_PROBLEM = "integrate exp(x)*sin(x)^3*cos(x)^2 dx"


def sources(settings: Settings) -> TraceSources:
    main, broker, results = settings.require_urls()
    return TraceSources(
        main=redis.Redis.from_url(main, decode_responses=True),
        broker=redis.Redis.from_url(broker, decode_responses=True),
        results=redis.Redis.from_url(results, decode_responses=True),
        keys=KeySpace(settings.key_prefix, settings.queue),
        visibility_timeout_s=settings.visibility_timeout_s,
        result_expires_s=settings.result_expires_s, gone_after_s=settings.gone_after_s)


def trace(settings: Settings, job_id: str) -> TraceResult:
    return trace_job(sources(settings), job_id)


@pytest.fixture
def service(settings: Settings, store: JobStore) -> JobService:
    return JobService(store, create_celery_app(settings))


@pytest.fixture
def thread_worker(service: JobService) -> Iterator[Any]:
    assert tasks.solve_job.name
    with start_worker(service.app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=10) as worker:
        yield worker



def test_pending_jobs_report_their_queue_position(settings: Settings, service: JobService,
                                                  main_db: redis.Redis) -> None:
    # Given two jobs and no worker
    first, second = service.submit("1 + 1"), service.submit("2 + 2")

    a, b = trace(settings, first.id), trace(settings, second.id)

    # Then both are pending, the first next in line
    assert (a.fate, b.fate) == (Fate.PENDING, Fate.PENDING)
    assert a.evidence.broker is not None and a.evidence.broker.ahead == 0
    assert b.evidence.broker is not None and b.evidence.broker.ahead == 1
    assert "1 ahead of it" in b.verdict
    assert [t["event"] for t in a.timeline] == ["created"]


def test_completed_with_result_ttl(settings: Settings, service: JobService, store: JobStore,
                                   results_db: redis.Redis, thread_worker: Any) -> None:
    job = service.submit("solve x^2 - 5x + 6 = 0")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")

    result = trace(settings, job.id)

    assert result.fate is Fate.COMPLETED
    assert result.evidence.results is not None and result.evidence.results.ttl_s is not None
    assert 0 < result.evidence.results.ttl_s <= settings.result_expires_s
    assert "Celery result SUCCESS still present, expires in ~24.0 h" in result.verdict
    assert result.disagreements == []
    events = [t["event"] for t in result.timeline]
    assert events[:3] == ["created", "started", "completed"]
    assert "celery result expires" in events
    assert result.to_dict()["evidence"]["main"]["job"]["answer"] == "x = 2, x = 3"


def test_failed_job_reports_its_reason(settings: Settings, service: JobService,
                                       store: JobStore, results_db: redis.Redis,
                                       thread_worker: Any) -> None:
    job = service.submit("9^9^9")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")

    result = trace(settings, job.id)

    assert result.fate is Fate.FAILED
    assert "number too large" in result.verdict
    assert "Celery result FAILURE" in result.verdict


def test_result_expired(redis_server: EmbeddedRedis, tmp_path: Path, main_db: redis.Redis,
                        keys: KeySpace) -> None:
    settings = make_settings(redis_server, tmp_path, result_expires_s=1)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    with start_worker(service.app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        job = service.submit("evaluate 2^10 / 4")
        wait_until(lambda: job_finished(store, job.id), timeout_s=20, message="job to finish")
    results = redis_server.client(12)
    wait_until(lambda: not results.exists(keys.celery_result(job.id)), timeout_s=5,
               message="the Celery result to expire")

    result = trace(settings, job.id)

    assert result.fate is Fate.RESULT_EXPIRED
    assert "result expired" in result.verdict and "result_expires_s = 1" in result.verdict


def test_deleted_outside_jobtrail(settings: Settings, service: JobService, store: JobStore,
                                  main_db: redis.Redis, keys: KeySpace,
                                  results_db: redis.Redis, thread_worker: Any) -> None:
    job = service.submit("2 + 2")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")

    # When another client deletes the record
    other = redis.Redis.from_url(settings.main_url or "")
    assert other.delete(keys.job(job.id)) == 1

    result = trace(settings, job.id)

    assert result.fate is Fate.DELETED_EXTERNALLY
    assert "no tombstone, and no eviction counted" in result.verdict
    assert "last known event: completed" in result.verdict
    assert "a Celery result" in result.verdict


def test_a_job_whose_submit_is_sending_its_message_reads_pending_not_lost(
        settings: Settings, store: JobStore) -> None:
    # Given a submit that wrote its job's record and sends the message 0.2 s later
    job = store.create("solve x + 1 = 2")
    sending = send_message_later(settings, job, delay_s=0.2)

    # When trace runs through that moment
    result = trace(settings, job.id)
    sending.join()

    # Then the job waits in the queue: its message arrived, it was never lost
    assert result.fate is Fate.PENDING, result.verdict
    assert result.evidence.broker is not None and result.evidence.broker.ahead == 0
    assert "lost" not in result.verdict


def test_a_message_kombu_popped_but_not_yet_filed_as_unacked_reads_reserved_not_lost(
        settings: Settings, store: JobStore, broker_db: redis.Redis, keys: KeySpace) -> None:
    # Given a job's message popped from the queue (BRPOP) and filed under kombu's
    # unacked hash 0.2 s later (QoS.append), as a worker fetching it does
    job = store.create("solve x + 1 = 2")
    send_message_later(settings, job, delay_s=0).join()
    raw = broker_db.rpop(keys.queue())
    assert raw is not None

    def file_unacked() -> None:
        broker_db.hset(keys.unacked(), "tag-1", json.dumps([json.loads(raw), "", keys.queue()]))
        broker_db.zadd(keys.unacked_index(), {"tag-1": time.time()})

    filing = threading.Timer(0.2, file_unacked)
    filing.start()

    # When trace runs through that moment
    result = trace(settings, job.id)
    filing.join()

    # Then the job is reserved by a worker, not lost
    assert result.fate is Fate.PENDING, result.verdict
    assert result.evidence.broker is not None and result.evidence.broker.unacked_tag == "tag-1"


def test_a_pending_job_whose_message_is_gone_is_lost_after_a_second_look(
        settings: Settings, store: JobStore) -> None:
    # Given a pending job whose message no one will ever send
    job = store.create("solve x + 1 = 2")

    # When trace looks
    started = time.monotonic()
    result = trace(settings, job.id)

    # Then it is stale, lost unless resubmitted, and only after a second look SETTLE_S later
    assert result.fate is Fate.STALE
    assert "no message for it is left in the broker" in result.verdict
    assert time.monotonic() - started >= SETTLE_S


def test_unknown_id(settings: Settings, main_db: redis.Redis) -> None:
    result = trace(settings, "never-submitted-1")
    assert result.fate is Fate.UNKNOWN
    assert result.timeline == []


def test_evicted(private_redis: EmbeddedRedis, tmp_path: Path) -> None:
    # Given a server that evicts any key under memory pressure, holding job records
    settings = make_settings(private_redis, tmp_path)
    client = private_redis.client(10)
    keys = KeySpace()
    store = JobStore(client, keys)
    jobs = store.create_many([f"solve x^2 = {n}" for n in range(200)])
    used = int(client.info("memory")["used_memory"])
    client.config_set("maxmemory", str(used + 200_000))
    client.config_set("maxmemory-policy", "allkeys-lru")

    # When other data overfills it, keeping the jobs index hot
    filler = "x" * 10_000
    for n in range(300):
        client.set(f"filler:{n}", filler)
        client.zcard(keys.jobs())
    assert int(client.info("stats")["evicted_keys"]) > 0
    gone = [j for j in jobs if not client.exists(keys.job(j.id))]
    assert gone, "no job record was evicted"
    # (a job whose every key was evicted leaves no trace at all: trace calls it unknown)
    traced = [j for j in gone if client.zscore(keys.jobs(), j.id) is not None
              or client.exists(keys.events(j.id))]
    assert traced, "the jobs index was evicted too"
    # stop further evictions (any command may evict while memory is over the limit)
    client.config_set("maxmemory", "0")

    # Then trace names eviction for a job whose record went, citing the counter
    result = trace(settings, traced[0].id)
    assert result.fate is Fate.EVICTED
    assert "maxmemory-policy allkeys-lru" in result.verdict
    assert result.evidence.main.evicted_keys > 0


@pytest.mark.slow
@pytest.mark.crash
def test_worker_killed_mid_task_is_stale_then_redelivered_and_completed(
        redis_server: EmbeddedRedis, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker busy with a problem that takes a couple of seconds
    settings = make_settings(redis_server, tmp_path, visibility_timeout_s=10,
                             solver_time_limit_s=8.0, solver_hard_time_limit_s=9.0,
                             heartbeat_interval_s=0.5)
    store = JobStore(main_db, keys)
    events = EventLog(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    first = worker_process(settings, hostname="doomed")
    job = service.submit(MEDIUM_PROBLEM)
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=30,
               message="job to start")
    assert trace(settings, job.id).fate is Fate.PROCESSING

    # When the whole worker (main and pool processes) dies with SIGKILL
    os.killpg(first.proc.pid, signal.SIGKILL)
    first.proc.wait()

    # Then, once its heartbeat lapses, trace calls the job stale and says when it comes back
    stale = wait_until(lambda: (r := trace(settings, job.id)).fate is Fate.STALE and r,
                       timeout_s=10, message="the job to read as stale")
    assert "worker doomed@" in stale.verdict and "is gone" in stale.verdict
    assert "redelivers it from" in stale.verdict
    assert stale.evidence.broker is not None and stale.evidence.broker.unacked_since

    # And a new worker gets the message after the visibility timeout and completes it
    worker_process(settings, hostname="rescuer")
    wait_until(lambda: job_finished(store, job.id), timeout_s=40, message="redelivery")
    final = store.get(job.id)
    assert final.status is JobStatus.COMPLETED and final.attempts == 2
    assert final.worker.startswith("rescuer@")
    history = [e.type for e in events.read(job.id)]
    assert history == [EventType.CREATED, EventType.STARTED, EventType.REDELIVERED,
                       EventType.STARTED, EventType.COMPLETED]
    assert trace(settings, job.id).fate is Fate.COMPLETED


def _purge_oldest(settings: Settings, keep_last: int, policy_name: str = "incident"
                  ) -> ArchiveStore:
    """Purge every completed job but the newest *keep_last*, as an operator would."""
    main_url, _, results_url = settings.require_urls()
    rstore = RetentionStore(redis.Redis.from_url(main_url, decode_responses=True),
                            redis.Redis.from_url(results_url, decode_responses=True),
                            KeySpace(settings.key_prefix, settings.queue))
    archive = ArchiveStore(settings.effective_archive_url)
    archive.ensure_schema()
    report = purge(rstore, archive, RetentionPolicy(policy_name, (JobStatus.COMPLETED,), 0.0,
                                                    keep_last=keep_last),
                   tombstone_ttl_s=settings.tombstone_ttl_s)
    assert report.purged >= 1
    return archive


def _trace_with_archive(settings: Settings, archive: ArchiveStore, job_id: str) -> TraceResult:
    src = sources(settings)
    return trace_job(TraceSources(src.main, src.broker, src.results, src.keys,
                                  src.visibility_timeout_s, src.result_expires_s,
                                  find_archived=archive_lookup(lambda: archive)), job_id)


def test_the_original_incident_reads_purged_not_missing(
        settings: Settings, service: JobService, store: JobStore, main_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace, thread_worker: Any) -> None:
    # Given the five sample problems, solved
    jobs = service.submit_many(list(SAMPLE_PROBLEMS))
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in jobs), timeout_s=30,
               message="the five jobs to finish")
    first = jobs[0]

    # When a retention purge removes the oldest completed record from the main DB
    archive = _purge_oldest(settings, keep_last=4)

    # Then the record is gone, its Celery result lives on, and trace says what happened
    assert not main_db.exists(keys.job(first.id))
    assert results_db.exists(keys.celery_result(first.id))
    assert store.count_by_status()[JobStatus.COMPLETED] == 4
    result = _trace_with_archive(settings, archive, first.id)
    assert result.fate is Fate.PURGED
    assert result.verdict.startswith("purged at ")
    assert "by policy incident, archived in sqlite:///" in result.verdict
    assert result.verdict.endswith("Celery result SUCCESS still present, expires in ~24.0 h")
    assert [t["event"] for t in result.timeline if t["source"] == "events"] == [
        "created", "started", "completed", "purged"]
    assert "celery SUCCESS" in [t["event"] for t in result.timeline]


def test_purged_after_the_celery_result_expired(
        redis_server: EmbeddedRedis, tmp_path: Path, main_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace) -> None:
    settings = make_settings(redis_server, tmp_path, result_expires_s=3)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    with start_worker(service.app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        job = service.submit("2 + 2")
        wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
                   message="job to finish")
    archive = _purge_oldest(settings, keep_last=0, policy_name="nightly")
    wait_until(lambda: not results_db.exists(keys.celery_result(job.id)), timeout_s=10,
               message="the Celery result to expire")

    result = _trace_with_archive(settings, archive, job.id)

    assert result.fate is Fate.PURGED
    assert "by policy nightly" in result.verdict
    assert result.verdict.endswith("Celery result gone")
    # the answer outlived the result backend: it is in the archive row
    row = archive.get(job.id)
    assert row.celery_meta is not None and row.celery_meta["result"]["text"] == "4"
