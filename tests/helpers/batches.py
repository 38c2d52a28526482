"""Batch messages built the way jobtrail's submit sends them, and reserved the way kombu does.

publish_batch() writes the jobs' records (each naming its batch, as submit_many
does) and publishes one real `jobtrail.solve_batch` message through the Celery
app, no worker needed (submit_many would pick the batch size itself);
reserve_next() takes the next message off the queue with kombu's own
`basic_get` (no ack), which files it under `unacked` / `unacked_index` as a
worker's prefetch does, and leaves it there as a worker that died would.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import Celery

from jobtrail.models import Job
from jobtrail.store import JobStore
from jobtrail.worker.app import TASK_SOLVE_BATCH, new_batch_id


def publish_batch(store: JobStore, app: Celery, problems: Sequence[str]) -> tuple[str, list[Job]]:
    """Create one pending job per problem, all in one batch message; return (batch id, jobs)."""
    batch = new_batch_id()
    jobs = store.create_many(list(problems), batches=[batch] * len(problems))
    app.send_task(TASK_SOLVE_BATCH, args=[[j.id, j.problem] for j in jobs], task_id=batch)
    return batch, jobs


def reserve_next(app: Celery, queue: str, *, delivered_ago_s: float = 0.0) -> str:
    """Deliver the next message of *queue* unacknowledged (kombu's basic_get), as a worker
    that then vanished; return its delivery tag. *delivered_ago_s* back-dates the delivery.
    """
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        message = channel.basic_get(queue, no_ack=False)
        assert message is not None, f"queue {queue} is empty"
        channel.qos.restore_at_shutdown = False  # a worker that dies restores nothing
        tag = str(message.delivery_tag)
        if delivered_ago_s:
            client = channel.client
            since = float(client.zscore(channel.unacked_index_key, tag))
            client.zadd(channel.unacked_index_key, {tag: since - delivered_ago_s})
    return tag
