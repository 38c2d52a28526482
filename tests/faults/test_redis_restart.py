"""Redis stopped and started again while a worker is idle, mid-solve and at finish.

The outages are 2 s (inside the retry window) and 12 s (past the suite's 5 s
window, as 70 s is past the default 30 s one). Every job ends with its true
fate, a retried write never shows as a redelivery, and the worker serves on.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.models import JobStatus
from tests.faults.conftest import (
    QUICK_ANSWER,
    QUICK_PROBLEM,
    RETRY_S,
    SLOW_PROBLEM,
    SOFT_LIMIT_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def test_restart_while_idle_the_worker_resumes_consuming(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given an idle worker that solved one job
    rig.start_worker(worker_process)
    before = rig.service.submit(QUICK_PROBLEM)
    rig.wait_finished(before.id)

    # When Redis is down for 2 s
    rig.outage(2.0)

    # Then jobs submitted afterwards are solved by the same worker
    assert_true_fates(rig, {before.id: (JobStatus.COMPLETED, QUICK_ANSWER)})


def test_restart_mid_solve_is_not_a_redelivery(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 0.5 s into a solve that its soft time limit ends at 3 s
    _, job_id = rig.busy(worker_process, solving_s=0.5)

    # When Redis is down for 2 s (its connection to the main DB breaks under it)
    rig.outage(2.0)

    # Then the outcome is recorded once, on the first attempt, with its true reason
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)})
    assert rig.job(job_id).attempts == 1


def test_restart_at_finish_records_no_phantom_redelivery(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker whose solve ends (soft limit) while Redis is down
    _, job_id = rig.busy(worker_process, solving_s=SOFT_LIMIT_S - 1.0)

    # When Redis is down for 2 s around the finish (shorter than the retry window)
    rig.outage(2.0)

    # Then the retried finish landed once: attempts 1, no `redelivered` event
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)})
    final = rig.job(job_id)
    assert final.attempts == 1
    assert final.finished_at - final.started_at < (  # type: ignore[operator]
        rig.settings.solver_hard_time_limit_s + RETRY_S)


def test_outage_past_the_retry_window_hands_the_task_back_and_the_worker_lives(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 1 s into a solve whose outcome is due at 3 s
    proc, job_id = rig.busy(worker_process, solving_s=1.0)

    # When Redis is down for 12 s, longer than the 5 s retry window
    rig.outage(RETRY_S + 7.0)

    # Then the task went back to the broker and its redelivery ended the job truly;
    # the worker process never died ("Unrecoverable error") and serves on
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)}, redeliveries=1)
    assert "Unrecoverable error" not in proc.log()


def test_redis_killed_mid_solve_leaves_the_worker_consuming(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a two-process worker 0.5 s into a solve (its message unacknowledged: late ack)
    proc = rig.start_worker(worker_process, concurrency=2)
    job_id = rig.service.submit(SLOW_PROBLEM).id
    rig.wait_status(job_id, JobStatus.PROCESSING, timeout_s=30)
    time.sleep(0.5)

    # When redis-server is killed with SIGKILL, refuses connections for 2 s, and restarts
    [server] = {id(s): s for s in rig.servers.values()}.values()
    assert server.process is not None
    server.process.kill()
    server.process.wait(timeout=10)
    time.sleep(2.0)
    rig.start()

    # Then the consumer's reconnect did not end the worker ("Unrecoverable error": kombu
    # rebuilt a client from a detached transport to requeue the in-flight message)
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)})
    assert "Unrecoverable error" not in proc.log(), proc.log()[-3000:]
