"""The archive's tables and their versioned schema (Alembic, src/jobtrail/store/migrations).

Invariants:
- Times are epoch seconds (float) in Python everywhere. PostgreSQL stores them
  as `timestamptz` and records as `jsonb`; SQLite keeps `REAL` and `TEXT`.
  EpochTime and JsonText convert at the column, so callers never see a
  datetime, and a record reads back as its canonical JSON text on both.
- The schema revision lives in `<prefix>alembic_version`. Tables created before
  migrations existed (no version table) are revision 0001.
- An archive is upgraded without being asked only while it holds no row;
  otherwise a schema behind head raises ArchiveSchemaError naming the command.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect, Engine

from jobtrail.errors import ArchiveSchemaError

__all__ = ["HEAD_REVISION", "LEGACY_REVISION", "NUL_ESCAPE", "EpochTime", "JsonText",
           "canonical_bytes", "current_revision", "jsonb_text", "make_tables", "upgrade",
           "version_table"]

#: The revision this jobtrail writes and reads (the last file in migrations/versions).
HEAD_REVISION = "0002"
#: The revision of tables created before the archive had migrations.
LEGACY_REVISION = "0001"


class EpochTime(sa.types.TypeDecorator[float]):
    """Epoch seconds in Python; `timestamptz` on PostgreSQL, `REAL` (double) elsewhere."""

    impl = sa.Double
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(sa.TIMESTAMP(timezone=True))
        return dialect.type_descriptor(sa.Double())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return datetime.fromtimestamp(float(value), UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> float | None:
        if isinstance(value, datetime):
            return value.timestamp()
        return None if value is None else float(value)


def canonical_bytes(value: Any) -> bytes:
    """Canonical JSON bytes of *value* (sorted keys, no spaces, UTF-8), which the caller has
    checked holds no NaN/Infinity: orjson, or json for what orjson refuses (integers beyond
    64 bits, non-str keys)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False).encode("utf-8")


#: How a NUL character appears in canonical JSON; `jsonb` refuses it in any string.
NUL_ESCAPE = "\\u0000"


def jsonb_text(text: str) -> str:
    """Return the JSON text to store in `jsonb` for the canonical JSON *text*.

    The text itself, unless it holds a NUL character: then a JSON string
    holding the text, which reads back (JsonText) as that same text.
    """
    return text if NUL_ESCAPE not in text else json.dumps(text, ensure_ascii=False)


class JsonText(sa.types.TypeDecorator[str]):
    """JSON text in Python; `jsonb` on PostgreSQL (read back canonical), `TEXT` elsewhere.

    A record holding a NUL character is stored as a `jsonb` string of its
    canonical text (jsonb_text), and read back as that text.
    """

    impl = sa.Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.JSONB(none_as_null=True))
        return dialect.type_descriptor(sa.Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "postgresql":
            return value
        return json.loads(jsonb_text(value))  # JSONB's own processor serializes it again

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        if value is None or isinstance(value, str):
            return value
        return canonical_bytes(value).decode("utf-8")


def make_tables(prefix: str) -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """Return the metadata and the two tables of revision HEAD_REVISION for *prefix*."""
    meta = sa.MetaData()
    jobs = sa.Table(
        f"{prefix}archived_jobs", meta,
        sa.Column("job_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", EpochTime, nullable=True),
        sa.Column("purged_at", EpochTime, nullable=False, index=True),
        sa.Column("policy", sa.String(64), nullable=False, index=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("record", JsonText, nullable=False),
        sa.Column("restored_at", EpochTime, nullable=True),
    )
    runs = sa.Table(
        f"{prefix}retention_runs", meta,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", EpochTime, nullable=False, index=True),
        sa.Column("finished_at", EpochTime, nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("selector", JsonText, nullable=False),
        sa.Column("counts", JsonText, nullable=False),
        sa.Column("archive", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    return meta, jobs, runs


def version_table(prefix: str) -> str:
    """Return the name of the table holding the archive's schema revision."""
    return f"{prefix}alembic_version"


def current_revision(conn: Connection, prefix: str) -> str | None:
    """Return the archive's revision: None when it has no tables, LEGACY_REVISION without a
    version table."""
    names = set(sa.inspect(conn).get_table_names())
    if f"{prefix}archived_jobs" not in names:
        return None
    if version_table(prefix) not in names:
        return LEGACY_REVISION
    # Alembic's own table, read without importing Alembic (it costs 9 MB and 0.2 s to
    # every purge and trace that merely checks the revision)
    table = sa.table(version_table(prefix), sa.column("version_num"))
    found = conn.execute(sa.select(table.c.version_num)).scalars().all()
    return str(found[0]) if len(found) == 1 else LEGACY_REVISION


def _config(conn: Connection, prefix: str) -> Any:
    from alembic.config import Config  # noqa: PLC0415 - only when migrating

    cfg = Config()
    cfg.set_main_option("script_location",
                        str(resources.files("jobtrail.store").joinpath("migrations")))
    cfg.attributes["connection"] = conn
    cfg.attributes["table_prefix"] = prefix
    return cfg


def _create_at_head(conn: Connection, prefix: str) -> None:
    """Create both tables at HEAD_REVISION and the version table holding it."""
    meta, _, _ = make_tables(prefix)
    versions = sa.Table(version_table(prefix), meta,
                        sa.Column("version_num", sa.String(32), primary_key=True))
    meta.create_all(conn)
    conn.execute(sa.insert(versions), {"version_num": HEAD_REVISION})


def upgrade(engine: Engine, prefix: str, *, location: str) -> tuple[str | None, str]:
    """Bring the archive's schema to HEAD_REVISION, in one transaction; return (from, to).

    A new archive (no tables) is created at HEAD_REVISION from make_tables()
    and stamped, as Alembic's documentation advises for a fresh database,
    without importing Alembic; tables of before migrations are stamped
    LEGACY_REVISION, then every revision after it runs.

    Raises:
        ArchiveSchemaError: The archive is at a revision this jobtrail does not know.
        sqlalchemy.exc.SQLAlchemyError: The database refused.
    """
    with engine.begin() as conn:
        before = current_revision(conn, prefix)
        if before not in (None, LEGACY_REVISION, HEAD_REVISION):
            raise ArchiveSchemaError(
                f"archive {location} is at schema revision {before}, newer than this "
                f"jobtrail's {HEAD_REVISION}: upgrade jobtrail", location=location,
                current=before, head=HEAD_REVISION)
        if before is None:
            _create_at_head(conn, prefix)
            return before, HEAD_REVISION
        if before == HEAD_REVISION:
            return before, HEAD_REVISION
        from alembic import command  # noqa: PLC0415 - only when migrating

        cfg = _config(conn, prefix)
        if before == LEGACY_REVISION and version_table(prefix) not in set(
                sa.inspect(conn).get_table_names()):
            command.stamp(cfg, LEGACY_REVISION)
        command.upgrade(cfg, HEAD_REVISION)
    return before, HEAD_REVISION

