"""Purge on real Redis into both archives: exactly the selected jobs change, and only so."""

from __future__ import annotations

import pytest
import redis
import sqlalchemy as sa

from jobtrail.clock import now_s
from jobtrail.errors import ArchiveError
from jobtrail.keys import KeyKind, KeySpace
from jobtrail.models import EventType, JobStatus
from jobtrail.retention import PurgeStep, RetentionPolicy, purge
from jobtrail.store import ArchiveStore, EventLog, JobStore, RetentionStore, TombstoneStore
from jobtrail.store.stats import StatsStore
from tests.helpers.seeding import dump_db, seed_celery_meta, seed_job

DAY = 86_400.0
TTL_S = 3_600.0
C, F, P = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.PENDING


@pytest.fixture
def rstore(main_db: redis.Redis, results_db: redis.Redis, keys: KeySpace) -> RetentionStore:
    return RetentionStore(main_db, results_db, keys)


def old_completed(store: JobStore, n: int, *, age_s: float = 10 * DAY) -> list[str]:
    t = now_s() - age_s
    return [seed_job(store, C, t + i) for i in range(n)]


def test_purge_changes_exactly_the_selected_jobs(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, keys: KeySpace,
        main_db: redis.Redis, broker_db: redis.Redis, results_db: redis.Redis) -> None:
    # Given old and recent jobs of every status, Celery results, and unrelated keys in all DBs
    now = now_s()
    old_c = [seed_job(store, C, now - 9 * DAY + i) for i in range(5)]
    old_f = [seed_job(store, F, now - 8 * DAY + i) for i in range(3)]
    recent = [seed_job(store, C, now - 3600), seed_job(store, F, now - 60)]
    seed_job(store, P, now - 30 * DAY)
    seed_job(store, JobStatus.PROCESSING, now - 30 * DAY)
    metas = {job_id: seed_celery_meta(results_db, keys, job_id) for job_id in old_c[:3] + recent}
    main_db.set("unrelated:string", "x")
    main_db.hset("unrelated:hash", mapping={"a": "1"})
    main_db.zadd("unrelated:zset", {"m": 1.0})
    broker_db.lpush("jobtrail", "message")
    broker_db.hset("unacked", "tag", "payload")
    results_db.set("other-result", "y", ex=500)
    before = {db: dump_db(c) for db, c in (("main", main_db), ("broker", broker_db),
                                            ("results", results_db))}
    selected = old_c + old_f

    # When the policy purges completed and failed jobs older than 7 days
    policy = RetentionPolicy("weekly", (C, F), 7 * DAY)
    report = purge(rstore, archive, policy, tombstone_ttl_s=TTL_S, batch_size=3, now=now)

    # Then the report counts them and names the archive
    assert (report.selected, report.archived, report.purged, report.skipped) == (8, 8, 8, 0)
    assert report.archive == archive.location and report.stuck == {"pending": 1,
                                                                   "processing": 1}
    # And the broker and results DBs are untouched, key for key
    assert dump_db(broker_db) == before["broker"]
    assert dump_db(results_db) == before["results"]
    # And in the main DB only the selected jobs' keys changed, in the documented way
    after = dump_db(main_db)
    changed = {k for k in set(before["main"]) | set(after)
               if before["main"].get(k) != after.get(k)}
    index_keys = {keys.jobs(), keys.jobs_by_status(C), keys.jobs_by_status(F)}
    # jobtrail's own statistics count the purge in the same atomic step
    stats_keys = {k for k in changed if keys.classify_key(k) is KeyKind.STATS}
    assert {keys.stats(), keys.events_feed()} <= stats_keys
    expected = index_keys | stats_keys | {key for j in selected for key in (
        keys.job(j), keys.events(j), keys.tombstone(j))}
    assert changed == expected
    assert main_db.hget(keys.stats(), "purged") == "8"
    for key in index_keys:
        kept = [m for m in before["main"][key][1] if m[0] not in selected]
        assert after[key][1] == kept
    tombstones = TombstoneStore(main_db, keys)
    for job_id in selected:
        assert keys.job(job_id) not in after
        stone = tombstones.find(job_id)
        assert stone is not None and stone.policy == "weekly" and stone.run_id == report.run_id
        assert stone.archive == archive.location and 0 < (stone.ttl_s or 0) <= TTL_S
        events = EventLog(main_db, keys).read(job_id)
        assert events[-1].type is EventType.PURGED and events[-1].fields["run_id"] == report.run_id
        assert 0 < main_db.pttl(keys.events(job_id)) <= TTL_S * 1000
        # And the archive row has every hash field, the events, the Celery metadata
        row = archive.get(job_id)
        assert row.job == before["main"][keys.job(job_id)][1]
        assert [e["event_id"] for e in row.events] == [
            e[0] for e in before["main"][keys.events(job_id)][1]]
        assert row.celery_meta == metas.get(job_id)
        assert row.purged_at == stone.purged_at and row.policy == "weekly"
    assert archive.count() == 8
    # And the dashboard's feed got one `purged` entry per Redis step (batch), not per job
    feed = [e for e in StatsStore(main_db, keys).recent_events(50) if e["type"] == "purged"]
    assert sorted(int(e["count"]) for e in feed) == [2, 3, 3]
    assert {e["job_id"] for e in feed} | {e["last_job_id"] for e in feed} <= set(selected)
    assert {e["run_id"] for e in feed} == {report.run_id}
    (run,) = archive.history()
    assert run.outcome == "done" and run.counts["purged"] == 8 and run.policy == "weekly"
    assert run.selector["status"] == ["completed", "failed"] and run.user and run.host


