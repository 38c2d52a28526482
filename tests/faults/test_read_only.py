"""The server turned read-only mid-drain: `REPLICAOF` a master that does not exist
(every write answered READONLY), then `REPLICAOF NO ONE`."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.embedded import free_port
from jobtrail.errors import JobtrailError
from jobtrail.models import JobStatus
from tests.faults.conftest import (
    RETRY_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]


@pytest.mark.parametrize("read_only_s", [3.0, RETRY_S + 4.0], ids=["in-window", "past-window"])
@pytest.mark.parametrize("fault", ["replicaof", "min-replicas"])
def test_read_only_server_mid_job_keeps_the_job_and_refuses_submits(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess], read_only_s: float,
        fault: str) -> None:
    # Given a worker 1 s into a solve whose outcome (soft limit) is due at 3 s
    _, job_id = rig.busy(worker_process, solving_s=1.0)
    records = rig.store.client.zcard(rig.store.keys.jobs())

    # When the server becomes a replica of nothing (read-only), or a master that needs a
    # replica it lacks for every write (NOREPLICAS), past the outcome
    if fault == "replicaof":
        rig.admin.replicaof("127.0.0.1", str(free_port()))
    else:
        rig.admin.config_set("min-replicas-to-write", "1")
    try:
        # Then a submit is refused in one line and writes nothing
        with pytest.raises(JobtrailError) as refused:
            rig.service.submit("solve x^2 - 4 = 0")
        assert "\n" not in str(refused.value), refused.value
        assert rig.store.client.zcard(rig.store.keys.jobs()) == records
        time.sleep(read_only_s)
    finally:
        if fault == "replicaof":
            rig.admin.replicaof("NO", "ONE")
        else:
            rig.admin.config_set("min-replicas-to-write", "0")

    # Then the job ends truly once the server takes writes again; the worker serves on
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)}, redeliveries=1)
