"""ArchiveStore: the SQL archive of purged job records and the audit of retention runs.

One SQLAlchemy Core code path for SQLite (the default, a file in the state
directory) and PostgreSQL (driver psycopg 3). Two tables, named with a
configurable prefix: `<prefix>archived_jobs` (one row per job id) and
`<prefix>retention_runs` (one row per purge or restore run).

Invariants:
- put_many() commits before it returns; purge deletes nothing from Redis
  until that commit and verify() have both succeeded.
- A job id has at most one row: re-archiving (a rerun after a crash, or a
  purge after a restore) replaces the row, it never adds a second one.
- The `record` column holds the canonical JSON text of the archived record;
  `checksum` is its sha256, so a read-back proves the bytes survived.
- Library errors leave this module as ArchiveError (``raise ... from exc``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from jobtrail.errors import ArchivedJobNotFoundError, ArchiveError, ArchiveSchemaError
from jobtrail.models import ArchivedJob, RetentionRun
from jobtrail.store.archive_schema import (
    HEAD_REVISION,
    canonical_bytes,
    current_revision,
    jsonb_text,
    make_tables,
    upgrade,
    version_table,
)

__all__ = [
    "ArchiveStore",
    "SealedRecord",
    "canonical_json",
    "mask_archive_url",
    "normalize_archive_url",
    "seal",
]

logger = logging.getLogger(__name__)


def normalize_archive_url(url: str) -> str:
    """Return *url* with a plain `postgresql://` (or `postgres://`) mapped to psycopg 3.

    Raises:
        ArchiveError: The URL is neither SQLite nor PostgreSQL.
    """
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain):]
    if not url.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ArchiveError(f"unsupported archive URL {mask_archive_url(url)}: use sqlite:/// "
                           "or postgresql://", location=mask_archive_url(url))
    return url


def mask_archive_url(url: str) -> str:
    """Return *url* with its password (if any) replaced by `***`."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable archive URL>"


