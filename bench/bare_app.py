"""A bare Celery app with a no-op and a solve task: the baselines jobtrail's figures are divided by.

`bare.solve` is the peer an operator would write by hand: one task per
problem calling jobtrail's solver (plain SymPy underneath), its answer
returned as the Celery result, no job record, no events.

Configured from BENCH_BROKER_URL and BENCH_RESULTS_URL, with the same
reliability settings as jobtrail (late acks, prefetch 1, JSON), so the ratio
measures what jobtrail adds, not a different Celery configuration.
"""

from __future__ import annotations

import os

from celery import Celery

from jobtrail.solver import solve as solve_problem  # before the fork, as jobtrail's worker

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


@app.task(name="bare.solve")
def solve(problem: str) -> dict[str, str]:
    """Solve *problem* with jobtrail's solver; return {"kind", "text", "latex"}."""
    answer = solve_problem(problem)
    return {"kind": answer.kind, "text": answer.text, "latex": answer.latex}
