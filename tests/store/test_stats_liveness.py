"""/metrics' stale jobs follow the one liveness rule (store.heartbeats.absence_unproven_s).

Right after the main DB's Redis restarted, a worker last heard before the
restart has no heartbeat hash yet; trace, doctor, `workers` and the sweep call it
"not yet judged", so `jobtrail_stale_jobs` must not count its job stale either.
"""

from __future__ import annotations

import time

import pytest
import redis

from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store.stats import read_metrics


@pytest.mark.parametrize(("gone_after_s", "stale"), [
    (1e9, 0),   # the server has been up less than the gone threshold: not yet judged
    (0.0, 1),   # up for longer: the missing heartbeat proves the worker gone
])
def test_a_job_of_a_worker_unheard_since_the_restart_is_stale_only_once_judged(
        main_db: redis.Redis, keys: KeySpace, gone_after_s: float, stale: int) -> None:
    # Given a processing job of worker w1, last heard long before the server started,
    # whose heartbeat hash is missing
    now = time.time()
    main_db.zadd(keys.jobs_by_status(JobStatus.PROCESSING), {"j1": now})
    main_db.hset(keys.job("j1"), mapping={"id": "j1", "status": "processing",
                                          "worker": "w1"})
    main_db.zadd(keys.workers(), {"w1": now - 1e6})

    # When /metrics reads its figures
    snapshot = read_metrics(main_db, main_db, main_db, keys, visibility_timeout_s=3600,
                            gone_after_s=gone_after_s)

    # Then the job is stale only when the rule judges its worker gone
    assert (snapshot.stale_jobs, snapshot.live_workers) == (stale, 0)
