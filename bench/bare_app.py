"""A bare Celery app with a no-op task: the baseline jobtrail's figures are divided by.

Configured from BENCH_BROKER_URL and BENCH_RESULTS_URL, with the same
reliability settings as jobtrail (late acks, prefetch 1, JSON), so the ratio
measures what jobtrail adds, not a different Celery configuration.
"""

from __future__ import annotations

import os

from celery import Celery

app = Celery("bare", broker=os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/11"),
             backend=os.environ.get("BENCH_RESULTS_URL", "redis://127.0.0.1:6379/12"))
app.conf.update(
    task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1,
    task_default_queue="bare", task_serializer="json", result_serializer="json",
    accept_content=["json"], broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)
if os.environ.get("BENCH_BARE_TIME_LIMITS"):  # the same soft/hard limits as jobtrail's defaults
    app.conf.update(task_soft_time_limit=10.0, task_time_limit=15.0)


@app.task(name="bare.noop")
def noop(job_id: str) -> str:
    """Do nothing; return the argument."""
    return job_id
