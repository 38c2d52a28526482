"""One output per fact: a command's report on stdout, never its log records echoed on stderr.

Operator commands (recover, requeue, doctor, purge, restore) report what they did; the
records the services log for the same facts (the worker's only channel) stay off the
CLI's console unless -v asks for logs. Real CLI subprocesses on real Redis.
"""

from __future__ import annotations

import json

import pytest
import redis

from jobtrail.clock import now_s
from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.cli.test_cli import run
from tests.helpers.seeding import seed_job

pytestmark = [pytest.mark.slow]


def _held_by_a_gone_worker(settings: Settings, store: JobStore, broker: redis.Redis,
                           keys: KeySpace) -> str:
    """Return a processing job whose message a worker (gone, no heartbeat) took 10 min ago."""
    job = JobService(store, create_celery_app(settings)).submit("solve x + 1 = 2")
    raw = broker.rpop(keys.queue())  # what kombu's consumer does, then it files it unacked
    assert raw is not None
    tag = f"tag-{job.id}"
    broker.hset(keys.unacked(), tag, json.dumps([json.loads(raw), "", keys.queue_name]))
    broker.zadd(keys.unacked_index(), {tag: now_s() - 600})
    store.start(job.id, worker="ghost@host")
    return job.id


@pytest.mark.parametrize("command", ["recover", "requeue"])
def test_a_dead_workers_job_taken_back_is_reported_once(
        settings: Settings, store: JobStore, broker_db: redis.Redis, keys: KeySpace,
        command: str) -> None:
    # Given a processing job whose worker died holding its message
    job_id = _held_by_a_gone_worker(settings, store, broker_db, keys)
    # When an operator hands it back
    result = run(settings, command, *([job_id] if command == "requeue" else []))
    # Then the command says so on stdout, and nothing repeats it on stderr
    assert result.returncode == 0, result.stderr
    assert job_id in result.stdout
    assert result.stderr == ""
    assert store.get(job_id).status is JobStatus.PENDING


def test_with_verbose_the_record_is_logged_too(settings: Settings, store: JobStore,
                                               broker_db: redis.Redis, keys: KeySpace) -> None:
    job_id = _held_by_a_gone_worker(settings, store, broker_db, keys)
    result = run(settings, "-v", "recover")
    assert result.returncode == 0, result.stderr
    assert f"dead worker's job back to the queue job_id={job_id}" in result.stderr


def test_doctor_purge_and_restore_print_their_report_alone(settings: Settings,
                                                           store: JobStore) -> None:
    # Given a finished job, and a record jobtrail did not write (doctor reports it)
    done = seed_job(store, JobStatus.COMPLETED, now_s() - 86_400)
    store.client.hset(store.keys.job("foreign-1"), mapping={"x": "1"})
    store.client.zadd(store.keys.jobs(), {"foreign-1": now_s()})
    # When each command runs, its output is its report alone (doctor's spinner too stays
    # off a pipe)
    for args in (("doctor",), ("retention", "purge", "--status", "completed", "--older-than",
                               "1h"), ("restore", done)):
        result = run(settings, *args)
        assert [line for line in result.stderr.splitlines()
                if not line.startswith("error: ")] == [], (args, result.stderr)
