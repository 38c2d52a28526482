"""The app's services, built once by the lifespan and handed to routes with Depends."""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery
from fastapi import Request

from jobtrail.config import Settings
from jobtrail.connections import Clients
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.store import JobStore
from jobtrail.store.stats import StatsStore
from jobtrail.trace import TraceSources

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

    def trace_sources(self) -> TraceSources:
        """Return the stores trace reads."""
        return TraceSources(main=self.clients.main, broker=self.clients.broker,
                            results=self.clients.results, keys=self.keys,
                            visibility_timeout_s=self.settings.visibility_timeout_s,
                            result_expires_s=self.settings.result_expires_s)


def get_services(request: Request) -> Services:
    """Return the app's Services (set by the lifespan)."""
    services: Services = request.app.state.services
    return services
