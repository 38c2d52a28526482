"""The app's services, built once by the lifespan and handed to routes with Depends."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from celery import Celery
from fastapi import Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from jobtrail.api.schemas import error_body
from jobtrail.config import Settings
from jobtrail.connections import Clients
from jobtrail.errors import JobtrailError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.retention.audit import record_call
from jobtrail.store import JobStore
from jobtrail.store.archive import ArchiveStore
from jobtrail.store.retention_store import RetentionStore
from jobtrail.store.stats import StatsStore
from jobtrail.trace import TraceSources
from jobtrail.trace.gather import archive_lookup

__all__ = ["Services", "TokenFirstRoute", "api_actor", "audit_refused", "check_token",
           "get_services"]

logger = logging.getLogger(__name__)


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
                            gone_after_s=self.settings.gone_after_s,
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


def check_token(svc: Services, authorization: str | None) -> JSONResponse | None:
    """Return the 403/401 response refusing a write endpoint's call, or None when allowed.

    Write endpoints (retention, cancel) are disabled without `api_token`, and
    need `Authorization: Bearer <api_token>`.
    """
    token = svc.settings.api_token
    if token is None or not token.get_secret_value():
        return JSONResponse(error_body(
            "forbidden", "write endpoints (retention, cancel) are disabled: set "
            "JOBTRAIL_API_TOKEN and send it as 'Authorization: Bearer <token>'"),
            status_code=403)
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not given or not secrets.compare_digest(
            given.encode(), token.get_secret_value().encode()):
        return JSONResponse(error_body("unauthorized", "missing or wrong bearer token"),
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return None


def api_actor(request: Request) -> tuple[str, str]:
    """Return the (user, host) an audit row names for an API call: "api" and the peer."""
    client = request.client
    return "api", f"{client.host}:{client.port}" if client else "unknown"


def audit_refused(svc: Services, request: Request, response: JSONResponse, kind: str,
                  selector: dict[str, Any]) -> JSONResponse:
    """Audit a refused call (when the archive can take the row), then return *response*."""
    try:
        record_call(svc.archive(), kind=kind, policy=str(selector.get("policy") or ""),
                    selector=selector, actor=api_actor(request), outcome="refused",
                    error=f"HTTP {response.status_code}")
    except JobtrailError:
        logger.warning("refused %s call not audited", kind, exc_info=True)
    return response


class TokenFirstRoute(APIRoute):
    """A write endpoint's route: the bearer token is checked before any parameter or body.

    FastAPI validates the path, the query and the body before any Header
    parameter or dependency, so a request without the token but with a bad
    parameter would get a 422 that describes the schema; here it gets the
    401/403, audited under the endpoint's kind (its function's name without
    `_route`: purge, restore, recover, cancel). The OpenAPI schema is unchanged.
    """

    @property
    def audit_kind(self) -> str:
        """The retention audit's `kind` of this endpoint's calls."""
        return self.name.removesuffix("_route")

    async def refused_selector(self, request: Request) -> dict[str, Any]:
        """Return what a refused call asked for, as its audit row's selector.

        The job id of the path (as typed) and the query parameters (as strings);
        subclasses add what the body asked for.
        """
        selector: dict[str, Any] = dict(request.query_params)
        if "job_id" in request.path_params:
            selector["ids"] = [str(request.path_params["job_id"])]
        return selector

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Wrap FastAPI's handler with the token check."""
        handler = super().get_route_handler()

        async def token_first(request: Request) -> Response:
            svc = get_services(request)
            refused = check_token(svc, request.headers.get("authorization"))
            if refused is None:
                return await handler(request)
            selector = await self.refused_selector(request)
            return await run_in_threadpool(audit_refused, svc, request, refused,
                                           self.audit_kind, selector)

        return token_first
