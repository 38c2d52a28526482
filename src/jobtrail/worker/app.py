"""create_celery_app(settings): jobtrail's Celery app, and the lazy module-level `app`.

Invariant: importing this module connects to nothing and imports no SymPy;
the solve task lives in worker/tasks.py, which only worker processes import
(through the app's `include`). `celery -A jobtrail.worker.app worker` finds
`app` through the module's __getattr__, built on first access from
get_settings() with the embedded server resolved.
"""

from __future__ import annotations

import logging.config
import uuid
from typing import Any

from celery import Celery
from celery.signals import setup_logging

from jobtrail.config import Settings, get_settings
from jobtrail.connections import connect, sentinel_kwargs, socket_kwargs
from jobtrail.embedded import resolve_settings
from jobtrail.errors import ProblemError
from jobtrail.failover import master_check_s
from jobtrail.keys import KeySpace
from jobtrail.logconfig import log_config
from jobtrail.problem_text import check_problem_text
from jobtrail.store import JobStore
from jobtrail.store.job_store import new_job_id
from jobtrail.store.messages import BATCH_ID_PREFIX
from jobtrail.worker import kombu_guard
from jobtrail.worker.celery_urls import broker_url_for_kombu, results_url_for_celery, tls_options
from jobtrail.worker.event_batch import EventBatchStep
from jobtrail.worker.liveness import BrokerPollStep
from jobtrail.worker.results import owned_results
from jobtrail.worker.transport import (
    FAILOVER_RETRY_OPTION,
    MASTER_CHECK_OPTION,
    broker_transport,
)

__all__ = [
    "CANCELLED_BEFORE_START", "SETTINGS_KEY", "TASK_SOLVE_PROBLEM", "JobtrailCelery",
    "TASK_SOLVE", "TASK_SOLVE_BATCH", "TASKS_MODULE", "broker_socket_options",
    "create_celery_app", "get_app", "new_batch_id", "results_socket_options",
    "sentinel_options", "settings_of"]

TASK_SOLVE = "jobtrail.solve_job"
#: Several jobs in one message: args [[job_id, problem], ...], task id "batch-<hex>"
#: (worker/batch.py); each job's record names it in its `batch` field.
TASK_SOLVE_BATCH = "jobtrail.solve_batch"
#: The public task: the problem text alone; its task id becomes the job id.
TASK_SOLVE_PROBLEM = "jobtrail.solve"
#: The reason (`error`) of a job cancelled while pending, and of its skipped delivery.
CANCELLED_BEFORE_START = "cancelled before start"
TASKS_MODULE = "jobtrail.worker.tasks"
BATCH_MODULE = "jobtrail.worker.batch"
HEARTBEAT_MODULE = "jobtrail.worker.heartbeat"
SETTINGS_KEY = "jobtrail_settings"
#: Tries to store a Celery result while the result backend is unreachable or times out
#: (about 10 s of backoff in all); past them the job's record (written first) is the only
#: outcome.
RESULT_STORE_RETRIES = 10


def broker_socket_options(settings: Settings) -> dict[str, Any]:
    """Return the broker transport options that make the consumer notice a dead broker peer.

    `socket_timeout` bounds every synchronous command (a publish, an ack, the
    unacked sweep), so none waits for ever on a half-open connection and
    blocks the event loop; `health_check_interval` is also the period of
    kombu's check of the consumer's BRPOP connection, which drops it once
    its reply is overdue by that much (kombu >= 5.7); keepalive closes idle
    connections a NAT forgot. `retry_on_timeout` retries a command that timed
    out once, on a fresh connection: without it, the first command on each
    pooled connection that went half-open fails, and when that command is
    kombu recording a message it just popped as unacked (BRPOP on a new
    connection, HSET on an old one), the message is lost. The retry is for
    commands only: the BRPOP and pub/sub connections the event loop polls get
    none (worker/transport.py), as a transparent reconnect there hangs the
    consumer.

    Source: kombu.transport.redis transport options,
    https://docs.celeryq.dev/projects/kombu/en/stable/reference/kombu.transport.redis.html
    """
    _, broker_url, _ = settings.require_urls()
    return {**socket_kwargs(broker_url, settings), "retry_on_timeout": True}


