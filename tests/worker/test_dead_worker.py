"""A dead worker's jobs back in seconds, not after the visibility timeout.

Real `jobtrail worker` processes: the node running a job is SIGKILLed (main process
and pool, as a host dying); a surviving worker's heartbeat thread finds the message
no live worker holds and hands it back to the queue, the record going back to
pending with a `redelivered` event naming the dead worker. `requeue` takes a
processing job whose worker is gone and refuses one whose worker lives; `doctor`
reports a gone worker's processing jobs as an error.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.doctor import Severity, run_checks
from jobtrail.errors import InvalidTransitionError
from jobtrail.jobs import JobService
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until

#: Takes SymPy minutes in pure Python, so only a time limit or a kill ends it.
SLOW_PROBLEM = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


@pytest.mark.slow
@pytest.mark.crash
def test_a_sigkilled_workers_job_runs_again_on_a_survivor_within_seconds(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given three workers beating every second (gone after 3 s), the default 1 h visibility
    # timeout, and a slow job running on one of them: two survivors race to sweep
    fast = settings.model_copy(update={"heartbeat_interval_s": 1.0})
    assert fast.visibility_timeout_s == 3600
    workers = {name: worker_process(fast, concurrency=1, hostname=name)
               for name in ("wa", "wb", "wc")}
    service = JobService(store, create_celery_app(fast))
    job = service.submit(SLOW_PROBLEM)
    running = wait_until(lambda: store.get(job.id) if store.get(job.id).status is
                         JobStatus.PROCESSING else None, timeout_s=60, interval_s=0.1,
                         message="the slow job to start")
    victim_name = running.worker.split("@")[0]
    victim = workers[victim_name]
    # a job whose worker lives is never taken from it, however long it runs (> gone after)
    time.sleep(4.5)
    assert store.get(job.id).version == running.version
    assert EventType.REDELIVERED not in [e.type for e in events.read(job.id)]

    # When its node dies at once (main process and pool, SIGKILL)
    killed_at = time.monotonic()
    os.killpg(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)

    # Then the survivor starts it again within seconds, and the history says why
    survivor = wait_until(lambda: (j := store.get(job.id)).status is JobStatus.PROCESSING
                          and j.worker != running.worker and j, timeout_s=45,
                          interval_s=0.2, message="the job to start again on the survivor")
    back_after_s = time.monotonic() - killed_at
    print(f"\ndead worker: job back on {survivor.worker} {back_after_s:.1f} s after SIGKILL")
    assert back_after_s < 30
    kinds = [e.type for e in events.read(job.id)]
    assert kinds[:3] == [EventType.CREATED, EventType.STARTED, EventType.REDELIVERED], kinds
    redelivered = [e for e in events.read(job.id) if e.type is EventType.REDELIVERED]
    assert redelivered[0].fields["reason"].startswith(f"worker {running.worker} gone since ")
    assert redelivered[0].fields["dead_worker"] == running.worker
    time.sleep(3.0)  # every survivor has swept again since
    redelivered = [e for e in events.read(job.id) if e.type is EventType.REDELIVERED]
    assert len(redelivered) == 1  # of the two survivors, one sweep took it, once
    assert store.get(job.id).attempts == survivor.attempts == 2
    assert store.get(job.id).worker == survivor.worker
    assert all(w.proc.poll() is None for n, w in workers.items() if n != victim_name)


def test_requeue_takes_a_dead_workers_job_and_refuses_a_live_ones(
        settings: Settings, store: JobStore, events: EventLog, broker_db: redis.Redis) -> None:
    # Given a job processing on a worker that is gone (no heartbeat) and one on a live worker
    service = JobService(store, create_celery_app(settings))
    heartbeats = HeartbeatStore(store.client, store.keys)
    heartbeats.beat("alive@host", pid=1, started_at=time.time(), jobs=[], interval_s=30)
    orphan = store.create("solve x + 1 = 2")
    store.start(orphan.id, worker="ghost@host")
    held = store.create("solve x + 2 = 3")
    store.start(held.id, worker="alive@host")

    # When both are requeued through the CLI
    env = settings_env(settings)
    took = subprocess.run([sys.executable, "-m", "jobtrail", "requeue", orphan.id], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    refused = subprocess.run([sys.executable, "-m", "jobtrail", "requeue", held.id], env=env,
                             capture_output=True, text=True, timeout=60, check=False)

    # Then the dead worker's job is pending again, its history says why, and a task is queued
    assert took.returncode == 0, took.stderr
    assert "was processing on worker ghost@host, which is gone" in took.stdout
    assert store.get(orphan.id).status is JobStatus.PENDING
    last = events.read(orphan.id)[-1]
    assert last.type is EventType.REDELIVERED
    assert last.fields["reason"] == "requeued: worker ghost@host gone (no heartbeat on record)"
    assert broker_db.llen(store.keys.queue()) == 1
    # and the live worker's job is left alone, with a one-line reason
    assert refused.returncode != 0
    assert "processing (on live worker alive@host)" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    assert store.get(held.id).status is JobStatus.PROCESSING
    with pytest.raises(InvalidTransitionError):
        service.requeue(held.id)


def test_doctor_reports_a_gone_workers_processing_jobs_and_an_unserved_queue(
        settings: Settings, store: JobStore, broker_db: redis.Redis) -> None:
    # Given a processing job whose worker is gone, and a message no live worker consumes
    service = JobService(store, create_celery_app(settings))
    job = store.create("solve x = 1")
    store.start(job.id, worker="ghost@host")
    waiting = service.submit("solve x = 2")
    store.client.zadd(store.keys.jobs_by_status("pending"), {waiting.id: time.time() - 120})
    clients = {"main": store.client, "broker": broker_db,
               "results": redis.Redis.from_url(settings.results_url or "")}

    found = {f.check: f for f in run_checks(settings, clients, store.keys, consistency=False)}

    assert found["stale-processing"].severity is Severity.ERROR
    assert found["stale-processing"].evidence["sample"] == {job.id: "ghost@host"}
    assert "jobtrail recover" in found["stale-processing"].fix
    assert found["workers"].severity is Severity.ERROR
    assert found["workers"].evidence["queued_messages"] == 1
    assert found["servers"].severity is Severity.OK
    assert found["servers"].evidence["main"]["kind"] == "external"


@pytest.mark.slow
@pytest.mark.crash
def test_a_worker_that_was_only_frozen_and_comes_back_writes_no_second_outcome(
        settings: Settings, store: JobStore, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given two workers beating every second and a slow job (fails at the 5 s soft limit)
    fast = settings.model_copy(update={"heartbeat_interval_s": 1.0})
    workers = {name: worker_process(fast, concurrency=1, hostname=name) for name in ("wa", "wb")}
    job = JobService(store, create_celery_app(fast)).submit(SLOW_PROBLEM)
    running = wait_until(lambda: store.get(job.id) if store.get(job.id).status is
                         JobStatus.PROCESSING else None, timeout_s=60, interval_s=0.1,
                         message="the slow job to start")
    frozen = workers[running.worker.split("@")[0]]

    # When its node is frozen (SIGSTOP) until the survivor has taken the job, then thawed
    os.killpg(frozen.proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: store.get(job.id).worker not in ("", running.worker),
                   timeout_s=45, interval_s=0.2, message="the survivor to take the job")
    finally:
        os.killpg(frozen.proc.pid, signal.SIGCONT)

    # Then the job ends once, with the survivor's outcome; the thawed worker's is refused
    final = wait_until(lambda: (j := store.get(job.id)).status is JobStatus.FAILED and j,
                       timeout_s=60, interval_s=0.2, message="the job to end")
    time.sleep(3.0)  # the thawed worker's soft limit fires and its outcome is sent
    kinds = [e.type for e in events.read(job.id)]
    assert kinds.count(EventType.FAILED) == 1, kinds
    assert store.get(job.id).version == final.version
    assert final.worker != running.worker and "timed out" in final.error
    assert all(w.proc.poll() is None for w in workers.values())
