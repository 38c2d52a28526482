"""The main DB loses its scripts (SCRIPT FLUSH, as a restart without persistence does) while
jobs run whose start was sent and not read yet.

A first delivery sends its start and solves meanwhile (JobRun.first_delivery); a
batch sends each quick job's start with the finish before it, on one connection
(JobStore.send_finish *then_start*). A flush between a start and its finish makes
the finish, and a chained start, NOSCRIPT: each step is sent again with its token
and applied once. Every job must end completed on its first attempt, with one
`started` event and no `redelivered` one, and its Celery result.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from jobtrail.jobs import JobService
from jobtrail.models import EventType, JobStatus
from jobtrail.worker.app import create_celery_app
from tests.faults.conftest import FaultRig, assert_true_fates
from tests.faults.test_reconnect_while_running import LONG_ANSWER, LONG_PROBLEM
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: Seconds between two SCRIPT FLUSHes.
FLUSH_EVERY_S = 0.05


def _flush_scripts_until(admin: redis.Redis, stop: threading.Event,
                         every_s: float = FLUSH_EVERY_S) -> None:
    """SCRIPT FLUSH every *every_s* until *stop* is set (by default far apart next to a
    round trip: a step sent again after a NOSCRIPT meets no second flush)."""
    while not stop.is_set():
        admin.script_flush()
        time.sleep(every_s)


def test_scripts_flushed_while_starts_are_unread_leave_one_true_attempt_a_job(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a long job (a first delivery, its start unread while it solves) and a batch of
    # quick jobs (each start sent with the finish before it), on a two-process worker
    rig.settings = rig.settings.model_copy(update={
        "solver_time_limit_s": 30.0, "solver_hard_time_limit_s": 35.0,
        "visibility_timeout_s": 3600, "batch_max_jobs": 32})
    rig.service.app.close()
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    rig.start_worker(worker_process, concurrency=2)
    single = rig.service.submit(LONG_PROBLEM)
    rig.wait_status(single.id, JobStatus.PROCESSING, timeout_s=30)

    # When the server loses its scripts again and again while they run
    stop = threading.Event()
    flusher = threading.Thread(target=_flush_scripts_until, args=(rig.admin, stop),
                               daemon=True)
    flusher.start()
    try:
        batch = rig.service.submit_many([f"{n} + 1" for n in range(32)])
        assert len({j.batch for j in batch}) == 1
        rig.wait_finished(batch[-1].id, timeout_s=60)
        rig.wait_finished(single.id, timeout_s=60)
    finally:
        stop.set()
        flusher.join(timeout=10)

    # Then every job completed once, on its first attempt, with its true answer
    expected = {single.id: (JobStatus.COMPLETED, LONG_ANSWER)}
    expected.update({j.id: (JobStatus.COMPLETED, str(n + 1)) for n, j in enumerate(batch)})
    assert_true_fates(rig, expected)
    for job_id in expected:
        types = [e.type for e in rig.history(job_id)]
        assert rig.job(job_id).attempts == 1 and types == [
            EventType.CREATED, EventType.STARTED, EventType.COMPLETED], (
            job_id, types, rig.worker_logs()[-4000:])


def test_submits_while_the_scripts_are_flushed_are_each_written_whole(rig: FaultRig) -> None:
    # Given a submitter writing batches of records in one pipeline (create.lua per job)
    stop = threading.Event()
    flusher = threading.Thread(target=_flush_scripts_until, args=(rig.admin, stop, 0.002),
                               daemon=True)
    # When the server loses its scripts again and again meanwhile (between a pipeline's
    # SCRIPT LOAD and its EVALSHAs: redis-py loads a pipeline's scripts first)
    flusher.start()
    try:
        submitted = [job for _ in range(60)
                     for job in rig.service.submit_many([f"{n} + 2" for n in range(32)])]
    finally:
        stop.set()
        flusher.join(timeout=10)
    # Then no submit was refused and every record is written once, pending, whole
    assert len(submitted) == 60 * 32 and len({j.id for j in submitted}) == len(submitted)
    for n, job in enumerate(submitted):
        record = rig.job(job.id)
        assert (record.status, record.problem, record.batch) == (
            JobStatus.PENDING, f"{n % 32} + 2", job.batch)
