"""`CLIENT KILL` of every client the server has: idle, mid-job, twice within 2 s."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.models import JobStatus
from tests.faults.conftest import (
    QUICK_ANSWER,
    QUICK_PROBLEM,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def test_client_kill_while_idle_the_worker_reconnects(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given an idle worker that solved one job
    rig.start_worker(worker_process)
    before = rig.service.submit(QUICK_PROBLEM)
    rig.wait_finished(before.id)

    # When every client's connection is killed
    assert rig.kill_clients() >= 3  # the worker's broker, results and main DB connections

    # Then the worker reconnects and serves the next job
    assert_true_fates(rig, {before.id: (JobStatus.COMPLETED, QUICK_ANSWER)})


def test_client_kill_of_the_control_subscription_the_worker_reconnects(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given an idle worker that solved one job
    rig.start_worker(worker_process)
    before = rig.service.submit(QUICK_PROBLEM)
    rig.wait_finished(before.id)

    # When only its pub/sub connection (the control mailbox's subscription) is killed
    subscribed = [c["id"] for c in rig.admin.client_list() if int(c.get("psub", 0)) > 0]
    assert len(subscribed) == 1, subscribed
    assert rig.admin.client_kill_filter(_id=subscribed[0]) == 1

    # Then the consumer notices the lost broker (no blocking read of a silently
    # reconnected subscription) and serves the next job
    assert_true_fates(rig, {before.id: (JobStatus.COMPLETED, QUICK_ANSWER)})
    assert "Connection to broker lost" in rig.worker_logs()


def test_client_kill_twice_mid_job_leaves_one_true_attempt(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 0.5 s into a solve whose outcome is due at 3 s
    _, job_id = rig.busy(worker_process, solving_s=0.5)

    # When every connection is killed, twice within 2 s (the start's pending reply with it)
    rig.kill_clients()
    time.sleep(1.5)
    rig.kill_clients()

    # Then the outcome is recorded once, on the first attempt, and nothing is redelivered
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)})
    assert rig.job(job_id).attempts == 1
