"""A lost pool process is named by its true cause, never called a hard time limit.

A real prefork worker runs a batch whose slow job has (by its record) run 95 % of
its hard limit when its pool process is SIGKILLed from outside (an OOM killer, an
operator): billiard reports WorkerLostError "signal 9 (SIGKILL)". The worker's
log and the job's reason must say that, not "hard time limit" (which only
Celery's own timeout handling or the per-job watchdog's exit is evidence of).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.worker.pool_loss import PoolLoss, pool_loss
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until
from tests.worker.test_batch import QUICK, SLOW, _answer, _rig

pytestmark = [pytest.mark.slow, pytest.mark.crash]

HARD_S = 20.0


def test_billiards_wording_reads_as_a_signal_or_an_exit_code() -> None:
    killed = pool_loss(Exception("Worker exited prematurely: signal 9 (SIGKILL) Job: 0."))
    assert killed == PoolLoss(9, None) and not killed.by_watchdog
    assert killed.cause == "pool process exited by signal 9 (SIGKILL)"
    watchdog = pool_loss(Exception("Worker exited prematurely: exitcode 1 Job: 3."))
    assert watchdog.by_watchdog and watchdog.cause == "pool process exited with exit code 1"
    assert pool_loss(Exception("other")).cause == "pool process lost (cause not reported)"


def test_a_sigkilled_pool_process_is_not_called_a_hard_time_limit(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch [slow, quick] on a one-process worker, one attempt a job, the slow job
    # running and its record saying it has run 95 % of its 20 s hard limit
    settings, store, service, _ = _rig(redis_server, tmp_path, main_db, keys,
                                       solver_time_limit_s=HARD_S,
                                       solver_hard_time_limit_s=HARD_S, max_attempts=1)
    jobs = service.submit_many([SLOW, QUICK[0]])
    proc = worker_process(settings)
    wait_until(lambda: store.get(jobs[0].id).status is JobStatus.PROCESSING, timeout_s=60,
               message=lambda: f"the slow job to start; log:\n{proc.log()[-2000:]}")
    main_db.hset(keys.job(jobs[0].id), "started_at", repr(time.time() - 0.95 * HARD_S))

    # When its pool process is SIGKILLed from outside
    [child] = proc.pool_children()
    child.send_signal(signal.SIGKILL)

    # Then the log names the signal, and neither the log nor the job blames the hard limit
    wait_until(lambda: job_finished(store, jobs[0].id) and job_finished(store, jobs[1].id),
               timeout_s=60, message=lambda: f"the batch to end; log:\n{proc.log()[-3000:]}")
    lost = store.get(jobs[0].id)
    assert lost.status is JobStatus.FAILED
    assert "hard limit" not in lost.error and "timed out" not in lost.error, lost.error
    assert lost.error == ("gave up after 1 attempt: the worker was lost "
                          "(pool process exited by signal 9 (SIGKILL))")
    log = proc.log()
    assert (f"pool process exited by signal 9 (SIGKILL), batch redelivered "
            f"job_id={jobs[0].id}") in log, log[-3000:]
    assert "hard time limit" not in log, log[-3000:]
    assert store.get(jobs[1].id).answer == _answer(1)
