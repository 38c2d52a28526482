"""Restore from both archives: field by field equal, indexes back, tombstone gone, audited."""

from __future__ import annotations

import time

import pytest
import redis

from jobtrail.clock import now_s
from jobtrail.errors import ArchivedJobNotFoundError, RestoreConflictError
from jobtrail.keys import KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.retention import RetentionPolicy, purge, restore_ids, restore_matching
from jobtrail.store import ArchiveStore, EventLog, JobStore, RetentionStore, TombstoneStore
from tests.helpers.seeding import seed_celery_meta, seed_job

DAY = 86_400.0
C, F = JobStatus.COMPLETED, JobStatus.FAILED


@pytest.fixture
def rstore(main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> RetentionStore:
    return RetentionStore(main_db, results_db, keys)


def snapshot(main_db: redis.Redis, keys: KeySpace, job_id: str, status: JobStatus):
    return (main_db.hgetall(keys.job(job_id)), main_db.zscore(keys.jobs(), job_id),
            main_db.zscore(keys.jobs_by_status(status), job_id))


@pytest.mark.parametrize("status", [C, F])
def test_restore_is_field_by_field_equal(store: JobStore, rstore: RetentionStore,
                                         archive: ArchiveStore, keys: KeySpace,
                                         main_db: redis.Redis, results_db: redis.Redis,
                                         status: JobStatus) -> None:
    # Given a purged job
    job_id = seed_job(store, status, now_s() - 10 * DAY, problem="Solve x^2 = 4 — ünï")
    seed_celery_meta(results_db, keys, job_id)
    before = snapshot(main_db, keys, job_id, status)
    events_before = EventLog(main_db, keys).read(job_id)
    purge(rstore, archive, RetentionPolicy("p", (status,), DAY), tombstone_ttl_s=3600)
    assert store.find(job_id) is None
    # When it is restored
    report = restore_ids(rstore, archive, [job_id])
    # Then hash and index scores are as before, the tombstone is gone, the timeline goes on
    assert report.restored == 1 and report.selected == 1
    assert snapshot(main_db, keys, job_id, status) == before
    assert TombstoneStore(main_db, keys).find(job_id) is None
    events = EventLog(main_db, keys).read(job_id)
    assert [e.event_id for e in events[:len(events_before)]] == [
        e.event_id for e in events_before]
    assert [e.type for e in events[len(events_before):]] == [EventType.PURGED,
                                                             EventType.RESTORED]
    assert main_db.pttl(keys.events(job_id)) == -1
    assert archive.get(job_id).restored_at is not None
    kinds = [(r.kind, r.outcome) for r in archive.history()]
    assert kinds == [("restore", "done"), ("purge", "done")]


def test_restore_replays_the_archived_events_when_the_stream_expired(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, keys: KeySpace,
        main_db: redis.Redis) -> None:
    job_id = seed_job(store, C, now_s() - 10 * DAY)
    events_before = EventLog(main_db, keys).read(job_id)
    purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=0.05)
    time.sleep(0.15)
    assert main_db.exists(keys.events(job_id), keys.tombstone(job_id)) == 0
    restore_ids(rstore, archive, [job_id])
    events = EventLog(main_db, keys).read(job_id)
    assert events[:len(events_before)] == events_before
    assert [e.type for e in events[len(events_before):]] == [EventType.PURGED,
                                                             EventType.RESTORED]


def test_a_live_id_is_refused_and_an_unknown_one_too(store: JobStore, rstore: RetentionStore,
                                                     archive: ArchiveStore) -> None:
    purged, live = (seed_job(store, C, now_s() - 10 * DAY) for _ in range(2))
    purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=3600)
    restore_ids(rstore, archive, [live])  # now both ids are live again
    with pytest.raises(RestoreConflictError, match=f"job {live} is completed in the main DB"):
        restore_ids(rstore, archive, [live])
    with pytest.raises(ArchivedJobNotFoundError):
        restore_ids(rstore, archive, ["never-seen"])
    assert store.find(purged) is None and store.get(live).status is C


def test_restore_many_by_policy_and_since(store: JobStore, rstore: RetentionStore,
                                          archive: ArchiveStore) -> None:
    t = now_s() - 10 * DAY
    done = [seed_job(store, C, t + i) for i in range(7)]
    failed = [seed_job(store, F, t + i) for i in range(3)]
    purge(rstore, archive, RetentionPolicy("old-completed", (C,), DAY), tombstone_ttl_s=60)
    purge(rstore, archive, RetentionPolicy("old-failed", (F,), DAY), tombstone_ttl_s=60)
    # A job live again (as after a purge that died before its delete) is left alone
    restore_ids(rstore, archive, [done[0]])
    report = restore_matching(rstore, archive, policy="old-completed", batch_size=2)
    assert (report.selected, report.restored, report.conflicts) == (6, 6, [])
    assert all(store.find(j) for j in done) and not any(store.find(j) for j in failed)
    report = restore_matching(rstore, archive, purged_since=now_s() - 60)
    assert report.restored == 3 and all(store.find(j) for j in failed)
    # Purging again after a restore keeps one row per job
    purge(rstore, archive, RetentionPolicy("all", (C, F), DAY), tombstone_ttl_s=60)
    assert archive.count() == 10 and not any(store.find(j) for j in done + failed)
