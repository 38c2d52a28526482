"""`jobtrail requeue A B`: each id on its own; a refused one does not hide the ones sent."""

from __future__ import annotations

import json

import redis

from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.cli.test_cli import run


def _queued_ids(broker: redis.Redis, keys: KeySpace) -> list[str]:
    return [json.loads(raw)["headers"]["id"]
            for raw in reversed(broker.lrange(keys.queue(), 0, -1))]


def test_requeue_of_a_lost_and_a_queued_job_reports_both(
        settings: Settings, store: JobStore, broker_db: redis.Redis, keys: KeySpace) -> None:
    # Given a pending job whose message was lost, between two whose messages are queued
    service = JobService(store, create_celery_app(settings))
    lost = service.submit("2 + 1")
    broker_db.delete(keys.queue())
    queued = service.submit("1 + 1")
    other = service.submit("3 + 1")
    assert _queued_ids(broker_db, keys) == [queued.id, other.id]

    # When the three are requeued in one command, the queued one first
    cli = run(settings, "requeue", queued.id, lost.id, other.id)

    # Then the lost job's message is sent once, and the command says so on stdout; each
    # queued one is refused on a stderr line of its own; exit 1
    assert _queued_ids(broker_db, keys) == [queued.id, other.id, lost.id]
    assert cli.stdout.splitlines() == [f"requeued {lost.id}"], (cli.stdout, cli.stderr)
    first, second = cli.stderr.splitlines()
    assert first.startswith(f"error: job {queued.id} not requeued: its message {queued.id} "
                            "is still in the broker (queued, 0 ahead)"), first
    assert second.startswith(f"error: job {other.id} not requeued"), second
    assert cli.returncode == 1

    # and --json lists the jobs requeued (none now: all three are queued), exit 1
    again = run(settings, "requeue", lost.id, "--json")
    assert (json.loads(again.stdout), again.returncode) == ([], 1), again.stderr
