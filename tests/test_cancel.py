"""Cancel: pending jobs never run, processing ones only with terminate, finished ones refused."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from pydantic import SecretStr

from jobtrail.api.app import create_app
from jobtrail.client import Client
from jobtrail.config import Settings
from jobtrail.errors import NotCancellableError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.retention.policy import RetentionPolicy
from jobtrail.retention.purge import purge
from jobtrail.store import EventLog, JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.api_server import client as http_client
from tests.helpers.api_server import serve_in_thread
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until

TOKEN = "cancel-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW_PROBLEM = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


@pytest.fixture
def app(settings: Settings, main_db: redis.Redis) -> Celery:
    return create_celery_app(settings)


@pytest.fixture
def service(store: JobStore, app: Celery) -> JobService:
    return JobService(store, app)


def _finished(store: JobStore, problem: str = "1 + 1") -> str:
    job = store.create(problem)
    store.start(job.id, worker="w")
    store.complete(job.id, {"text": "2", "latex": "2", "steps": []})
    return job.id


def test_a_pending_job_cancelled_is_skipped_by_the_worker_that_gets_its_message(
        settings: Settings, service: JobService, store: JobStore, events: EventLog,
        app: Celery, main_db: redis.Redis) -> None:
    # Given a pending job, cancelled before any worker runs (none knows of the revoke)
    job = service.submit("Solve x^2 - 5x + 6 = 0")
    cancelled = service.cancel(job.id)
    assert (cancelled.status, cancelled.error) == (JobStatus.CANCELLED,
                                                   "cancelled before start")
    assert cancelled.finished_at is not None

    # When a worker starts and receives the message
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        wait_until(lambda: any(e.type is EventType.SKIPPED for e in events.read(job.id)),
                   timeout_s=30, message="the skipped event")
        wait_until(lambda: app.AsyncResult(job.id).state == "REVOKED", timeout_s=10,
                   message="Celery's result REVOKED")

    # Then it did not run the job: the record is unchanged, never started
    final = store.get(job.id)
    assert (final.status, final.attempts, final.started_at, final.result) == (
        JobStatus.CANCELLED, 0, None, None)
    skipped = [e for e in events.read(job.id) if e.type is EventType.SKIPPED]
    assert skipped[0].fields["error"] == "cancelled before start"
    assert [e.type for e in events.read(job.id)] == [
        EventType.CREATED, EventType.CANCELLED, EventType.SKIPPED]
    # the message is gone from the broker, and trace tells the story
    broker = redis.Redis.from_url(settings.require_urls()[1])
    assert broker.llen(settings.queue) == 0
    with Client(settings) as client:
        result = client.trace(job.id)
    assert result.fate is Fate.CANCELLED
    assert "cancelled before start" in result.verdict and "skipped it" in result.verdict
    assert not [d for d in result.to_dict().get("disagreements", []) if "REVOKED" in d]


def test_finished_and_processing_jobs_are_refused_with_a_clear_error(
        service: JobService, store: JobStore) -> None:
    done = _finished(store)
    with pytest.raises(NotCancellableError, match="is completed; only a pending job"):
        service.cancel(done)
    running = store.create("2 + 2")
    store.start(running.id, worker="w9@host")
    with pytest.raises(NotCancellableError, match="runs on w9@host.*use terminate=True$"):
        service.cancel(running.id)
    assert store.get(done).status is JobStatus.COMPLETED
    assert store.get(running.id).status is JobStatus.PROCESSING


def test_cli_cancel_cancels_each_id_and_reports_the_refused(
        settings: Settings, service: JobService, store: JobStore) -> None:
    pending = service.submit("Solve x = 1")
    done = _finished(store)
    result = subprocess.run(
        [sys.executable, "-m", "jobtrail", "cancel", pending.id, done, "--json"],
        env=settings_env(settings), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert [j["id"] for j in body["cancelled"]] == [pending.id]
    assert body["cancelled"][0]["status"] == "cancelled"
    assert result.stderr == f"error: job {done} is completed; only a pending job, or a " \
                            "processing job with terminate, can be cancelled; a finished " \
                            "job has nothing left to stop\n"
    assert store.get(pending.id).status is JobStatus.CANCELLED


def test_cli_cancel_of_an_unknown_id_exits_3_with_traces_verdict(settings: Settings) -> None:
    unknown = "deadbeef-0000-0000-0000-000000000000"
    result = subprocess.run(
        [sys.executable, "-m", "jobtrail", "cancel", unknown],
        env=settings_env(settings), capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 3  # README: 3 for an unknown job id, as status and trace
    assert result.stderr == f"error: job {unknown} not found: unknown: no store has ever " \
                            "seen this id (trace looked in the main DB, the broker, the " \
                            "results and the archive of purged jobs)\n"


@pytest.fixture
def guarded(settings: Settings, store: JobStore) -> Iterator[httpx.Client]:
    conf = settings.model_copy(update={"api_token": SecretStr(TOKEN)})
    with serve_in_thread(create_app(conf)) as base, http_client(base) as http:
        yield http


def test_api_cancel_needs_the_token_and_every_call_is_audited(
        settings: Settings, service: JobService, store: JobStore,
        guarded: httpx.Client) -> None:
    job = service.submit("Solve x = 2")
    assert guarded.post(f"/jobs/{job.id}/cancel").status_code == 401
    assert store.get(job.id).status is JobStatus.PENDING

    resp = guarded.post(f"/jobs/{job.id}/cancel", headers=AUTH)
    assert resp.status_code == 200, resp.text
    assert (resp.json()["status"], resp.json()["error"]) == ("cancelled",
                                                             "cancelled before start")
    again = guarded.post(f"/jobs/{job.id}/cancel", headers=AUTH)
    assert again.status_code == 409
    assert "a finished job has nothing left to stop" in again.json()["error"]["message"]
    # a long-poll on a finished job answers at once
    assert guarded.get(f"/jobs/{job.id}", params={"wait": 30}).json()["status"] == "cancelled"

    archive = ArchiveStore(settings.effective_archive_url,
                           table_prefix=settings.archive_table_prefix)
    try:
        runs = [(r.kind, r.outcome, r.selector["ids"]) for r in archive.history(limit=10)]
    finally:
        archive.close()
    assert sorted(runs) == sorted([("cancel", "refused", [job.id]),
                                   ("cancel", "done", [job.id]),
                                   ("cancel", "refused", [job.id])])


def test_api_long_poll_returns_when_the_job_finishes(
        settings: Settings, service: JobService, app: Celery) -> None:
    with serve_in_thread(create_app(settings)) as base, http_client(base) as http, \
            start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        job = service.submit("Solve x^2 = 9")
        body = http.get(f"/jobs/{job.id}", params={"wait": 30}).json()
        assert (body["status"], body["answer"]) == ("completed", "x = -3, x = 3")
        assert http.get(f"/jobs/{job.id}", params={"wait": 61}).status_code == 422


def test_long_polls_hold_no_worker_thread_so_livez_and_reads_still_answer(
        settings: Settings, service: JobService) -> None:
    # Given more waiting long-polls than the API's worker threads (AnyIO: 40), no worker
    job = service.submit("Solve x = 4")
    polls = 45
    with serve_in_thread(create_app(settings)) as base, http_client(base) as http, \
            ThreadPoolExecutor(max_workers=polls) as pool:
        waits = [pool.submit(httpx.get, f"{base}/jobs/{job.id}", params={"wait": 3},
                             timeout=20) for _ in range(polls)]
        time.sleep(1)
        # When the liveness probe and a plain read come meanwhile
        start = time.monotonic()
        livez = http.get("/livez", timeout=3)
        read = http.get(f"/jobs/{job.id}", timeout=3)
        elapsed_s = time.monotonic() - start
        # Then they answer at once, and every long-poll answers with the job as it is
        assert (livez.status_code, read.json()["status"]) == (200, "pending")
        assert elapsed_s < 2.5, f"{elapsed_s:.1f} s behind the long-polls"
        assert {w.result().json()["status"] for w in waits} == {"pending"}


def test_cancelled_jobs_are_purged_like_failed_ones_and_counted(
        settings: Settings, service: JobService, store: JobStore, keys: KeySpace,
        main_db: redis.Redis, archive: ArchiveStore) -> None:
    job = service.submit("Solve x = 3")
    service.cancel(job.id)
    with serve_in_thread(create_app(settings)) as base, http_client(base) as http:
        assert 'jobtrail_jobs{status="cancelled"} 1.0' in http.get("/metrics").text

    results = redis.Redis.from_url(settings.require_urls()[2], decode_responses=True)
    report = purge(RetentionStore(main_db, results, keys), archive,
                   RetentionPolicy("old-cancelled", (JobStatus.CANCELLED,), older_than_s=0),
                   tombstone_ttl_s=60)
    assert report.purged == 1
    assert store.find(job.id) is None
    row = archive.get(job.id)
    assert (row.status, row.job["error"]) == ("cancelled", "cancelled before start")


@pytest.mark.slow
def test_a_processing_job_is_cancelled_with_terminate_and_its_task_killed(
        settings: Settings, service: JobService, store: JobStore, app: Celery,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a real prefork worker solving a job that would run for minutes
    proc = worker_process(settings, hostname="term")
    job = service.submit(SLOW_PROBLEM)
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=60,
               message=lambda: f"the job to start; log:\n{proc.log()[-2000:]}")
    wait_until(lambda: proc.pool_children(), timeout_s=10, message="a pool process")
    pool_pid = proc.pool_children()[0].pid

    # When it is cancelled with terminate
    cancelled = service.cancel(job.id, terminate=True)

    # Then the record says so, the pool process was killed, and the worker goes on
    assert cancelled.status is JobStatus.CANCELLED
    assert cancelled.error.startswith("cancelled while processing on term@")
    assert cancelled.error.endswith("task terminated")
    wait_until(lambda: app.AsyncResult(job.id).state == "REVOKED", timeout_s=30,
               message=lambda: f"Celery's result REVOKED; log:\n{proc.log()[-2000:]}")
    wait_until(lambda: pool_pid not in [p.pid for p in proc.pool_children()], timeout_s=30,
               message="the pool process replaced")
    after = service.submit("Solve x + 1 = 3")
    wait_until(lambda: store.get(after.id).status is JobStatus.COMPLETED, timeout_s=60,
               message=lambda: f"the next job; log:\n{proc.log()[-2000:]}")
    final = store.get(job.id)
    assert (final.status, final.error, final.result) == (JobStatus.CANCELLED,
                                                         cancelled.error, None)
    assert proc.proc.poll() is None
