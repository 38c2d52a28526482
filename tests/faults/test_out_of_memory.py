"""Redis out of memory under `maxmemory-policy noeviction`: every write refused with OOM.

A submit during it is refused in one line and writes no record; a worker whose
finish is refused keeps the job (it retries, or hands the task back) and
finishes it truly once memory is freed (`CONFIG SET maxmemory 0`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

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


def _out_of_memory(rig: FaultRig) -> None:
    """Make the server refuse every write that needs memory (OOM), evicting nothing."""
    rig.admin.config_set("maxmemory-policy", "noeviction")
    rig.admin.config_set("maxmemory", "1")


@pytest.mark.parametrize("oom_s", [3.0, RETRY_S + 4.0], ids=["in-window", "past-window"])
def test_out_of_memory_refuses_a_submit_and_the_busy_worker_keeps_its_job(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess], oom_s: float) -> None:
    # Given a worker 0.5 s into a solve whose outcome (soft limit) is due at 3 s
    _, job_id = rig.busy(worker_process, solving_s=0.5)
    records = rig.store.client.zcard(rig.store.keys.jobs())

    # When the server runs out of memory (noeviction) until after the outcome is due
    _out_of_memory(rig)
    try:
        # Then a submit is refused in one line naming OOM, and leaves no record
        with pytest.raises(JobtrailError) as refused:
            rig.service.submit("solve x^2 - 4 = 0")
        assert "OOM" in str(refused.value) and "\n" not in str(refused.value), refused.value
        assert rig.store.client.zcard(rig.store.keys.jobs()) == records
        time.sleep(oom_s)
    finally:
        rig.admin.config_set("maxmemory", "0")

    # Then the job ends with its true fate once memory is freed; the worker serves on
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)}, redeliveries=1)
