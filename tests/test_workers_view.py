"""`jobtrail workers` names the jobs a live node runs from the moment their record says so."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from jobtrail.store.heartbeats import HeartbeatStore
from tests.helpers.processes import settings_env


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
