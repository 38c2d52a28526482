"""ArchiveStore on SQLite and PostgreSQL: idempotent commits, read-back checks, audit rows."""

from __future__ import annotations

import hashlib
import json

import pytest
import sqlalchemy as sa

from jobtrail.errors import ArchivedJobNotFoundError, ArchiveError
from jobtrail.models import RetentionRun
from jobtrail.store import ArchiveStore
from jobtrail.store.archive import canonical_json, mask_archive_url, normalize_archive_url, seal

JOB = {"id": "j1", "problem": "1 + 1", "kind": "", "status": "completed", "created_at": "1.5",
       "started_at": "2.0", "finished_at": "3.25", "worker": "w", "attempts": "1",
       "result": '{"text":"2"}', "error": "", "version": "2"}
EVENTS = [{"event_id": "1-0", "type": "created", "at": "1.5", "status": "pending"}]


def sealed(job_id: str = "j1", *, policy: str = "p", run_id: str = "r1", at: float = 10.0,
           problem: str = "1 + 1"):
    return seal(job_id, {**JOB, "id": job_id, "problem": problem}, EVENTS,
                {"status": "SUCCESS", "result": "ünïcode"}, purged_at=at, policy=policy,
                run_id=run_id)


def test_put_is_committed_idempotent_and_read_back(archive: ArchiveStore) -> None:
    # Given a row written twice (a rerun after a crash), the second time with new content
    archive.put_many([sealed(), sealed("j2")])
    archive.put_many([sealed(problem="2 + 2", run_id="r2")])
    # Then there is still one row per job id, holding the last content, checksums intact
    assert archive.count() == 2
    row = archive.get("j1")
    assert row.job["problem"] == "2 + 2" and row.run_id == "r2"
    assert row.events == EVENTS and row.celery_meta == {"status": "SUCCESS",
                                                       "result": "ünïcode"}
    assert row.purged_at == 10.0 and row.status == "completed"
    archive.verify([sealed(problem="2 + 2", run_id="r2")])
    # And a fresh store on the same URL sees the same committed rows
    other = ArchiveStore(archive.url, table_prefix=archive.jobs_table.name[:-len("archived_jobs")])
    try:
        assert other.get("j2").job == {**JOB, "id": "j2"}
    finally:
        other.close()


def test_verify_catches_a_garbled_or_missing_row(archive: ArchiveStore) -> None:
    record = sealed()
    archive.put_many([record])
    with archive.engine.begin() as conn:
        conn.execute(sa.update(archive.jobs_table).values(
            record=record.text.replace("1 + 1", "1 + 2")))
    with pytest.raises(ArchiveError, match="fails its checksum") as info:
        archive.verify([record])
    assert info.value.job_id == "j1"
    with pytest.raises(ArchiveError, match="missing"):
        archive.verify([sealed("nope")])


def test_find_get_iter_count_and_restored_marks(archive: ArchiveStore) -> None:
    assert archive.find("j1") is None
    with pytest.raises(ArchivedJobNotFoundError, match="j1 is not in the archive"):
        archive.get("j1")
    archive.put_many([sealed(f"j{i}", policy="a" if i % 2 else "b", at=float(i))
                      for i in range(7)])
    batches = list(archive.iter_archived(batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 1]
    assert [r.job_id for b in batches for r in b] == [f"j{i}" for i in range(7)]
    assert archive.count(policy="a") == 3
    assert archive.count(purged_since=5.0) == 2
    archive.mark_restored(["j1", "j3"], 99.0)
    assert archive.get("j1").restored_at == 99.0
    assert [r.job_id for b in archive.iter_archived(policy="a", only_unrestored=True)
            for r in b] == ["j5"]
    # A purge after the restore replaces the row and clears the mark
    archive.put_many([sealed("j1", policy="a")])
    assert archive.get("j1").restored_at is None and archive.count() == 7


def test_audit_rows(archive: ArchiveStore) -> None:
    run = RetentionRun(run_id="r1", kind="purge", started_at=5.0, finished_at=None,
                       user="ops", host="h1", policy="old", selector={"status": ["completed"]},
                       counts={}, archive=archive.location, outcome="running")
    archive.start_run(run)
    archive.start_run(RetentionRun(**{**run.to_dict(), "run_id": "r2", "started_at": 6.0}))
    archive.finish_run("r1", finished_at=7.0, counts={"selected": 3, "purged": 3},
                       outcome="done")
    newest, oldest = archive.history()
    assert newest.run_id == "r2" and newest.outcome == "running"
    assert oldest.counts == {"selected": 3, "purged": 3} and oldest.finished_at == 7.0
    assert oldest.user == "ops" and oldest.selector == {"status": ["completed"]}


def test_urls_are_normalized_and_masked() -> None:
    assert normalize_archive_url("postgresql://u:pw@h/db") == "postgresql+psycopg://u:pw@h/db"
    assert mask_archive_url("postgresql+psycopg://u:pw@h/db") == "postgresql+psycopg://u:***@h/db"
    with pytest.raises(ArchiveError, match="unsupported archive URL"):
        ArchiveStore("mysql://u:secret@h/db")


def test_unreachable_archive_is_an_archive_error(tmp_path) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the SQLite file should be
    store = ArchiveStore(f"sqlite:///{tmp_path / 'dir.db'}")
    with pytest.raises(ArchiveError, match="reading the schema revision failed"):
        store.put_many([sealed()])


def test_canonical_json_is_sorted_compact_and_refuses_nan() -> None:
    assert canonical_json({"b": [1.5, "ü"], "a": None}) == '{"a":null,"b":[1.5,"ü"]}'
    # orjson refuses integers beyond 64 bits; json writes them the same canonical way
    assert canonical_json({"b": 2**70, "a": 1}) == '{"a":1,"b":1180591620717411303424}'
    # orjson would write NaN as null, silently: refused instead, like json's allow_nan=False
    with pytest.raises(ValueError, match="NaN"):
        canonical_json({"a": [float("nan")]})
    with pytest.raises(ValueError, match="NaN"):
        seal("j1", JOB, EVENTS, {"result": float("inf")}, purged_at=1.0, policy="p",
             run_id="r")


def test_sealed_text_is_what_the_checksum_covers() -> None:
    record = sealed()
    assert record.checksum == hashlib.sha256(record.text.encode()).hexdigest()
    assert json.loads(record.text) == {
        "job_id": "j1", "job": JOB, "events": EVENTS, "purged_at": 10.0, "policy": "p",
        "run_id": "r1", "celery_meta": {"status": "SUCCESS", "result": "ünïcode"}}


def test_verify_names_a_concurrent_run_that_replaced_the_row(archive: ArchiveStore) -> None:
    mine = sealed(run_id="r1")
    archive.put_many([mine])
    archive.put_many([sealed(run_id="r2")])  # another purge archived the same job meanwhile
    with pytest.raises(ArchiveError, match="replaced by run r2: another purge is running"):
        archive.verify([mine])
