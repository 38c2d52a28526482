"""The keyspace reads doctor's consistency checks share: SCAN in batches, atomic re-reads.

Invariant: read-only; memory O(BATCH).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import redis

from jobtrail.models import JobStatus

__all__ = ["BATCH", "STATUSES", "atomic_reread", "scan"]

#: Keys examined per round trip by the consistency checks.
BATCH = 1000
STATUSES = frozenset(s.value for s in JobStatus)


def scan(client: redis.Redis, match: str) -> Iterator[list[str]]:
    """Yield the keys matching *match*, up to BATCH a list (SCAN: a key may repeat).

    Raises:
        redis.RedisError: The DB could not be reached.
    """
    batch: list[str] = []
    for key in client.scan_iter(match=match, count=BATCH):
        batch.append(str(key))
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def atomic_reread(main: redis.Redis, ids: list[str],
                  read: Callable[[Any, str], None]) -> Iterator[tuple[str, list[Any]]]:
    """Re-read each candidate of a check in one atomic step (MULTI) per BATCH of them.

    The checks' first pass reads a record and its index entries (or its worker's
    heartbeat) in separate round trips, so a record moving between them (a
    status transition, a purge) looks inconsistent; every write of jobtrail's
    keys is one atomic step, so what is still inconsistent when read in one
    MULTI is. *read* queues a candidate's commands on the pipeline; yields each
    id with its replies, in order.

    Raises:
        redis.RedisError: The main DB could not be reached.
    """
    for start in range(0, len(ids), BATCH):
        batch = ids[start:start + BATCH]
        with main.pipeline(transaction=True) as pipe:
            sizes = []
            for job_id in batch:
                before = len(pipe.command_stack)
                read(pipe, job_id)
                sizes.append(len(pipe.command_stack) - before)
            replies = pipe.execute()
        at = 0
        for job_id, size in zip(batch, sizes, strict=True):
            yield job_id, replies[at:at + size]
            at += size