def results_socket_options(settings: Settings) -> dict[str, Any]:
    """Return Celery's `redis_*` settings that bound the result backend's socket waits.

    Celery's redis backend takes keepalive as a flag only (the kernel's
    probe timing applies); its `health_check_interval` PINGs an idle
    connection before use, within the socket timeout. A store that times out
    (its connection went half-open) is retried on a fresh connection
    (`result_backend_always_retry`, at most RESULT_STORE_RETRIES times), so
    Celery's result does not read FAILURE for a job that completed.

    Source: Celery configuration, "Redis backend settings",
    https://docs.celeryq.dev/en/stable/userguide/configuration.html#redis-backend-settings
    """
    _, _, results_url = settings.require_urls()
    kwargs = socket_kwargs(results_url, settings)
    return {
        "redis_socket_timeout": kwargs["socket_timeout"],
        "redis_socket_connect_timeout": kwargs["socket_connect_timeout"],
        "redis_backend_health_check_interval": kwargs["health_check_interval"],
        "redis_socket_keepalive": bool(kwargs.get("socket_keepalive")),
        "redis_retry_on_timeout": True,
        "result_backend_always_retry": True,
        "result_backend_max_retries": RESULT_STORE_RETRIES,
        "result_backend_base_sleep_between_retries_ms": 100,
        "result_backend_max_sleep_between_retries_ms": 2_000,
    }


def sentinel_options(settings: Settings, role: str) -> dict[str, Any]:
    """Return the transport options that point kombu or Celery's backend at a Sentinel master.

    Empty unless the URL of *role* ("broker" or "results") is `sentinel://`:
    then `master_name` (JOBTRAIL_SENTINEL_MASTER_NAME or its per-DB override)
    and `sentinel_kwargs`, the Sentinels' own password, TLS and socket
    deadlines. kombu's SentinelChannel and Celery's SentinelBackend ask the
    Sentinels for the master on every new connection, and redis-py's
    Sentinel connection turns a READONLY reply (the master was demoted) into
    a connection error, so the consumer reconnects to the new master instead
    of dying on ReadOnlyError.

    Source: kombu.transport.redis.SentinelChannel; celery.backends.redis.SentinelBackend;
    https://docs.celeryq.dev/en/stable/getting-started/backends-and-brokers/redis.html
    """
    url = settings.broker_url if role == "broker" else settings.results_url
    if not url or not url.startswith("sentinel://"):
        return {}
    return {"master_name": settings.master_name(role),
            "sentinel_kwargs": sentinel_kwargs(settings)}


def _broker_failover_options(settings: Settings) -> dict[str, Any]:
    """jobtrail's SentinelChannel options: how often its pool asks Sentinel, how long it retries."""
    if not (settings.broker_url or "").startswith("sentinel://"):
        return {}
    return {MASTER_CHECK_OPTION: master_check_s(settings),
            FAILOVER_RETRY_OPTION: settings.redis_failover_retry_s}


def _no_subscription(producer: Any, task_id: str) -> None:
    """A backend's on_task_call that subscribes to nothing (JobtrailCelery._get_backend)."""