def test_dry_run_writes_nothing_and_previews(store: JobStore, rstore: RetentionStore,
                                            archive: ArchiveStore, main_db: redis.Redis,
                                            results_db: redis.Redis) -> None:
    now = now_s()
    ids = [seed_job(store, C, now - 20 * DAY + i) for i in range(12)]
    seed_job(store, P, now - 20 * DAY)
    before = dump_db(main_db), dump_db(results_db)
    report = purge(rstore, archive, RetentionPolicy("x", (C,), DAY, keep_last=2),
                   tombstone_ttl_s=TTL_S, dry_run=True, batch_size=5, now=now)
    assert (dump_db(main_db), dump_db(results_db)) == before
    assert archive.count() == 0 and archive.history() == []
    assert report.dry_run and report.run_id == ""
    assert (report.selected, report.archived, report.purged) == (10, 0, 0)
    assert report.sample_ids == ids[:10]
    assert report.oldest_finished_at == pytest.approx(now - 20 * DAY)
    assert report.newest_finished_at == pytest.approx(now - 20 * DAY + 9)
    assert report.stuck == {"pending": 1, "processing": 0}
    for field in ("selected", "archived", "purged", "skipped", "elapsed_s", "archive"):
        assert field in report.to_dict()


def test_old_pending_jobs_are_never_purged(store: JobStore, rstore: RetentionStore,
                                           archive: ArchiveStore) -> None:
    pending = seed_job(store, P, now_s() - 365 * DAY)
    report = purge(rstore, archive, RetentionPolicy("all", (C, F), 0.0),
                   tombstone_ttl_s=TTL_S)
    assert report.selected == 0 and store.get(pending).status is P
    assert report.stuck["pending"] == 1


def test_a_job_that_changes_during_the_purge_is_not_deleted(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, keys: KeySpace,
        main_db: redis.Redis) -> None:
    ids = old_completed(store, 4)
    changed, vanished = ids[1], ids[2]

    def meddle(step: PurgeStep, _ids: object) -> None:
        # An out-of-band writer changes one record and deletes another between the
        # archive commit and the Redis step
        if step is PurgeStep.ARCHIVED:
            main_db.hset(keys.job(changed), mapping={"version": "99", "error": "edited"})
            main_db.delete(keys.job(vanished))

    report = purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=TTL_S,
                   on_progress=meddle)
    assert (report.purged, report.skipped) == (2, 2)
    assert report.skipped_reasons == {"changed": 1, "missing": 1}
    job = store.get(changed)
    assert job.version == 99 and job.error == "edited"
    assert main_db.zscore(keys.jobs_by_status(C), changed) is not None
    assert TombstoneStore(main_db, keys).find(changed) is None
    assert {ids[0], ids[3]} == {j for j in ids if store.find(j) is None} - {vanished}


