"""The only code that writes jobtrail's Redis keys (and, later, archive rows)."""

from __future__ import annotations

from jobtrail.store.event_log import EventLog
from jobtrail.store.job_store import JobStore

__all__ = ["EventLog", "JobStore"]
