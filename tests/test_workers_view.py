"""`jobtrail workers` names the jobs a live node runs from the moment their record says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable

import pytest
import redis

from jobtrail.api.app import create_app
from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import TERMINAL_STATUSES
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from jobtrail.worker.app import create_celery_app
from tests.cli.test_cli import run
from tests.helpers.api_server import client, serve_in_thread
from tests.helpers.processes import WorkerProcess, settings_env
from tests.helpers.waiting import wait_until
from tests.worker.test_dead_worker import SLOW_PROBLEM


def test_a_job_started_after_the_last_heartbeat_is_listed_under_its_worker(
        settings: Settings, store: JobStore, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given a live worker whose last heartbeat (up to 10 s old) lists no job, and a
    # redelivered job its record says that worker started since
    beats = HeartbeatStore(main_db, keys)
    beats.beat("w2@host", pid=os.getpid(), started_at=now_s(), jobs=[], interval_s=30,
               polled_at=now_s())
    beats.beat("w3@host", pid=os.getpid(), started_at=now_s(), jobs=[], interval_s=30,
               polled_at=now_s())
    job = store.create("Solve x = 1")
    store.start(job.id, worker="w2@host")

    # When the user asks which jobs the workers run
    result = subprocess.run([sys.executable, "-m", "jobtrail", "workers", "--json"],
                            env=settings_env(settings), capture_output=True, text=True,
                            timeout=60, check=False)

    # Then w2 is running it (as trace and the record say), and w3 is not
    assert result.returncode == 0, result.stderr
    jobs = {w["name"]: w["jobs"] for w in json.loads(result.stdout)}
    assert jobs == {"w2@host": [job.id], "w3@host": []}


@pytest.mark.slow
def test_a_job_finished_since_the_last_heartbeat_is_not_listed_as_running(
        settings: Settings, store: JobStore, main_db: redis.Redis, keys: KeySpace,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a real worker beating every 6 s and a job that runs 8 s (its soft limit),
    # submitted just after a beat: the next beat lists it, the one after comes 4 s
    # after it finished
    slow = settings.model_copy(update={"heartbeat_interval_s": 6.0,
                                       "solver_time_limit_s": 8.0,
                                       "solver_hard_time_limit_s": 11.0})
    worker_process(slow, hostname="wv")
    node = wait_until(lambda: next((str(n) for n in main_db.zrange(keys.workers(), 0, -1)), None),
                      timeout_s=60, message="the worker's first heartbeat")
    first = float(main_db.hget(keys.worker(node), "last_seen") or 0.0)
    wait_until(lambda: float(main_db.hget(keys.worker(node), "last_seen") or 0.0) > first,
               timeout_s=20, interval_s=0.05, message="the next heartbeat")
    job = JobService(store, create_celery_app(slow)).submit(SLOW_PROBLEM)
    wait_until(lambda: job.id in json.loads(main_db.hget(keys.worker(node), "jobs") or "[]"),
               timeout_s=20, interval_s=0.05, message="a heartbeat listing the job")
    beat_at = main_db.hget(keys.worker(node), "last_seen")

    with serve_in_thread(create_app(slow)) as base, client(base) as http:
        # When the job finishes, and the views are read before the next heartbeat
        wait_until(lambda: store.get(job.id).status in TERMINAL_STATUSES, timeout_s=30,
                   interval_s=0.05, message="the job to finish")
        listed = run(slow, "workers", "--json")
        dashboard = http.get("/dashboard/data").json()

        # Then (the heartbeat still naming the finished job) no view lists it as running
        assert main_db.hget(keys.worker(node), "last_seen") == beat_at, "a beat came between"
        assert job.id in json.loads(main_db.hget(keys.worker(node), "jobs") or "[]")
    assert listed.returncode == 0, listed.stderr
    assert {w["name"]: w["jobs"] for w in json.loads(listed.stdout)} == {node: []}
    assert {w["name"]: w["jobs"] for w in dashboard["workers"]} == {node: []}
    assert [b.jobs for b in HeartbeatStore(main_db, keys).list_running()] == [()]
