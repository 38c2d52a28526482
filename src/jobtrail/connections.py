"""Redis clients for the main, broker and results DBs, built from Settings.

Invariant: a connection failure leaves this module as RedisUnavailableError
naming the URL (password masked), never as a bare redis-py exception.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import redis

from jobtrail.clock import monotonic_s
from jobtrail.config import Settings
from jobtrail.errors import JobtrailError, RedisCommandError, RedisUnavailableError

__all__ = [
    "REDIS_ERRORS",
    "Clients",
    "connect",
    "mask_url",
    "open_clients",
    "wait_until_ready",
    "wrap_redis_error",
]

#: What a Redis call can raise; wrap_redis_error() turns each into a JobtrailError.
REDIS_ERRORS = (redis.RedisError,)


def wrap_redis_error(what: str, exc: Exception) -> JobtrailError:
    """Return the JobtrailError for a redis-py exception raised while talking to *what*.

    Connection problems and timeouts become RedisUnavailableError; error
    replies (OOM, WRONGTYPE, NOSCRIPT...) RedisCommandError.
    """
    if isinstance(exc, redis.ResponseError):
        return RedisCommandError(what, str(exc))
    return RedisUnavailableError(what, str(exc) or type(exc).__name__)


def mask_url(url: str) -> str:
    """Return *url* with any password replaced by `***`."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def connect(url: str, *, socket_timeout_s: float = 5.0) -> redis.Redis:
    """Return a redis-py client for *url* with decoded (str) responses.

    No I/O happens here; the first command connects.
    """
    return redis.Redis.from_url(
        url, decode_responses=True, socket_timeout=socket_timeout_s,
        socket_connect_timeout=socket_timeout_s, health_check_interval=30,
    )


def wait_until_ready(client: redis.Redis, url: str, *, timeout_s: float = 5.0) -> None:
    """Block until *client* answers PING, for at most *timeout_s* seconds.

    Raises:
        RedisUnavailableError: No PONG before the deadline.
    """
    deadline = monotonic_s() + timeout_s
    while True:
        try:
            client.ping()
            return
        except redis.RedisError as exc:
            if monotonic_s() >= deadline:
                raise RedisUnavailableError(mask_url(url), str(exc) or type(exc).__name__) from exc
        time.sleep(0.05)


@dataclass(frozen=True, slots=True)
class Clients:
    """The three Redis clients of a deployment and their URLs."""

    main: redis.Redis
    broker: redis.Redis
    results: redis.Redis
    main_url: str
    broker_url: str
    results_url: str

    def close(self) -> None:
        """Close every connection pool."""
        for client in (self.main, self.broker, self.results):
            client.close()


def open_clients(settings: Settings) -> Clients:
    """Return clients for the three DBs of *settings* (URLs must be resolved).

    Raises:
        ConfigError: A URL is unset.
    """
    main_url, broker_url, results_url = settings.require_urls()
    return Clients(connect(main_url), connect(broker_url), connect(results_url),
                   main_url, broker_url, results_url)
