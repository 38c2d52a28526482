"""Archive schema migrations: an archive of today's shape upgrades with nothing lost.

Runs on SQLite and, where JOBTRAIL_TEST_POSTGRES_URL is set, PostgreSQL (the
`archive` fixture's parameters), each case with tables of its own prefix.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
import sqlalchemy as sa

from jobtrail.config import Settings
from jobtrail.errors import ArchiveSchemaError
from jobtrail.models import RetentionRun
from jobtrail.store import ArchiveStore
from jobtrail.store.archive import SealedRecord, canonical_json, seal
from jobtrail.store.archive_schema import HEAD_REVISION, version_table
from tests.helpers.processes import settings_env


def _legacy_tables(prefix: str) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """The archive's tables exactly as jobtrail created them before migrations."""
    meta = sa.MetaData()
    jobs = sa.Table(
        f"{prefix}archived_jobs", meta,
        sa.Column("job_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("purged_at", sa.Double, nullable=False, index=True),
        sa.Column("policy", sa.String(64), nullable=False, index=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("restored_at", sa.Double, nullable=True))
    runs = sa.Table(
        f"{prefix}retention_runs", meta,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False, index=True),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("archive", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False))
    return meta, jobs, runs


def _records() -> list[SealedRecord]:
    """Records as a purge seals them: real job hashes, events and Celery results."""
    out = []
    for n, (problem, status, error) in enumerate([
            ("solve x^2 - 5x + 6 = 0", "completed", ""),
            ("∫ sin(x)² dx — «ünïcode»", "completed", ""),
            ("x\x00 + 1", "failed", "could not parse the problem at position 1"),
            ("__import__('os')", "failed", "could not parse the problem at position 0")]):
        job_id = f"{uuid.uuid4()}"
        job = {"id": job_id, "problem": problem, "kind": "equation", "status": status,
               "created_at": f"{1764633600.125 + n}", "started_at": f"{1764633600.5 + n}",
               "finished_at": f"{1764633601.75 + n}", "worker": "w1@host", "attempts": "1",
               "result": '{"kind":"equation","text":"x = 2, x = 3"}' if not error else "",
               "error": error, "version": "3"}
        events = [{"event_id": f"1764633600125-{n}", "type": "created", "at": job["created_at"]},
                  {"event_id": f"1764633601750-{n}", "type": status, "at": job["finished_at"]}]
        meta = {"status": "SUCCESS" if not error else "FAILURE", "task_id": job_id,
                "result": {"text": "x = 2, x = 3", "big": 2**70, "ratio": 0.1},
                "date_done": "2025-12-02T00:00:01.750000+00:00"}
        out.append(seal(job_id, job, events, meta, purged_at=1764720000.123456 + n,
                        policy="completed-7d", run_id="run-1"))
    return out


RUN = RetentionRun(run_id="run-1", kind="purge", started_at=1764720000.0,
                   finished_at=1764720001.5, user="ops", host="h1", policy="completed-7d",
                   selector={"status": "completed", "older_than_s": 604800.0},
                   counts={"archived": 3, "purged": 3}, archive="sqlite:///a.db",
                   outcome="ok", error="")


@pytest.fixture
def legacy(archive: ArchiveStore) -> Iterator[tuple[str, str]]:
    """(url, prefix) of an archive of today's shape, in the fixture's database."""
    prefix = f"l{uuid.uuid4().hex[:12]}_"
    yield archive.url, prefix
    owner = ArchiveStore(archive.url, table_prefix=prefix)
    owner.drop_schema()
    owner.close()


def _create_legacy(url: str, prefix: str, records: list[SealedRecord]) -> None:
    engine = sa.create_engine(url)
    meta, jobs, runs = _legacy_tables(prefix)
    meta.create_all(engine)
    with engine.begin() as conn:
        if records:
            conn.execute(sa.insert(jobs), [
                {"job_id": r.job_id, "status": r.status, "finished_at": r.finished_at,
                 "purged_at": r.purged_at, "policy": r.policy, "run_id": r.run_id,
                 "checksum": r.checksum, "record": r.text,
                 "restored_at": 1764800000.5 if i == 1 else None}
                for i, r in enumerate(records)])
            conn.execute(sa.insert(runs), {
                **{f: getattr(RUN, f) for f in ("run_id", "kind", "started_at", "finished_at",
                                                "user", "host", "policy", "archive",
                                                "outcome", "error")},
                "selector": canonical_json(RUN.selector), "counts": canonical_json(RUN.counts)})
    engine.dispose()


def _shape(url: str, prefix: str) -> dict[str, object]:
    """Columns (name, type, nullable), primary keys and indexed columns of both tables."""
    engine = sa.create_engine(url)
    inspector = sa.inspect(engine)
    shape: dict[str, object] = {}
    for table in ("archived_jobs", "retention_runs"):
        name = f"{prefix}{table}"
        shape[table] = (
            [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(name)],
            inspector.get_pk_constraint(name)["constrained_columns"],
            sorted((i["name"].removeprefix(f"ix_{prefix}"), i["column_names"])
                   for i in inspector.get_indexes(name)))
    engine.dispose()
    return shape


def _column_types(url: str, table: str) -> dict[str, str]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT column_name, data_type FROM "
                                    "information_schema.columns WHERE table_name = :t"),
                            {"t": table})
        types = {name: kind for name, kind in rows}
    engine.dispose()
    return types


