"""A stalled server: `CLIENT PAUSE 8000 ALL` (every client's commands held 8 s, then run).

A paused command is not lost: it runs when the pause ends, after its client
gave up on it (socket timeout 3 s). A retried write must then change nothing,
a submit told it failed must leave no job behind that runs, and the worker
neither stalls past the pause plus its retry window nor records a false event.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from jobtrail.errors import JobtrailError
from jobtrail.models import JobStatus
from tests.faults.conftest import (
    QUICK_ANSWER,
    QUICK_PROBLEM,
    RETRY_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]

PAUSE_S = 8.0


def _pause(rig: FaultRig) -> None:
    rig.admin.client_pause(int(PAUSE_S * 1000), all=True)


def test_stall_mid_job_and_mid_submit_leaves_true_fates(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 1 s into a solve whose outcome (soft limit) is due at 3 s
    _, job_id = rig.busy(worker_process, solving_s=1.0)

    # When the server stalls for 8 s, and a submit is made 0.2 s into the stall
    outcome: dict[str, object] = {}

    def submit() -> None:
        try:
            outcome["job"] = rig.service.submit(QUICK_PROBLEM)
        except JobtrailError as exc:
            outcome["error"] = exc

    _pause(rig)
    began = time.monotonic()
    time.sleep(0.2)
    thread = threading.Thread(target=submit)
    thread.start()
    thread.join(timeout=PAUSE_S + 30)
    assert not thread.is_alive(), "submit hung past the stall"

    # Then the submit either succeeded (its job ends truly) or was refused in one line
    # and no job it wrote runs or lingers
    expected = {job_id: (JobStatus.FAILED, TIMED_OUT)}
    if "job" in outcome:
        expected[outcome["job"].id] = (JobStatus.COMPLETED, QUICK_ANSWER)  # type: ignore[attr-defined]
    else:
        assert "\n" not in str(outcome["error"]), outcome
    assert_true_fates(rig, expected, redeliveries=1)
    assert time.monotonic() - began < PAUSE_S + RETRY_S + 30
    if "error" in outcome:
        ids = set(rig.store.client.zrange(rig.store.keys.jobs(), 0, -1))
        extra = [rig.job(i) for i in ids - {job_id} if rig.job(i).problem == QUICK_PROBLEM]
        # the fresh job assert_true_fates submitted, and nothing else of the refused submit
        assert len(extra) == 1, (outcome, extra)
