"""Submit -> real Celery worker (in a thread, on the real broker) -> job hash and result backend."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker

from jobtrail.config import Settings
from jobtrail.errors import ProblemError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker import tasks
from jobtrail.worker.app import TASK_SOLVE, create_celery_app
from tests.conftest import make_settings
from tests.helpers.waiting import job_finished, wait_until


def _run_worker(app: Celery) -> Iterator[Any]:
    assert tasks.solve_job.name == TASK_SOLVE
    with start_worker(app, pool="solo", perform_ping_check=False,
                      shutdown_timeout=10) as worker:
        assert TASK_SOLVE in app.tasks
        yield worker


@pytest.fixture
def celery_app(settings: Settings, main_db: redis.Redis) -> Celery:
    return create_celery_app(settings)


@pytest.fixture
def celery_worker(celery_app: Celery) -> Iterator[Any]:
    yield from _run_worker(celery_app)


@pytest.fixture
def service(store: JobStore, celery_app: Celery) -> JobService:
    return JobService(store, celery_app)



def test_submit_is_solved_into_job_hash_and_result_backend(
        service: JobService, store: JobStore, results_db: redis.Redis, keys: KeySpace,
        events: EventLog, settings: Settings, celery_worker: Any) -> None:
    # Given a running worker, when a problem is submitted
    job = service.submit("solve x^2 - 5x + 6 = 0")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")

    # Then the job hash holds the answer
    done = store.get(job.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.answer == "x = 2, x = 3"
    assert done.kind == "equation" and done.attempts == 1
    # the in-thread test worker's tracer reports the host, a real worker its node name
    # (test_worker_process checks node names)
    assert done.worker in (celery_worker.hostname, socket.gethostname())
    # and celery-task-meta-<id> holds the same answer with the configured TTL
    meta = json.loads(results_db.get(keys.celery_result(job.id)) or "{}")
    assert meta["status"] == "SUCCESS"
    assert meta["result"]["text"] == "x = 2, x = 3"
    ttl = results_db.ttl(keys.celery_result(job.id))
    assert 0 < ttl <= settings.result_expires_s
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


def test_malformed_problem_becomes_failed_job_with_reason(
        service: JobService, store: JobStore, results_db: redis.Redis, keys: KeySpace,
        celery_app: Celery, celery_worker: None) -> None:
    job = service.submit("__import__('os').system('id')")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")

    failed = store.get(job.id)
    assert failed.status is JobStatus.FAILED
    assert "could not parse" in failed.error
    meta = json.loads(results_db.get(keys.celery_result(job.id)) or "{}")
    assert meta["status"] == "FAILURE"
    assert meta["result"]["exc_type"] == "ProblemError"
    assert failed.error in meta["result"]["exc_message"][0]
    # and a client reads it back through AsyncResult as the same exception, without error
    exc = celery_app.AsyncResult(job.id).result
    assert type(exc) is ProblemError and str(exc) == failed.error


def test_result_expires_zero_keeps_the_result(redis_server, tmp_path, main_db: redis.Redis,
                                              results_db: redis.Redis, keys: KeySpace) -> None:
    settings = make_settings(redis_server, tmp_path, result_expires_s="never")
    app = create_celery_app(settings)
    store = JobStore(main_db, keys)
    job = JobService(store, app).submit("evaluate 2^10 / 4")
    for _ in _run_worker(app):
        wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
                   message="job to finish")
    assert store.get(job.id).answer == "256"
    assert results_db.ttl(keys.celery_result(job.id)) == -1


def test_second_delivery_of_completed_job_changes_nothing(
        service: JobService, store: JobStore, celery_app: Celery, main_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace, celery_worker: None,
        caplog: pytest.LogCaptureFixture) -> None:
    job = service.submit("2 + 2")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job to finish")
    before = (main_db.hgetall(keys.job(job.id)), main_db.xrange(keys.events(job.id)),
              results_db.get(keys.celery_result(job.id)))

    # When the same task id is delivered again, and the worker has handled it
    with caplog.at_level(logging.INFO, logger="jobtrail"):
        celery_app.send_task(TASK_SOLVE, args=[job.id], task_id=job.id)
        wait_until(lambda: f"duplicate delivery ignored job_id={job.id}" in caplog.text,
                   timeout_s=20, message="the duplicate delivery to be handled")

    # Then neither the record, its history nor the Celery result changed
    after = (main_db.hgetall(keys.job(job.id)), main_db.xrange(keys.events(job.id)),
             results_db.get(keys.celery_result(job.id)))
    assert after == before


def test_job_completes_after_redis_lost_its_scripts(
        service: JobService, store: JobStore, main_db: redis.Redis, results_db: redis.Redis,
        events: EventLog, celery_worker: None) -> None:
    # Given a worker that has run the pipelined path once
    first = service.submit("1 + 1")
    wait_until(lambda: job_finished(store, first.id, results_db), timeout_s=20,
               message="first job")
    # When the server forgets its scripts (as after a restart without persistence)
    main_db.script_flush()
    job = service.submit("2 + 3")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=20,
               message="job after SCRIPT FLUSH")

    # Then the worker fell back to the step-by-step path and the job completed once
    done = store.get(job.id)
    assert (done.status, done.answer, done.attempts) == (JobStatus.COMPLETED, "5", 1)
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]


def test_a_task_that_arrives_before_its_record_waits_for_it(
        store: JobStore, celery_app: Celery, results_db: redis.Redis, keys: KeySpace,
        celery_worker: None) -> None:
    # Given a task published before its record exists (submit overlaps the two writes)
    job_id = "early-bird-1"
    celery_app.send_task(TASK_SOLVE, args=[job_id, "3 * 4"], task_id=job_id)
    time.sleep(0.3)  # the worker is already waiting for the record
    # When the record lands
    store.create("3 * 4", job_id=job_id)
    # Then the job is solved once
    wait_until(lambda: job_finished(store, job_id, results_db), timeout_s=20,
               message="the early task to finish")
    done = store.get(job_id)
    assert (done.status, done.answer, done.attempts) == (JobStatus.COMPLETED, "12", 1)


def test_submit_overlaps_record_and_publish(service: JobService, store: JobStore,
                                            broker_db: redis.Redis, keys: KeySpace) -> None:
    job = service.submit("5 + 5")
    assert store.get(job.id).status is JobStatus.PENDING
    [raw] = broker_db.lrange(keys.queue(), 0, -1)
    assert json.loads(raw)["headers"]["id"] == job.id
