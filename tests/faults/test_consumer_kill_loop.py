"""`CLIENT KILL` of the worker's consumer connections (its fetch, blocking while the
queue is empty, and its pub/sub subscription), again and again, every 0.2 s through a
drain."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from jobtrail.models import JobStatus
from tests.faults.conftest import (
    QUICK_ANSWER,
    FaultRig,
    assert_true_fates,
    submit_while_killing_consumers,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]

JOBS = 12


def test_consumer_connections_killed_in_a_loop_through_a_drain(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker
    rig.start_worker(worker_process, concurrency=2)

    # When its consumer connections are killed every 0.2 s while jobs are submitted
    ids, killed = submit_while_killing_consumers(rig, JOBS)
    assert killed >= 5, killed

    # Then every job completed once (a message fetched by a killed connection is
    # recorded as unacked, and the dead-worker sweep takes it back), and the worker
    # serves on
    assert_true_fates(rig, {i: (JobStatus.COMPLETED, QUICK_ANSWER) for i in ids},
                      redeliveries=1)
