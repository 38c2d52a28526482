"""The dead-worker sweep puts a message back under a new delivery tag.

kombu's restore_by_tag keeps the tag, so the next delivery would hold the tag of the
one taken back: a worker that was only stopped and comes back would acknowledge (or
reject) the new delivery's message when it ends its own, and a later loss of the new
delivery would lose the message. (tests/worker/test_batch_stale_worker.py shows it with
real workers; this is the property, without them.)
"""

from __future__ import annotations

import redis

from jobtrail.config import Settings
from jobtrail.jobs import JobService
from jobtrail.store import JobStore
from jobtrail.worker.app import create_celery_app
from tests.helpers.batches import publish_batch, reserve_next


def test_a_message_taken_back_is_delivered_again_under_a_new_tag(
        settings: Settings, store: JobStore, broker_db: redis.Redis) -> None:
    service = JobService(store, create_celery_app(settings))
    batch, _ = publish_batch(store, service.app, ["solve x = 1", "solve x = 2"])
    old_tag = reserve_next(service.app, store.keys.queue(), delivered_ago_s=60)

    service.recover(gone_after_s=3.0)

    # the message is back once, under a tag of its own; the old tag acknowledges nothing
    new_tag = reserve_next(service.app, store.keys.queue())
    assert new_tag != old_tag
    assert [str(t) for t in broker_db.hkeys(store.keys.unacked())] == [new_tag]
    with service.app.connection_for_write() as conn:
        conn.default_channel.qos.restore_at_shutdown = False
        conn.default_channel.basic_ack(old_tag)
    assert broker_db.hexists(store.keys.unacked(), new_tag)
    assert broker_db.llen(store.keys.queue()) == 0 and batch.startswith("batch-")
