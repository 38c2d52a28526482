"""Real `jobtrail worker` processes: hostile input, crashes, limits and scale-out."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.errors import ProblemError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.job_store import completion_fields
from jobtrail.store.node_stats import NodeStatsStore
from jobtrail.worker.app import TASK_SOLVE, create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]

#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW_PROBLEM = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"

HOSTILE = {
    "__import__('os').system('id')": "could not parse",
    "x**(10**10**10)": "number too large",
    "9^9^9": "number too large",
    "": "empty",
    "x + " * 25_000: "the limit is 2000",   # 100 kB of text
}



def test_hostile_inputs_fail_cleanly_and_worker_keeps_serving(
        settings: Settings, store: JobStore, worker_process: Callable[..., WorkerProcess],
) -> None:
    # Given one worker process with one pool process
    proc = worker_process(settings, concurrency=1)
    service = JobService(store, create_celery_app(settings))

    # When each hostile problem is submitted, followed by an honest one (texts the door
    # refuses, empty or over the limit, are written and sent past it: the worker's own guard)
    hostile = []
    for text in HOSTILE:
        try:
            hostile.append(service.submit(text))
        except ProblemError:
            job = store.create(text)
            service.app.send_task(TASK_SOLVE, args=[job.id, text], task_id=job.id)
            hostile.append(job)
    honest = service.submit("solve x^2 - 5x + 6 = 0")
    wait_until(lambda: all(job_finished(store, j.id) for j in [*hostile, honest]),
               timeout_s=60, message=lambda: f"jobs to finish; worker log:\n{proc.log()[-2000:]}")

    # Then each hostile job failed with a reason a person reads, and the worker went on
    for job, fragment in zip(hostile, HOSTILE.values(), strict=True):
        final = store.get(job.id)
        assert final.status is JobStatus.FAILED, final
        assert fragment in final.error.lower()
        assert "Traceback" not in final.error and len(final.error) < 300
    assert store.get(honest.id).answer == "x = 2, x = 3"
    assert proc.proc.poll() is None


@pytest.mark.crash
def test_pool_process_killed_mid_task_is_redelivered_and_completed(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker busy with a slow problem
    proc = worker_process(settings, concurrency=1)
    service = JobService(store, create_celery_app(settings))
    job = service.submit(SLOW_PROBLEM)
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=30,
               message="job to start")
    [child] = proc.pool_children()

    # When its pool process is killed with SIGKILL
    child.send_signal(signal.SIGKILL)

    # Then the broker redelivers it (reject on worker lost) and a new pool process runs it
    wait_until(lambda: store.get(job.id).attempts >= 2, timeout_s=30,
               message=lambda: f"redelivery; worker log:\n{proc.log()[-2000:]}")
    history = [e.type for e in events.read(job.id)]
    assert history[:4] == [EventType.CREATED, EventType.STARTED, EventType.REDELIVERED,
                           EventType.STARTED]
    assert store.get(job.id).attempts == 2


def _limited_worker(redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
                    worker_process: Callable[..., WorkerProcess], *, soft_s: float,
                    hard_s: float) -> tuple[JobStore, WorkerProcess, JobService]:
    """A one-process worker with the given soft and hard time limits, and its store."""
    settings = make_settings(redis_server, tmp_path, solver_time_limit_s=soft_s,
                             solver_hard_time_limit_s=hard_s)
    store = JobStore(main_db, keys)
    proc = worker_process(settings, concurrency=1)
    return store, proc, JobService(store, create_celery_app(settings))


def test_soft_time_limit_fails_the_job_and_worker_goes_on(
        redis_server, tmp_path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    store, proc, service = _limited_worker(redis_server, tmp_path, main_db, keys,
                                           worker_process, soft_s=1.0, hard_s=20.0)

    job = service.submit(SLOW_PROBLEM)
    after = service.submit("evaluate 2^10 / 4")
    wait_until(lambda: job_finished(store, job.id) and job_finished(store, after.id), timeout_s=30,
               message=lambda: f"jobs to finish; worker log:\n{proc.log()[-2000:]}")

    final = store.get(job.id)
    assert (final.status, final.error) == (JobStatus.FAILED, "timed out after 1 s")
    assert final.finished_at - final.started_at == pytest.approx(1.0, abs=0.5)  # type: ignore[operator]
    assert store.get(after.id).answer == "256"


@pytest.mark.crash
def test_hard_time_limit_kills_a_stuck_pool_process_and_fails_the_job(
        redis_server, tmp_path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker whose pool process gets stuck where no soft limit can reach it
    store, proc, service = _limited_worker(redis_server, tmp_path, main_db, keys,
                                           worker_process, soft_s=1.0, hard_s=2.0)
    job = service.submit(SLOW_PROBLEM)
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=30,
               message="job to start")
    [child] = proc.pool_children()
    child.send_signal(signal.SIGSTOP)   # SIGUSR1 (the soft limit) stays pending

    # When the hard limit passes, the pool process is killed and replaced
    after = service.submit("evaluate 2^10 / 4")
    wait_until(lambda: job_finished(store, job.id) and job_finished(store, after.id), timeout_s=30,
               message=lambda: f"jobs to finish; worker log:\n{proc.log()[-2000:]}")

    # Then the job failed with the hard limit as its reason, and the next job was solved
    final = store.get(job.id)
    assert final.status is JobStatus.FAILED
    assert final.error.startswith("timed out after 2 s (hard limit")
    # and its Celery result is Celery's own account of the hard limit, in seconds
    # (tests/faults/conftest.py assert_true_fates relies on this shape)
    celery_result = service.app.AsyncResult(job.id)
    assert celery_result.state == "FAILURE"
    assert (type(celery_result.result).__name__, celery_result.result.args) == (
        "TimeLimitExceeded", (2.0,))
    assert not child.is_running() or child.status() == "zombie"
    assert store.get(after.id).answer == "256"
    # and the worker's own metrics count the killed job as a timeout (its main process did)
    node = NodeStatsStore(main_db, keys)
    stats = wait_until(lambda: (s := node.read(f"w1@{socket.gethostname()}")).completed == 1
                       and sum(s.failed_by_reason.values()) == 1 and s, timeout_s=10,
                       message="the worker to count both jobs")
    assert stats.failed_by_reason == {"timeout": 1}


@pytest.mark.crash
def test_a_late_hard_timeout_leaves_a_newer_delivery_of_the_job_alone(
        redis_server, tmp_path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a job whose first delivery's pool process is stuck past any soft limit
    store, proc, service = _limited_worker(redis_server, tmp_path, main_db, keys,
                                           worker_process, soft_s=1.0, hard_s=3.0)
    job = service.submit(SLOW_PROBLEM)
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=30,
               message="job to start")
    [child] = proc.pool_children()
    child.send_signal(signal.SIGSTOP)
    # and a newer delivery (the broker gave the message to another worker) took it over
    newer = store.start(job.id, worker="w2@elsewhere", token="newer-delivery")
    assert newer is not None and newer.attempts == 2

    # When the first delivery's hard limit passes and its pool process is killed
    wait_until(lambda: "hard timeout not recorded" in proc.log()
               or store.get(job.id).status is not JobStatus.PROCESSING, timeout_s=30,
               message=lambda: f"hard timeout to be handled; worker log:\n{proc.log()[-2000:]}")

    # Then the job is still the newer delivery's, which can record its own outcome
    held = store.get(job.id)
    assert (held.status, held.worker, held.attempts) == (
        JobStatus.PROCESSING, "w2@elsewhere", 2), held
    done = store.transition(job.id, JobStatus.COMPLETED, run="newer-delivery",
                            fields=completion_fields({"kind": "evaluate", "text": "1"}))
    assert done.status is JobStatus.COMPLETED
    assert [e.type for e in EventLog(main_db, keys).read(job.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.REDELIVERED, EventType.STARTED,
        EventType.COMPLETED]


def test_two_workers_drain_one_queue_solving_each_job_once(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given two worker processes on the same broker
    workers = [worker_process(settings, concurrency=1, hostname=f"w{n}") for n in (1, 2)]
    service = JobService(store, create_celery_app(settings))

    # When forty problems are submitted
    jobs = service.submit_many([f"solve x^2 - {n * n} = 0" for n in range(1, 41)])
    wait_until(lambda: all(job_finished(store, j.id) for j in jobs), timeout_s=90,
               message="all jobs to finish")

    # Then every job completed once, with its own answer, and both workers took part
    finals = [store.get(j.id) for j in jobs]
    assert [f.answer for f in finals] == [f"x = {-n}, x = {n}" for n in range(1, 41)]
    assert all(f.attempts == 1 for f in finals)
    for f in finals:
        assert [e.type for e in events.read(f.id)] == [
            EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    assert {f.worker.split("@")[0] for f in finals} == {"w1", "w2"}
    assert all(w.proc.poll() is None for w in workers)
