"""A batch's Celery time limit stays below the worker's own visibility timeout.

The submitter sizes a batch by its settings (Settings.batch_jobs); a worker with
a longer hard limit (settings drift between the API and the workers) would give
the batch jobs x its hard limit, past the visibility timeout: kombu would then
deliver the batch to a second worker while the first still runs it, each
taking the other's running job over (false `redelivered` events, attempts spent).
"""

from __future__ import annotations

from jobtrail.config import BATCH_MARGIN_S
from jobtrail.worker.batch import batch_time_limit_s


def test_the_batch_limit_is_jobs_times_the_hard_limit_plus_a_margin() -> None:
    assert batch_time_limit_s(32, 15.0, 3600) == 32 * 15.0 + BATCH_MARGIN_S


def test_the_batch_limit_is_capped_below_the_visibility_timeout() -> None:
    # a batch of 5 sized for a 2 s hard limit, run by a worker whose hard limit is 8 s
    limit = batch_time_limit_s(5, 8.0, 15)
    assert limit < 15 and limit >= 8.0
    # never below one job's hard limit
    assert batch_time_limit_s(5, 14.0, 15) == 14.0
