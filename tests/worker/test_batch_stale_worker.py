"""A worker stopped (SIGSTOP) past the heartbeat threshold while it holds a batch, its batch
taken back by the sweep and run by another worker, then resumed (SIGCONT): the stale
delivery must not go on through the batch. A single job's stale delivery only finds
its outcome refused; a batch's would start the jobs after it again, each start over
the new delivery's taking the job over (a false `redelivered`, an attempt counted
for a delivery that was never lost).
"""

from __future__ import annotations

import json
import os
import signal
import time
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
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: About half a second of SymPy each, none cached by another.
PROBLEMS = [f"integrate exp(x)*sin({k}*x)^3 dx" for k in range(2, 10)]


def test_a_resumed_worker_whose_batch_was_taken_back_runs_none_of_it_again(
        settings: Settings, store: JobStore, events: EventLog, broker_db: redis.Redis,
        keys: KeySpace, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given two workers, and a batch running on one of them
    fast = settings.model_copy(update={"heartbeat_interval_s": 1.0, "batch_max_jobs": 8})
    service = JobService(store, create_celery_app(fast))
    workers = {name: worker_process(fast, concurrency=1, hostname=name) for name in ("wa", "wb")}
    jobs = service.submit_many(PROBLEMS)
    running = wait_until(lambda: (j := store.get(jobs[1].id)).status is JobStatus.PROCESSING
                         and j, timeout_s=60, interval_s=0.02, message="the batch to start")
    stale = workers[running.worker.split("@")[0]]

    # When that worker is stopped until the other one has taken the batch over
    os.killpg(stale.proc.pid, signal.SIGSTOP)
    try:
        wait_until(lambda: (j := store.get(jobs[1].id)).status is JobStatus.PROCESSING
                   and j.worker != running.worker, timeout_s=60, interval_s=0.05,
                   message="the other worker to take the batch over")
    finally:
        os.killpg(stale.proc.pid, signal.SIGCONT)

    # Then it gives the batch up at the job it finds taken over, and its ending (an ack or
    # a reject of its delivery tag) leaves the new delivery's message unacknowledged
    wait_until(lambda: f"batch given up: another delivery took job_id={jobs[1].id} over"
               in stale.log(), timeout_s=30,
               message=lambda: f"the stale delivery to give up; log:\n{stale.log()[-3000:]}")
    time.sleep(0.3)
    held = [json.loads(raw)[0]["headers"]["id"] for raw in broker_db.hvals(keys.unacked())]
    assert held == [jobs[0].batch] or all(
        store.get(j.id).status is JobStatus.COMPLETED for j in jobs), held

    # And every job ends, and each job after the one it ran is started once, by the
    # worker that took the batch over, with the sweep's one `redelivered` before it
    wait_until(lambda: all(store.get(j.id).status in (JobStatus.COMPLETED, JobStatus.FAILED)
                           for j in jobs), timeout_s=90, interval_s=0.2,
               message="the batch to finish")
    time.sleep(2.0)  # the resumed worker's last writes, if any
    histories = {j.id: [(e.type.value, e.fields.get("worker") or e.fields.get("dead_worker"))
                        for e in events.read(j.id)] for j in jobs}
    for job in jobs[2:]:
        final = store.get(job.id)
        assert [t for t, _ in histories[job.id]] == [
            EventType.CREATED, EventType.REDELIVERED, EventType.STARTED,
            EventType.COMPLETED], histories[job.id]
        assert (final.status, final.attempts) == (JobStatus.COMPLETED, 1), histories[job.id]
        assert final.worker != running.worker
