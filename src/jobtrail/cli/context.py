"""Per-invocation state of the CLI: settings from --env-file, then clients built on demand."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from jobtrail.config import Settings, load_settings
from jobtrail.connections import Clients, open_clients, wait_until_ready
from jobtrail.embedded import resolve_settings
from jobtrail.keys import KeySpace
from jobtrail.store import EventLog, JobStore
from jobtrail.trace import TraceSources
from jobtrail.trace.gather import archive_lookup

if TYPE_CHECKING:
    from celery import Celery

    from jobtrail.jobs import JobService
    from jobtrail.store.archive import ArchiveStore

__all__ = ["CliState", "check_listen", "runtime", "settings_from", "trace_sources"]


@dataclass
class CliState:
    """What the root callback learned: the env file; settings and services built lazily."""

    env_file: Path | None = None
    settings: Settings | None = None
    resolved: Settings | None = None
    clients: Clients | None = None
    extra: dict[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class Runtime:
    """Services of one CLI invocation, on resolved settings.

    The Celery app and the job service are built on first use: Celery and
    kombu cost about 0.3 s of start-up that `status`, `trace` and `list` do
    not need (bench/bench_cli.py), so they are imported there, not above
    (the documented exception to module-level imports).
    """

    settings: Settings
    clients: Clients
    keys: KeySpace
    store: JobStore
    events: EventLog

    @cached_property
    def celery(self) -> Celery:
        """The Celery app of these settings (imports Celery)."""
        from jobtrail.worker.app import create_celery_app  # lazy: start-up, see above

        return create_celery_app(self.settings)

    @cached_property
    def service(self) -> JobService:
        """The job service (submit, requeue) on this store and Celery app."""
        from jobtrail.jobs import JobService  # lazy: start-up, see above

        return JobService(self.store, self.celery)


def _state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def settings_from(ctx: typer.Context) -> Settings:
    """Return the invocation's Settings (env file, environment), unresolved.

    Raises:
        ConfigError: A setting is invalid.
    """
    state = _state(ctx)
    if state.settings is None:
        state.settings = load_settings(state.env_file)
    return state.settings


def runtime(ctx: typer.Context) -> Runtime:
    """Return the invocation's services, starting the embedded Redis if needed.

    Raises:
        ConfigError, EmbeddedRedisError, RedisUnavailableError.
    """
    state = _state(ctx)
    cached = state.extra.get("runtime")
    if isinstance(cached, Runtime):  # one set of clients per invocation
        return cached
    settings = resolve_settings(settings_from(ctx))
    clients = open_clients(settings)
    wait_until_ready(clients.main, clients.main_url, timeout_s=3)
    keys = KeySpace(settings.key_prefix, queue=settings.queue)
    store = JobStore(clients.main, keys, events_max_len=settings.events_max_len)
    state.resolved, state.clients = settings, clients
    ctx.call_on_close(clients.close)
    rt = Runtime(settings, clients, keys, store, EventLog(clients.main, keys))
    state.extra["runtime"] = rt
    return rt


def trace_sources(ctx: typer.Context) -> TraceSources:
    """Return the stores `trace` reads, from the invocation's runtime.

    Raises:
        ConfigError, EmbeddedRedisError, RedisUnavailableError.
    """
    rt = runtime(ctx)

    def open_archive() -> ArchiveStore:
        # lazy: SQLAlchemy is imported only when trace needs the archive (start-up)
        from jobtrail.store.archive import ArchiveStore

        archive = ArchiveStore(rt.settings.effective_archive_url,
                               table_prefix=rt.settings.archive_table_prefix)
        ctx.call_on_close(archive.close)
        archive.ensure_schema()
        return archive

    return TraceSources(main=rt.clients.main, broker=rt.clients.broker,
                        results=rt.clients.results, keys=rt.keys,
                        visibility_timeout_s=rt.settings.visibility_timeout_s,
                        result_expires_s=rt.settings.result_expires_s,
                        gone_after_s=rt.settings.gone_after_s,
                        find_archived=archive_lookup(open_archive))


def check_listen(host: str, port: int, param_hint: str) -> None:
    """Refuse a server's address before anything starts if nothing can listen on it.

    Binds and closes a socket as the servers do (SO_REUSEADDR): uvicorn would
    print its own error and exit 3 (the CLI's unknown-job code), and a
    worker's metrics server would fail in a Celery signal handler, leaving the
    worker running without its metrics. The port can still be taken between
    this check and the server's own bind.

    Raises:
        typer.BadParameter: The address is in use, not this host's, or not an address.
    """
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        why = (exc.strerror or str(exc)).lower()
        raise typer.BadParameter(f"cannot listen on {host}:{port}: {why}",
                                 param_hint=param_hint) from None
