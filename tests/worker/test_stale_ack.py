"""A worker stopped (SIGSTOP) past the visibility timeout, its message restored by kombu
(under the same delivery tag) and delivered to another worker, then resumed (SIGCONT):
its ack or reject must leave the new delivery's unacknowledged entry alone.

kombu's QoS.restore_visible pushes the message back with its old delivery tag, so
without jobtrail's OwnDeliveryQoS (worker.transport) the stale worker's reject on its
lost pool process (task_reject_on_worker_lost) queues the message again while the new
delivery runs it, and an ack removes the new delivery's entry. Real workers, real Redis.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: Runs until its soft time limit in pure Python.
SLOW = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


@pytest.mark.parametrize("kind", ["single", "batch"])
def test_a_resumed_worker_leaves_the_new_delivery_of_its_restored_message_alone(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        store: JobStore, keys: KeySpace, worker_process: Callable[..., WorkerProcess],
        kind: str) -> None:
    # Given a job (alone, or first of a batch of two) running on worker wa, with a short
    # visibility timeout (no heartbeat sweep within the test: a worker is gone after 30 s)
    limits: dict[str, Any] = (
        {"solver_time_limit_s": 3.0, "solver_hard_time_limit_s": 3.5,
         "visibility_timeout_s": 6} if kind == "single" else
        {"solver_time_limit_s": 3.0, "solver_hard_time_limit_s": 3.5,
         "visibility_timeout_s": 12, "batch_max_jobs": 2})
    settings = make_settings(redis_server, tmp_path / "state", **limits)
    service = JobService(store, create_celery_app(settings))
    if kind == "single":
        job = service.submit(SLOW)
    else:
        job, mate = service.submit_many([SLOW, "solve x^2 - 4 = 0"])
        assert job.batch and mate.batch == job.batch
    stale = worker_process(settings, hostname="wa")
    wait_until(lambda: store.get(job.id).status is JobStatus.PROCESSING, timeout_s=60)
    [tag] = broker_db.hkeys(keys.unacked())
    first = broker_db.zscore(keys.unacked_index(), tag)

    # When wa is stopped past the visibility timeout, and kombu on wb restores the message
    # (same delivery tag) and wb runs it
    os.killpg(stale.proc.pid, signal.SIGSTOP)
    try:
        worker_process(settings, hostname="wb")
        taken = wait_until(lambda: (j := store.get(job.id)).worker.startswith("wb") and j,
                           timeout_s=60, interval_s=0.05, message="wb to take the job over")
        assert taken.status is JobStatus.PROCESSING and taken.attempts == 2
        second = broker_db.zscore(keys.unacked_index(), tag)
        assert second is not None and first is not None and second > first
    finally:
        os.killpg(stale.proc.pid, signal.SIGCONT)

    # Then whatever wa does with its delivery (its pool process is past the hard limit:
    # lost, rejected with requeue), wb's entry stays as wb wrote it and nothing is queued
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        assert broker_db.llen(keys.queue()) == 0
        assert broker_db.zscore(keys.unacked_index(), tag) == second
        assert broker_db.hexists(keys.unacked(), tag)
        time.sleep(0.05)
    wait_until(lambda: "left alone tag=" in stale.log(), timeout_s=10,
               message=lambda: f"wa's ack or reject to be left alone; log:\n{stale.log()[-3000:]}")
    # And the job ends once, on wb, with no third start
    final = wait_until(lambda: (j := store.get(job.id)).status is JobStatus.FAILED and j,
                       timeout_s=60, interval_s=0.1, message="the job to end")
    time.sleep(1.0)
    assert (store.get(job.id).attempts, final.worker[:2]) == (2, "wb")
    assert broker_db.llen(keys.queue()) == 0
    if kind == "batch":
        done = wait_until(lambda: (j := store.get(mate.id)).status is JobStatus.COMPLETED
                          and j, timeout_s=60, interval_s=0.1, message="the batch-mate")
        assert (done.attempts, done.worker[:2]) == (1, "wb")
    wait_until(lambda: broker_db.hlen(keys.unacked()) == 0, timeout_s=10,
               message="wb's ack")
