"""Verification through a real worker: the record, the Celery result and the failure reason."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis

from jobtrail.embedded import EmbeddedRedis
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.waiting import job_finished, wait_until
from tests.worker.test_tasks import (  # noqa: F401  (fixtures)
    _run_worker,
    celery_app,
    celery_worker,
    service,
)


def test_verified_answer_carries_its_verification_everywhere(
        service: JobService, store: JobStore, results_db: redis.Redis,  # noqa: F811
        keys: KeySpace, events: EventLog, celery_worker: Any) -> None:  # noqa: F811
    job = service.submit("integral of sin(x) from 0 to pi")
    wait_until(lambda: job_finished(store, job.id, results_db), timeout_s=30,
               message="job to finish")

    done = store.get(job.id)
    assert done.status is JobStatus.COMPLETED, done.error
    assert done.answer == "2"
    assert done.verification is not None
    assert done.verification["status"] == "verified"
    assert done.verification["method"].startswith("mpmath.quad")
    assert done.to_dict()["verification"] == done.verification
    meta = json.loads(results_db.get(keys.celery_result(job.id)) or "{}")
    assert meta["result"]["verification"] == done.verification
    completed = [e for e in events.read(job.id) if e.type is EventType.COMPLETED]
    assert completed[0].fields.get("verification") == "verified"


@pytest.mark.slow
def test_contradicted_answers_fail_the_job_with_the_reason(
        redis_server: EmbeddedRedis, tmp_path: Any, main_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace) -> None:
    # these two take SymPy ~5 s on a loaded machine: a roomier time limit than the fixture's
    settings = make_settings(redis_server, tmp_path, solver_time_limit_s=60.0,
                             solver_hard_time_limit_s=90.0)
    app = create_celery_app(settings)
    store = JobStore(main_db, keys)
    jobs = JobService(store, app)
    # sympy#28657: SymPy's closed form is -0.0125...; the integral is 5/2
    integral = jobs.submit(
        "integrate 400*pi^2*x^2/(1600*pi^4*x^4 - 796*pi^2*x^2 + 100) from 0 to oo")
    # sympy#30401: solveset drops the family x = pi + 2*pi*n
    family = jobs.submit("solve sin(4x) + sin(3x) = 0")
    for _ in _run_worker(app):
        for job in (integral, family):
            wait_until(lambda job=job: job_finished(store, job.id, results_db),
                       timeout_s=120, message="job to finish")

    failed = store.get(integral.id)
    assert failed.status is JobStatus.FAILED
    assert failed.answer == "" and failed.verification is None
    assert "-0.0125000779311451" in failed.error and "2.49999999" in failed.error
    meta = json.loads(results_db.get(keys.celery_result(integral.id)) or "{}")
    assert meta["status"] == "FAILURE"
    assert failed.error in meta["result"]["exc_message"][0]
    missed = store.get(family.id)
    assert missed.status is JobStatus.FAILED
    assert "root x ≈ -9.42477796076938 that no reported solution covers" in missed.error