@pytest.mark.slow
def test_archive_of_todays_shape_upgrades_with_nothing_lost(
        legacy: tuple[str, str], settings: Settings) -> None:
    # Given an archive of today's shape holding real rows: four purged jobs (one restored
    # since, one whose problem holds a NUL, which jsonb refuses) and the audit row
    url, prefix = legacy
    records = _records()
    _create_legacy(url, prefix, records)

    # When jobtrail opens it, it refuses with one line naming the command
    behind = ArchiveStore(url, table_prefix=prefix)
    with pytest.raises(ArchiveSchemaError) as refused:
        behind.get(records[0].job_id)
    behind.close()
    assert "run `jobtrail archive upgrade`" in str(refused.value)
    assert "\n" not in str(refused.value) and refused.value.current == "0001"

    # When the operator runs the command
    cli = settings.model_copy(update={"archive_url": url, "archive_table_prefix": prefix})
    done = subprocess.run([sys.executable, "-m", "jobtrail", "archive", "upgrade"],
                          env=settings_env(cli), capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(f"upgraded from revision 0001 to {HEAD_REVISION}\n")

    # Then every row reads back as it was sealed: same record, checksum, times, audit
    store = ArchiveStore(url, table_prefix=prefix)
    try:
        store.verify(records)   # the stored canonical text is byte for byte the sealed one
        for i, record in enumerate(records):
            row = store.get(record.job_id)
            assert (row.purged_at, row.policy, row.run_id, row.checksum) == (
                record.purged_at, record.policy, record.run_id, record.checksum)
            assert canonical_json({"job_id": row.job_id, "job": row.job, "events": row.events,
                                   "celery_meta": row.celery_meta, "purged_at": row.purged_at,
                                   "policy": row.policy, "run_id": row.run_id}) == record.text
            assert row.restored_at == (1764800000.5 if i == 1 else None)
        assert store.count(purged_since=records[1].purged_at) == 3
        assert store.count(only_unrestored=True) == 3
        assert store.get(records[2].job_id).job["problem"] == "x\x00 + 1"
        assert store.history() == [RUN]
        # and the upgraded archive takes new purges
        fresh = [replace(r, run_id="run-2") for r in _records()]
        store.put_many(fresh)
        store.verify(fresh)
        assert store.schema_revision() == HEAD_REVISION
    finally:
        store.close()
    if url.startswith("postgresql"):
        jobs = _column_types(url, f"{prefix}archived_jobs")
        runs = _column_types(url, f"{prefix}retention_runs")
        assert {jobs[c] for c in ("finished_at", "purged_at", "restored_at")} == {
            "timestamp with time zone"} and jobs["record"] == "jsonb"
        assert {runs["started_at"], runs["finished_at"]} == {"timestamp with time zone"}
        assert runs["selector"] == runs["counts"] == "jsonb"
    # and the upgraded tables have the shape of tables created new at this revision
    new_prefix = f"n{uuid.uuid4().hex[:12]}_"
    new = ArchiveStore(url, table_prefix=new_prefix)
    try:
        assert new.count() == 0
        assert _shape(url, prefix) == _shape(url, new_prefix)
    finally:
        new.drop_schema()
        new.close()
    # and a second upgrade has nothing to do
    again = subprocess.run([sys.executable, "-m", "jobtrail", "archive", "upgrade", "--json"],
                           env=settings_env(cli), capture_output=True, text=True, timeout=60,
                           check=False)
    assert again.returncode == 0 and '"from": "0002"' in again.stdout


def test_empty_archive_upgrades_itself_on_first_use(legacy: tuple[str, str]) -> None:
    # Given an archive of today's shape with no row, and a brand-new one
    url, prefix = legacy
    _create_legacy(url, prefix, [])
    store = ArchiveStore(url, table_prefix=prefix)
    try:
        # When it is first used, it is brought to the current revision without being asked
        assert store.count() == 0
        assert store.schema_revision() == HEAD_REVISION
    finally:
        store.close()
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(sa.text(
            f'SELECT version_num FROM "{version_table(prefix)}"')).scalar_one() == HEAD_REVISION
    engine.dispose()
