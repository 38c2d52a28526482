"""trace after a worker's broker connection broke mid-solve: the record and the broker agree.

Real processes: a two-process `jobtrail worker` solves two slow jobs when every
client connection is killed (CLIENT KILL, as after redis-server is killed and
restarted at once). Celery's consumer closes its channel and kombu's Redis
transport puts the worker's unacknowledged messages back on the queue
(QoS.restore_unacked_once at channel close), while the pool processes solve on
(worker_cancel_long_running_tasks_on_connection_loss is False): the reconnected
consumer reserves one again, the other waits in the queue. trace must not say
"processing on W" as if nothing else held the job while its own evidence shows
the message back in the queue or delivered again.
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
from tests.helpers.waiting import wait_until
from tests.test_trace import trace

pytestmark = [pytest.mark.slow, pytest.mark.crash]


def _put_back(result: TraceResult) -> bool:
    """True when trace's own evidence shows the job's message back in the broker."""
    b, job = result.evidence.broker, result.evidence.main.job
    assert b is not None and job is not None and job.started_at is not None
    return b.ahead is not None or (b.unacked_since or 0.0) > job.started_at


def test_a_message_put_back_on_connection_loss_is_told_with_the_run_that_goes_on(
        rig: FaultRig, worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a two-process worker solving two jobs that run for a minute
    rig.settings = rig.settings.model_copy(update={
        "solver_time_limit_s": 60.0, "solver_hard_time_limit_s": 80.0,
        "visibility_timeout_s": 300})
    rig.service = JobService(rig.store, create_celery_app(rig.settings))
    proc = rig.start_worker(worker_process, concurrency=2)
    ids = [rig.service.submit(SLOW_PROBLEM).id for _ in range(2)]
    for job_id in ids:
        rig.wait_status(job_id, JobStatus.PROCESSING, timeout_s=30)
    time.sleep(1.0)

    # When every connection to Redis is killed (Redis itself stays up)
    assert rig.kill_clients() > 0

    # Then kombu puts the messages back while the jobs run on ...
    wait_until(lambda: any(_put_back(trace(rig.settings, j)) for j in ids), timeout_s=20,
               interval_s=0.2, message=f"a message put back; log:\n{proc.log()[-3000:]}")
    # ... and trace says so next to "processing", for each job whose message went back
    for job_id in ids:
        result = trace(rig.settings, job_id)
        assert rig.job(job_id).status is JobStatus.PROCESSING
        if _put_back(result):
            assert result.fate is Fate.PROCESSING, result.verdict
            assert "kombu put it back" in result.verdict, result.verdict
            assert "the run goes on" in result.verdict and "attempt 2" in result.verdict
        else:
            assert result.verdict.endswith("attempt 1"), result.verdict
