"""0002: on PostgreSQL, times become `timestamptz` and JSON columns `jsonb` (SQLite: no change).

Revision ID: 0002
Revises: 0001

Every row is converted in place (`to_timestamp(epoch)`, `text::jsonb`), in the
upgrade's one transaction: an error leaves the archive at 0001, untouched.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None

_TIMES = {"archived_jobs": ("finished_at", "purged_at", "restored_at"),
          "retention_runs": ("started_at", "finished_at")}
_JSON = {"archived_jobs": ("record",), "retention_runs": ("selector", "counts")}
_NUL = "\\u0000"  # as canonical JSON writes a NUL character


def upgrade() -> None:
    """Convert the time and JSON columns of both tables (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    prefix = context.config.attributes["table_prefix"]
    for table, columns in _TIMES.items():
        for column in columns:
            op.alter_column(f"{prefix}{table}", column, type_=sa.TIMESTAMP(timezone=True),
                            postgresql_using=f'to_timestamp("{column}")')
    for table, columns in _JSON.items():
        for column in columns:
            # a text holding a NUL escape becomes a jsonb string of itself (jsonb
            # refuses NUL; archive_schema.jsonb_text does the same for new rows)
            op.alter_column(f"{prefix}{table}", column, type_=postgresql.JSONB,
                            postgresql_using=f"""CASE WHEN strpos("{column}", '{_NUL}') > 0 """
                            f"""THEN to_jsonb("{column}") ELSE "{column}"::jsonb END""")


def downgrade() -> None:
    """Back to epoch floats and JSON text (PostgreSQL only)."""
    if op.get_bind().dialect.name != "postgresql":
        return
    prefix = context.config.attributes["table_prefix"]
    for table, columns in _TIMES.items():
        for column in columns:
            op.alter_column(f"{prefix}{table}", column, type_=sa.Double,
                            postgresql_using=f'extract(epoch from "{column}")')
    for table, columns in _JSON.items():
        for column in columns:
            op.alter_column(f"{prefix}{table}", column, type_=sa.Text,
                            postgresql_using=f'"{column}"::text')
