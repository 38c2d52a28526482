"""Alembic migrations of the archive (run by store.archive_schema.upgrade, never by hand).

Each revision reads the table prefix from the Alembic config's attributes, so
one script serves every prefix (several deployments, or tests, in one database).
"""
