"""Two ways a job of a batch was treated unlike a single job, with real processes.

A Celery-level revoke of a job of a batch (`app.control.revoke(job_id)`, an operator's
natural move, or Flower's) skips that job alone, exactly as it skips a single job.

Real `jobtrail worker` processes (prefork): the revoke reaches the worker's main process
while a batch runs (one job of the running batch revoked) and while batches still wait
in the queue (the revoke is known before their message arrives).

A job whose per-job watchdog thread cannot start (no address space left under the
memory limit) still runs, as a single job would, instead of its batch being handed
back forever.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable

import pytest
import redis

from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until
from tests.test_batch_views import trace
from tests.test_trace import MEDIUM_PROBLEM

pytestmark = [pytest.mark.slow]


def _looks(store: JobStore, events: EventLog, results_db: redis.Redis, keys: KeySpace,
           job_id: str) -> tuple[object, ...]:
    job = store.get(job_id)
    meta = json.loads(results_db.get(keys.celery_result(job_id)) or "{}")
    return (job.status, job.error, job.attempts, [e.type for e in events.read(job_id)],
            meta.get("status"))


def test_revoking_a_job_of_a_batch_skips_it_as_a_single_job(
        settings: Settings, store: JobStore, events: EventLog, results_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker running a batch whose first job takes a few seconds, a single job and
    # a second batch queued behind it
    settings = settings.model_copy(update={"batch_max_jobs": 3})
    service = JobService(store, create_celery_app(settings))
    proc = worker_process(settings, concurrency=1)
    running = service.submit_many([MEDIUM_PROBLEM, "solve x + 1 = 2", "solve x + 2 = 3"])
    wait_until(lambda: store.get(running[0].id).status is JobStatus.PROCESSING,
               timeout_s=60, interval_s=0.05,
               message=lambda: f"the batch to start; log:\n{proc.log()[-2000:]}")
    single = service.submit("solve x + 3 = 4")
    queued = service.submit_many(["solve x + 4 = 5", "solve x + 5 = 6"])

    # When a job of each batch, and the single job, are revoked through Celery itself
    service.app.control.revoke([running[1].id, queued[0].id, single.id])

    # Then each revoked job reads as the revoked single job does; its batch-mates complete
    wait_until(lambda: all(job_finished(store, j.id) for j in (*running, *queued, single)),
               timeout_s=60, interval_s=0.2,
               message=lambda: f"every job to finish; log:\n{proc.log()[-3000:]}")
    want = _looks(store, events, results_db, keys, single.id)
    assert want == (JobStatus.FAILED, "task revoked before it finished", 0,
                    [EventType.CREATED, EventType.FAILED], "REVOKED")
    assert _looks(store, events, results_db, keys, running[1].id) == want
    assert _looks(store, events, results_db, keys, queued[0].id) == want
    for mate in (running[0], running[2], queued[1]):
        assert store.get(mate.id).status is JobStatus.COMPLETED, mate
    assert trace(settings, running[1].id).fate is trace(settings, single.id).fate
    log = proc.log()
    assert all(f"job completed job_id={j.id}" not in log for j in (running[1], queued[0]))


def test_a_job_whose_watchdog_cannot_start_still_runs() -> None:
    # Given a pool process whose address space is spent (the memory limit, SymPy's cache
    # grown by earlier jobs): faulthandler cannot start its watchdog thread
    script = textwrap.dedent("""
        import logging, resource
        logging.basicConfig()
        from jobtrail.solver.limits import current_virtual_size_bytes
        from jobtrail.worker.batch import _watchdog
        size = current_virtual_size_bytes()
        resource.setrlimit(resource.RLIMIT_AS, (size + 64 * 1024, resource.RLIM_INFINITY))
        with _watchdog(5.0):
            print("ran")
    """)
    # When a job of a batch is run under it
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    # Then the job runs (the batch's own time limit stays its hard limit), said in the log,
    # instead of the batch being handed back on every delivery without an attempt counted
    assert done.returncode == 0 and "ran" in done.stdout, done.stderr[-2000:]
    assert "per-job hard limit not armed" in done.stderr
