"""`CLIENT KILL` of the worker's consumer connections (its fetch, blocking while the
queue is empty, and its pub/sub subscription), again and again, every 0.2 s through a
drain."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis

from jobtrail.models import JobStatus
from jobtrail.worker.fetch import FETCH_CLIENT_NAME
from tests.faults.conftest import QUICK_ANSWER, QUICK_PROBLEM, FaultRig, assert_true_fates
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]

JOBS = 12


def _kill_consumers(rig: FaultRig, stop: threading.Event, killed: list[int]) -> None:
    while not stop.is_set():
        try:
            for c in rig.admin.client_list():
                if c["name"] == FETCH_CLIENT_NAME or int(c["psub"]) or int(c["sub"]):
                    killed.append(int(rig.admin.client_kill_filter(_id=c["id"])))
        except redis.ResponseError:
            pass  # gone meanwhile
        time.sleep(0.2)


def test_consumer_connections_killed_in_a_loop_through_a_drain(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker
    rig.start_worker(worker_process, concurrency=2)

    # When its consumer connections are killed every 0.2 s while jobs are submitted
    stop, killed = threading.Event(), []  # type: ignore[var-annotated]
    killer = threading.Thread(target=_kill_consumers, args=(rig, stop, killed))
    killer.start()
    try:
        ids = []
        for _ in range(JOBS):
            ids.append(rig.service.submit(QUICK_PROBLEM).id)
            time.sleep(0.3)
        time.sleep(1.0)
    finally:
        stop.set()
        killer.join()
    assert sum(killed) >= 5, killed

    # Then every job completed once (a message fetched by a killed connection is
    # recorded as unacked, and the dead-worker sweep takes it back), and the worker
    # serves on
    assert_true_fates(rig, {i: (JobStatus.COMPLETED, QUICK_ANSWER) for i in ids},
                      redeliveries=1)
