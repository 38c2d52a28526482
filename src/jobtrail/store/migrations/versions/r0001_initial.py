"""0001: the archive as jobtrail created it before migrations (epoch floats, JSON as TEXT).

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context, op

revision = "0001"
down_revision: str | None = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create both tables of revision 0001 with their indexes."""
    prefix = context.config.attributes["table_prefix"]
    jobs, runs = f"{prefix}archived_jobs", f"{prefix}retention_runs"
    op.create_table(
        jobs,
        sa.Column("job_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("purged_at", sa.Double, nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("checksum", sa.String(64), nullable=False),
        sa.Column("record", sa.Text, nullable=False),
        sa.Column("restored_at", sa.Double, nullable=True),
    )
    op.create_index(f"ix_{jobs}_purged_at", jobs, ["purged_at"])
    op.create_index(f"ix_{jobs}_policy", jobs, ["policy"])
    op.create_table(
        runs,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("finished_at", sa.Double, nullable=True),
        sa.Column("user", sa.String(128), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(64), nullable=False),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False),
        sa.Column("archive", sa.Text, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index(f"ix_{runs}_started_at", runs, ["started_at"])


def downgrade() -> None:
    """Drop both tables (this deletes the archive)."""
    prefix = context.config.attributes["table_prefix"]
    op.drop_table(f"{prefix}retention_runs")
    op.drop_table(f"{prefix}archived_jobs")
