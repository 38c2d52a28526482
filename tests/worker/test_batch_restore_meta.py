"""A redelivered batch restores a finished job's missing Celery result as Celery wrote it:
its date_done the job's finish, its TTL what was left of result_expires_s, and none once
result_expires_s has passed since the finish (Celery's result would be gone already)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow]


def test_a_restored_result_keeps_the_finish_time_and_the_rest_of_its_ttl(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of three jobs run by a worker (results kept 30 s), its message kept
    settings = make_settings(redis_server, tmp_path / "state", result_expires_s=30,
                             batch_max_jobs=4)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    jobs = service.submit_many(["1 + 1", "2 + 1", "3 + 1", "solve x^2 = "])
    [message] = broker_db.lrange(keys.queue(), 0, -1)
    proc = worker_process(settings)
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in jobs),
               timeout_s=60, message=lambda: f"jobs to finish; log:\n{proc.log()[-2000:]}")
    finals = [store.get(j.id) for j in jobs]
    first = json.loads(results_db.get(keys.celery_result(jobs[0].id)))
    failed = json.loads(results_db.get(keys.celery_result(jobs[3].id)))

    # When the three results are lost, the second's record says it finished 25 s ago and
    # the third's 40 s ago (the first's its true time), and 3 s later the batch message
    # is delivered again
    results_db.delete(*(keys.celery_result(j.id) for j in jobs))
    main_db.hset(keys.job(jobs[1].id), "finished_at", repr(time.time() - 25))
    main_db.hset(keys.job(jobs[2].id), "finished_at", repr(time.time() - 40))
    time.sleep(3)
    broker_db.lpush(keys.queue(), message)
    wait_until(lambda: results_db.exists(keys.celery_result(jobs[0].id)), timeout_s=60,
               message=lambda: f"the result to be restored; log:\n{proc.log()[-2000:]}")
    wait_until(lambda: broker_db.llen(keys.queue()) == 0 and not broker_db.hlen(
        keys.unacked()), timeout_s=30)

    # Then the first job's result is Celery's as first written: status, result,
    # date_done the finish time, TTL the rest of the 30 s
    restored = json.loads(results_db.get(keys.celery_result(jobs[0].id)))
    assert (restored["status"], restored["result"]) == ("SUCCESS", finals[0].result)
    done = datetime.fromisoformat(restored["date_done"]).timestamp()
    assert finals[0].finished_at is not None
    assert abs(done - finals[0].finished_at) < 1.0, (restored["date_done"], first)
    ttl = results_db.ttl(keys.celery_result(jobs[0].id))
    assert 0 < ttl <= 30 - 3, ttl
    # and the second's (finished 25 + 3 s ago) has 2 s left; the third's would have
    # expired 13 s ago: not brought back
    ttl2 = results_db.ttl(keys.celery_result(jobs[1].id))
    assert 0 < ttl2 <= 30 - 25 - 3 + 1, ttl2
    assert not results_db.exists(keys.celery_result(jobs[2].id))
    # and the failed job's is the FAILURE first written, its date_done the finish's
    again = json.loads(results_db.get(keys.celery_result(jobs[3].id)))
    assert {**again, "date_done": ""} == {**failed, "date_done": ""}
    assert abs(datetime.fromisoformat(again["date_done"]).timestamp() -
               datetime.fromisoformat(failed["date_done"]).timestamp()) < 1.0


def test_a_result_kept_forever_is_restored_forever(
        redis_server: Any, tmp_path: Path, main_db: redis.Redis, broker_db: redis.Redis,
        results_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a batch of two jobs run with results kept forever (RESULT_EXPIRES_S=never)
    settings = make_settings(redis_server, tmp_path / "state", result_expires_s="never",
                             batch_max_jobs=2)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    jobs = service.submit_many(["1 + 1", "2 + 1"])
    [message] = broker_db.lrange(keys.queue(), 0, -1)
    proc = worker_process(settings)
    wait_until(lambda: all(job_finished(store, j.id, results_db) for j in jobs),
               timeout_s=60, message=lambda: f"jobs to finish; log:\n{proc.log()[-2000:]}")
    assert [results_db.ttl(keys.celery_result(j.id)) for j in jobs] == [-1, -1]

    # When both results are lost (the second job finished a day ago) and the batch
    # message is delivered again
    results_db.delete(*(keys.celery_result(j.id) for j in jobs))
    main_db.hset(keys.job(jobs[1].id), "finished_at", repr(time.time() - 86_400))
    broker_db.lpush(keys.queue(), message)

    # Then both are restored without a TTL
    wait_until(lambda: all(results_db.exists(keys.celery_result(j.id)) for j in jobs),
               timeout_s=60,
               message=lambda: f"the results to be restored; log:\n{proc.log()[-2000:]}")
    assert [results_db.ttl(keys.celery_result(j.id)) for j in jobs] == [-1, -1]
