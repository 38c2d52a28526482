"""A message taken off the queue while the broker refuses writes still runs.

Under `maxmemory` with `noeviction`, kombu's BRPOP popped the message (it
frees memory) but its unacked record (QoS.append: ZADD + HSET) was refused
with OOM; kombu raised, Celery reconnected, and the message, off the queue
and in no unacked record, was gone: its job stayed pending with no message.
jobtrail's consumer takes the message and records it in one Lua step that
pops first (worker.fetch: Redis lets a script that has written go on), so the
delivery is recorded and runs; its wait on the empty queue (BLMOVE, refused
under OOM) sleeps on the server instead while the broker is out of memory.
The broker is a server of its own here, so the main and results DBs take
writes throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.store import EventLog, JobStore
from jobtrail.worker.app import create_celery_app
from tests.conftest import BROKER_DB, make_settings
from tests.helpers.processes import WorkerProcess
from tests.helpers.waiting import job_finished, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.crash]

#: Takes SymPy minutes in pure Python: the soft time limit (2 s) ends it.
SLOW = "integrate exp(x^2)*sin(x)^5*cos(x)^3 dx"


def test_a_message_popped_while_the_broker_refuses_writes_runs_and_the_worker_serves_on(
        redis_server: Any, private_redis: Any, tmp_path: Path, main_db: redis.Redis,
        keys: KeySpace, events: EventLog,
        worker_process: Callable[..., WorkerProcess]) -> None:
    # Given a one-process worker busy with a slow job, and a second job queued behind it
    settings = make_settings(redis_server, tmp_path / "state",
                             broker_url=private_redis.url(BROKER_DB),
                             solver_time_limit_s=2.0, solver_hard_time_limit_s=6.0)
    store = JobStore(main_db, keys)
    service = JobService(store, create_celery_app(settings))
    proc = worker_process(settings, concurrency=1)
    slow = service.submit(SLOW)
    wait_until(lambda: store.get(slow.id).status is JobStatus.PROCESSING, timeout_s=60,
               message=lambda: f"the slow job started; log:\n{proc.log()[-3000:]}")
    queued = service.submit("solve x^2 - 9 = 0")

    # When the broker runs out of memory (noeviction) before the slow job ends, so the
    # queued job's message is taken off the queue while writes are refused
    broker = redis.Redis.from_url(private_redis.url(0))
    broker.config_set("maxmemory-policy", "noeviction")
    broker.config_set("maxmemory", "1")
    try:
        wait_until(lambda: job_finished(store, slow.id), timeout_s=30,
                   message=lambda: f"the slow job timed out; log:\n{proc.log()[-3000:]}")
        wait_until(lambda: broker.llen(settings.queue) == 0, timeout_s=15,
                   message="the queued job's message popped")
        # Then the queued job runs and completes all the same
        wait_until(lambda: job_finished(store, queued.id), timeout_s=30,
                   message=lambda: f"the popped job ran; log:\n{proc.log()[-3000:]}")
        # and the consumer, its queue empty, polls instead of waiting in BLMOVE (refused)
        wait_until(lambda: "the broker is out of memory: the consumer polls" in proc.log(),
                   timeout_s=10, message=lambda: f"the polling; log:\n{proc.log()[-3000:]}")
    finally:
        broker.config_set("maxmemory", "0")
    done = store.get(queued.id)
    assert (done.status, done.answer, done.attempts) == (
        JobStatus.COMPLETED, "x = -3, x = 3", 1), proc.log()[-3000:]
    assert [e.type for e in events.read(queued.id)] == [
        EventType.CREATED, EventType.STARTED, EventType.COMPLETED]
    # the delivery was recorded (no refusal), the consumer never reconnected, and the
    # ack removed the record
    assert "unacked record of a delivery not written" not in proc.log()
    assert "Connection to broker lost" not in proc.log()
    assert broker.hlen("unacked") == 0
    assert store.get(slow.id).error.startswith("timed out")
    # and the worker serves on once the broker takes writes again
    after = service.submit("solve x - 1 = 0")
    wait_until(lambda: job_finished(store, after.id), timeout_s=30,
               message=lambda: f"a job after the fault; log:\n{proc.log()[-3000:]}")
    assert store.get(after.id).answer == "x = 1"
