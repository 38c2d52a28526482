"""One of the three DBs (main, broker, result backend) down alone, past the retry window.

Each DB lives on its own redis-server here (split_rig), so the worker meets
each failure on its own: a main DB that refuses the job's writes while the
broker keeps delivering, a broker that cannot take the ack, a result backend
that cannot take the result.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.models import JobStatus
from jobtrail.worker.app import TASK_SOLVE
from tests.faults.conftest import (
    DBS,
    QUICK_ANSWER,
    QUICK_PROBLEM,
    RETRY_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]


@pytest.mark.parametrize("db", DBS)
def test_one_db_down_at_finish_past_the_retry_window(
        split_rig: FaultRig, worker_process: Callable[..., WorkerProcess], db: str) -> None:
    rig = split_rig
    # Given a worker 1 s into a solve whose outcome (soft limit) is due at 3 s
    proc, job_id = rig.busy(worker_process, solving_s=1.0)

    # When that one DB is down for longer than the retry window, across the finish
    rig.outage(RETRY_S + 7.0, db)

    # Then the job ends truly (a task handed back is redelivered at most once), and the
    # worker lives and serves on
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)},
                      redeliveries=1 if db == "main" else 0,
                      result_may_be_lost=db == "results")
    assert "Unrecoverable error" not in proc.log()


def test_main_db_down_before_start_the_delivery_waits_for_it(
        split_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    rig = split_rig
    # Given a worker and a job recorded and queued while the main DB was up
    rig.start_worker(worker_process)
    rig.stop("broker")  # hold the delivery until the main DB is down
    job = rig.store.create(QUICK_PROBLEM)
    rig.stop("main")
    rig.start("broker")
    rig.service.app.send_task(TASK_SOLVE, args=[job.id, job.problem],
                          task_id=job.id)

    # When the broker delivers it while the main DB is down for longer than the window
    time.sleep(RETRY_S + 5.0)
    rig.start("main")

    # Then it is solved once Redis is back, its one start counted once
    assert_true_fates(rig, {job.id: (JobStatus.COMPLETED, QUICK_ANSWER)})
    assert rig.job(job.id).attempts == 1
