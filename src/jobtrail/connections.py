"""Redis clients for the main, broker and results DBs, built from Settings.

Invariant: a connection failure leaves this module as RedisUnavailableError
naming the URL (password masked), never as a bare redis-py exception.
"""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis

from jobtrail.clock import monotonic_s
from jobtrail.config import Settings
from jobtrail.errors import JobtrailError, RedisCommandError, RedisUnavailableError

__all__ = [
    "REDIS_ERRORS",
    "Clients",
    "connect",
    "keepalive_options",
    "mask_url",
    "open_clients",
    "socket_kwargs",
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


def _setting(settings: Settings | None, name: str) -> Any:
    """Return *settings*' value of *name*, or its documented default without settings."""
    if settings is not None:
        return getattr(settings, name)
    return Settings.model_fields[name].default


def keepalive_options(settings: Settings | None = None) -> dict[int, int]:
    """Return the TCP keepalive socket options (TCP_KEEPIDLE, KEEPINTVL, KEEPCNT) of *settings*.

    A constant the platform lacks is left out (macOS names TCP_KEEPIDLE
    TCP_KEEPALIVE). Without *settings*, the documented defaults.

    Source: tcp(7), https://man7.org/linux/man-pages/man7/tcp.7.html
    """
    wanted = (("TCP_KEEPIDLE", "redis_keepalive_idle_s"),
              ("TCP_KEEPALIVE", "redis_keepalive_idle_s"),
              ("TCP_KEEPINTVL", "redis_keepalive_interval_s"),
              ("TCP_KEEPCNT", "redis_keepalive_count"))
    options: dict[int, int] = {}
    for constant, name in wanted:
        number = getattr(socket, constant, None)
        if number is not None and number not in options:
            options[number] = int(_setting(settings, name))
    return options


def socket_kwargs(url: str, settings: Settings | None = None) -> dict[str, Any]:
    """Return the redis-py connection keywords that make a client to *url* notice a dead peer.

    A read deadline (`socket_timeout`), a connect deadline, a PING before
    using a connection idle for `health_check_interval` seconds, and TCP
    keepalive (not on unix sockets, which have no peer to lose). Without
    *settings*, the documented defaults of Settings.

    Source: redis-py Connection arguments,
    https://redis.readthedocs.io/en/stable/connections.html
    """
    kwargs: dict[str, Any] = {
        "socket_timeout": float(_setting(settings, "redis_socket_timeout_s")),
        "socket_connect_timeout": float(_setting(settings, "redis_connect_timeout_s")),
        "health_check_interval": int(_setting(settings, "redis_health_check_interval_s")),
    }
    if urlsplit(url).scheme != "unix":
        kwargs["socket_keepalive"] = True
        kwargs["socket_keepalive_options"] = keepalive_options(settings)
    return kwargs


def connect(url: str, *, socket_timeout_s: float | None = None,
            settings: Settings | None = None) -> redis.Redis:
    """Return a redis-py client for *url* with decoded (str) responses.

    The client notices a dead or half-open peer within the socket timeout
    of *settings* (socket_kwargs); *socket_timeout_s* overrides the read
    deadline. No I/O happens here; the first command connects.
    """
    kwargs = socket_kwargs(url, settings)
    if socket_timeout_s is not None:
        kwargs["socket_timeout"] = socket_timeout_s
    return redis.Redis.from_url(url, decode_responses=True, **kwargs)


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
    return Clients(connect(main_url, settings=settings), connect(broker_url, settings=settings),
                   connect(results_url, settings=settings), main_url, broker_url, results_url)
