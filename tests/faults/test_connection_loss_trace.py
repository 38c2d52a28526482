"""trace after a worker's broker connection broke mid-solve: the record and the broker agree.

Real processes: a two-process `jobtrail worker` solves two slow jobs when every
client connection is killed (CLIENT KILL, as after redis-server is killed and
restarted at once). Celery's consumer closes its channel and reconnects while the
pool processes solve on (worker_cancel_long_running_tasks_on_connection_loss is
False). kombu's Redis QoS put the running messages back on the queue at that
close, and the reconnected consumer delivered them again (a second run of each,
an attempt counted for a worker never lost); jobtrail's QoS leaves a running
delivery unacknowledged instead (transport.OwnDeliveryQoS.restore_unacked). trace
must then tell each job processing on its first attempt, its message held by the
run that goes on, not back in the queue.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from jobtrail.jobs import JobService
from jobtrail.models import Fate, JobStatus
from jobtrail.trace import TraceResult
from jobtrail.worker.app import create_celery_app
from tests.faults.conftest import SLOW_PROBLEM, FaultRig
from tests.helpers.processes import WorkerProcess
from tests.test_trace import trace

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _put_back(result: TraceResult) -> bool:
    """True when trace's own evidence shows the job's message back in the broker."""
    b, job = result.evidence.broker, result.evidence.main.job
    assert b is not None and job is not None and job.started_at is not None
    return b.ahead is not None or (b.unacked_since or 0.0) > job.started_at


def test_a_message_running_through_a_connection_loss_stays_with_its_run(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a two-process worker solving two jobs that run for a minute
    rig.settings = rig.settings.model_copy(update={
        "solver_time_limit_s": 60.0, "solver_hard_time_limit_s": 80.0,
        "visibility_timeout_s": 300})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    rig.start_worker(worker_process, concurrency=2)
    ids = [rig.service.submit(SLOW_PROBLEM).id for _ in range(2)]
    for job_id in ids:
        rig.wait_status(job_id, JobStatus.PROCESSING, timeout_s=30)
    time.sleep(1.0)

    # When every connection to Redis is killed (Redis itself stays up), and the worker
    # has reconnected
    assert rig.kill_clients() > 0
    rig.reconnected()

    # Then neither message went back while the jobs run on, and trace says each job is
    # processing on its first attempt, its message unacknowledged since its one delivery
    for job_id in ids:
        result = trace(rig.settings, job_id)
        assert rig.job(job_id).status is JobStatus.PROCESSING
        assert not _put_back(result), (result.verdict, rig.worker_logs())
        assert result.fate is Fate.PROCESSING, result.verdict
        assert result.verdict.endswith("attempt 1"), result.verdict
        assert rig.job(job_id).attempts == 1
