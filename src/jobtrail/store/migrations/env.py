"""Alembic environment: runs on the connection archive_schema.upgrade passes in."""

from __future__ import annotations

from alembic import context

from jobtrail.store.archive_schema import version_table

_config = context.config
_connection = _config.attributes["connection"]
_prefix = _config.attributes["table_prefix"]

context.configure(connection=_connection, version_table=version_table(_prefix),
                  transactional_ddl=True)
with context.begin_transaction():
    context.run_migrations()
