"""The worker's broker connections killed again and again while a long job and a long batch
run: a reconnect is no redelivery.

Celery's consumer closes its channel when the broker connection is lost (CLIENT
KILL, a Redis restart), and kombu's Redis QoS puts every unacknowledged message of
that channel back on the queue (restore_unacked at the channel's close), the ones
still running in a pool process too (worker_cancel_long_running_tasks_on_connection_loss
is False: they run on). The reconnected consumer then delivered the running
message again, an idle pool process started it, and the start counted an attempt
and a `redelivered` event for a job whose worker was never lost (after a few
reconnects: "gave up after N attempts: the worker was lost each time"). The
running deliveries must stay this worker's, unacknowledged in the broker (the
at-least-once backstop if the worker does die), and end once, on attempt 1.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator

import pytest

from jobtrail.jobs import JobService
from jobtrail.models import EventType, JobStatus
from jobtrail.worker.app import create_celery_app
from tests.faults.conftest import FaultRig, assert_true_fates
from tests.helpers.processes import WorkerProcess
from tests.worker.test_batch_stale_worker import PROBLEMS

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: About 5 s of SymPy (unloaded), well inside the test's 30 s soft limit; its answer starts so.
LONG_PROBLEM, LONG_ANSWER = "integrate exp(x)*sin(x)^5*cos(x)^2 dx", "23*exp(x)*sin(x)**7/650"


@pytest.fixture
def long_rig(rig: FaultRig) -> Iterator[FaultRig]:
    """The rig with room for long solves: a 30 s soft limit, batches of all PROBLEMS, and a
    visibility timeout (600 s, room for a whole batch's hard limits) that restores nothing
    during the test."""
    rig.settings = rig.settings.model_copy(update={
        "solver_time_limit_s": 30.0, "solver_hard_time_limit_s": 35.0,
        "visibility_timeout_s": 600, "batch_max_jobs": len(PROBLEMS)})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    yield rig
    rig.service.app.close()


def test_broker_connections_killed_while_a_long_job_and_a_batch_run_count_no_attempt(
        long_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a three-process worker running a long job and a long batch, one process idle
    rig = long_rig
    rig.start_worker(worker_process, concurrency=3)
    single = rig.service.submit(LONG_PROBLEM)
    batch = rig.service.submit_many(PROBLEMS)
    assert len({j.batch for j in batch}) == 1
    rig.wait_status(single.id, JobStatus.PROCESSING, timeout_s=30)
    rig.wait_status(batch[0].id, JobStatus.PROCESSING, JobStatus.COMPLETED, timeout_s=30)

    # When every client connection is killed three times, while both still run
    for _ in range(3):
        assert rig.kill_clients() > 0
        rig.reconnected()
    assert rig.job(single.id).status is JobStatus.PROCESSING, rig.job(single.id)

    # Then every job ends completed on its first attempt, with no redelivery in its history
    # and its true answer, and the worker serves on
    expected = {single.id: (JobStatus.COMPLETED, LONG_ANSWER)}
    expected.update({j.id: (JobStatus.COMPLETED, "") for j in batch})
    assert_true_fates(rig, expected)
    for job_id in expected:
        types = [e.type for e in rig.history(job_id)]
        assert rig.job(job_id).attempts == 1 and EventType.REDELIVERED not in types, (
            job_id, types, rig.worker_logs())
    assert "".join(w.log() for w in rig.workers).count("Connection to broker lost") >= 3


def _long_job_through_a_reconnect(rig: FaultRig, worker_process: Callable[..., WorkerProcess],
                                  ) -> tuple[WorkerProcess, str]:
    """A two-process worker running LONG_PROBLEM, its connections killed once meanwhile."""
    proc = rig.start_worker(worker_process, concurrency=2)
    job_id = rig.service.submit(LONG_PROBLEM).id
    rig.wait_status(job_id, JobStatus.PROCESSING, timeout_s=30)
    assert rig.kill_clients() > 0
    rig.reconnected()
    assert rig.job(job_id).status is JobStatus.PROCESSING, rig.job(job_id)
    return proc, job_id


def _one_true_redelivery(rig: FaultRig, job_id: str) -> None:
    assert_true_fates(rig, {job_id: (JobStatus.COMPLETED, LONG_ANSWER)}, redeliveries=1)
    assert rig.job(job_id).attempts == 2
    assert [e.type for e in rig.history(job_id)] == [
        EventType.CREATED, EventType.STARTED, EventType.REDELIVERED, EventType.STARTED,
        EventType.COMPLETED]


def test_a_pool_process_lost_after_a_reconnect_still_gets_its_job_redelivered(
        long_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a job still running after its worker's broker connections were killed
    proc, job_id = _long_job_through_a_reconnect(long_rig, worker_process)
    solving = max(proc.pool_children(), key=lambda c: c.cpu_times().user)  # seconds of SymPy

    # When the pool process solving it is killed (reject on worker lost, through the
    # channel closed at the reconnect)
    solving.send_signal(signal.SIGKILL)

    # Then the broker delivers it again: one true redelivery, counted, and the job completes
    _one_true_redelivery(long_rig, job_id)


def test_a_worker_killed_after_a_reconnect_still_gets_its_job_redelivered(
        long_rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a job still running after its worker's broker connections were killed, and
    # workers beating every second (the dead-worker sweep hands a job back in seconds)
    rig = long_rig
    rig.settings = rig.settings.model_copy(update={"heartbeat_interval_s": 1.0})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    proc, job_id = _long_job_through_a_reconnect(rig, worker_process)

    # When the whole worker is killed (SIGKILL: no ack, no requeue) and another one starts
    os.killpg(proc.proc.pid, signal.SIGKILL)
    proc.proc.wait(timeout=30)
    assert rig.start_worker(worker_process).hostname == "fault2"
    rig.workers.remove(proc)  # dead, as meant

    # Then the message left unacknowledged at the reconnect is handed back (at least once):
    # one true redelivery, counted, and the job completes
    _one_true_redelivery(rig, job_id)
