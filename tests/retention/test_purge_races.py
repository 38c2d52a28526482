"""Purges that meet other writers, and odd Celery results (real Redis, both archives).

The first two failed with the rank-offset selection once batches overlapped:
an entry added or left behind before the cursor shifted the next page, so
jobs were handed out twice and archived again after their Redis step.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Sequence

import pytest
import redis

from jobtrail.clock import now_s
from jobtrail.keys import KeySpace
from jobtrail.models import JobStatus
from jobtrail.retention import PurgeStep, RetentionPolicy, purge, restore_ids, restore_matching
from jobtrail.retention.selection import Selection
from jobtrail.store import ArchiveStore, JobStore, RetentionStore, TombstoneStore
from tests.helpers.seeding import seed_job

C = JobStatus.COMPLETED
DAY = 86_400.0


@pytest.fixture
def rstore(main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> RetentionStore:
    return RetentionStore(main_db, results_db, keys)


def _disagreeing(ids: Sequence[str], main_db: redis.Redis, keys: KeySpace,
                 archive: ArchiveStore) -> list[str]:
    """Purged jobs whose tombstone and archive row name different purges."""
    stones = TombstoneStore(main_db, keys)
    out = []
    for job_id in ids:
        if main_db.exists(keys.job(job_id)):
            continue
        stone, row = stones.find(job_id), archive.find(job_id)
        assert stone is not None and row is not None, job_id
        if stone.purged_at != row.purged_at:
            out.append(job_id)
    return out


def test_a_restore_during_a_purge_hands_no_job_out_twice(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, main_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given one old job purged earlier, and 40 newer old jobs
    t = now_s() - 10 * DAY
    first = seed_job(store, C, t - 1000)
    jobs = [seed_job(store, C, t + i) for i in range(40)]
    purge(rstore, archive, RetentionPolicy("p", (C,), DAY, max_per_run=1), tombstone_ttl_s=3600)
    seen: Counter[PurgeStep] = Counter()

    def restore_the_first_one(step: PurgeStep, _ids: Sequence[str]) -> None:
        seen[step] += 1
        if step is PurgeStep.READ and seen[step] == 2:  # an operator restores it meanwhile
            restore_ids(rstore, archive, [first])

    # When a purge runs (5 per batch) while that old job is restored into jobs:completed
    report = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
                   batch_size=5, redis_chunk_size=1, on_progress=restore_the_first_one)

    # Then every one of the 40 is purged once: no job handed out twice, so none is
    # archived again after (or while) its Redis step ran, and the counts are exact
    assert all(not main_db.exists(keys.job(j)) for j in jobs)
    counts = (report.selected, report.archived, report.purged, dict(report.skipped_reasons))
    assert _disagreeing(jobs, main_db, keys, archive) == [], counts
    assert report.skipped == 0, report.skipped_reasons
    assert report.selected == report.archived == report.purged


def test_a_record_deleted_outside_jobtrail_mid_purge_is_counted_once(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, main_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given 40 old jobs
    t = now_s() - 10 * DAY
    jobs = [seed_job(store, C, t + i) for i in range(40)]
    seen: Counter[PurgeStep] = Counter()
    lost: list[str] = []

    def delete_one_record(step: PurgeStep, ids: Sequence[str]) -> None:
        seen[step] += 1
        if step is PurgeStep.READ and seen[step] == 2:  # evicted, or DEL by another tool
            lost.append(ids[0])
            main_db.delete(keys.job(ids[0]))  # its index entries stay behind

    # When one record of the second batch vanishes between its read and its Redis step
    report = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
                   batch_size=5, redis_chunk_size=1, on_progress=delete_one_record)

    # Then the report counts 40 selected jobs, one of them skipped as missing, and no
    # job is archived twice
    others = [j for j in jobs if j not in lost]
    assert all(not main_db.exists(keys.job(j)) for j in others)
    counts = (report.selected, report.archived, report.purged, dict(report.skipped_reasons))
    assert _disagreeing(others, main_db, keys, archive) == [], counts
    assert (report.selected, report.purged, dict(report.skipped_reasons)) == (
        40, 39, {"missing": 1, "changed": 0})


@pytest.mark.parametrize("meta", [
    b'{"status": "SUCCESS", "result": 1e400}',      # json.loads gives inf, not NaN text
    b'{"status": "SUCCESS", "result": 1e-400}',     # underflows: would be archived as 0.0
    b'{"status": "SUCCESS", "result": "\\ud800"}',  # a lone surrogate escape
    b'{"a": 1, "a": 2}',                            # a dict would keep only the last value
    b"[" * 5000 + b"]" * 5000,                      # deeper than Python's recursion limit
    b'{"r":' * 600 + b"1" + b"}" * 600,
], ids=["overflow", "underflow", "surrogate", "duplicate-key", "deep-array", "deep-object"])
def test_a_result_the_archive_cannot_hold_exactly_is_archived_as_its_text(
        meta: bytes, store: JobStore, rstore: RetentionStore, archive: ArchiveStore,
        main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> None:
    # Given an old job whose Celery result is not JSON the archive can hold as parsed,
    # and a later one
    job_id = seed_job(store, C, now_s() - 10 * DAY)
    later = seed_job(store, C, now_s() - 9 * DAY)
    results_db.set(keys.celery_result(job_id), meta)
    # When they are purged, then neither stops the run: the text is kept as it came
    report = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600)
    assert report.purged == 2 and not main_db.exists(keys.job(later))
    assert archive.get(job_id).celery_meta == {"raw": meta.decode()}


def test_an_interrupted_restore_records_its_counts(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore) -> None:
    t = now_s() - 10 * DAY
    for i in range(6):
        seed_job(store, C, t + i)
    purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600)

    def interrupt(_ids: Sequence[str]) -> None:
        raise KeyboardInterrupt  # Ctrl-C after the first batch

    with pytest.raises(KeyboardInterrupt):
        restore_matching(rstore, archive, batch_size=2, on_progress=interrupt)
    (run,) = [r for r in archive.history() if r.kind == "restore"]
    assert (run.outcome, run.error, run.counts["restored"]) == ("failed", "interrupted", 2)


def test_a_result_that_is_not_utf8_is_archived_as_base64(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore,
        results_db: redis.Redis, keys: KeySpace) -> None:
    # Given an old job whose result a pickle serializer wrote (bytes that are not UTF-8)
    job_id = seed_job(store, C, now_s() - 10 * DAY)
    pickled = b"\x80\x04\x95\x10\x00\xff"
    results_db.set(keys.celery_result(job_id), pickled)
    report = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600)
    assert report.purged == 1
    meta = archive.get(job_id).celery_meta
    assert meta is not None and base64.b64decode(meta["raw_base64"]) == pickled


def test_an_interrupted_purge_records_its_counts_and_stops_reading(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore,
        main_db: redis.Redis, keys: KeySpace) -> None:
    # Given 30 old jobs purged 5 per batch, and a Ctrl-C during the second batch's archive
    t = now_s() - 10 * DAY
    jobs = [seed_job(store, C, t + i) for i in range(30)]
    seen: Counter[PurgeStep] = Counter()

    def interrupt(step: PurgeStep, _ids: Sequence[str]) -> None:
        seen[step] += 1
        if step is PurgeStep.ARCHIVED and seen[step] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
              batch_size=5, on_progress=interrupt)
    # Then the audit row says so, with the counts of what was done
    (run,) = archive.history()
    gone = [j for j in jobs if not main_db.exists(keys.job(j))]
    assert run.outcome == "failed" and run.error == "interrupted"
    assert run.counts["purged"] == len(gone) == 5  # the first batch only
    assert run.counts["archived"] == 5 and archive.count() == 10  # 2nd committed, unverified
    # And no batch was read after the failure beyond the one already in flight
    assert seen[PurgeStep.READ] <= 2 + 2
    # And a rerun finishes with one row per job
    again = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
                  batch_size=5)
    assert again.purged == 25 and archive.count() == 30


def test_ties_larger_than_a_page_are_each_handed_out_once_while_deleted(
        store: JobStore, rstore: RetentionStore, main_db: redis.Redis, keys: KeySpace) -> None:
    # Given 9 jobs with one finished_at and 2 later ones, paged 2 at a time
    t = now_s() - 10 * DAY
    tied = [seed_job(store, C, t) for _ in range(9)]
    later = [seed_job(store, C, t + 1), seed_job(store, C, t + 2)]
    selection = Selection(rstore, RetentionPolicy("p", (C,), DAY), now_s(), page_size=2)
    handed: list[str] = []
    while batch := selection.next_batch(2):
        handed += [c.job_id for c in batch]
        # the position entry itself disappears before the next page (as a purge deletes it)
        main_db.zrem(keys.jobs_by_status(C), batch[-1].job_id)
    # Then every job came out once, ties in id order, then the later ones
    assert handed == sorted(tied) + later


def test_an_interrupt_asked_between_batches_ends_the_purge_after_the_batches_in_flight(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore,
        main_db: redis.Redis, keys: KeySpace) -> None:
    # Given 30 old jobs purged 5 per batch, and an interrupt held (the CLI's Ctrl-C or
    # SIGTERM) from the moment the first batch is deleted
    t = now_s() - 10 * DAY
    jobs = [seed_job(store, C, t + i) for i in range(30)]
    deleted: list[str] = []

    def progress(step: PurgeStep, ids: Sequence[str]) -> None:
        if step is PurgeStep.DELETED:
            deleted.extend(ids)

    with pytest.raises(KeyboardInterrupt):
        purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
              batch_size=5, on_progress=progress, interrupted=lambda: bool(deleted))
    # Then no batch starts after it, those begun finish, and the audit counts them
    (run,) = archive.history()
    gone = [j for j in jobs if not main_db.exists(keys.job(j))]
    assert run.outcome == "failed" and run.error == "interrupted"
    assert 5 <= len(gone) < 30 and run.counts["purged"] == len(gone) == len(deleted)
    assert run.counts["archived"] == archive.count() == len(gone)
    # And a dry run asked to stop stops too, writing nothing
    with pytest.raises(KeyboardInterrupt):
        purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600,
              dry_run=True, interrupted=lambda: True)
    assert len(archive.history()) == 1
