"""A true redelivery (the pool process killed mid-solve) is counted and told in order."""

from __future__ import annotations

import signal
from collections.abc import Callable

import pytest

from jobtrail.models import EventType, JobStatus
from tests.faults.conftest import (
    SOFT_LIMIT_S,
    TIMED_OUT,
    FaultRig,
    assert_true_fates,
)
from tests.helpers.processes import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def test_sigkill_mid_solve_is_one_true_redelivery_recorded_before_the_second_solve(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a worker 0.5 s into a solve
    proc, job_id = rig.busy(worker_process, solving_s=0.5)

    # When its pool process is killed (reject on worker lost: the broker redelivers)
    [child] = proc.pool_children()
    child.send_signal(signal.SIGKILL)

    # Then the job ran twice, and says so: attempts 2, `redelivered` then `started`
    # (the second run ends at its soft limit, or, when SymPy swallows the soft limit's
    # exception, at the hard one: either is said truly)
    assert_true_fates(rig, {job_id: (JobStatus.FAILED, TIMED_OUT)}, redeliveries=1)
    final = rig.job(job_id)
    history = rig.history(job_id)
    assert [e.type for e in history] == [EventType.CREATED, EventType.STARTED,
                                         EventType.REDELIVERED, EventType.STARTED,
                                         EventType.FAILED]
    assert final.attempts == 2
    redelivered, second = history[2], history[3]
    assert redelivered.fields["previous_worker"] == final.worker
    # recorded when the second delivery started, before it solved (not after)
    assert redelivered.at <= second.at <= final.started_at + 1.0  # type: ignore[operator]
    assert final.finished_at - final.started_at >= SOFT_LIMIT_S - 0.5  # type: ignore[operator]