def test_an_archive_that_refuses_a_row_stops_the_run_and_deletes_nothing_of_its_batch(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore) -> None:
    # Given 12 old jobs, and an archive that refuses the 7th (second batch of 5)
    ids = old_completed(store, 12)
    refuse_insert(archive, ids[6])
    # When a purge runs in batches of 5
    with pytest.raises(ArchiveError, match="refused") as info:
        purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=TTL_S,
              batch_size=5)
    # Then the first batch is purged and archived, and every later job is live
    assert info.value.location == archive.location
    assert all(store.find(j) is None and archive.find(j) for j in ids[:5])
    assert all(store.find(j) is not None for j in ids[5:])
    assert archive.count() == 5
    (run,) = archive.history()
    assert run.outcome == "failed" and "refused" in run.error and run.counts["purged"] == 5


def test_a_garbled_read_back_deletes_nothing_of_its_batch(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore) -> None:
    ids = old_completed(store, 4)

    def garble(step: PurgeStep, batch: object) -> None:
        if step is PurgeStep.ARCHIVED:
            with archive.engine.begin() as conn:
                conn.execute(sa.update(archive.jobs_table).values(record="{}"))

    with pytest.raises(ArchiveError, match="checksum"):
        purge(rstore, archive, RetentionPolicy("p", (C,), DAY), tombstone_ttl_s=TTL_S,
              on_progress=garble)
    assert all(store.find(j) is not None for j in ids)


def test_keep_last_and_max_per_run_across_batches(store: JobStore, rstore: RetentionStore,
                                                  archive: ArchiveStore) -> None:
    t = now_s() - 10 * DAY
    ids = [seed_job(store, C if i % 3 else F, t + i // 2) for i in range(20)]  # pairs tie
    policy = RetentionPolicy("p", (C, F), DAY, keep_last=5, max_per_run=12)
    first = purge(rstore, archive, policy, tombstone_ttl_s=TTL_S, batch_size=4)
    second = purge(rstore, archive, policy, tombstone_ttl_s=TTL_S, batch_size=4)
    assert (first.purged, second.purged) == (12, 3)
    live = sorted((store.get(j).finished_at or 0.0, j) for j in ids if store.find(j))
    assert len(live) == 5 and archive.count() == 15
    purged = sorted((float(archive.get(j).job["finished_at"]), j)
                    for j in ids if not store.find(j))
    assert purged[-1] < live[0]


def refuse_insert(archive: ArchiveStore, job_id: str) -> None:
    """Make the archive database itself refuse any row for *job_id* (a real DB error)."""
    archive.ensure_schema()
    table = archive.jobs_table.name
    with archive.engine.begin() as conn:
        if archive.dialect == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_refuse BEFORE INSERT ON {table} "
                f"WHEN NEW.job_id = '{job_id}' BEGIN SELECT RAISE(ABORT, 'refused'); END")
        else:
            conn.exec_driver_sql(
                f"CREATE FUNCTION {table}_refuse() RETURNS trigger AS $$ BEGIN "
                f"IF NEW.job_id = '{job_id}' THEN RAISE EXCEPTION 'refused'; END IF; "
                f"RETURN NEW; END $$ LANGUAGE plpgsql")
            conn.exec_driver_sql(
                f"CREATE TRIGGER {table}_refuse BEFORE INSERT ON {table} "
                f"FOR EACH ROW EXECUTE FUNCTION {table}_refuse()")


def test_a_dangling_index_entry_does_not_stall_a_capped_purge(
        store: JobStore, rstore: RetentionStore, archive: ArchiveStore, main_db: redis.Redis,
        keys: KeySpace) -> None:
    # Given the oldest completed job deleted by another client (its index entry dangles)
    ids = old_completed(store, 3)
    main_db.delete(keys.job(ids[0]))
    policy = RetentionPolicy("capped", (C,), DAY, max_per_run=1)

    # When capped runs follow one another
    first = purge(rstore, archive, policy, tombstone_ttl_s=TTL_S, batch_size=1)
    second = purge(rstore, archive, policy, tombstone_ttl_s=TTL_S, batch_size=1)

    # Then each still purges one job: the dangling entry is skipped, not counted
    assert (first.purged, first.skipped_reasons.get("missing")) == (1, 1)
    assert second.purged == 1
    assert store.find(ids[1]) is None and store.find(ids[2]) is None
    assert main_db.zscore(keys.jobs_by_status(C), ids[0]) is not None  # evidence kept
