"""Redis faults while a worker runs a batch: each job of the batch ends as a single job would.

The main DB alone down 2 s (inside the retry window), all three DBs down 12 s (past
it: the batch is handed back and redelivered), and every client connection killed
(CLIENT KILL) three times mid-batch. assert_true_fates checks each job's fate, its
history (no phantom redelivery, every start counted) and that the worker serves on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from jobtrail.jobs import JobService
from jobtrail.models import Job, JobStatus
from jobtrail.worker.app import create_celery_app
from tests.faults.conftest import RETRY_S, FaultRig, assert_true_fates
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until
from tests.worker.test_batch_stale_worker import PROBLEMS

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _batched(rig: FaultRig) -> Iterator[FaultRig]:
    # room under the visibility timeout for a batch of PROBLEMS (Settings.batch_jobs)
    rig.settings = rig.settings.model_copy(update={
        "batch_max_jobs": len(PROBLEMS), "visibility_timeout_s": 60,
        "solver_hard_time_limit_s": 5.0})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    yield rig
    rig.service.app.close()


@pytest.fixture
def batch_rig(rig: FaultRig) -> Iterator[FaultRig]:
    """The rig, its settings and service sending every PROBLEMS in one batch."""
    yield from _batched(rig)


@pytest.fixture
def batch_split_rig(split_rig: FaultRig) -> Iterator[FaultRig]:
    """The split rig (one server per DB), sending every PROBLEMS in one batch."""
    yield from _batched(split_rig)


def _batch_running(rig: FaultRig, worker_process: Callable[..., WorkerProcess],
                   ) -> list[Job]:
    """A worker on its second job of a batch of PROBLEMS (about 0.4 s each)."""
    rig.start_worker(worker_process)
    jobs = rig.service.submit_many(PROBLEMS)
    assert len({j.batch for j in jobs}) == 1
    rig.wait_status(jobs[1].id, JobStatus.PROCESSING, timeout_s=60)
    return jobs


def _completed(jobs: list[Job]) -> dict[str, tuple[JobStatus, str]]:
    return {j.id: (JobStatus.COMPLETED, "") for j in jobs}


def test_main_db_down_mid_batch_inside_the_retry_window(
        batch_split_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    rig = batch_split_rig
    jobs = _batch_running(rig, worker_process)
    rig.outage(2.0, "main")
    assert_true_fates(rig, _completed(jobs))
    assert [rig.job(j.id).attempts for j in jobs] == [1] * len(jobs)


def test_all_dbs_down_mid_batch_past_the_retry_window(
        batch_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    rig = batch_rig
    jobs = _batch_running(rig, worker_process)
    rig.outage(RETRY_S + 7.0)
    assert_true_fates(rig, _completed(jobs), redeliveries=1)


def test_client_kill_mid_batch(batch_rig: FaultRig,
                               worker_process: Callable[..., WorkerProcess]) -> None:
    rig = batch_rig
    jobs = _batch_running(rig, worker_process)
    for n in (2, 4):
        rig.kill_clients()
        rig.wait_status(jobs[n].id, JobStatus.PROCESSING, JobStatus.COMPLETED, timeout_s=60)
    rig.kill_clients()
    assert_true_fates(rig, _completed(jobs))
    assert [rig.job(j.id).attempts for j in jobs] == [1] * len(jobs)


def test_results_db_back_while_the_redelivery_solves_restores_every_result(
        batch_split_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch whose result store hangs with the results DB down (the job's watchdog
    # ends the pool process: its finishes were applied), and whose redelivery could not
    # check the finished jobs' results at its start
    rig = batch_split_rig
    jobs = _batch_running(rig, worker_process)
    rig.stop("results")
    wait_until(lambda: "Celery results of finished jobs not checked" in rig.worker_logs(),
               timeout_s=90, message=lambda: f"the redelivery's check; log:\n{rig.worker_logs()}")
    # When the results DB is back while that delivery solves the rest
    rig.start("results")
    # Then every job has its Celery result (AsyncResult.get() returns), the ones finished
    # before the outage included
    for job in jobs:
        rig.wait_finished(job.id, timeout_s=90)
