"""The only code that writes jobtrail's Redis keys and archive rows.

`ArchiveStore` and `RetentionStore` are imported on first use (PEP 562): the
archive needs SQLAlchemy, about 0.3 s of start-up that `jobtrail status`,
`trace` and `list` do not need (the documented exception to module-level
imports: start-up cost, bench/bench_cli.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobtrail.store.event_log import EventLog
from jobtrail.store.job_store import JobStore
from jobtrail.store.tombstones import TombstoneStore

if TYPE_CHECKING:
    from jobtrail.store.archive import ArchiveStore
    from jobtrail.store.retention_store import RetentionStore

__all__ = ["ArchiveStore", "EventLog", "JobStore", "RetentionStore", "TombstoneStore"]


def __getattr__(name: str) -> Any:
    if name == "ArchiveStore":
        from jobtrail.store.archive import ArchiveStore  # lazy: start-up, see the docstring

        return ArchiveStore
    if name == "RetentionStore":
        from jobtrail.store.retention_store import RetentionStore  # lazy: start-up

        return RetentionStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
