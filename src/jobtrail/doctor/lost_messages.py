"""doctor's pending-without-message check: pending jobs whose task no worker will receive.

Invariant: read-only; decides by store.messages' rule (find_job_message,
confirm_lost), the one trace's `stale` verdict uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

import redis

from jobtrail.doctor.outcome import Finding, listing
from jobtrail.doctor.reads import BATCH
from jobtrail.errors import MalformedRecordError
from jobtrail.keys import KeySpace
from jobtrail.models import Job, JobStatus
from jobtrail.store.codec import decode_job
from jobtrail.store.messages import confirm_lost, find_job_message, message_ids, parse_message

__all__ = ["check_lost_pending"]


def check_lost_pending(keys: KeySpace, main: redis.Redis, broker: redis.Redis,
                       progress: Callable[[int], None]) -> Finding:
    """Pending jobs whose task is neither queued nor unacked: trace's `stale` rule.

    One pass over the queue and the unacked hash finds the candidates; each is
    then looked up again with trace's own atomic lookup (store.messages), so a
    message delivered between the two reads is not reported lost, and doctor
    and trace never disagree about a job; a job reported is still without a
    message, its record unchanged, SETTLE_S later (store.messages.confirm_lost).

    Raises:
        redis.RedisError: A DB could not be reached.
    """
    queued: set[str] = set()
    length = int(broker.llen(keys.queue()))
    for start in range(0, length, BATCH):
        for raw in cast(list[str], broker.lrange(keys.queue(), start, start + BATCH - 1)):
            if (message := parse_message(raw)) is not None:
                queued.add(message.task_id)
    for _, raw in broker.hscan_iter(keys.unacked(), count=BATCH):
        if (message := parse_message(raw)) is not None:
            queued.add(message.task_id)
    progress(length)
    ids = [str(m) for m in main.zrange(keys.jobs_by_status(JobStatus.PENDING), 0, -1)
           if str(m) not in queued]
    seen: dict[str, Job] = {}  # the pending records whose message is gone
    for start in range(0, len(ids), BATCH):
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids[start:start + BATCH]:
                pipe.hgetall(keys.job(job_id))
            records = cast(list[dict[str, str]], pipe.execute())
        for record in records:
            try:
                job = decode_job(record)
            except MalformedRecordError:
                continue  # no record (or not jobtrail's): the consistency checks report it
            # a batched job's message is its batch's (store.messages' rule)
            if job.status is JobStatus.PENDING and not set(message_ids(job)) & queued \
                    and find_job_message(broker, keys, job).lost:
                seen[job.id] = job
    lost = confirm_lost(main, broker, keys, seen)
    counts = {"queued_messages": len(queued)}
    return listing("pending-without-message", lost,
                   "pending jobs have no message in the broker: no worker will ever run "
                   "them", counts, "jobtrail requeue <id>...")
