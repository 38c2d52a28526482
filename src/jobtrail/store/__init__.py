"""The only code that writes jobtrail's Redis keys and archive rows."""

from __future__ import annotations

from jobtrail.store.archive import ArchiveStore
from jobtrail.store.event_log import EventLog
from jobtrail.store.job_store import JobStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.store.tombstones import TombstoneStore

__all__ = ["ArchiveStore", "EventLog", "JobStore", "RetentionStore", "TombstoneStore"]