class JobtrailCelery(Celery):  # type: ignore[misc]  # celery ships no types
    """jobtrail's Celery app: a `jobtrail.solve` task sent through it gets its job record first.

    So `app.send_task("jobtrail.solve", args=[problem])` and the task's
    `.delay(problem)` (which calls send_task) leave a pending job whose id is
    the task id before the message is published, as JobService.submit does:
    trace knows the job while it is queued. Every other task is sent as is.
    """

    _jobtrail_store: JobStore | None = None

    def send_task(self, name: str, args: Any = None, kwargs: Any = None,
                  **options: Any) -> Any:
        """Celery's send_task; for `jobtrail.solve`, the job record is written first.

        Raises:
            ProblemError: The problem is not text, or check_problem_text() refuses it
                (empty, blank, a control character, over MAX_PROBLEM_CHARS): nothing
                written or sent.
            RedisUnavailableError: The main DB is down (nothing sent).
        """
        if name == TASK_SOLVE_PROBLEM:
            problem = (list(args or []) + [None])[0] if args else (kwargs or {}).get("problem")
            if not isinstance(problem, str):
                raise ProblemError(f"the problem must be text, not {type(problem).__name__}")
            check_problem_text(problem, max_chars=settings_of(self).max_problem_chars)
            options["task_id"] = options.get("task_id") or new_job_id()
            self._job_store().create(problem, job_id=options["task_id"])
        return super().send_task(name, args, kwargs, **options)

    def _get_backend(self) -> Any:
        """Celery's result backend: a job's own outcome stored in one round trip
        (worker.results), minus the subscription to each sent task's result.

        Celery's Redis backend subscribes a pub/sub connection of the results DB
        to every task it sends (on_task_call) and unsubscribes when the
        AsyncResult is collected, so each submit made two results-DB round trips
        it never needed (jobtrail reads outcomes from the main DB), and a submit
        waited on, or failed with, the results DB or its Sentinel (a Sentinel
        that hangs held it for minutes, though the record and the message were
        written). AsyncResult.get() still subscribes when it waits, then reads
        the stored result (no outcome is missed).
        """
        backend = super()._get_backend()
        backend.__class__ = owned_results(type(backend))
        if hasattr(backend, "on_task_call"):
            backend.on_task_call = _no_subscription
        return backend

    def _job_store(self) -> JobStore:
        if self._jobtrail_store is None:
            settings = settings_of(self)
            self._jobtrail_store = JobStore(
                connect(settings.require_urls()[0], settings=settings),
                KeySpace(settings.key_prefix, settings.queue),
                events_max_len=settings.events_max_len)
        return self._jobtrail_store

    def close(self) -> None:
        """Close Celery's pools and the main-DB connection of send_task."""
        if self._jobtrail_store is not None:
            self._jobtrail_store.client.close()
            self._jobtrail_store = None
        super().close()


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
    broker_transport_options visibility_timeout, broker_connection_max_retries);
    socket deadlines and result-store retries from broker_socket_options() and
    results_socket_options().
    """
    _, broker_url, results_url = settings.require_urls()
    app = JobtrailCelery("jobtrail", broker=broker_url_for_kombu(broker_url),
                         backend=results_url_for_celery(results_url),
                         include=[TASKS_MODULE, BATCH_MODULE, HEARTBEAT_MODULE],
                         set_as_current=False)
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
                **broker_socket_options(settings),
                **sentinel_options(settings, "broker"),
                **_broker_failover_options(settings),
            },
            "result_backend_transport_options": sentinel_options(settings, "results"),
            **results_socket_options(settings),
            **tls_options(settings),
            # kombu's redis transport, minus redis-py's transparent reconnect of the
            # connections the event loop polls (worker/transport.py)
            "broker_transport": broker_transport(broker_url_for_kombu(broker_url)),
            "broker_connection_retry_on_startup": True,
            # a worker never gives up on the broker: it reconnects for as long as the
            # outage lasts (Celery's default stops after 100 tries and exits)
            "broker_connection_retry": True,
            "broker_connection_max_retries": None,
            "worker_hijack_root_logger": False,
            "worker_concurrency": settings.worker_concurrency or None,
            # task events on, as Flower, `celery events` and celery-exporter expect:
            # task-sent from every producer (a PUBLISH a task: JOBTRAIL_TASK_SENT_EVENT=false
            # saves it), task-received/started/succeeded from workers (a buffered PUBLISH
            # per few: JOBTRAIL_WORKER_TASK_EVENTS=false saves them, as a worker without -E)
            "worker_send_task_events": settings.worker_task_events,
            "task_send_sent_event": settings.task_sent_event,
            "enable_utc": True,
        }
    )
    app.steps["consumer"].add(BrokerPollStep)
    app.steps["consumer"].add(EventBatchStep)  # task events: a PUBLISH per few, not per one
    kombu_guard.install()  # a broker lost mid-task must not kill the worker
    return app


def new_batch_id() -> str:
    """Return a fresh Celery task id for a batch message: "batch-" + 32 hex digits.

    Never a job id (those are UUID4 strings with dashes), so a batch's
    `celery-task-meta-<id>` can never be mistaken for a job's.
    """
    return BATCH_ID_PREFIX + uuid.uuid4().hex


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
