"""An ordinary job failure is logged at INFO with its reason, never as a worker ERROR."""

from __future__ import annotations

import logging

import pytest
import redis
from celery.app.trace import get_log_policy
from celery.contrib.testing.worker import start_worker

from jobtrail.client import Client, JobFailed
from jobtrail.config import Settings
from jobtrail.errors import ProblemError
from jobtrail.worker.app import TASK_SOLVE, TASK_SOLVE_PROBLEM, create_celery_app


def test_a_malformed_problem_fails_its_job_without_an_error_line_or_traceback(
        settings: Settings, main_db: redis.Redis, capfd: pytest.CaptureFixture[str]) -> None:
    app = create_celery_app(settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10), \
            Client(settings) as client:
        job = client.submit("solve x +* = 1")
        with pytest.raises(JobFailed, match="could not parse"):
            job.wait(timeout=30)
        app.AsyncResult(job.id).get(timeout=10, propagate=False)  # the trace line is written
    log = capfd.readouterr().err  # the worker's log (jobtrail's log_config: stderr)
    assert [line for line in log.splitlines() if " ERROR " in line] == []
    assert "Traceback" not in log
    # and Celery files it under its expected errors: INFO, the reason, no traceback
    for name in (TASK_SOLVE, TASK_SOLVE_PROBLEM):
        policy = get_log_policy(app.tasks[name], type("EInfo", (), {"internal": False})(),
                                ProblemError("timed out after 10 s"))
        assert (policy.severity, policy.traceback) == (logging.INFO, 0)