def _finite(value: Any) -> bool:
    """Return False if *value* holds a NaN or infinite float (orjson writes those as null)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_finite(v) for v in value)
    return True


def canonical_json(value: Any) -> str:
    """Return the canonical JSON text of *value*: sorted keys, no spaces, UTF-8.

    Serialized by orjson (json for what orjson refuses, such as integers
    beyond 64 bits); the two agree byte for byte on everything else.

    Raises:
        ValueError: *value* holds a NaN or infinite float, or a lone surrogate.
        TypeError: *value* holds something JSON cannot represent.
    """
    if not _finite(value):
        raise ValueError("NaN and Infinity are not JSON")
    return canonical_bytes(value).decode("utf-8")


@dataclass(frozen=True, slots=True)
class SealedRecord:
    """An archive record with its canonical JSON text and checksum, ready to insert.

    Attributes:
        job_id: The job.
        status: The job's status (from its hash).
        finished_at: The job's finished_at, epoch seconds, or None.
        purged_at: Epoch seconds.
        policy: Policy name.
        run_id: The purge run.
        text: Canonical JSON of the record (what `checksum` covers).
        checksum: sha256 hex of `text`.
    """

    job_id: str
    status: str
    finished_at: float | None
    purged_at: float
    policy: str
    run_id: str
    text: str
    checksum: str


def seal(job_id: str, job: Mapping[str, str], events: Sequence[Mapping[str, str]],
         celery_meta: Mapping[str, Any] | None, *, purged_at: float, policy: str,
         run_id: str) -> SealedRecord:
    """Serialize one record canonically and checksum it (the only serialization of a row).

    Args:
        job_id: The job.
        job: Every field of `job:<id>` (strings).
        events: Lifecycle events, oldest first, each with its `event_id`.
        celery_meta: Parsed `celery-task-meta-<id>`, or None.
        purged_at: Epoch seconds.
        policy: Policy name.
        run_id: The purge run.

    Returns:
        The SealedRecord; its checksum covers every field above.

    Raises:
        ValueError: *purged_at* or *celery_meta* holds a NaN or infinite float.
    """
    meta = None if celery_meta is None else dict(celery_meta)
    if not (_finite(purged_at) and _finite(meta)):
        raise ValueError(f"record of job {job_id} holds NaN or Infinity, which are not JSON")
    raw = canonical_bytes({
        "job_id": job_id, "job": job if type(job) is dict else dict(job),
        "events": [e if type(e) is dict else dict(e) for e in events],
        "celery_meta": meta, "purged_at": purged_at, "policy": policy, "run_id": run_id,
    })
    finished = job.get("finished_at") or ""
    return SealedRecord(job_id=job_id, status=job.get("status", ""),
                        finished_at=float(finished) if finished else None,
                        purged_at=purged_at, policy=policy, run_id=run_id,
                        text=raw.decode("utf-8"), checksum=hashlib.sha256(raw).hexdigest())


#: Columns put_many() writes (restored_at is reset to NULL), and the SealedRecord field of each.
_ROW_COLUMNS = ("job_id", "status", "finished_at", "purged_at", "policy", "run_id",
                "checksum", "record")
_FIELD_OF = {c: ("text" if c == "record" else c) for c in _ROW_COLUMNS}


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers (trace) run during a purge; synchronous=FULL makes a
    # commit durable across power loss, not only across a process crash.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


class ArchiveStore:
    """The purge archive and the audit table, in SQLite or PostgreSQL.

    The schema is versioned (store.archive_schema): an empty archive is brought
    to the current revision on first use; one holding rows under an older
    revision raises ArchiveSchemaError until `jobtrail archive upgrade` (upgrade())
    ran. No I/O happens in the constructor.

    Args:
        url: SQLAlchemy URL: `sqlite:///<path>` or `postgresql[+psycopg]://...`
            (plain `postgresql://` is mapped to psycopg 3).
        table_prefix: Prefix of both table names (lets several deployments,
            or tests, share one PostgreSQL database).

    Raises:
        ArchiveError: The URL is not SQLite or PostgreSQL.
    """

    def __init__(self, url: str, *, table_prefix: str = "jobtrail_") -> None:
        self.url = normalize_archive_url(url)
        self.location = mask_archive_url(self.url)
        self.table_prefix = table_prefix
        self._meta, self.jobs_table, self.runs_table = make_tables(table_prefix)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                try:
                    Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise ArchiveError(f"archive {self.location} cannot be created: {exc}",
                                       location=self.location) from exc
            self.engine: Engine = sa.create_engine(self.url)
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(self.url, pool_pre_ping=True)
        self._ready = False
        self._upsert: tuple[str, tuple[str, ...] | None] | None = None

    # -- plumbing -----------------------------------------------------------------------

    def _fail(self, what: str, exc: Exception, job_id: str | None = None) -> ArchiveError:
        reason = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        return ArchiveError(f"archive {self.location}: {what} failed: {reason}",
                            job_id=job_id, location=self.location)

    def ensure_schema(self) -> None:
        """Check the schema revision once; bring an empty archive to the current one.

        Raises:
            ArchiveSchemaError: The archive holds rows under another revision; the
                message names `jobtrail archive upgrade`.
            ArchiveError: The database cannot be reached or refuses the DDL.
        """
        if self._ready:
            return
        try:
            with self.engine.connect() as conn:
                revision = current_revision(conn, self.table_prefix)
                empty = revision is None or self._empty(conn)
        except SQLAlchemyError as exc:
            raise self._fail("reading the schema revision", exc) from exc
        if revision != HEAD_REVISION:
            if not empty:
                raise ArchiveSchemaError(
                    f"archive {self.location} holds rows under schema revision {revision}, "
                    f"this jobtrail needs {HEAD_REVISION}: run `jobtrail archive upgrade`",
                    location=self.location, current=revision, head=HEAD_REVISION)
            self._upgrade_empty()
        self._ready = True

    def _empty(self, conn: sa.Connection) -> bool:
        for table in (self.jobs_table, self.runs_table):
            if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first():
                return False
        return True

    def _upgrade_empty(self) -> None:
        try:
            upgrade(self.engine, self.table_prefix, location=self.location)
        except SQLAlchemyError as first:
            # two processes creating the tables at once: the loser's CREATE fails
            # (PostgreSQL: duplicate key in pg_type); the winner's revision is then head
            try:
                with self.engine.connect() as conn:
                    revision = current_revision(conn, self.table_prefix)
            except SQLAlchemyError as exc:
                raise self._fail("creating tables", exc) from first
            if revision != HEAD_REVISION:
                raise self._fail("creating tables", first) from first

    def schema_revision(self) -> str | None:
        """Return the archive's schema revision (None: no tables yet).

        Raises:
            ArchiveError: The database cannot be reached.
        """
        try:
            with self.engine.connect() as conn:
                return current_revision(conn, self.table_prefix)
        except SQLAlchemyError as exc:
            raise self._fail("reading the schema revision", exc) from exc

    def upgrade(self) -> tuple[str | None, str]:
        """Bring the schema to the current revision, rows and all, in one transaction.

        Returns:
            (revision before, revision after); before is None for a new archive.

        Raises:
            ArchiveSchemaError: The archive is at a revision newer than this jobtrail's.
            ArchiveError: The database refused; the archive is as it was.
        """
        try:
            before_after = upgrade(self.engine, self.table_prefix, location=self.location)
        except SQLAlchemyError as exc:
            raise self._fail("upgrading the schema", exc) from exc
        self._ready = True
        return before_after

    def drop_schema(self) -> None:
        """Drop both tables (tests and uninstall only; this deletes the archive).

        Raises:
            ArchiveError: The database refused.
        """
        try:
            self._meta.drop_all(self.engine, checkfirst=True)
            with self.engine.begin() as conn:
                conn.execute(sa.text(
                    f'DROP TABLE IF EXISTS "{version_table(self.table_prefix)}"'))
        except SQLAlchemyError as exc:
            raise self._fail("dropping tables", exc) from exc
        self._ready = False

    def close(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()

    def _upsert_sql(self) -> tuple[str, tuple[str, ...] | None]:
        """Compile the archive's upsert once: (SQL text, bind names in order or None).

        SQLAlchemy Core builds the statement and the dialect renders it; rows
        then go to the driver's executemany as they are, which skips Core's
        per-row parameter processing (half the cost of a batch on SQLite).
        The names are None for a driver taking named parameters (psycopg).
        """
        if self._upsert is None:
            t = self.jobs_table
            module = pg_dialect if self.dialect == "postgresql" else sqlite_dialect
            values: dict[str, Any] = {c: sa.bindparam(c) for c in _ROW_COLUMNS}
            if self.dialect == "postgresql":  # rows bypass the column types: convert in SQL
                for c in ("finished_at", "purged_at"):
                    values[c] = sa.func.to_timestamp(sa.bindparam(c, type_=sa.Double))
                values["record"] = sa.cast(sa.bindparam("record", type_=sa.Text),
                                           pg_dialect.JSONB)
            stmt = module.insert(t).values(values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[t.c.job_id],
                set_={c: stmt.excluded[c] for c in _ROW_COLUMNS if c != "job_id"}
                | {"restored_at": sa.null()})
            compiled = stmt.compile(dialect=self.engine.dialect)
            names = tuple(compiled.positiontup or ()) if compiled.positional else None
            self._upsert = (compiled.string, names)
        return self._upsert

    # -- archived jobs ------------------------------------------------------------------

    def put_many(self, records: Sequence[SealedRecord]) -> None:
        """Insert or replace one row per record, in one transaction, and COMMIT.

        Idempotent per job id: a row already there (an earlier run that died
        before its Redis step, or a job purged again after a restore) is
        replaced, so the archive never holds two rows for one job.

        Args:
            records: Up to a purge batch of sealed records.

        Raises:
            ArchiveError: The archive refused the batch; nothing of it was committed.
        """
        if not records:
            return
        self.ensure_schema()
        sql, names = self._upsert_sql()
        rows: list[Any]
        if names is None:
            text = jsonb_text if self.dialect == "postgresql" else str
            rows = [{"job_id": r.job_id, "status": r.status, "finished_at": r.finished_at,
                     "purged_at": r.purged_at, "policy": r.policy, "run_id": r.run_id,
                     "checksum": r.checksum, "record": text(r.text)} for r in records]
        else:
            fields = attrgetter(*(_FIELD_OF[n] for n in names))
            rows = [fields(r) for r in records]
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(sql, rows)
        except SQLAlchemyError as exc:
            raise self._fail(f"writing {len(rows)} row(s)", exc, records[0].job_id) from exc

    def verify(self, records: Sequence[SealedRecord]) -> None:
        """Read rows back and check each one's stored bytes and checksum against *records*.

        A stored text equal to the sealed text, whose sha256 is the sealed
        checksum, proves the row's bytes survived without hashing them again.

        Args:
            records: The sealed records just written by put_many().

        Raises:
            ArchiveError: A row is missing, or its checksum or text differs;
                `job_id` names the first such job.
        """
        if not records:
            return
        t = self.jobs_table
        query = sa.select(t.c.job_id, t.c.checksum, t.c.record, t.c.run_id).where(
            t.c.job_id.in_(sa.bindparam("ids", expanding=True)))
        try:
            with self.engine.connect() as conn:
                rows = {row[0]: (row[1], row[2], row[3])
                        for row in conn.execute(query, {"ids": [r.job_id for r in records]})}
        except SQLAlchemyError as exc:
            raise self._fail("reading rows back", exc, records[0].job_id) from exc
        for record in records:
            found = rows.get(record.job_id)
            if found is None:
                raise ArchiveError(f"archive {self.location}: row of job {record.job_id} "
                                   "missing after commit", job_id=record.job_id,
                                   location=self.location)
            if found[2] != record.run_id:
                raise ArchiveError(f"archive {self.location}: row of job {record.job_id} was "
                                   f"replaced by run {found[2]}: another purge is running at "
                                   "the same time; let it finish, then rerun",
                                   job_id=record.job_id, location=self.location)
            if found[0] != record.checksum or found[1] != record.text:
                raise ArchiveError(f"archive {self.location}: row of job {record.job_id} "
                                   "fails its checksum on read-back", job_id=record.job_id,
                                   location=self.location)

    @staticmethod
    def _decode(row: Any) -> ArchivedJob:
        data = json.loads(row.record)
        return ArchivedJob(job_id=data["job_id"], job=data["job"], events=data["events"],
                           celery_meta=data["celery_meta"], purged_at=float(data["purged_at"]),
                           policy=data["policy"], run_id=data["run_id"],
                           checksum=row.checksum, restored_at=row.restored_at)

    def find(self, job_id: str) -> ArchivedJob | None:
        """Return the archived record of *job_id*, or None.

        Raises:
            ArchiveError: The archive cannot be read.
        """
        self.ensure_schema()
        t = self.jobs_table
        query = sa.select(t.c.record, t.c.checksum, t.c.restored_at).where(t.c.job_id == job_id)
        try:
            with self.engine.connect() as conn:
                row = conn.execute(query).first()
        except SQLAlchemyError as exc:
            raise self._fail("reading a row", exc, job_id) from exc
        return None if row is None else self._decode(row)

    def ids_starting(self, prefix: str, *, limit: int = 4) -> list[str]:
        """Return up to *limit* archived job ids that begin with *prefix*, sorted.

        A range on the primary key (ids from *prefix* to just past it), so no
        LIKE escaping of `_` and no scan of the table.

        Raises:
            ArchiveError: The archive cannot be read.
        """
        if not prefix:
            return []
        self.ensure_schema()
        t = self.jobs_table
        past = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        query = (sa.select(t.c.job_id).where(t.c.job_id >= prefix, t.c.job_id < past)
                 .order_by(t.c.job_id).limit(limit))
        try:
            with self.engine.connect() as conn:
                return [str(row.job_id) for row in conn.execute(query)]
        except SQLAlchemyError as exc:
            raise self._fail("reading ids", exc) from exc

    def get(self, job_id: str) -> ArchivedJob:
        """Return the archived record of *job_id*.

        Raises:
            ArchivedJobNotFoundError: No row for the id.
            ArchiveError: The archive cannot be read.
        """
        record = self.find(job_id)
        if record is None:
            raise ArchivedJobNotFoundError(job_id)
        return record

    def _where(self, policy: str | None, purged_since: float | None,
               only_unrestored: bool) -> list[Any]:
        t = self.jobs_table
        clauses: list[Any] = []
        if policy is not None:
            clauses.append(t.c.policy == policy)
        if purged_since is not None:
            clauses.append(t.c.purged_at >= purged_since)
        if only_unrestored:
            clauses.append(t.c.restored_at.is_(None))
        return clauses

    def iter_archived(self, *, batch_size: int = 500, policy: str | None = None,
                      purged_since: float | None = None, only_unrestored: bool = False,
                      ) -> Iterator[list[ArchivedJob]]:
        """Yield archived records in batches, by job id (keyset pagination).

        Args:
            batch_size: Rows per batch; memory is O(batch_size).
            policy: Only rows purged by this policy.
            purged_since: Only rows purged at or after this time, epoch seconds.
            only_unrestored: Skip rows whose job was restored since.

        Raises:
            ArchiveError: The archive cannot be read.
        """
        self.ensure_schema()
        t = self.jobs_table
        after = ""
        while True:
            query = (sa.select(t.c.job_id, t.c.record, t.c.checksum, t.c.restored_at)
                     .where(t.c.job_id > after, *self._where(policy, purged_since,
                                                              only_unrestored))
                     .order_by(t.c.job_id).limit(batch_size))
            try:
                with self.engine.connect() as conn:
                    rows = list(conn.execute(query))
            except SQLAlchemyError as exc:
                raise self._fail("reading rows", exc) from exc
            if not rows:
                return
            yield [self._decode(row) for row in rows]
            after = rows[-1].job_id

    def count(self, *, policy: str | None = None, purged_since: float | None = None,
              only_unrestored: bool = False) -> int:
        """Return the number of archived rows (optionally filtered like iter_archived).

        Raises:
            ArchiveError: The archive cannot be read.
        """
        self.ensure_schema()
        query = sa.select(sa.func.count()).select_from(self.jobs_table).where(
            *self._where(policy, purged_since, only_unrestored))
        try:
            with self.engine.connect() as conn:
                return int(conn.execute(query).scalar_one())
        except SQLAlchemyError as exc:
            raise self._fail("counting rows", exc) from exc

    def mark_restored(self, job_ids: Sequence[str], restored_at: float) -> None:
        """Record that *job_ids* were put back into the main DB (the rows stay).

        Raises:
            ArchiveError: The archive refused the update.
        """
        if not job_ids:
            return
        t = self.jobs_table
        stmt = (sa.update(t).where(t.c.job_id.in_(sa.bindparam("ids", expanding=True)))
                .values(restored_at=restored_at))
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt, {"ids": list(job_ids)})
        except SQLAlchemyError as exc:
            raise self._fail("marking rows restored", exc, job_ids[0]) from exc

    # -- audit --------------------------------------------------------------------------

    def start_run(self, run: RetentionRun) -> None:
        """Insert the audit row of a run that is starting (outcome "running"), and COMMIT.

        Raises:
            ArchiveError: The archive refused the row.
        """
        self.ensure_schema()
        row = {"run_id": run.run_id, "kind": run.kind, "started_at": run.started_at,
               "finished_at": run.finished_at, "user": run.user, "host": run.host,
               "policy": run.policy, "selector": canonical_json(run.selector),
               "counts": canonical_json(run.counts), "archive": run.archive,
               "outcome": run.outcome, "error": run.error}
        try:
            with self.engine.begin() as conn:
                conn.execute(sa.insert(self.runs_table), row)
        except SQLAlchemyError as exc:
            raise self._fail("writing the audit row", exc) from exc

    def finish_run(self, run_id: str, *, finished_at: float, counts: Mapping[str, int],
                   outcome: str, error: str = "") -> None:
        """Record the end of a run: its time (epoch seconds), counts and outcome.

        Raises:
            ArchiveError: The archive refused the update.
        """
        t = self.runs_table
        stmt = sa.update(t).where(t.c.run_id == run_id).values(
            finished_at=finished_at, counts=canonical_json(dict(counts)), outcome=outcome,
            error=error)
        try:
            with self.engine.begin() as conn:
                conn.execute(stmt)
        except SQLAlchemyError as exc:
            raise self._fail("updating the audit row", exc) from exc

    def history(self, *, limit: int = 50) -> list[RetentionRun]:
        """Return the latest *limit* runs, newest first.

        Raises:
            ArchiveError: The archive cannot be read.
        """
        self.ensure_schema()
        t = self.runs_table
        query = sa.select(t).order_by(t.c.started_at.desc(), t.c.run_id).limit(limit)
        try:
            with self.engine.connect() as conn:
                rows = list(conn.execute(query))
        except SQLAlchemyError as exc:
            raise self._fail("reading the audit table", exc) from exc
        return [RetentionRun(run_id=r.run_id, kind=r.kind, started_at=r.started_at,
                             finished_at=r.finished_at, user=r.user, host=r.host,
                             policy=r.policy, selector=json.loads(r.selector),
                             counts=json.loads(r.counts), archive=r.archive,
                             outcome=r.outcome, error=r.error) for r in rows]
