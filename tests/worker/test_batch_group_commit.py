"""Group commit in a batch: finishes read together, and nothing committed is solved again."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]

#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


def _meta(results_db: redis.Redis, keys: KeySpace, job_id: str) -> tuple[str, Any]:
    """The job's Celery result as stored: (status, result)."""
    meta = json.loads(results_db.get(keys.celery_result(job_id)))
    return meta["status"], meta["result"]


def _done_at(results_db: redis.Redis, keys: KeySpace, job_id: str) -> float:
    """When Celery stored the job's result (its meta's date_done), epoch seconds."""
    done = datetime.fromisoformat(json.loads(results_db.get(keys.celery_result(job_id)))[
        "date_done"])
    return (done if done.tzinfo else done.replace(tzinfo=UTC)).timestamp()


def test_quick_jobs_of_a_batch_start_before_the_results_of_the_jobs_before_them(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given one batch of 24 trivial jobs
    settings = make_settings(redis_server, tmp_path / "state", batch_max_jobs=24)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    jobs = service.submit_many([f"{n} + 1" for n in range(24)])

    # When a worker runs it
    proc = worker_process(settings)
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in jobs),
               timeout_s=60, message=lambda: (
                   f"jobs to finish; states {[store.get(j.id).status.value for j in jobs]}; "
                   f"log:\n{proc.log()[-3000:]}"))

    # Then every job has its own answer, one attempt and its Celery result
    finals = [store.get(j.id) for j in jobs]
    assert [f.answer for f in finals] == [str(n + 1) for n in range(24)]
    assert all(f.status is JobStatus.COMPLETED and f.attempts == 1 for f in finals)
    assert [_meta(results_db, keys, j.id) for j in jobs] == [
        ("SUCCESS", f.result) for f in finals]
    # and some job started before the Celery result of the job before it was stored: its
    # finish was read with the next ones' (group commit), not one round trip per job
    overlapped = [n for n in range(23)
                  if finals[n + 1].started_at is not None
                  and finals[n + 1].started_at < _done_at(results_db, keys, jobs[n].id)]
    assert overlapped, [(f.started_at, _done_at(results_db, keys, f.id)) for f in finals]


@pytest.mark.crash
def test_pool_process_killed_after_a_group_commit_never_solves_a_committed_job_again(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, results_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of a quick job, then a slow one (the quick job's finish read with
    # the next ones' unless it took GROUP_COMMIT_S), running
    settings = make_settings(redis_server, tmp_path / "state", solver_time_limit_s=2.0,
                             solver_hard_time_limit_s=20.0)
    store, events = JobStore(main_db, keys), EventLog(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    proc = worker_process(settings)
    warm = service.submit_many(["5 + 1", "6 + 1"])  # the pool process's first solves
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in warm),
               timeout_s=60, message=lambda: f"warm-up jobs to finish; log:\n{proc.log()[-2000:]}")
    jobs = service.submit_many(["1 + 1", SLOW, "2 + 1"])
    wait_until(lambda: store.get(jobs[1].id).status is JobStatus.PROCESSING, timeout_s=30,
               message=lambda: f"the slow job to start; log:\n{proc.log()[-2000:]}")
    before = [store.get(jobs[0].id)]
    assert all(b.status is JobStatus.COMPLETED for b in before)

    # When the pool process is SIGKILLed while the slow job runs (the quick job's Celery
    # result may still be waiting for the group commit's read)
    [child] = proc.pool_children()
    child.send_signal(signal.SIGKILL)

    # Then the redelivered batch finishes every job, each with its Celery result
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in jobs),
               timeout_s=60, message=lambda: f"jobs to finish; log:\n{proc.log()[-3000:]}")
    finals = [store.get(j.id) for j in jobs]
    # and the committed job was not solved again: same record, one start, one attempt
    assert finals[:1] == before
    log = proc.log()
    for f in finals[:1]:
        assert f"finished job of a redelivered batch skipped job_id={f.id}" in log
        assert _history_types(events, f.id) == [EventType.CREATED, EventType.STARTED,
                                                EventType.COMPLETED]
        assert _meta(results_db, keys, f.id) == ("SUCCESS", f.result)
    assert (finals[0].answer, finals[2].answer, finals[2].attempts) == ("2", "3", 1)
    assert (finals[1].status, finals[1].attempts, finals[1].error) == (
        JobStatus.FAILED, 2, "timed out after 2 s")


def _history_types(events: EventLog, job_id: str) -> list[EventType]:
    return [e.type for e in events.read(job_id)]
