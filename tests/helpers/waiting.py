"""wait_until: poll a predicate with a deadline instead of sleeping blindly."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from jobtrail.models import JobStatus
from jobtrail.store import JobStore

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], *, timeout_s: float = 10.0,
               interval_s: float = 0.05, message: str | Callable[[], str] = "condition") -> T:
    """Return the first truthy value of *predicate*; raise AssertionError after *timeout_s*.

    *message* may be a function, called at the timeout (a worker's log as it is then).
    """
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            what = message() if callable(message) else message
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)


def job_finished(store: JobStore, job_id: str, results: redis.Redis | None = None) -> bool:
    """True once the job record is completed or failed and, when *results* is given,
    Celery has stored its result too (it does so just after the task body returns)."""
    if store.get(job_id).status not in (JobStatus.COMPLETED, JobStatus.FAILED):
        return False
    return results is None or bool(results.exists(store.keys.celery_result(job_id)))
