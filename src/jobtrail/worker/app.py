"""create_celery_app(settings): jobtrail's Celery app, and the lazy module-level `app`.

Invariant: importing this module connects to nothing and imports no SymPy;
the solve task lives in worker/tasks.py, which only worker processes import
(through the app's `include`). `celery -A jobtrail.worker.app worker` finds
`app` through the module's __getattr__, built on first access from
get_settings() with the embedded server resolved.
"""

from __future__ import annotations

import logging.config
from typing import Any

from celery import Celery
from celery.signals import setup_logging

from jobtrail.config import Settings, get_settings
from jobtrail.embedded import resolve_settings
from jobtrail.logconfig import log_config

__all__ = [
    "SETTINGS_KEY",
    "TASK_SOLVE", "TASKS_MODULE", "create_celery_app", "get_app", "settings_of"]

TASK_SOLVE = "jobtrail.solve_job"
TASKS_MODULE = "jobtrail.worker.tasks"
HEARTBEAT_MODULE = "jobtrail.worker.heartbeat"
SETTINGS_KEY = "jobtrail_settings"
#: Tries to store a Celery result while the result backend is unreachable (about
#: 10 s in all); past them the job's record (written first) is the only outcome.
RESULT_STORE_RETRIES = 10


def create_celery_app(settings: Settings) -> Celery:
    """Return a Celery app wired to the broker and result backend of *settings*.

    Late acks and reject-on-worker-lost make a task whose worker dies go back
    to the queue (Guarantee 2); results live `result_expires_s` seconds (0:
    forever); the soft and hard time limits come from the solver settings.

    Args:
        settings: Settings with resolved URLs (embedded.resolve_settings).

    Raises:
        ConfigError: A Redis URL is unset.

    The worker rides out Redis outages: it reconnects to the broker for as
    long as they last, and retries storing a result (result_backend_always_retry).

    Source: Celery configuration reference,
    https://docs.celeryq.dev/en/stable/userguide/configuration.html
    (task_acks_late, task_reject_on_worker_lost, result_expires,
    broker_transport_options visibility_timeout, broker_connection_max_retries,
    result_backend_always_retry, result_backend_max_retries).
    """
    _, broker_url, results_url = settings.require_urls()
    app = Celery("jobtrail", broker=broker_url, backend=results_url,
                 include=[TASKS_MODULE, HEARTBEAT_MODULE], set_as_current=False)
    app.conf.update(
        {
            SETTINGS_KEY: settings,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "task_acks_on_failure_or_timeout": True,
            "worker_prefetch_multiplier": 1,
            "task_default_queue": settings.queue,
            "task_serializer": "json",
            "result_serializer": "json",
            "accept_content": ["json"],
            "result_accept_content": ["json"],
            "result_expires": settings.result_expires_s,
            "result_extended": True,
            "task_soft_time_limit": settings.solver_time_limit_s,
            "task_time_limit": settings.solver_hard_time_limit_s,
            "broker_transport_options": {
                "visibility_timeout": settings.visibility_timeout_s,
                # kombu sweeps unacked messages every interval * throttle seconds (100 s
                # by default); a sweep at least every tenth of the visibility timeout
                # (at most 10 s) makes redelivery happen when trace says it will
                "unacked_restore_interval": max(1, min(10, settings.visibility_timeout_s // 10)),
                "unacked_restore_throttle": 1,
            },
            "broker_connection_retry_on_startup": True,
            # a worker never gives up on the broker: it reconnects for as long as the
            # outage lasts (Celery's default stops after 100 tries and exits)
            "broker_connection_retry": True,
            "broker_connection_max_retries": None,
            # a result that cannot be stored right away is retried (backoff from 0.1 s
            # to 2 s) instead of failing the task after its job was recorded
            "result_backend_always_retry": True,
            "result_backend_max_retries": RESULT_STORE_RETRIES,
            "result_backend_base_sleep_between_retries_ms": 100,
            "result_backend_max_sleep_between_retries_ms": 2_000,
            "worker_hijack_root_logger": False,
            "worker_concurrency": settings.worker_concurrency or None,
            "task_send_sent_event": False,
            "enable_utc": True,
        }
    )
    return app


def settings_of(app: Celery) -> Settings:
    """Return the Settings *app* was created with."""
    settings: Settings = app.conf[SETTINGS_KEY]
    return settings


_app: Celery | None = None


def get_app() -> Celery:
    """Return the process's Celery app, creating it (and the embedded server) on first use."""
    global _app
    if _app is None:
        _app = create_celery_app(resolve_settings(get_settings()))
    return _app


def __getattr__(name: str) -> Any:
    if name == "app":
        return get_app()
    raise AttributeError(name)


@setup_logging.connect  # type: ignore[untyped-decorator]  # celery ships no types
def _configure_worker_logging(loglevel: Any = None, **_: Any) -> None:
    """Apply jobtrail's logging config in worker processes (Celery's setup_logging signal)."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else str(loglevel)
    logging.config.dictConfig(log_config(verbose=level.upper() == "DEBUG", json=False,
                                         level=level.upper() if loglevel else None))
