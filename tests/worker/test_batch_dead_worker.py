"""Batches on real workers: a worker SIGKILLed mid-batch (the sweep returns the batch in
seconds; trace tells the truth at each stage), and one job of a batch cancelled.

Real `jobtrail worker` processes and a real batch message (submit_many, batch_max_jobs 3).
The node running the batch dies with its pool (SIGKILL of the process group, as a
host dying) while the batch's second job runs; a surviving worker's heartbeat sweep
hands the batch message back to the queue, each unfinished job with its
`redelivered` event, and runs them; the finished job is not run again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.models import EventType, Fate, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until
from tests.test_batch_views import trace
from tests.test_trace import MEDIUM_PROBLEM
from tests.worker.test_dead_worker import SLOW_PROBLEM


@pytest.mark.slow
@pytest.mark.crash
def test_a_batch_whose_worker_is_sigkilled_comes_back_and_trace_follows_each_job(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of three jobs (a quick one, one that runs until its 5 s soft limit,
    # a quick one), submitted before any worker runs
    fast = settings.model_copy(update={"heartbeat_interval_s": 1.0, "batch_max_jobs": 3})
    service = JobService(store, create_celery_app(fast))
    jobs = service.submit_many(["solve x + 1 = 2", SLOW_PROBLEM, "solve x + 3 = 4"])
    batch = jobs[0].batch
    assert batch.startswith("batch-") and {j.batch for j in jobs} == {batch}
    for n, job in enumerate(jobs, 1):
        assert trace(fast, job.id).verdict == (
            f"pending: waiting in queue 'jobtrail' in batch message {batch} (job {n} of 3), "
            "0 ahead of it")

    # When two workers run and one takes the batch, its first job done, its second running
    workers = {name: worker_process(fast, concurrency=1, hostname=name) for name in ("wa", "wb")}
    running = wait_until(lambda: (j := store.get(jobs[1].id)).status is JobStatus.PROCESSING
                         and j, timeout_s=60, interval_s=0.05, message="the slow job to start")
    victim = running.worker
    now = trace(fast, jobs[1].id)
    assert now.fate is Fate.PROCESSING, now.verdict
    assert now.verdict.endswith(f"attempt 1, in batch message {batch} (job 2 of 3)")
    waiting = trace(fast, jobs[2].id)
    assert waiting.fate is Fate.PENDING
    assert waiting.verdict.endswith(f"in batch message {batch} (job 3 of 3), waiting its turn: "
                                    f"job {jobs[1].id} of its batch is processing on worker "
                                    f"{victim}")
    assert trace(fast, jobs[0].id).fate is Fate.COMPLETED
    # and `workers` names the job running, never the batch message's id as a job
    wait_until(lambda: batch in json.loads(store.client.hget(store.keys.worker(victim), "held")
                                           or "[]"), timeout_s=10, message="a heartbeat")
    listed = subprocess.run([sys.executable, "-m", "jobtrail", "workers", "--json"],
                            env=settings_env(fast), capture_output=True, text=True,
                            timeout=60, check=True)
    by_name = {w["name"]: w for w in json.loads(listed.stdout)}
    assert by_name[victim]["jobs"] == [jobs[1].id]

    # When that node dies at once (main process and pool)
    killed_at = time.monotonic()
    os.killpg(workers[victim.split("@")[0]].proc.pid, signal.SIGKILL)
    workers[victim.split("@")[0]].proc.wait(timeout=10)

    # Then the survivor's sweep hands the batch back within seconds (not the 1 h
    # visibility timeout): the running and the waiting job each get a redelivered event
    wait_until(lambda: EventType.REDELIVERED in [e.type for e in events.read(jobs[2].id)],
               timeout_s=45, interval_s=0.1, message="the sweep to take the batch back")
    back_after_s = time.monotonic() - killed_at
    print(f"\nbatch back {back_after_s:.1f} s after SIGKILL")
    assert back_after_s < 30
    for job in jobs[1:]:
        [redelivered] = [e for e in events.read(job.id) if e.type is EventType.REDELIVERED]
        assert redelivered.fields["reason"].startswith(f"worker {victim} gone since ")
        assert redelivered.fields["dead_worker"] == victim

    # And the survivor finishes the batch: the done job untouched, the others once more
    wait_until(lambda: all(store.get(j.id).status in (JobStatus.COMPLETED, JobStatus.FAILED)
                           for j in jobs), timeout_s=60, interval_s=0.2,
               message="the batch to finish on the survivor")
    first, slow, last = (store.get(j.id) for j in jobs)
    assert [e.type for e in events.read(first.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    assert first.worker == victim and first.attempts == 1
    assert (slow.status, slow.attempts) == (JobStatus.FAILED, 2) and "timed out" in slow.error
    assert [e.type for e in events.read(slow.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.REDELIVERED, EventType.STARTED,
        EventType.FAILED]
    assert (last.status, last.attempts) == (JobStatus.COMPLETED, 1)
    assert last.worker != victim
    assert [e.type for e in events.read(last.id)] == [
        EventType.CREATED, EventType.REDELIVERED, EventType.STARTED, EventType.COMPLETED]
    # and trace of each reads as a single job's would, with its Celery result present
    finals = [trace(fast, j.id) for j in jobs]
    assert [r.fate for r in finals] == [Fate.COMPLETED, Fate.FAILED, Fate.COMPLETED]
    assert all("Celery result" in r.verdict and r.disagreements == [] for r in finals)


@pytest.mark.slow
def test_cancelling_a_job_of_a_batch_a_live_worker_will_run_leaves_the_rest_running(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a live worker busy with a job for a few seconds, a batch of three queued behind
    proc = worker_process(settings.model_copy(update={"batch_max_jobs": 3}), concurrency=1)
    service = JobService(store, create_celery_app(settings.model_copy(
        update={"batch_max_jobs": 3})))
    busy = service.submit(MEDIUM_PROBLEM)
    wait_until(lambda: store.get(busy.id).status is JobStatus.PROCESSING, timeout_s=60,
               interval_s=0.05,
               message=lambda: f"the busy job to start; log:\n{proc.log()[-2000:]}")
    jobs = service.submit_many(["solve x + 1 = 2", "solve x + 2 = 3", "solve x + 3 = 4"])

    # When one job of the batch is cancelled while the worker (which hears the revoke) is busy
    service.cancel(jobs[1].id)

    # Then the worker skips that job alone: its batch-mates run (the batch was not revoked)
    wait_until(lambda: all(store.get(j.id).status is JobStatus.COMPLETED
                           for j in (jobs[0], jobs[2])), timeout_s=60, interval_s=0.2,
               message=lambda: f"the batch-mates to complete; log:\n{proc.log()[-3000:]}")
    cancelled = store.get(jobs[1].id)
    assert (cancelled.status, cancelled.attempts) == (JobStatus.CANCELLED, 0)
    assert [e.type for e in events.read(cancelled.id)][:2] == [EventType.CREATED,
                                                               EventType.CANCELLED]
    assert trace(settings, cancelled.id).fate is Fate.CANCELLED


@pytest.mark.slow
@pytest.mark.crash
def test_trace_of_a_job_waiting_behind_a_sigkilled_batch_mate_says_its_worker_is_gone(
        settings: Settings, store: JobStore,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of three on the only worker, its second job running, the third waiting
    fast = settings.model_copy(update={"heartbeat_interval_s": 1.0, "batch_max_jobs": 3})
    jobs = JobService(store, create_celery_app(fast)).submit_many(
        ["solve x + 1 = 2", SLOW_PROBLEM, "solve x + 3 = 4"])
    proc = worker_process(fast, concurrency=1, hostname="lone")
    running = wait_until(lambda: (j := store.get(jobs[1].id)).status is JobStatus.PROCESSING
                         and j, timeout_s=60, interval_s=0.05, message="the slow job to start")
    assert "waiting its turn" in trace(fast, jobs[2].id).verdict

    # When the node dies at once (main process and pool), and its heartbeat expires
    os.killpg(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=10)
    wait_until(lambda: not store.client.exists(store.keys.worker(running.worker)),
               timeout_s=30, interval_s=0.1, message="the heartbeat to expire")

    # Then trace of the running job and of its waiting batch-mate apply the same rule:
    # the worker is gone; the mate's message is held by it until redelivered or recovered
    mine, mate = trace(fast, jobs[1].id), trace(fast, jobs[2].id)
    gone = f"worker {running.worker} is gone (last heartbeat "
    assert mine.fate is Fate.STALE and gone in mine.verdict, mine.verdict
    assert mate.fate is Fate.STALE, mate.verdict
    assert "waiting its turn" not in mate.verdict and "is processing on" not in mate.verdict
    assert (f"its batch is held by worker {running.worker}, where job {jobs[1].id} of it was "
            f"processing, but {gone}") in mate.verdict
    assert "the broker redelivers it from" in mate.verdict
    assert "`jobtrail recover`" in mate.verdict
