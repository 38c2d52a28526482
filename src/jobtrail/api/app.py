"""create_app(settings): the FastAPI app; it wires routers, handlers and the lifespan only.

Invariant: the app never imports SymPy (it sends tasks by name) and every
error leaves it as JSON (api/error_handlers.py).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from jobtrail import __version__
from jobtrail.api.deps import Services
from jobtrail.api.error_handlers import install_error_handlers
from jobtrail.api.routes import dashboard, health, jobs, metrics, retention
from jobtrail.config import Settings
from jobtrail.connections import open_clients
from jobtrail.errors import JobtrailError
from jobtrail.jobs import JobService
from jobtrail.keys import KeySpace
from jobtrail.metrics import JobtrailCollector, MetricsSnapshot, process_registry
from jobtrail.store import JobStore
from jobtrail.store.stats import StatsStore, read_metrics
from jobtrail.worker.app import create_celery_app

__all__ = ["create_app"]

logger = logging.getLogger(__name__)


def build_services(settings: Settings) -> Services:
    """Open the clients and build the services of *settings* (URLs resolved).

    Raises:
        ConfigError: A Redis URL is unset.
    """
    clients = open_clients(settings)
    keys = KeySpace(settings.key_prefix, settings.queue)
    store = JobStore(clients.main, keys, events_max_len=settings.events_max_len)
    celery = create_celery_app(settings)
    return Services(settings, clients, keys, store, StatsStore(clients.main, keys), celery,
                    JobService(store, celery))


def create_app(settings: Settings) -> FastAPI:
    """Return the API, dashboard and /metrics app for *settings*.

    Args:
        settings: Settings with resolved Redis URLs (embedded.resolve_settings).

    Raises:
        ConfigError: A Redis URL is unset.
    """
    services = build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        services.close()

    # /docs is served below from the package's own Swagger UI files (FastAPI's default page
    # loads them from a CDN and is blank offline); ReDoc would need a CDN too, so it is off
    app = FastAPI(title="jobtrail", version=__version__, lifespan=lifespan,
                  description="Math-problem jobs on Celery + Redis, every job accounted for.",
                  docs_url=None, redoc_url=None)
    app.state.services = services
    registry = process_registry()

    def snapshot() -> MetricsSnapshot:
        try:
            archived: int | None = services.archive().count()
        except JobtrailError:
            archived = None  # the archive is down: leave the metric out, not a false 0
        return read_metrics(services.clients.main, services.clients.broker,
                            services.clients.results, services.keys,
                            visibility_timeout_s=settings.visibility_timeout_s,
                            archived_total=archived, gone_after_s=settings.gone_after_s)

    registry.register(JobtrailCollector(snapshot))
    app.state.metrics_registry = registry
    install_error_handlers(app)
    for module in (jobs, retention, health, metrics, dashboard):
        app.include_router(module.router)
    static = resources.files("jobtrail.api").joinpath("static")
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    _offline_docs(app)
    return app


def _offline_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs from api/static/swagger-ui (no CDN).

    Source: FastAPI's "Custom Docs UI Static Assets (Self-Hosting)" recipe,
    https://fastapi.tiangolo.com/how-to/custom-docs-ui-assets/
    """
    assets = "/static/swagger-ui"
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = app.swagger_ui_oauth2_redirect_url or "/docs/oauth2-redirect"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - API docs",
            oauth2_redirect_url=redirect_url, swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png")

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
