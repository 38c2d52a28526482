"""A SIGKILLed pool process's cause reaches the job's history, for a single job and a batch.

A real one-process prefork worker runs a slow job (alone, or first of a batch);
its pool process is SIGKILLed from outside twice, with two attempts a job. The
worker's main process records billiard's cause on the job (guarded by the
delivery's run token); the redelivery's `redelivered` event carries it as its
reason, the log has one line naming it, and the give-up after the last attempt
names the last loss.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.keys import KeySpace
from jobtrail.models import EventType, Job, JobStatus
from jobtrail.store import EventLog, JobStore
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until
from tests.worker.test_batch import QUICK, SLOW, _answer, _rig

pytestmark = [pytest.mark.slow, pytest.mark.crash]

LIMIT_S = 120.0
CAUSE = "pool process exited by signal 9 (SIGKILL)"


def _running(problems: list[str], redis_server: Any, tmp_path: Path, main_db: redis.Redis,
             keys: KeySpace, worker_process: Callable[..., WorkerProcess],
             ) -> tuple[JobStore, EventLog, list[Job], WorkerProcess]:
    """Submit *problems* (one: a single job; more: one batch) to a one-process worker with
    two attempts a job and limits no solve reaches here."""
    settings, store, service, events = _rig(redis_server, tmp_path, main_db, keys,
                                            solver_time_limit_s=LIMIT_S,
                                            solver_hard_time_limit_s=LIMIT_S, max_attempts=2)
    jobs = [service.submit(problems[0])] if len(problems) == 1 else \
        service.submit_many(problems)
    return store, events, jobs, worker_process(settings)


def _kill_twice(proc: WorkerProcess, store: JobStore, job_id: str) -> None:
    """SIGKILL the pool process running *job_id* on its first and its second attempt."""
    for attempt in (1, 2):
        wait_until(lambda a=attempt: (j := store.get(job_id)).status is JobStatus.PROCESSING
                   and j.attempts == a, timeout_s=60, interval_s=0.1,
                   message=lambda a=attempt: f"attempt {a} to start; log:\n{proc.log()[-2000:]}")
        [child] = proc.pool_children()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)


def _assert_cause_recorded(events: EventLog, store: JobStore, proc: WorkerProcess,
                           job_id: str, line: str) -> None:
    redelivered = [e for e in events.read(job_id) if e.type is EventType.REDELIVERED]
    assert len(redelivered) == 1, [e.type for e in events.read(job_id)]
    assert redelivered[0].fields.get("reason") == CAUSE, redelivered[0].fields
    final = store.get(job_id)
    assert final.status is JobStatus.FAILED
    assert final.error == f"gave up after 2 attempts: the worker was lost each time ({CAUSE})"
    log = proc.log()
    for attempt in (1, 2):
        assert f"{CAUSE}, {line} job_id={job_id}" in log and f"attempt={attempt}" in log, \
            log[-3000:]


def test_a_single_jobs_sigkilled_pool_process_is_named_in_its_history(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a slow single job on a one-process worker, two attempts a job
    store, events, (job,), proc = _running([SLOW], redis_server, tmp_path, main_db, keys,
                                           worker_process)

    # When its pool process is SIGKILLed on each attempt
    _kill_twice(proc, store, job.id)

    # Then the redelivery, the log and the give-up name the signal
    wait_until(lambda: job_finished(store, job.id), timeout_s=60,
               message=lambda: f"the job to be given up; log:\n{proc.log()[-3000:]}")
    _assert_cause_recorded(events, store, proc, job.id, "task redelivered")
    assert f"{CAUSE}, task redelivered job_id={job.id} attempt=1" in proc.log()
    assert "WorkerLostError" in proc.log()  # Celery's own report stays


def test_a_batch_jobs_sigkilled_pool_process_is_named_in_its_history(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch [slow, quick] on a one-process worker, two attempts a job
    store, events, jobs, proc = _running([SLOW, QUICK[0]], redis_server, tmp_path, main_db,
                                         keys, worker_process)

    # When the slow job's pool process is SIGKILLed on each attempt
    _kill_twice(proc, store, jobs[0].id)

    # Then the redelivery, the log and the give-up name the signal; the quick job is solved
    wait_until(lambda: job_finished(store, jobs[0].id) and job_finished(store, jobs[1].id),
               timeout_s=60, message=lambda: f"the batch to end; log:\n{proc.log()[-3000:]}")
    _assert_cause_recorded(events, store, proc, jobs[0].id, "batch redelivered")
    assert store.get(jobs[1].id).answer == _answer(1)
