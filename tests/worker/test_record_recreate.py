"""A delivery whose job record is missing (lost in a failover) recreates it from its message.

With MAIN_MIN_REPLICAS=0 a Sentinel failover can discard a job's record (its
create step: record, index entries, events) while its message survives on the
new master. The message carries what the create wrote (job id = task id, the
problem; a batch's [job_id, problem] pairs), so the worker writes the pending
record again, with a `created` event saying so, and runs the job. A purged
job (its tombstone present) is never resurrected: the delivery is dropped.
The failover itself is in tests/faults/test_sentinel.py; here the keys are
deleted as the failover leaves them, on one server.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.retention import RetentionPolicy, purge
from jobtrail.store import ArchiveStore, EventLog, JobStore, RetentionStore
from jobtrail.trace import TraceSources, trace_job
from jobtrail.worker.app import TASK_SOLVE, TASK_SOLVE_PROBLEM, create_celery_app
from tests.conftest import make_settings
from tests.helpers.seeding import seed_job
from tests.helpers.waiting import job_finished, wait_until

RECREATED = "record missing when its message was delivered"


@pytest.fixture
def celery_app(settings: Settings, main_db: redis.Redis) -> Celery:
    return create_celery_app(settings)


def _worker(app: Celery) -> Any:
    return start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10)


def _lose_create(main_db: redis.Redis, keys: KeySpace, job_id: str) -> None:
    """Delete what a job's create step wrote, as a failover that discarded it leaves it
    (the shared events feed keeps its entry: not read by the worker nor by trace)."""
    main_db.delete(keys.job(job_id), keys.events(job_id))
    main_db.zrem(keys.jobs(), job_id)
    main_db.zrem(keys.jobs_by_status(JobStatus.PENDING), job_id)


def _trace(settings: Settings, store: JobStore) -> TraceSources:
    return TraceSources(main=store.client, broker=redis.Redis.from_url(
        settings.broker_url or "", decode_responses=True), results=redis.Redis.from_url(
        settings.results_url or "", decode_responses=True), keys=store.keys,
        visibility_timeout_s=settings.visibility_timeout_s,
        result_expires_s=settings.result_expires_s)


def test_a_job_whose_record_is_gone_is_recreated_from_its_message_and_solved(
        store: JobStore, celery_app: Celery, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, events: EventLog, settings: Settings) -> None:
    # Given an accepted job whose create step was lost (record, index entries, events)
    # while its message waits in the broker
    job = JobService(store, celery_app).submit("solve x^2 - 5x + 6 = 0")
    _lose_create(main_db, keys, job.id)
    assert store.find(job.id) is None

    # When a worker gets the message
    with _worker(celery_app) as worker:
        wait_until(lambda: store.find(job.id) is not None and job_finished(
            store, job.id, results_db), timeout_s=30, message="the job to finish")

    # Then the job is solved, once, as an ordinary job
    done = store.get(job.id)
    assert (done.status, done.answer, done.attempts) == (JobStatus.COMPLETED,
                                                         "x = 2, x = 3", 1), done.error
    assert done.problem == "solve x^2 - 5x + 6 = 0" and done.batch == ""
    # dated from its delivery (the lost created_at is not in the message): no step before it
    assert done.created_at <= (done.started_at or 0) <= (done.finished_at or 0)
    # and its history shows the recreation, by which worker
    history = events.read(job.id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.COMPLETED]
    assert history[0].fields["recreated"] == RECREATED
    assert history[0].fields["worker"] in (worker.hostname, done.worker)
    assert main_db.zscore(keys.jobs(), job.id) is not None
    assert main_db.zscore(keys.jobs_by_status(JobStatus.COMPLETED), job.id) is not None
    # and trace reads a completed job whose verdict names the recreation
    traced = trace_job(_trace(settings, store), job.id)
    assert traced.fate is Fate.COMPLETED, traced.verdict
    assert "record recreated from its message" in traced.verdict, traced.verdict
    assert any(item.get("recreated") == RECREATED for item in traced.timeline)


@pytest.mark.parametrize("public_task", [False, True], ids=["solve_job", "jobtrail.solve"])
def test_a_purged_job_is_not_recreated_by_a_late_delivery(
        store: JobStore, celery_app: Celery, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, redis_server: Any, tmp_path: Path, settings: Settings,
        caplog: pytest.LogCaptureFixture, public_task: bool) -> None:
    # Given a finished job purged (archive row, tombstone, record deleted)
    job_id = seed_job(store, JobStatus.COMPLETED, now_s() - 3600, problem="2 + 3")
    archive = ArchiveStore(f"sqlite:///{tmp_path}/archive.db")
    archive.ensure_schema()
    report = purge(RetentionStore(main_db, results_db, keys), archive,
                   RetentionPolicy("all", (JobStatus.COMPLETED,), 0.0), tombstone_ttl_s=3600.0)
    assert report.purged == 1
    tombstone = main_db.hgetall(keys.tombstone(job_id))
    archived = archive.get(job_id)
    assert tombstone and store.find(job_id) is None

    # When a message for it is delivered after the purge (a late duplicate)
    events_before = main_db.xrange(keys.events(job_id))  # the purge keeps them, with a TTL
    log = logging.getLogger("jobtrail")
    with _worker(celery_app), caplog.at_level(logging.INFO, logger="jobtrail"):
        log.addHandler(caplog.handler)  # the worker's log config does not propagate it
        try:
            if public_task:  # the public task, published outside jobtrail (no record)
                plain = Celery(broker=settings.broker_url)
                plain.send_task(TASK_SOLVE_PROBLEM, args=["2 + 3"], task_id=job_id,
                                queue=settings.queue)
            else:
                celery_app.send_task(TASK_SOLVE, args=[job_id, "2 + 3"], task_id=job_id)
            wait_until(lambda: "delivery of a purged job dropped" in caplog.text, timeout_s=30,
                       message="the delivery to be dropped")
        finally:
            log.removeHandler(caplog.handler)

    # Then no record is written back, and the delivery's drop is logged with its reason
    assert store.find(job_id) is None
    assert not main_db.exists(keys.job(job_id))
    assert main_db.xrange(keys.events(job_id)) == events_before
    assert main_db.zscore(keys.jobs(), job_id) is None
    assert (f"delivery of a purged job dropped, record not written job_id={job_id}"
            if public_task else
            f"delivery of a purged job dropped, record not recreated job_id={job_id} "
            "purged_at=") in caplog.text
    # and the tombstone and the archive row are as the purge left them
    assert main_db.hgetall(keys.tombstone(job_id)) == tombstone
    assert 0 < main_db.ttl(keys.tombstone(job_id)) <= 3600
    assert archive.get(job_id) == archived
    archive.close()


@pytest.fixture
def batch_app(redis_server: Any, tmp_path: Path, main_db: redis.Redis) -> Iterator[Celery]:
    yield create_celery_app(make_settings(redis_server, tmp_path / "state", batch_max_jobs=4))


def test_a_batch_recreates_the_record_of_its_job_that_is_gone(
        batch_app: Celery, main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace,
        events: EventLog) -> None:
    # Given a batch of three jobs, the create of the middle one lost
    store = JobStore(main_db, keys)
    jobs = JobService(store, batch_app).submit_many(["1 + 1", "2 * 3", "solve x - 4 = 0"])
    batch = jobs[0].batch
    assert batch and all(j.batch == batch for j in jobs)
    _lose_create(main_db, keys, jobs[1].id)

    # When a worker runs the batch
    with _worker(batch_app):
        wait_until(lambda: all(store.find(j.id) is not None and job_finished(
            store, j.id, results_db) for j in jobs), timeout_s=30,
            message="the batch's jobs to finish")

    # Then every job is solved once, the lost one recreated in its batch
    finals = [store.get(j.id) for j in jobs]
    assert [(f.status, f.answer, f.attempts) for f in finals] == [
        (JobStatus.COMPLETED, "2", 1), (JobStatus.COMPLETED, "6", 1),
        (JobStatus.COMPLETED, "x = 4", 1)]
    assert finals[1].batch == batch and finals[1].problem == "2 * 3"
    history = events.read(jobs[1].id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.COMPLETED]
    assert history[0].fields["recreated"] == RECREATED
    assert "recreated" not in events.read(jobs[0].id)[0].fields
