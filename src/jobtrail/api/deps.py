"""The app's services, built once by the lifespan and handed to routes with Depends."""

from __future__ import annotations

from dataclasses import dataclass, field

from celery import Celery
from fastapi import Request

from jobtrail.config import Settings
from jobtrail.connections import Clients
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.store.stats import StatsStore
from jobtrail.trace import TraceSources
from jobtrail.trace.gather import archive_lookup

__all__ = ["Services", "get_services"]


@dataclass(frozen=True, slots=True)
class Services:
    """What the routes use: settings (URLs resolved), clients, stores, the Celery app."""

    settings: Settings
    clients: Clients
    keys: KeySpace
    store: JobStore
    stats: StatsStore
    celery: Celery
    jobs: JobService
    _archive: list[ArchiveStore] = field(default_factory=list)

    def archive(self) -> ArchiveStore:
        """Return the archive, opened (and its schema created) on first use.

        Raises:
            ArchiveError: The archive database cannot be reached.
        """
        if not self._archive:
            store = ArchiveStore(self.settings.effective_archive_url,
                                 table_prefix=self.settings.archive_table_prefix)
            store.ensure_schema()
            self._archive.append(store)
        return self._archive[0]

    def retention_store(self) -> RetentionStore:
        """Return the Redis side of retention."""
        return RetentionStore(self.clients.main, self.clients.results, self.keys,
                              events_max_len=self.settings.events_max_len)

    def trace_sources(self) -> TraceSources:
        """Return the stores trace reads, the archive included."""
        return TraceSources(main=self.clients.main, broker=self.clients.broker,
                            results=self.clients.results, keys=self.keys,
                            visibility_timeout_s=self.settings.visibility_timeout_s,
                            result_expires_s=self.settings.result_expires_s,
                            find_archived=archive_lookup(self.archive))

    def close(self) -> None:
        """Close the Redis clients and the archive."""
        self.clients.close()
        for archive in self._archive:
            archive.close()


def get_services(request: Request) -> Services:
    """Return the app's Services (set by the lifespan)."""
    services: Services = request.app.state.services
    return services
