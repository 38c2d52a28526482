"""doctor's consistency checks of the main DB: index entries, records and Celery results agree.

Invariant: read-only; streams the keyspaces with SCAN and pipelines, so memory
stays O(BATCH); every candidate is read again in one MULTI before it is reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, cast

import redis

from jobtrail.doctor.outcome import Finding, listing
from jobtrail.doctor.reads import BATCH, STATUSES, atomic_reread, scan
from jobtrail.keys import CELERY_RESULT_PREFIX, KeyKind, KeySpace
from jobtrail.models import JobStatus

__all__ = ["check_consistency"]


def _still_unindexed(keys: KeySpace, main: redis.Redis, ids: list[str]) -> list[str]:
    """The records of *ids* that, read atomically, lack a valid status or an index entry."""
    indexes = [keys.jobs(), *(keys.jobs_by_status(s) for s in JobStatus)]

    def read(pipe: Any, job_id: str) -> None:
        pipe.exists(keys.job(job_id))
        pipe.hget(keys.job(job_id), "status")
        for name in indexes:
            pipe.zscore(name, job_id)

    out = []
    for job_id, (exists, status, in_all, *by_status) in atomic_reread(main, ids, read):
        in_status = dict(zip((s.value for s in JobStatus), by_status, strict=True))
        if exists and (status not in STATUSES or in_all is None or in_status[status] is None):
            out.append(job_id)
    return out


def _still_orphaned(keys: KeySpace, main: redis.Redis, ids: list[str]) -> list[str]:
    """The ids that, read atomically, are in the `jobs` index with no record."""

    def read(pipe: Any, job_id: str) -> None:
        pipe.zscore(keys.jobs(), job_id)
        pipe.exists(keys.job(job_id))

    return [j for j, (score, exists) in atomic_reread(main, ids, read)
            if score is not None and not exists]


def check_consistency(keys: KeySpace, main: redis.Redis, results: redis.Redis,
                      progress: Callable[[int], None]) -> Iterator[Finding]:
    """Index entries without a record, records missing from their indexes, results alone.

    Args:
        keys: Key builder of the main DB.
        main: The main DB.
        results: The result backend.
        progress: Called with the number of keys examined after each batch.

    Raises:
        redis.RedisError: A DB could not be reached.
    """
    orphans: list[str] = []          # index entries without a hash
    unindexed: list[str] = []        # hashes missing from the indexes
    results_alone: list[str] = []    # results with no record and no tombstone
    counts = {"index_entries": 0, "records": 0, "results": 0}
    start = 0
    while batch := cast(list[str], main.zrange(keys.jobs(), start, start + BATCH - 1)):
        start += len(batch)
        with main.pipeline(transaction=False) as pipe:
            for job_id in batch:
                pipe.exists(keys.job(job_id))
            orphans += [j for j, e in zip(batch, pipe.execute(), strict=True) if not e]
        counts["index_entries"] += len(batch)
        progress(len(batch))
    for batch in scan(main, keys.job("*")):
        ids = [k[len(keys.job("")):] for k in batch if keys.classify_key(k) is KeyKind.JOB]
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hget(keys.job(job_id), "status")
            statuses = [s if s in STATUSES else None for s in pipe.execute()]
        with main.pipeline(transaction=False) as pipe:
            for job_id, status in zip(ids, statuses, strict=True):
                pipe.zscore(keys.jobs(), job_id)
                pipe.zscore(keys.jobs_by_status(status or JobStatus.PENDING), job_id)
            replies = pipe.execute()
        for job_id, status, in_all, in_status in zip(ids, statuses, replies[::2], replies[1::2],
                                                     strict=True):
            if status is None or in_all is None or in_status is None:
                unindexed.append(job_id)  # a candidate: re-read atomically below
        counts["records"] += len(ids)
        progress(len(ids))
    for batch in scan(results, f"{CELERY_RESULT_PREFIX}*"):
        ids = [k[len(CELERY_RESULT_PREFIX):] for k in batch]
        with main.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.exists(keys.job(job_id), keys.tombstone(job_id))
            results_alone += [j for j, n in zip(ids, pipe.execute(), strict=True) if not n]
        counts["results"] += len(ids)
        progress(len(ids))
    orphans = _still_orphaned(keys, main, orphans)
    unindexed = _still_unindexed(keys, main, unindexed)
    yield listing("orphan-index-entries", orphans, "index entries point to no job record",
                  counts, "jobtrail trace <id> tells what became of each")
    yield listing("unindexed-records", unindexed,
                  "job records are missing from their indexes (purge cannot select them)",
                  counts, "jobtrail trace <id>; restore the index entries")
    yield listing("results-without-record", results_alone,
                  "Celery results have no job record and no tombstone: records deleted "
                  "outside jobtrail, or lost in a failover", counts,
                  "jobtrail trace <id> tells which")
