"""Through the real worker: how a problem was read reaches the job record (issue 11)."""

from __future__ import annotations

from typing import Any

import redis

from jobtrail.jobs import JobService
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from tests.helpers.waiting import job_finished, wait_until
from tests.worker.test_tasks import celery_app, celery_worker, service  # noqa: F401  (fixtures)


def test_readings_and_decimal_answers_reach_the_job_record(
        service: JobService, store: JobStore, results_db: redis.Redis,  # noqa: F811
        celery_worker: Any) -> None:  # noqa: F811
    # Given a running worker, when problems written without parentheses and in
    # scientific notation are submitted
    derivative = service.submit("d/dx sin 2x")
    equation = service.submit("solve x = 1.5e-3")
    for job in (derivative, equation):
        wait_until(lambda job=job: job_finished(store, job.id, results_db), timeout_s=20,
                   message="job to finish")

    # Then sin 2x was differentiated as sin(2x), and the record says how it was read
    done = store.get(derivative.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.answer == "2*cos(2*x)"
    assert done.steps[0] == "read as sin(2*x)"
    # and x = 1.5e-3 solved to the number 0.0015, never to something with Euler's e
    solved = store.get(equation.id)
    assert solved.status is JobStatus.COMPLETED, solved.error
    assert solved.answer == "x = 0.0015"
    assert solved.steps[0] == "read as x = 1.5*10^(-3)"
