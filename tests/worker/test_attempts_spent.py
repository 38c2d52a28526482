"""A delivery of a job whose attempts are spent: refused before any solve, alone or in a batch.

Real prefork workers whose pool process is SIGKILLed on each attempt; the
delivery after the last attempt must not solve (the one pool process stays
free), fail the job once ("gave up after N attempts"), store its Celery
result (a waiting AsyncResult.get() gets the failure) and ack the message.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Job, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until
from tests.test_batch_views import trace

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"
QUICK = "solve x^2 - 4 = 0"
#: Limits long enough that a solve of SLOW holds the one pool process well past the waits.
LIMITS = {"solver_time_limit_s": 40.0, "solver_hard_time_limit_s": 50.0, "max_attempts": 2}


def _rig(redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
         worker_process: Callable[..., WorkerProcess],
         ) -> tuple[Settings, JobStore, JobService, WorkerProcess]:
    """Settings with LIMITS, the store, the service and a one-process worker."""
    settings = make_settings(redis_server, tmp_path / "state", **LIMITS)
    store = JobStore(main_db, keys)
    return (settings, store, JobService(store, create_celery_app(settings)),
            worker_process(settings, concurrency=1))


def _kill_each_attempt(store: JobStore, proc: WorkerProcess, job: Job, attempts: int) -> None:
    """SIGKILL the pool process while it solves *job*, on each of its *attempts*."""
    for attempt in range(1, attempts + 1):
        wait_until(lambda a=attempt: (lambda j: j.status is JobStatus.PROCESSING
                                      and j.attempts == a)(store.get(job.id)),
                   timeout_s=60,
                   message=lambda a=attempt: f"attempt {a}; log:\n{proc.log()[-3000:]}")
        [child] = wait_until(lambda: [c for c in proc.pool_children() if c.is_running()],
                             timeout_s=30, message="a pool process")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)


def _assert_given_up(store: JobStore, events: EventLog, service: JobService, job: Job,
                     settings: Settings, proc: WorkerProcess) -> None:
    # Then the next delivery fails the job at once, without a solve: its Celery result is
    # the failure, which a waiting client gets
    with pytest.raises(Exception) as failed:  # noqa: PT011 - Celery rebuilds the error type
        service.app.AsyncResult(job.id).get(timeout=20, propagate=True)
    assert "gave up after 2 attempts" in str(failed.value), proc.log()[-3000:]
    final = store.get(job.id)
    assert final.status is JobStatus.FAILED and final.attempts == 2
    assert final.error.startswith("gave up after 2 attempts")
    history = [e.type for e in events.read(job.id)]
    assert history.count(EventType.STARTED) == 2, history
    assert history.count(EventType.FAILED) == 1, history
    # and the one pool process is free: a quick job right after is solved at once
    quick = service.submit(QUICK)
    wait_until(lambda: job_finished(store, quick.id), timeout_s=15,
               message=lambda: f"a quick job on the free pool process; log:\n{proc.log()[-3000:]}")
    # and trace reads the failure with its result, and no deletion
    traced = trace(settings, job.id)
    assert "gave up after 2 attempts" in traced.verdict
    assert "deleted" not in traced.verdict and "FAILURE" in traced.verdict, traced.verdict


def test_a_single_job_delivered_after_its_last_attempt_is_failed_without_a_solve(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        events: EventLog, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a job whose pool process is killed on each of its 2 attempts
    settings, store, service, proc = _rig(redis_server, tmp_path, main_db, keys,
                                          worker_process)
    job = service.submit(SLOW)
    # When the broker delivers it a third time
    _kill_each_attempt(store, proc, job, 2)
    _assert_given_up(store, events, service, job, settings, proc)


def test_a_batched_job_delivered_after_its_last_attempt_is_failed_without_a_solve(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        events: EventLog, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose first job's pool process is killed on each of its 2 attempts
    settings, store, service, proc = _rig(redis_server, tmp_path, main_db, keys,
                                          worker_process)
    jobs = service.submit_many([SLOW, "solve x^2 - 9 = 0"])
    assert jobs[0].batch and jobs[0].batch == jobs[1].batch
    # When the broker delivers the batch a third time
    _kill_each_attempt(store, proc, jobs[0], 2)
    # Then its batch-mate runs once, right after
    wait_until(lambda: job_finished(store, jobs[1].id), timeout_s=20,
               message=lambda: f"the batch-mate; log:\n{proc.log()[-3000:]}")
    assert store.get(jobs[1].id).answer == "x = -3, x = 3"
    assert [e.type for e in events.read(jobs[1].id)].count(EventType.STARTED) == 1
    _assert_given_up(store, events, service, jobs[0], settings, proc)
